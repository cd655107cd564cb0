"""One bench row, typed: what was measured where, and its status. The sweep makes them, reports read them.

The measuring process (here or on a board) answers with a `Measurement`; `BenchRecord.update` sorts its JSON into
the declared fields, each read into its type, and keeps anything a device reports beyond them (benchmark_model's
extra timings) in `extra`. One line of bench.jsonl is `to_json()`; `from_json` reads it back.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from vit_edge.core.records import as_json, extra, optional, read_field
from vit_edge.core.summaries import NpuEstimate
from vit_edge.core.types import SessionInfo
from vit_edge.runtime.base import ProfileSummary
from vit_edge.runtime.measure import DeviceFacts, NumericsCheck

__all__ = ["BenchRecord", "HostFacts"]


@dataclass(frozen=True)
class HostFacts:
    """The machine that ran the sweep (not the device measured: that one says what it is in `device_fingerprint`)."""

    hostname: str = ""
    machine: str = ""
    system: str = ""
    cpu: str = ""
    cores: int | None = None
    python: str = ""
    unknown: dict[str, Any] = extra()


@dataclass
class BenchRecord:
    """A configuration of the sweep (artifact × device × threads × batch) and what it measured."""

    artifact: str
    device: str  # the address asked for: local, ssh://…, adb:…
    threads: int | None
    batch: int
    status: str = "ok"  # ok, mismatch, or the error's class name
    error: str | None = None
    artifact_id: str = ""
    created_at: str = ""
    host: HostFacts | None = None  # the machine that ran the sweep
    device_name: str | None = None  # the fleet's name for the device
    device_fingerprint: DeviceFacts | None = None  # what the device said it is (None: it said nothing)
    # from the manifest
    target: str | None = None
    precision: str | None = None
    size_mb: float | None = None
    source: str | None = None
    npu_estimate: NpuEstimate | None = None  # Vela's estimate for an Ethos-U, from the manifest: not measured
    # from the runtime
    runtime: str | None = None
    session: SessionInfo | None = None  # version, precision that ran, delegation
    load_ms: float | None = None
    first_ms: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    std_ms: float | None = None
    min_ms: float | None = None
    iqr_ms: float | None = None
    runs: int | None = None
    throughput_ips: float | None = None
    # memory: the process's high-water mark (VmHWM) before load, after load, at the end
    rss_before_load_mb: float | None = None
    peak_rss_load_mb: float | None = None
    peak_rss_mb: float | None = None
    memory_source: str | None = None
    numerics_check: NumericsCheck | None = None
    profile: ProfileSummary | None = None
    # accuracy on labelled data, and agreement with a reference
    top1: float | None = None
    top5: float | None = None
    eval_images: int | None = None
    agreement_top1: float | None = None
    agreement_cosine: float | None = None
    agreement_cosine_images: int | None = optional()  # on how many images (segmentation: the kept sample)
    reference: str | None = None
    # in the rows that scored images only: their labels, and what the sanity checks read
    eval_labels: str | None = optional()
    eval_skipped: int | None = optional()
    classes: int | None = optional()
    labelled_classes: int | None = optional()
    top_class_share: float | None = optional()
    extra: dict[str, Any] = field(default_factory=dict)

    def update(self, values: dict[str, Any]) -> None:
        """Set declared fields from a JSON result, each read into its type (a row's `{}` for a session or a
        fingerprint nobody reported is None); the rest goes to `extra` (nothing a device said is lost)."""
        for key, value in values.items():
            if key in _FIELDS:
                empty = value == {} and key in _SAID_NOTHING
                setattr(self, key, None if empty else read_field(BenchRecord, key, value))
            else:
                self.extra[key] = value

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        """A flat JSON object (one line of bench.jsonl): whatever `extra` holds, then the declared fields (those
        that only scoring rows have, where they have them)."""
        data = {key: value for key, value in as_json(self).items() if key != "extra"}
        data.update({name: {} for name in _SAID_NOTHING if data[name] is None})
        return {**self.extra, **data}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BenchRecord:
        """A record read back from bench.jsonl."""
        key = ("artifact", "device", "threads", "batch")
        record = cls(artifact=data.get("artifact", ""), device=data.get("device", ""), threads=data.get("threads"),
                     batch=data.get("batch", 1))
        record.update({k: v for k, v in data.items() if k not in key})
        return record


_SAID_NOTHING = frozenset({"host", "device_fingerprint", "session"})  # `{}` in bench.jsonl where nobody said
_FIELDS = frozenset(f.name for f in dataclasses.fields(BenchRecord) if f.name != "extra")
