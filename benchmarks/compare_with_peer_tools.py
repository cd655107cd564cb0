"""vit-edge bench against each runtime's own benchmark tool, in the same run, as ratios.

- ONNX Runtime: a bare session.run loop (onnxruntime_perf_test is not shipped in the pip wheel);
- OpenVINO: benchmark_app (sync API, 1 stream, f32 precision, same thread count);
- LiteRT: litert-benchmark (ai-edge-litert's tool, XNNPACK on CPU, same thread count).
Rounds are interleaved so that drifts in machine load hit every tool alike. A ratio near 1.00 means vit-edge
reports what the runtime's own tool reports.

    .venv/bin/python benchmarks/compare_with_peer_tools.py [--model vit_tiny_patch16] [--threads 1] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from vit_edge.api import export
from vit_edge.benchmarking.sweep import BenchConfig, bench

BARE_ORT = """
import sys, time, numpy as np, onnxruntime as ort
o = ort.SessionOptions(); o.intra_op_num_threads = int(sys.argv[2]); o.inter_op_num_threads = 1
s = ort.InferenceSession(sys.argv[1], o, providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).standard_normal(tuple(int(v) for v in sys.argv[4].split(","))).astype(np.float32)
for _ in range(10): s.run(None, {"pixel_values": x})
t = []
for _ in range(int(sys.argv[3])):
    b = time.perf_counter(); s.run(None, {"pixel_values": x}); t.append((time.perf_counter() - b) * 1e3)
print(float(np.median(t)))
"""


def tool(name: str) -> str:
    found = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(found).exists():
        raise SystemExit(f"{name} not found next to {sys.executable}")
    return found


def ort_bare(model: Path, threads: int, runs: int, shape: tuple[int, ...]) -> float:
    out = subprocess.run([sys.executable, "-c", BARE_ORT, str(model), str(threads), str(runs),
                          ",".join(map(str, shape))], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def benchmark_app(model: Path, threads: int, runs: int, shape: tuple[int, ...]) -> float:
    out = subprocess.run([tool("benchmark_app"), "-m", str(model), "-d", "CPU", "-hint", "none", "-nstreams", "1",
                          "-nthreads", str(threads), "-niter", str(runs), "-api", "sync", "-infer_precision", "f32",
                          "-shape", "[" + ",".join(map(str, shape)) + "]"], capture_output=True, text=True, check=True)
    value, unit = re.search(r"Median:\s+([\d.]+)\s+(ms|us)", out.stdout).groups()
    return float(value) / (1000.0 if unit == "us" else 1.0)


def litert_benchmark(model: Path, threads: int, runs: int, work: Path) -> float:
    result = work / "litert.json"
    subprocess.run([tool("litert-benchmark"), "--model", str(model), "--num_threads", str(threads), "--num_runs",
                    str(runs), "--warmup_runs", "10", "--result_json", str(result)], capture_output=True, check=True)
    return float(json.loads(result.read_text())["latency"]["median_ms"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="vit_tiny_patch16")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vit-edge-peers-"))
    torch.manual_seed(0)
    arts = {t: export(args.model, t, work / t, random_init=True, parity_samples=2).path
            for t in ("onnx", "openvino", "tflite")}
    shape = (1, 3, 224, 224)
    peers = {
        "onnx": ("bare ORT loop", lambda: ort_bare(arts["onnx"] / "model.onnx", args.threads, args.runs, shape)),
        "openvino": ("benchmark_app", lambda: benchmark_app(arts["openvino"] / "model.xml", args.threads,
                                                            args.runs, shape)),
        "tflite": ("litert-benchmark", lambda: litert_benchmark(arts["tflite"] / "model.tflite", args.threads,
                                                                args.runs, work)),
    }
    ours: dict[str, list[float]] = {t: [] for t in arts}
    theirs: dict[str, list[float]] = {t: [] for t in arts}
    cfg = BenchConfig(threads=(args.threads,), runs=args.runs, warmup=10, min_seconds=0.0)
    for round_ in range(args.rounds):
        for target, path in arts.items():
            ours[target].append(bench([str(path)], cfg)[0].p50_ms)
            theirs[target].append(peers[target][1]())
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    print(f"{args.model}, batch 1, {args.threads} thread(s), median of {args.rounds} interleaved rounds")
    print(f"{'target':<10} {'peer tool':<18} {'vit-edge p50 ms':>16} {'peer p50 ms':>12} {'ratio':>7}")
    for target in arts:
        a, b = statistics.median(ours[target]), statistics.median(theirs[target])
        print(f"{target:<10} {peers[target][0]:<18} {a:>16.2f} {b:>12.2f} {a / b:>7.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
