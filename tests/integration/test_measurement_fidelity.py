"""What bench's numbers are made of, checked by properties machine load cannot break.

Timing comparisons (bench against a bare ONNX Runtime loop, back-to-back runs under load) are ratios that a busy
machine moves for a correct program, so they live in benchmarks/measurement_fidelity.py. What stays here holds on
any machine, busy or idle: the harness times as many runs as asked, for at least as long as asked, in a process of
its own, and its statistics are those of the times it took.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from vit_edge.benchmarking.sweep import BenchConfig, bench
from vit_edge.runtime.measure import latency_stats


@pytest.mark.slow
def test_bench_times_as_many_runs_and_as_long_as_asked_even_under_load(small_onnx: Path) -> None:
    """A busy loop holds a core: the record still has the runs asked for (or more, to fill min_seconds), its
    percentiles ordered, and the timed runs took at least min_seconds (or reached the cap of 100× the runs)
    within the wall time the bench used."""
    artifact = small_onnx  # conftest's, read only
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        started = time.perf_counter()
        record = bench([str(artifact)], BenchConfig(threads=(1,), warmup=3, runs=25, min_seconds=0.5))[0]
        wall = time.perf_counter() - started
    finally:
        burner.kill()
        burner.wait()
    assert record.ok, record.status
    assert record.runs is not None and record.runs >= 25
    assert 0 < record.min_ms <= record.p50_ms <= record.p90_ms <= record.p99_ms  # type: ignore[operator]
    timed_s = record.mean_ms * record.runs / 1e3  # type: ignore[operator]
    assert record.runs == 100 * 25 or timed_s >= 0.5 * 0.9  # min_seconds of timing, or the cap of 100× the runs
    assert wall < timed_s + 60  # the timed runs are most of the call: not timed elsewhere, or in another call


def test_latency_statistics_are_those_of_the_times() -> None:
    times = [5.0, 1.0, 3.0, 2.0, 4.0, 100.0]
    stats = latency_stats(times)
    assert stats.runs == 6 and stats.min_ms == 1.0
    assert stats.p50_ms == 3.5  # the median, not the mean (the 100 ms outlier moves the mean only)
    assert stats.mean_ms == pytest.approx(sum(times) / 6)
    assert stats.p99_ms > stats.p90_ms > stats.p50_ms
