"""Where an Ethos-U runs vit-edge's full-integer TFLite, how fast Vela estimates it, and what each activation
width keeps of FP32's accuracy: INT8, A16W8, mixed under a budget, against AI Edge Quantizer's static_wi8_ai16.

Models: the shipped model; its outlier variant (RepQ-ViT's post-LayerNorm channel outliers, 4 channels × 40,
planted without changing the function, quantized with SmoothQuant off, which would otherwise remove them); ViT-Ti
at 224 (random init: placement and time only). Each file is built with `quantize --npu` (vit-edge) or by AI Edge
Quantizer's static_wi8_ai16 recipe on vit-edge's own FP32 TFLite of the same model (the peer), calibrated on the
same 256 Fashion-MNIST training images. Top-1 is the file run in LiteRT on the whole Fashion-MNIST test set; the
budget (`--max-drop 0.3`) is measured on its first 2,000 images (one lowering and evaluation per op: several
minutes). Vela compiles each file for each configuration with its default system and memory configuration: times
are Vela's estimates, not measurements, and count the NPU's part only (an operator left to the CPU adds time
they do not show).

    .venv/bin/python benchmarks/npu_estimates.py [--configs ethos-u55-128,ethos-u65-256,ethos-u85-256] [--no-vit-ti]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vit_edge.api import QuantizeConfig, export, quantize
from vit_edge.core.manifest import read_manifest
from vit_edge.data.synthetic import smooth_images
from vit_edge.exporters.vela import compile_for_npu
from vit_edge.quantization.recipe import Recipe

CONFIGS = ("ethos-u55-128", "ethos-u65-256", "ethos-u85-256")
BUDGET = 0.3


def _model_file(artifact: Any) -> Path:
    if artifact is None:  # only a torchrun rank other than 0 gets none
        raise SystemExit("quantize wrote no artifact")
    return Path(artifact.path) / artifact.manifest.model_file


def _vit_edge_file(model: str, work: Path, name: str, recipe: Recipe) -> Path:
    config = QuantizeConfig("fashion-mnist-train", recipe, eval_limit=2000,
                            eval_data="fashion-mnist" if recipe.max_drop is not None else None)
    return _model_file(quantize(model, "tflite", work / name, config, parity_samples=4, npu="ethos-u85-256"))


def _aeq_file(model: str, work: Path, name: str) -> Path:
    """AI Edge Quantizer's NPU recipe (int8 weights, int16 activations) on vit-edge's FP32 TFLite."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer, recipe

    from vit_edge.data.datasets import load_fashion_mnist
    from vit_edge.data.preprocess import preprocess_uint8

    fp32 = export(model, "tflite", work / f"{name}-fp32", parity_samples=2)
    fp32_file = fp32.path / fp32.manifest.model_file
    calib = preprocess_uint8(load_fashion_mnist("train").images[:256], fp32.manifest.input_spec)
    signature = Interpreter(model_path=str(fp32_file)).get_signature_list()
    key = next(iter(signature))
    tool = quantizer.Quantizer(str(fp32_file))
    tool.load_quantization_recipe(recipe.static_wi8_ai16())
    result = tool.calibrate({key: [{signature[key]["inputs"][0]: calib[i : i + 1]} for i in range(len(calib))]})
    out = work / f"{name}-aeq.tflite"
    tool.quantize(result).export_model(str(out), overwrite=True)
    return out


def _litert_top1(model_file: Path, spec_from: Path) -> float:
    """Top-1 of the file run in LiteRT (reference kernels where XNNPACK has none) on the whole test set."""
    from vit_edge.data.datasets import load_fashion_mnist
    from vit_edge.data.preprocess import preprocess_uint8
    from vit_edge.runtime.base import SessionOptions
    from vit_edge.runtime.litert import LiteRtSession

    test = load_fashion_mnist("test")
    session = LiteRtSession(model_file, SessionOptions(threads=1))
    images = preprocess_uint8(test.images, read_manifest(spec_from).input_spec)
    logits = np.concatenate([session.run(images[i : i + 1]) for i in range(len(images))])
    return 100 * float(np.mean(logits.argmax(1) == test.labels))


def _files(model: str, label: str, work: Path, smoothquant: str) -> list[tuple[str, Path]]:
    tag = label.split()[0]
    build: list[tuple[str, Callable[[], Path]]] = [
        ("vit-edge INT8", lambda: _vit_edge_file(model, work, f"{tag}-int8", Recipe(smoothquant=smoothquant))),
        ("vit-edge A16W8 (--a16w8)",
         lambda: _vit_edge_file(model, work, f"{tag}-a16w8", Recipe(smoothquant=smoothquant, int16=("*",)))),
        (f"vit-edge mixed (--max-drop {BUDGET})",
         lambda: _vit_edge_file(model, work, f"{tag}-budget", Recipe(smoothquant=smoothquant, max_drop=BUDGET))),
        ("AI Edge Quantizer static_wi8_ai16", lambda: _aeq_file(model, work, tag)),
    ]
    return [(f"{label}: {name}", make()) for name, make in build]


def _placement_rows(name: str, model_file: Path, configs: list[str], work: Path) -> list[str]:
    rows = []
    for config in configs:
        staging = Path(tempfile.mkdtemp(dir=work))
        e: dict[str, Any] = compile_for_npu(model_file, staging, config, log=lambda _: None)
        cpu = ", ".join(f"{op} {n}" for op, n in e["cpu_op_types"].items()) or "none"
        rows.append(f"| {name} | {config} | {e['npu_ops']} | {e['cpu_ops']} | {100 * e['npu_share']:.1f} % | "
                    f"{e['inference_ms']:.3f} | {cpu} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--no-vit-ti", dest="vit_ti", action="store_false", help="leave ViT-Ti at 224 out")
    args = parser.parse_args()
    configs = args.configs.split(",")
    with tempfile.TemporaryDirectory(prefix="npu-estimates-") as tmp:
        work = Path(tmp)
        from vit_edge.quantization.outliers import save_outlier_variant
        from vit_edge.reading.registry import SHIPPED_MODELS

        outliers = save_outlier_variant(SHIPPED_MODELS["fmnist-vit-tiny"], work / "outliers.pt", 4, 40.0)
        fp32 = export("fmnist-vit-tiny", "tflite", work / "fp32", parity_samples=2)
        fidelity = ["| file | LiteRT top-1 (10,000 test images) |", "|---|---|",
                    f"| FP32 (either model: the outliers do not change the function) | "
                    f"{_litert_top1(fp32.path / fp32.manifest.model_file, fp32.path):.2f} % |"]
        placement = ["| file | NPU | ops on NPU | ops on CPU | NPU share | est. ms | CPU operators |",
                     "|---|---|---|---|---|---|---|"]
        for model, label, smoothquant in (("fmnist-vit-tiny", "shipped", "auto"),
                                          (str(outliers), "outliers (SmoothQuant off)", "off")):
            for name, model_file in _files(model, label, work, smoothquant):
                fidelity.append(f"| {name} | {_litert_top1(model_file, fp32.path):.2f} % |")
                placement += _placement_rows(name, model_file, configs, work)
        if args.vit_ti:
            calib = (smooth_images(64, 224, 3, seed=1).transpose(0, 3, 1, 2) / 127.5 - 1).astype(np.float32)
            for name, recipe in (("INT8", Recipe()), ("A16W8", Recipe(int16=("*",)))):
                art = quantize("timm:vit_tiny_patch16_224", "tflite", work / f"vit-ti-{name}",
                               QuantizeConfig(calib, recipe, random_init=True), parity_samples=4, npu="ethos-u85-256")
                placement += _placement_rows(f"ViT-Ti/16 at 224 (random init): vit-edge {name}",
                                             _model_file(art), configs, work)
        print("\n".join(fidelity) + "\n\n" + "\n".join(placement))
        print("\nVela: default system/memory configuration per NPU; times are Vela's estimates, not measurements")


if __name__ == "__main__":
    main()
