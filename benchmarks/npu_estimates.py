"""Where an Ethos-U runs vit-edge's INT8 TFLite, and how fast Vela estimates it: the shipped model and ViT-Ti at 224.

Each model is quantized once for the NPU (`--npu`: vit-edge's default PTQ recipe, then every tensor int8;
the shipped model calibrated on Fashion-MNIST's training images and scored on its test set, ViT-Ti at random
init calibrated on smooth synthetic images), then compiled by Vela for each configuration with its default
system and memory configuration. The times are Vela's estimates, not measurements. The operators Vela leaves to
the CPU are listed by type.

    .venv/bin/python benchmarks/npu_estimates.py [--configs ethos-u55-128,ethos-u65-256,ethos-u85-256]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from vit_edge.api import quantize
from vit_edge.core.artifact import read_manifest
from vit_edge.data.synthetic import smooth_images
from vit_edge.exporters.vela import compile_for_npu

CONFIGS = ("ethos-u55-128", "ethos-u65-256", "ethos-u85-256")


def _artifacts(work: Path) -> dict[str, tuple[Path, str]]:
    """name → (INT8 TFLite artifact, its accuracy line)."""
    shipped = quantize("fmnist-vit-tiny", "tflite", calib="fashion-mnist-train", eval_data="fashion-mnist",
                       out=work / "shipped", parity_samples=4, npu="ethos-u85-256")
    accuracy = (shipped.manifest.quantization or {}).get("accuracy", {})
    shipped_line = (f"top-1 on the Fashion-MNIST test set: FP32 {accuracy.get('fp32_top1', float('nan')):.2f} %, "
                    f"the full-integer file in LiteRT {_litert_top1(shipped.path):.2f} %")
    calib = (smooth_images(64, 224, 3, seed=1).transpose(0, 3, 1, 2) / 127.5 - 1).astype(np.float32)
    tiny = quantize("timm:vit_tiny_patch16_224", "tflite", calib=calib, random_init=True, out=work / "vit-ti",
                    parity_samples=4, npu="ethos-u85-256")
    return {"fmnist-vit-tiny (28 px)": (shipped.path, shipped_line),
            "ViT-Ti/16 at 224 (random init)": (tiny.path, "accuracy: n/a (random init)")}


def _litert_top1(artifact: Path) -> float:
    """Top-1 of the artifact's INT8 file run in LiteRT (not the PyTorch simulation) on the whole test set."""
    from vit_edge.data.datasets import load_fashion_mnist
    from vit_edge.data.preprocess import preprocess_uint8
    from vit_edge.runtime.base import SessionOptions
    from vit_edge.runtime.litert import LiteRtSession

    manifest = read_manifest(artifact)
    test = load_fashion_mnist("test")
    session = LiteRtSession(artifact / manifest.model_file, SessionOptions(threads=1))
    logits = session.run(preprocess_uint8(test.images, manifest.input_spec))
    return 100 * float(np.mean(logits.argmax(1) == test.labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="npu-estimates-") as tmp:
        work = Path(tmp)
        rows = ["| model | NPU | ops on NPU | ops on CPU | NPU share | est. ms | SRAM MB | DRAM MB | CPU operators |",
                "|---|---|---|---|---|---|---|---|---|"]
        notes = []
        for name, (artifact, accuracy) in _artifacts(work).items():
            notes.append(f"- {name}: {accuracy}")
            model = artifact / read_manifest(artifact).model_file
            for config in args.configs.split(","):
                staging = work / f"{artifact.name}-{config}"
                staging.mkdir()
                e = compile_for_npu(model, staging, config, log=lambda _: None)
                cpu = ", ".join(f"{op} {n}" for op, n in e["cpu_op_types"].items())
                rows.append(f"| {name} | {config} | {e['npu_ops']} | {e['cpu_ops']} | {100 * e['npu_share']:.1f} % | "
                            f"{e['inference_ms']:.3f} | {e['sram_traffic_mb']:.2f} | {e['dram_traffic_mb']:.2f} | "
                            f"{cpu} |")
        print("\n".join(rows))
        print("\n".join(["", *notes, f"Vela: {e['tool']}, default system/memory configuration per NPU; "
                         "times are Vela's estimates"]))


if __name__ == "__main__":
    main()
