"""benchmark_model output, as recorded on real devices (tests/fixtures/adb/SOURCES.md), parses to the right numbers."""
from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.helpers import FIXTURES
from vit_edge.benchmarking.adb import BenchmarkModelRun, parse_benchmark_model_output
from vit_edge.benchmarking.devices import AdbDevice
from vit_edge.benchmarking.record import BenchRecord
from vit_edge.core.errors import DeviceError
from vit_edge.core.records import as_json
from vit_edge.runtime.measure import MeasureConfig

ADB = FIXTURES / "adb"


def parse(name: str) -> BenchmarkModelRun:
    return parse_benchmark_model_output((ADB / name).read_text())


def test_current_format_with_nnapi_fully_delegated() -> None:
    result = parse("litert215_android_nnapi_full_synaptics.txt")
    assert result.load_ms == pytest.approx(66.002)
    assert result.first_ms == pytest.approx(637.079)
    assert result.mean_ms == pytest.approx(1.88574)
    assert result.runs == 520 and result.min_ms == pytest.approx(1.171) and result.std_ms == 0.87
    assert result.memory_overall_mb == pytest.approx(7.83203)
    assert result.delegate == "NNAPI" and result.fully_delegated is True


def test_xnnpack_partially_delegated_with_percentiles() -> None:
    result = parse("tflite220_am62x_xnnpack_partial.txt")
    assert result.mean_ms == pytest.approx(899.641) and result.p50_ms == pytest.approx(899.281)
    assert result.runs == 50 and result.max_ms == pytest.approx(906.121)
    assert result.delegate == "XNNPACK" and result.fully_delegated is False
    assert result.delegate_kernels == 1
    assert result.memory_init_mb == pytest.approx(146.363)


def test_old_format_with_scientific_notation_and_profiling_tables() -> None:
    result = parse("tflite_old_qemu_riscv64_op_profiling.txt")
    assert result.mean_ms == pytest.approx(2950.34) and result.std_ms == pytest.approx(109.798)
    assert result.runs == 50 and result.min_ms == pytest.approx(2727.568)  # not the profiler's decoy line
    assert result.memory_overall_mb == pytest.approx(46.0859)


def test_output_without_timings_is_a_device_error() -> None:
    with pytest.raises(DeviceError, match="Inference timings"):
        parse_benchmark_model_output("ERROR: Could not open '/data/local/tmp/m.tflite'.\nFailed to initialize")


def test_a_benchmark_model_run_becomes_a_bench_row(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """What benchmark_model printed reaches the row: its timings in the row's fields, the rest (warm-up, max,
    memory, delegate) kept beside them under the names bench.jsonl always had."""
    from vit_edge.benchmarking import adb

    monkeypatch.setattr(adb, "read_manifest", lambda path: SimpleNamespace(target="tflite", model_file="m.tflite"))
    executor = adb.AdbExecutor(SimpleNamespace(timeout_s=5.0, adb_benchmark="benchmark_model"), tmp_path,
                               AdbDevice("emulator-5554"))
    printed = (ADB / "tflite220_am62x_xnnpack_partial.txt").read_text()
    monkeypatch.setattr(executor, "_adb", lambda *args: subprocess.CompletedProcess(
        args, 0, printed if args[0] == "shell" else "", ""))
    result = executor.run(MeasureConfig(artifact=str(tmp_path), threads=2, runs=50), "run1")
    assert result.ok and result.runtime == "benchmark_model" and result.threads == 2
    assert result.latency.p50_ms == pytest.approx(899.281) and result.latency.runs == 50
    record = BenchRecord(str(tmp_path), "adb:emulator-5554", 2, 1)
    record.update(as_json(result))
    assert record.p50_ms == pytest.approx(899.281) and record.mean_ms == pytest.approx(899.641)
    assert record.extra["max_ms"] == pytest.approx(906.121) and record.extra["delegate"] == "XNNPACK"
    assert record.extra["fully_delegated"] is False and "not measured over adb" in record.extra["accuracy_note"]
