"""Android over adb: push the .tflite, run the on-device `benchmark_model` binary, parse what it prints.

The parser reads both the current LiteRT format ('INFO: ' prefixes, 'Memory footprint delta') and the older
TFLite one ('Peak memory footprint', scientific notation), and ignores op-profiling tables.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vit_edge.benchmarking.devices import AdbDevice
from vit_edge.core.errors import DeviceError
from vit_edge.core.manifest import read_manifest
from vit_edge.core.records import as_json, from_json, optional
from vit_edge.core.targets import TARGETS, target
from vit_edge.runtime.measure import MeasureConfig, Measurement

__all__ = ["parse_benchmark_model_output", "BenchmarkModelRun", "AdbExecutor"]


@dataclass(frozen=True)
class BenchmarkModelRun:
    """What benchmark_model printed: load, first, warm-up and mean time (ms), the measured runs' statistics, memory
    (MB) and the delegate it applied, where it said them."""

    load_ms: float
    first_ms: float
    warmup_mean_ms: float
    mean_ms: float
    runs: int | None = optional()
    min_ms: float | None = optional()
    max_ms: float | None = optional()
    std_ms: float | None = optional()
    p50_ms: float | None = optional()
    memory_init_mb: float | None = optional()
    memory_overall_mb: float | None = optional()
    delegate: str | None = optional()
    fully_delegated: bool | None = optional()
    delegate_kernels: int | None = optional()

_NUMBER = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_PREFIX = r"^(?:INFO: |WARNING: |VERBOSE: )?"
_TIMINGS = re.compile(
    _PREFIX + rf"Inference timings in us: Init: ({_NUMBER}), First inference: ({_NUMBER}), "
    rf"Warmup \(avg\): ({_NUMBER}), Inference \(avg\): ({_NUMBER})", re.M)
_STATS = re.compile(_PREFIX + r"(count=\d+.*)$", re.M)
_MEMORY = re.compile(
    _PREFIX + rf"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
    rf"init=({_NUMBER}) overall=({_NUMBER})", re.M)
_APPLIED = re.compile(r"Explicitly applied (\w+) delegate, and the model graph will be (completely|partially) "
                      r"executed by the delegate(?: w/ (\d+) delegate kernels)?")
_XNNPACK_DEFAULT = re.compile(r"Created TensorFlow Lite XNNPACK delegate for CPU")


def _fields(line: str) -> dict[str, float]:
    return {key: float(value) for key, value in re.findall(rf"(\w+)=({_NUMBER})", line)}


def parse_benchmark_model_output(text: str) -> BenchmarkModelRun:
    """benchmark_model's console output → latency (ms), memory (MB) and delegation facts."""
    timings = _TIMINGS.search(text)
    if not timings:
        raise DeviceError("benchmark_model printed no 'Inference timings' line (did it fail on the device?)")
    init, first, warmup, average = (float(v) / 1000.0 for v in timings.groups())
    result = BenchmarkModelRun(load_ms=init, first_ms=first, warmup_mean_ms=warmup, mean_ms=average)
    runs = [_fields(m.group(1)) for m in _STATS.finditer(text[: timings.start()])]
    runs = [r for r in runs if r.get("count", 0) > 1]
    if runs:  # the last full count= line before the timings is the measured runs (the first is the warm-up)
        stats = runs[-1]

        def ms(key: str) -> float | None:
            return stats[key] / 1000.0 if key in stats else None

        result = replace(result, runs=int(stats["count"]), min_ms=ms("min"), max_ms=ms("max"), std_ms=ms("std"),
                         p50_ms=ms("median"))
    memory = _MEMORY.search(text)
    if memory:
        result = replace(result, memory_init_mb=float(memory.group(1)), memory_overall_mb=float(memory.group(2)))
    applied = _APPLIED.search(text)
    if applied:
        result = replace(result, delegate=applied.group(1), fully_delegated=applied.group(2) == "completely",
                         delegate_kernels=int(applied.group(3)) if applied.group(3) else None)
    elif _XNNPACK_DEFAULT.search(text):
        result = replace(result, delegate="XNNPACK")
    return result


class AdbExecutor:
    """Runs each configuration with benchmark_model on the phone; only .tflite artifacts can run there."""

    remote_dir = "/data/local/tmp/vit-edge"

    def __init__(self, cfg: Any, workdir: Path, device: AdbDevice) -> None:
        self.cfg, self.device = cfg, device
        self.adb = shutil.which("adb")

    def _adb(self, *args: str) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run([self.adb or "adb", "-s", self.device.serial, *args], capture_output=True,
                                  text=True, timeout=self.cfg.timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise DeviceError(f"{self.device} did not answer within {self.cfg.timeout_s:.0f} s") from exc

    def __enter__(self) -> "AdbExecutor":
        if self.adb is None:
            raise DeviceError("adb is not installed: install Android platform-tools and put adb on PATH")
        state = self._adb("get-state")
        if state.returncode != 0 or state.stdout.strip() != "device":
            raise DeviceError(f"{self.device} is not connected ({(state.stderr or state.stdout).strip()})")
        self._adb("shell", "mkdir", "-p", self.remote_dir)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._adb("shell", "rm", "-rf", self.remote_dir)

    def run(self, measure: MeasureConfig, tag: str) -> Measurement:
        manifest = read_manifest(measure.artifact)
        declared = target(manifest.target)
        if not declared.runtime.adb_binary:  # the runtime declares the phone binary that runs its files
            phone = [t.name for t in TARGETS.values() if t.runtime.adb_binary]
            return Measurement.failed("unsupported", f"adb runs {' or '.join(phone)} artifacts only, not "
                                                     f"{manifest.target}")
        remote = f"{self.remote_dir}/{tag}{declared.suffix}"
        pushed = self._adb("push", str(Path(measure.artifact) / manifest.model_file), remote)
        if pushed.returncode != 0:
            raise DeviceError(f"adb push failed: {pushed.stderr.strip()}")
        output = self._adb("shell", self.cfg.adb_benchmark, f"--graph={remote}",
                           f"--num_threads={measure.threads or 1}", f"--warmup_runs={measure.warmup}",
                           f"--num_runs={measure.runs}", "--use_xnnpack=true")
        parsed = parse_benchmark_model_output(output.stdout + output.stderr)
        # its timings go to the measurement's fields, the rest (warm-up, max, memory, delegate) is kept beside them
        return from_json(Measurement, {"status": "ok", "runtime": "benchmark_model", "threads": measure.threads,
                                       **as_json(parsed), "accuracy_note": "accuracy is not measured over adb"})
