"""`make demo`: the shipped Fashion-MNIST ViT exported to every target, verified, and measured for accuracy.

A failing target becomes a row with its error and the demo goes on (as a benchmark sweep should).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from vit_edge.api import export
from vit_edge.data.datasets import load_fashion_mnist
from vit_edge.errors import VitEdgeError
from vit_edge.models.loaders import load_model
from vit_edge.runtime import SessionOptions, open_session
from vit_edge.runtime.accuracy import predict_logits, top1_accuracy

MODEL = "fmnist-vit-tiny"
OUT = Path("artifacts/demo")
PLAN = [("onnx", "fp32"), ("openvino", "fp32"), ("openvino", "fp16"), ("tflite", "fp32"), ("tflite", "fp16")]


def torch_accuracy(data) -> float:
    import torch

    loaded = load_model(MODEL)
    with torch.inference_mode():
        logits = predict_logits(lambda x: loaded.model(torch.from_numpy(x)).numpy(), data, loaded.spec)
    return top1_accuracy(logits, data.labels)


def measure(target: str, precision: str, data) -> list[str]:
    started = time.time()
    artifact = export(MODEL, target, OUT / f"{MODEL}-{target}-{precision}", precision=precision,
                      data="fashion-mnist", parity_samples=64, force=True)
    session = open_session(artifact.path, options=SessionOptions(threads=2, precision_hint="f32"))
    accuracy = top1_accuracy(predict_logits(session.run, data, artifact.manifest.input_spec), data.labels)
    size = sum((artifact.path / f).stat().st_size for f in artifact.manifest.files) / 1e3
    parity = artifact.manifest.parity
    return [target, precision, f"{size:.0f} kB", f"{parity['min_cosine']:.7f}",
            f"{100 * parity['top1_agreement']:.1f}%", f"{accuracy:.2f}%", f"{time.time() - started:.0f} s",
            str(artifact.path)]


def main() -> int:
    data = load_fashion_mnist("test")
    print(f"model {MODEL}: Fashion-MNIST test set, {len(data)} images ({data.source})", flush=True)
    reference = torch_accuracy(data)
    header = ["target", "precision", "size", "parity min cos", "top-1 agree", "top-1 acc", "time", "artifact"]
    rows = [["pytorch", "fp32", "-", "-", "-", f"{reference:.2f}%", "-", "(reference)"]]
    failures = 0
    for target, precision in PLAN:
        print(f"exporting {target} {precision} …", flush=True)
        try:
            rows.append(measure(target, precision, data))
        except VitEdgeError as exc:
            failures += 1
            rows.append([target, precision, "-", "-", "-", "-", "-", f"FAILED: {exc}"])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
