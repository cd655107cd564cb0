"""One bench row, typed: what was measured where, and its status. The sweep makes them, reports read them.

The measuring process (here or on a board) answers in JSON; `BenchRecord.from_result` sorts its fields into the
declared ones and keeps anything a device reports beyond them (benchmark_model's extra timings) in `extra`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BenchRecord"]


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
    host: dict[str, Any] = field(default_factory=dict)  # the machine that ran the sweep
    device_name: str | None = None  # the fleet's name for the device
    device_fingerprint: dict[str, Any] = field(default_factory=dict)  # what the device said it is
    # from the manifest
    target: str | None = None
    precision: str | None = None
    size_mb: float | None = None
    source: str | None = None
    npu_estimate: dict[str, Any] | None = None  # Vela's estimate for an Ethos-U, from the manifest: not measured
    # from the runtime
    runtime: str | None = None
    session: dict[str, Any] = field(default_factory=dict)  # version, precision that ran, delegation
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
    numerics_check: dict[str, Any] | None = None
    profile: dict[str, Any] | None = None
    # accuracy on labelled data, and agreement with a reference
    top1: float | None = None
    top5: float | None = None
    eval_images: int | None = None
    agreement_top1: float | None = None
    agreement_cosine: float | None = None
    reference: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def update(self, values: dict[str, Any]) -> None:
        """Set declared fields from a JSON result; the rest goes to `extra` (nothing a device said is lost)."""
        names = _field_names()
        for key, value in values.items():
            if key in names and key != "extra":
                setattr(self, key, value)
            else:
                self.extra[key] = value

    @classmethod
    def from_result(cls, base: dict[str, Any], result: dict[str, Any]) -> BenchRecord:
        """A record from the sweep's own fields (`base`: artifact, device, threads, batch, …) and a result."""
        record = cls(**{k: v for k, v in base.items() if k in _field_names()})
        record.update({k: v for k, v in base.items() if k not in _field_names()})
        record.update(result)
        return record

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        """A flat JSON object (one line of bench.jsonl): declared fields, then whatever `extra` holds."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**self.extra, **data}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BenchRecord:
        """A record read back from bench.jsonl."""
        return cls.from_result({k: data.get(k) for k in ("artifact", "device", "threads", "batch")}, {
            k: v for k, v in data.items() if k not in ("artifact", "device", "threads", "batch")})


def _field_names() -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(BenchRecord))
