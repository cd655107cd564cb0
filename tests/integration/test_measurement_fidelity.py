"""The harness measures what is there: stable under load, and equal to a bare ONNX Runtime loop.

These compare measurements taken in the same run with each other (ratios), never with absolute times.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import small_vit
from vit_edge.api import export
from vit_edge.benchmarking.sweep import BenchConfig, bench

BARE_ORT_LOOP = """
import sys, time, numpy as np, onnxruntime as ort
options = ort.SessionOptions(); options.intra_op_num_threads = 1; options.inter_op_num_threads = 1
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
for _ in range(10):
    session.run(None, {"pixel_values": x})
times = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter(); session.run(None, {"pixel_values": x}); times.append((time.perf_counter() - t) * 1e3)
print(float(np.median(times)))
"""


@pytest.mark.slow
def test_p50_of_back_to_back_runs_agree_under_load(tmp_path: Path) -> None:
    artifact = export(small_vit(), "onnx", tmp_path / "onnx").path
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        cfg = BenchConfig(threads=(1,), runs=300, min_seconds=1.5)
        first, second = bench([str(artifact)], cfg)[0], bench([str(artifact)], cfg)[0]
    finally:
        burner.kill()
        burner.wait()
    spread = max(first.std_ms, second.std_ms)
    assert abs(first.p50_ms - second.p50_ms) < spread, (first.p50_ms, second.p50_ms, spread)


@pytest.mark.slow
def test_vit_tiny_p50_matches_a_bare_onnxruntime_loop(tmp_path: Path) -> None:
    torch.manual_seed(0)
    artifact = export("vit_tiny_patch16", "onnx", tmp_path / "vit-tiny", random_init=True, parity_samples=2).path
    ours, bare = [], []
    for _ in range(3):  # interleaved, so drifts in machine load hit both alike
        record = bench([str(artifact)], BenchConfig(threads=(1,), warmup=10, runs=40, min_seconds=0.0))[0]
        ours.append(record.p50_ms)
        out = subprocess.run([sys.executable, "-c", BARE_ORT_LOOP, str(artifact / "model.onnx"), "40"],
                             capture_output=True, text=True, check=True)
        bare.append(float(out.stdout.strip()))
    ratio = statistics.median(ours) / statistics.median(bare)
    assert 0.9 <= ratio <= 1.1, (ours, bare)
