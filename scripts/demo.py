"""`make demo`: the shipped Fashion-MNIST ViT exported to every declared target in every precision it takes (INT8
through quantize), verified, benchmarked with accuracy on the whole test set, reported.

A failing target becomes a row with its error and the demo goes on, as a benchmark sweep should.
"""
from __future__ import annotations

import sys
from pathlib import Path

from vit_edge.api import export
from vit_edge.benchmarking.report import markdown_table, npu_markdown, write_reports
from vit_edge.benchmarking.sanity import warnings_for
from vit_edge.benchmarking.sweep import BenchConfig, bench
from vit_edge.core.errors import VitEdgeError
from vit_edge.core.outputs import OutputKind, clear_output
from vit_edge.core.targets import TARGETS
from vit_edge.core.types import Precision
from vit_edge.data.datasets import load_fashion_mnist

MODEL = "fmnist-vit-tiny"
OUT = Path("artifacts/demo")
REPORT = Path("reports/demo")
# every target × every precision it declares; INT8 comes from quantize (calibration), the rest from export
PLAN = [(t.name, p.value) for t in TARGETS.values() for p in t.precisions if p is not Precision.INT8]
INT8_TARGETS = [t.name for t in TARGETS.values() if Precision.INT8 in t.precisions]


def quantize_all() -> tuple[list[Path], list[list[str]]]:
    """INT8 PTQ of all 24 matmuls, calibrated on 256 training images (the test set when only it is installed)."""
    from vit_edge.api import QuantizeConfig, quantize
    from vit_edge.data.datasets import fashion_mnist_dir

    calib = "fashion-mnist-train" if fashion_mnist_dir() is not None else "fashion-mnist"
    paths, failures = [], []
    for target in INT8_TARGETS:
        print(f"quantizing for {target} (INT8, calibration on {calib}) …", flush=True)
        try:
            artifact = quantize(MODEL, target, OUT / f"{MODEL}-{target}-int8", QuantizeConfig(calib, calib_size=256),
                                force=True)
            paths.append(artifact.path)
        except VitEdgeError as exc:
            failures.append([target, "int8", f"FAILED: {exc}"])
    return paths, failures


def export_all() -> tuple[list[Path], list[list[str]]]:
    paths, failures = [], []
    for target, precision in PLAN:
        print(f"exporting {target} {precision} (parity on 64 test images) …", flush=True)
        try:
            artifact = export(MODEL, target, OUT / f"{MODEL}-{target}-{precision}", precision=precision,
                              data="fashion-mnist", parity_samples=64, force=True)
            paths.append(artifact.path)
        except VitEdgeError as exc:
            failures.append([target, precision, f"FAILED: {exc}"])
    return paths, failures


def failure_lines(failures: list[list[str]]) -> str:
    return "".join(f"- {target} {precision}: {message}\n" for target, precision, message in failures)


def main() -> int:
    data = load_fashion_mnist("test")
    print(f"model {MODEL}; Fashion-MNIST test set: {len(data)} images ({data.source})", flush=True)
    paths, failures = export_all()
    int8_paths, int8_failures = quantize_all()
    paths, failures = paths + int8_paths, failures + int8_failures
    print("benchmarking (2 threads, batch 1; accuracy on the whole test set) …", flush=True)
    records = bench([str(p) for p in paths],
                    BenchConfig(threads=(2,), runs=100, min_seconds=1.0, data="fashion-mnist", reference="pytorch"),
                    progress=lambda line: print(line, flush=True))
    clear_output(REPORT, OutputKind.BENCH_REPORT, force=True)  # the previous demo's report, never a user's folder
    reports = write_reports(records, REPORT)
    torch_top1 = _torch_top1(data)
    print(f"\nPyTorch fp32 top-1: {torch_top1:.2f}% (the baseline every top-1 below is compared with)\n")
    print(markdown_table(records) + npu_markdown(records))
    if failures:
        print("not built:\n" + failure_lines(failures))
    for line in warnings_for(records):
        print(f"warning: {line}")
    print("\nreports: " + ", ".join(str(p) for p in reports.values()))
    return 1 if failures or any(r.status != "ok" for r in records) else 0


def _torch_top1(data) -> float:
    import torch

    from vit_edge.reading.loaders import load_model
    from vit_edge.runtime.accuracy import predict_logits, top1_accuracy

    loaded = load_model(MODEL)
    with torch.inference_mode():
        logits = predict_logits(lambda x: loaded.model(torch.from_numpy(x)).numpy(), data, loaded.spec)
    return top1_accuracy(logits, data.labels)


if __name__ == "__main__":
    sys.exit(main())
