"""INT8 fidelity per model family and target: does every family quantize as well as the plain ViT/DeiT?

For each family a representative timm architecture (random init, seeded; LayerScale set to 0.1 so the blocks
matter, as in trained DINOv2/DeiT-III, instead of timm's 1e-5 init) is quantized with vit-edge's default PTQ
recipe on 64 smooth synthetic images, exported to each target, run in that target's runtime on 64 other images
and compared with PyTorch FP32: logit (or embedding) cosine, and top-1 agreement where the model has a classifier
head (timm's CLIP models end in the image projection: an embedding, judged by cosine alone).
`vit_small_patch16_224` is the baseline row (DeiT-S has the same architecture, so at random init it is the same
model). TFLite rows also say whether XNNPACK
took the whole graph.

    .venv/bin/python benchmarks/int8_families.py [--targets onnx,openvino,tflite] [--families deit3,siglip]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from vit_edge.api import QuantizeConfig, quantize
from vit_edge.data.preprocess import preprocess_uint8
from vit_edge.data.synthetic import smooth_images
from vit_edge.models.vit import LayerScale, VisionTransformer
from vit_edge.reading.loaders import load_model
from vit_edge.reading.registry import timm_entry

# family → (timm name, input size used here); DINOv2 at 224 rather than its 518 to keep the run short
FAMILIES = {
    "vit (baseline)": ("vit_small_patch16_224", 224),
    "deit3": ("deit3_small_patch16_224", 224),
    "dinov2": ("vit_small_patch14_dinov2", 224),
    "dinov2-reg": ("vit_small_patch14_reg4_dinov2", 224),
    "clip": ("vit_base_patch32_clip_224", 224),
    "siglip": ("vit_base_patch16_siglip_224", 224),
    "hybrid": ("vit_small_r26_s32_224", 224),
    "registers (avg pool)": ("vit_medium_patch16_reg4_gap_256", 256),
    "dinov3 (rotary)": ("vit_small_patch16_dinov3", 224),
    "eva02 (interleaved rotary + SwiGLU)": ("eva02_small_patch14_224", 224),
    "pe (rotary + 8-head MAP head)": ("vit_pe_core_small_patch16_384", 224),
}


def build(name: str, size: int) -> VisionTransformer:
    torch.manual_seed(0)
    cfg = timm_entry(name).config
    model = VisionTransformer(cfg.with_(img_size=size) if cfg.img_size != size else cfg)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LayerScale):
                module.gamma.fill_(0.1)
    return load_model(model).model  # as every verb gets it (an interleaved rotation becomes rotate-half)


def score(model: VisionTransformer, artifact, images: np.ndarray,
          embedding: bool = False) -> tuple[float, float, float | None, str]:
    batch = preprocess_uint8(images, artifact.manifest.input_spec)
    with torch.no_grad():
        reference = model(torch.from_numpy(batch)).numpy()
    got = np.concatenate([artifact.run(batch[i : i + 1]) for i in range(len(batch))])
    cosine = (reference * got).sum(1) / np.linalg.norm(reference, axis=1) / np.linalg.norm(got, axis=1)
    classifier = model.cfg.num_classes and not embedding  # timm's CLIP "head" is the image projection
    top1 = float(np.mean(reference.argmax(1) == got.argmax(1))) if classifier else None
    whole = ""
    if artifact.manifest.target == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        from vit_edge.runtime.litert import undelegated_ops

        interpreter = Interpreter(model_path=str(artifact.path / "model.tflite"), num_threads=1)
        interpreter.allocate_tensors()
        left = undelegated_ops(interpreter._get_ops_details())
        whole = "one XNNPACK partition" if not left else f"left: {left}"
    return float(cosine.mean()), float(cosine.min()), top1, whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="onnx,openvino,tflite")
    parser.add_argument("--families", default=",".join(FAMILIES))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vit-edge-families-"))
    print(f"{'family':<22} {'timm name':<34} {'target':<9} {'mean cos':>9} {'min cos':>9} {'top-1':>6}  notes")
    for family in args.families.split(","):
        name, size = FAMILIES[family]
        model = build(name, size)
        calib, held_out = smooth_images(64, size, 3, seed=1), smooth_images(64, size, 3, seed=2)
        for target in args.targets.split(","):
            artifact = quantize(model, target, work / f"{name}-{target}", QuantizeConfig(calib, calib_size=64),
                                parity_samples=4)
            mean, low, top1, whole = score(model, artifact, held_out, embedding=family == "clip")
            top = f"{100 * top1:5.1f}%" if top1 is not None else "   —  "
            print(f"{family:<22} {name:<34} {target:<9} {mean:>9.5f} {low:>9.5f} {top:>6}  {whole}", flush=True)
            shutil.rmtree(artifact.path, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
