"""The sanity rules of core/sanity.py applied to a bench run's records: one warning line per finding.

The CLI prints them after the table and the report shows them above it, so a top-1 at chance level, a noisy
timing, threads above the cores or an INT8 file slower than its FP32 one is said next to the number.
"""
from __future__ import annotations

from typing import Iterator

from vit_edge.benchmarking.record import BenchRecord
from vit_edge.core import sanity

__all__ = ["warnings_for"]


def _name(record: BenchRecord) -> str:
    where = record.device_name or record.device or "local"
    return f"{record.artifact_id or record.artifact} ({record.runtime or '?'}, {record.threads or '?'} threads, " \
           f"batch {record.batch}, {where})"


def _accuracy(records: list[BenchRecord]) -> Iterator[str | None]:
    """Once per artifact (its first labelled row): the score does not depend on threads or batch."""
    seen: set[str] = set()
    for record in records:
        if record.ok and record.top1 is not None and record.artifact not in seen:
            seen.add(record.artifact)
            yield sanity.accuracy_warning(record.artifact_id or record.artifact, record.top1,
                                          record.labelled_classes or record.classes, record.top_class_share)


def _int8_against_fp32(records: list[BenchRecord]) -> Iterator[str | None]:
    """INT8 rows against the FP32 row of the same model, runtime, device, threads and batch."""
    fp32 = {(r.source, r.runtime, r.device, r.threads, r.batch): r.p50_ms
            for r in records if r.ok and r.precision == "fp32"}
    for record in records:
        if record.ok and record.precision == "int8":
            baseline = fp32.get((record.source, record.runtime, record.device, record.threads, record.batch))
            yield sanity.int8_slower_warning(_name(record), record.p50_ms, baseline)


def warnings_for(records: list[BenchRecord]) -> list[str]:
    """Every warning the run's numbers call for, in the order of the rows."""
    found: list[str | None] = [*_accuracy(records), *_int8_against_fp32(records)]
    for record in records:
        if record.ok:
            cores = (record.device_fingerprint.cores if record.device_fingerprint else None) or (
                record.host.cores if record.host else None)
            found.append(sanity.threads_warning(_name(record), record.threads, cores))
            found.append(sanity.timing_warning(_name(record), record.p50_ms, record.p90_ms))
    return list(dict.fromkeys(line for line in found if line))
