"""Measurement inside one process: load, first run, warm-up, timed runs, memory, accuracy.

This module and what it imports (numpy, the artifact and session modules) are all a board needs; `runner.py`
runs it in a fresh process per configuration so runs do not disturb each other.
"""
from __future__ import annotations

import os
import resource
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from vit_edge.core.manifest import NUMERICS_CHECK, Manifest, read_manifest
from vit_edge.core.options import check_count, check_counts, check_number
from vit_edge.core.records import extra, flat, optional
from vit_edge.core.sanity import most_frequent_share
from vit_edge.core.types import Precision, SessionInfo
from vit_edge.runtime.base import (
    ProfileSummary,
    Session,
    SessionOptions,
    default_runtime,
    session_class,
    summarize_profile,
)

__all__ = ["RunSettings", "MeasureConfig", "Measurement", "Latency", "DeviceFacts", "NumericsCheck", "Scores",
           "measure", "latency_stats", "peak_rss_mb", "memory_source", "device_fingerprint"]


@dataclass(frozen=True)
class RunSettings:
    """How each configuration runs: one declaration for the host's sweep (BenchConfig) and the measuring process
    (MeasureConfig), checked here for both (`runs=0` or `threads=(0,)` would reach a runtime as 'all' or nothing)."""

    runtime: str | None = None  # None: the target's default runtime
    warmup: int = 10
    runs: int = 50
    min_seconds: float = 1.0
    accelerator: str = "CPU"  # within the runtime (OpenVINO's CPU/GPU/NPU/AUTO); the machine is the caller's
    precision_hint: str | None = "f32"  # None: the runtime's own default (OpenVINO: bf16 where the CPU has it)
    cpus: tuple[int, ...] = ()  # pin the measuring process to these CPUs (Linux)
    profile: bool = False  # the runtime's own per-op timing (ORT profiler, OpenVINO performance counters)

    def __post_init__(self) -> None:
        check_counts("cpus", self.cpus, least=0, allow_empty=True)
        check_count("warmup", self.warmup, least=0)
        check_count("runs", self.runs)
        check_number("min_seconds", self.min_seconds)

    def session_options(self, threads: int | None, batch: int | None = None) -> SessionOptions:
        return SessionOptions(self.accelerator, threads, self.precision_hint, batch=batch)


@dataclass(frozen=True)
class MeasureConfig(RunSettings):
    """One configuration to measure; it travels as JSON to a subprocess or a remote board."""

    artifact: str = field(kw_only=True)
    threads: int | None = None
    batch: int = 1
    data_images: str | None = None  # a .npy of uint8 images at the input size (the eval transform done), mmapped
    data_labels: str | None = None  # a .npy of their labels as output indices (None: agreement only, no top-1)
    data_masks: str | None = None  # a .npy of their masks as class maps (segmentation: mIoU), IGNORE where none
    # where to keep the predictions (agreement with a reference): the logits as a .npy, or for segmentation the
    # class maps and a sample's logits in the two files core/segmentation_metrics.ClassMapFiles.beside(it) names
    logits_out: str | None = None
    check_numerics: bool = False  # re-run the artifact's numerics_check.npz here and judge it (the numerics gate)
    verify_files: bool = True  # hash the artifact's files (the first configuration of each artifact in a bench)

    @classmethod
    def of(cls, settings: RunSettings, **given: Any) -> MeasureConfig:
        """The configuration that runs with `settings` (a BenchConfig's, field by field) and `given` on top."""
        return cls(**{**{f.name: getattr(settings, f.name) for f in fields(RunSettings)}, **given})


@dataclass(frozen=True)
class Latency:
    """The timed runs (ms): percentiles, mean, spread, and how many. A device that reports less (benchmark_model
    over adb) leaves the rest None."""

    p50_ms: float | None = optional()
    p90_ms: float | None = optional()
    p99_ms: float | None = optional()
    mean_ms: float | None = optional()
    std_ms: float | None = optional()
    min_ms: float | None = optional()
    iqr_ms: float | None = optional()
    runs: int | None = optional()


@dataclass(frozen=True)
class DeviceFacts:
    """What the measuring process runs on, read there (on a board: the board's own facts)."""

    hostname: str = ""
    machine: str = ""
    cpu: str = ""
    cpu_features: str = ""  # those that decide which kernels a runtime picks (AVX-512 VNNI, AMX, Arm i8mm, ...)
    cores: int | None = None
    os: str = ""
    python: str = ""
    unknown: dict[str, Any] = extra()


@dataclass(frozen=True)
class NumericsCheck:
    """The numerics gate: the artifact's check inputs run on this device, judged against PyTorch's outputs."""

    samples: int
    min_cosine: float
    top1_agreement: float | None
    max_abs_diff: float
    passed: bool
    min_token_cosine: float | None = optional()  # several tokens an image: min_cosine is the worst image's mean


@dataclass(frozen=True)
class Scores:
    """The prepared images scored by the session that was timed: top-1/5 where labelled, and what the sanity
    checks need (a model that answers one class for everything, or scores at chance)."""

    eval_images: int
    top1: float | None = optional()
    top5: float | None = optional()
    classes: int | None = optional()
    labelled_classes: int | None = optional()
    top_class_share: float | None = optional()
    # segmentation against --data masks (mIoU, pixel accuracy as fractions; classes and pixels counted)
    seg_miou: float | None = optional()
    seg_pixel_accuracy: float | None = optional()
    seg_classes_present: int | None = optional()
    seg_pixels: int | None = optional()


@dataclass(frozen=True)
class Measurement:
    """What one configuration measured, as the measuring process sends it back (one JSON line); a failure, or a
    device that reports less (benchmark_model over adb), leaves the rest None, and what a device reports beyond
    these fields is kept in `unknown`."""

    status: str = "ok"  # ok, mismatch (the numerics gate), or what failed
    error: str | None = optional()
    runtime: str | None = optional()
    session: SessionInfo | None = optional()
    threads: int | None = optional()
    batch: int | None = optional()
    load_ms: float | None = optional()
    first_ms: float | None = optional()
    latency: Latency = flat(Latency())
    throughput_ips: float | None = optional()
    # memory: the process's high-water mark (VmHWM) before load, after load, at the end
    rss_before_load_mb: float | None = optional()
    peak_rss_load_mb: float | None = optional()
    peak_rss_mb: float | None = optional()
    memory_source: str | None = optional()
    device_fingerprint: DeviceFacts | None = optional()
    numerics_check: NumericsCheck | None = optional()
    profile: ProfileSummary | None = optional()
    scores: Scores | None = flat(None)
    eval_labels: str | None = optional()  # set by the host: how the scored images were labelled
    eval_skipped: int | None = optional()
    unknown: dict[str, Any] = extra()

    @classmethod
    def failed(cls, status: str, error: str) -> Measurement:
        return cls(status=status, error=error)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB.

    Linux: VmHWM from /proc/self/status, which exec resets, so it is the measuring process's own peak.
    ru_maxrss is not: it survives exec, and a process forked from the bench (which holds torch) starts at the
    parent's peak (every local row read 1.2 GB for a 1 MB model). Elsewhere ru_maxrss is the only figure.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def device_fingerprint() -> DeviceFacts:
    """What this process runs on, read here (on a board: the board's own facts, not the controlling machine's)."""
    import platform

    cpu, features = platform.processor(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Hardware", "CPU part") and (not cpu or key == "model name"):
                cpu = value.strip()
            elif key in ("flags", "Features") and not features:
                features = " ".join(f for f in value.split() if f in _CPU_FEATURES)
    except OSError:
        pass
    return DeviceFacts(hostname=platform.node(), machine=platform.machine(), cpu=cpu, cpu_features=features,
                       cores=os.cpu_count(), os=platform.platform(), python=platform.python_version())


# the features that decide which kernels a runtime picks (x86 AVX/AMX/VNNI, Arm dot product/i8mm/SVE/fp16)
_CPU_FEATURES = {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16", "avx_vnni",
                 "asimd", "asimddp", "i8mm", "sve", "sve2", "fphp", "asimdhp", "bf16"}


def memory_source() -> str:
    """Which figure peak_rss_mb reports (recorded with each measurement)."""
    return "VmHWM" if Path("/proc/self/status").is_file() else "ru_maxrss (may include a parent's peak)"


def latency_stats(times_ms: list[float]) -> Latency:
    values = np.asarray(times_ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    q1, q3 = np.percentile(values, [25, 75])
    return Latency(p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99), mean_ms=float(values.mean()),
                   std_ms=float(values.std()), min_ms=float(values.min()), iqr_ms=float(q3 - q1),
                   runs=int(values.size))


def _timed_runs(run: Any, batch: np.ndarray, cfg: MeasureConfig) -> list[float]:
    for _ in range(cfg.warmup):
        run(batch)
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < cfg.runs or time.perf_counter() - started < cfg.min_seconds:
        begin = time.perf_counter()
        run(batch)
        times.append((time.perf_counter() - begin) * 1000.0)
        if len(times) >= 100 * max(cfg.runs, 1):
            break
    return times


def _accuracy(session: Session, manifest: Manifest, cfg: MeasureConfig) -> Scores:
    """Every prepared image's output, a batch at a time from the memory-mapped file (runtime/accuracy.predict);
    top-1/5 where labelled, mIoU where masked (segmentation: scored and kept a batch at a time)."""
    from vit_edge.runtime.accuracy import predict

    images = np.load(str(cfg.data_images), mmap_mode="r")
    masks = np.load(cfg.data_masks, mmap_mode="r") if cfg.data_masks is not None else None
    out = Path(cfg.logits_out) if cfg.logits_out else None
    found = predict(session.run_any, images, manifest.input_spec, manifest.output, out, masks)
    if found.logits is None:  # segmentation: scored against its masks (where given) while streaming
        seg = found.masks
        if seg is None:
            return Scores(eval_images=int(len(images)))
        return Scores(eval_images=int(len(images)), seg_miou=seg.miou, seg_pixel_accuracy=seg.pixel_accuracy,
                      seg_classes_present=seg.classes_present, seg_pixels=seg.pixels)
    return _label_scores(found.logits, cfg, len(images))


def _label_scores(logits: np.ndarray, cfg: MeasureConfig, count: int) -> Scores:
    """Top-1/5 against the labels, and what the sanity checks read; agreement only where there are none."""
    if cfg.data_labels is None:
        return Scores(eval_images=count)
    labels = np.load(cfg.data_labels)
    top5 = np.argsort(-logits, axis=1)[:, :5]
    return Scores(top1=float(100 * np.mean(top5[:, 0] == labels)),
                  top5=float(100 * np.mean((top5 == labels[:, None]).any(axis=1))), eval_images=int(len(labels)),
                  classes=int(logits.shape[1]), labelled_classes=int(len(np.unique(labels))),
                  top_class_share=most_frequent_share(top5[:, 0], logits.shape[1]))


def measure(cfg: MeasureConfig) -> Measurement:
    """Everything measured for one configuration."""
    if cfg.cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(cfg.cpus))
    root = Path(cfg.artifact)
    manifest = read_manifest(root, verify_files=cfg.verify_files)
    runtime = cfg.runtime or default_runtime(manifest.target)
    rss_before = peak_rss_mb()
    begin = time.perf_counter()
    session = session_class(runtime)(root / manifest.model_file,
                                     cfg.session_options(cfg.threads, batch=cfg.batch))
    load_ms = (time.perf_counter() - begin) * 1000.0
    rss_load = peak_rss_mb()
    rng = np.random.default_rng(0)
    batch = rng.standard_normal(manifest.input_spec.shape(cfg.batch)).astype(np.float32)
    begin = time.perf_counter()
    session.run(batch)
    first_ms = (time.perf_counter() - begin) * 1000.0
    stats = latency_stats(_timed_runs(session.run, batch, cfg))
    found = Measurement(runtime=runtime, session=session.info(), threads=cfg.threads, batch=cfg.batch,
                        load_ms=load_ms, first_ms=first_ms, latency=stats,
                        throughput_ips=cfg.batch * 1000.0 / (stats.mean_ms or 1e-12), rss_before_load_mb=rss_before,
                        peak_rss_load_mb=rss_load, peak_rss_mb=peak_rss_mb(), memory_source=memory_source(),
                        device_fingerprint=device_fingerprint())
    found = _numerics_gate(found, root, manifest, session, cfg)
    if cfg.profile:
        found = replace(found, profile=summarize_profile(session.profile(batch, runs=max(5, min(cfg.runs, 50)))))
    if cfg.data_images:  # the session that was timed scores too (in its own batch size where it compiled for one)
        found = replace(found, scores=_accuracy(session, manifest, cfg))
    return found


def _numerics_gate(found: Measurement, root: Path, manifest: Manifest, session: Session,
                   cfg: MeasureConfig) -> Measurement:
    """Re-run the inputs whose PyTorch outputs the artifact carries; a device that computes other numbers (a
    broken kernel, an emulator's CPU model) gets status 'mismatch' instead of 'ok'."""
    from vit_edge.core.parity import agreement_words, cosine_words, judge

    file = root / NUMERICS_CHECK
    if not cfg.check_numerics or not file.is_file():
        return found
    with np.load(file) as bundle:
        inputs, expected = bundle["inputs"], bundle["outputs"]
    got = np.concatenate([session.run_any(inputs[i : i + 1]) for i in range(len(inputs))])
    precision = _precision_that_ran(session.info().precision or "", manifest.precision)
    verdict = judge(expected, got, precision, manifest.output)
    found = replace(found, numerics_check=NumericsCheck(verdict.samples, verdict.min_cosine, verdict.top1_agreement,
                                                        verdict.max_abs_diff, verdict.passed,
                                                        min_token_cosine=verdict.min_token_cosine))
    if verdict.passed:
        return found
    return replace(found, status="mismatch", error=(
        f"this device computes other numbers than PyTorch: {cosine_words(verdict)} for {precision.value}"
        f"{agreement_words(verdict, 0)} on the artifact's {verdict.samples} check inputs"))


def _precision_that_ran(ran: str, exported: Precision) -> Precision:
    """The tolerance to hold a device to: an artifact that really ran in bf16/fp16 is judged as fp16."""
    if exported is Precision.INT8:
        return exported
    return Precision.FP16 if ("bf16" in ran or "f16" in ran) else exported


def config_from_json(data: dict[str, Any]) -> MeasureConfig:
    data = dict(data)
    data["cpus"] = tuple(data.get("cpus") or ())
    return MeasureConfig(**data)


def config_to_json(cfg: MeasureConfig) -> dict[str, Any]:
    data = asdict(cfg)
    data["cpus"] = list(cfg.cpus)
    return data
