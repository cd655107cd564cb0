"""INT8 (vit-edge PTQ) against FP32 latency per target, measured in the same run, printed as ratios.

Random-init weights are fine for latency; calibration uses smooth synthetic images. OpenVINO FP32 is measured
both with the f32 hint and with the plugin's default (bf16 where the CPU has it), since that is what users get.

    .venv/bin/python benchmarks/int8_vs_fp32.py [--model vit_tiny_patch16] [--threads 2] [--rounds 3]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from vit_edge.api import QuantizeConfig, export, quantize
from vit_edge.benchmarking.sweep import BenchConfig, bench
from vit_edge.data.synthetic import smooth_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="vit_tiny_patch16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vit-edge-int8-"))
    calib = smooth_images(64, 224, 3, seed=1)
    arts = {}
    for target in ("onnx", "openvino"):
        torch.manual_seed(0)
        arts[(target, "fp32")] = export(args.model, target, work / f"{target}-fp32", random_init=True,
                                        parity_samples=2).path
        torch.manual_seed(0)
        config = QuantizeConfig(calib, calib_size=64, random_init=True)
        arts[(target, "int8")] = quantize(args.model, target, work / f"{target}-int8", config, parity_samples=2).path
    plans = [("onnx", "fp32", "f32"), ("onnx", "int8", "f32"), ("openvino", "fp32", "f32"),
             ("openvino", "fp32", None), ("openvino", "int8", "f32")]
    times: dict[tuple, list[float]] = {plan: [] for plan in plans}
    for round_ in range(args.rounds):
        for plan in plans:
            cfg = BenchConfig(threads=(args.threads,), runs=args.runs, min_seconds=1.0, precision_hint=plan[2])
            record = bench([str(arts[plan[:2]])], cfg)[0]
            times[plan].append(record.p50_ms)
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    median = {plan: statistics.median(v) for plan, v in times.items()}
    print(f"{args.model}, batch 1, {args.threads} threads, p50 = median of {args.rounds} interleaved rounds")
    print(f"{'target':<9} {'precision':<10} {'hint':<8} {'p50 ms':>8} {'vs fp32 (f32)':>14}")
    for plan in plans:
        base = median[(plan[0], "fp32", "f32")]
        speedup = base / median[plan]
        print(f"{plan[0]:<9} {plan[1]:<10} {plan[2] or 'default':<8} {median[plan]:>8.2f} {speedup:>13.2f}x")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
