"""Depth Anything INT8: vit-edge against each runtime's own INT8 tool, depth fidelity and latency, in one run.

The model: transformers' DepthAnythingForDepthEstimation in Depth-Anything-V2-Small's shape (DINOv2-S/14 encoder,
12 blocks of width 384, the DPT neck 48/96/192/384 → 64 and its relative-depth head), random weights moved off their
init (no trained checkpoint is reachable here: this measures fidelity to FP32, not depth accuracy), at --size px.
Methods, as in int8_vs_peers.py, each calibrated on the same smooth images and scored on others against the PyTorch
FP32 depth map (AbsRel, δ<1.25, SQNR; core/depth_metrics.py):
- vit-edge   `quantize(...)` per target (its INT8 scope: the encoder's matmuls; see the manifest's int8_scope);
- ORT        quantize_static on vit-edge's FP32 ONNX (QDQ, per-channel S8 weights, MinMax; every op it can, and
             MatMul/Gemm only);
- NNCF       nncf.quantize(model_type=TRANSFORMER, preset=MIXED) on the FP32 OpenVINO IR;
- PT2E       litert-torch's PT2EQuantizer (symmetric, per-channel, static) → .tflite;
- XNNPACKQuantizer  ExecuTorch's own → .pte.
Latency: batch 1, p50 over interleaved rounds (median of rounds), the same sessions vit-edge's bench uses.

    PYTHONPATH=. .venv/bin/python benchmarks/depth_int8_vs_peers.py [--size 266] [--calib 32] [--eval 16]
        [--threads 2] [--runs 20] [--rounds 3] [--no-latency] [--targets onnx openvino tflite executorch]
"""
from __future__ import annotations

import argparse
import contextlib
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

# int8_vs_peers imports every converter before the first seed (litert-torch consumes torch's RNG on import).
from int8_vs_peers import (
    Entry,
    executorch_peer,
    first_line,
    fmt,
    measure,
    nncf_peer,
    open_session,
    ort_peer,
    pt2e_peer,
    speedup_over_fp32,
)

from vit_edge.api import export, quantize
from vit_edge.core.depth_metrics import depth_scores
from vit_edge.data.preprocess import preprocess_uint8
from vit_edge.data.synthetic import smooth_images
from vit_edge.reading.loaders import LoadedModel, load_model

TARGETS = ("onnx", "openvino", "tflite", "executorch")


@dataclass
class DepthEntry(Entry):
    """An Entry scored as depth: AbsRel, δ<1.25 and SQNR against PyTorch FP32."""

    abs_rel: float | None = None
    delta1: float | None = None
    sqnr_db: float | None = None


def depth_anything_v2_small(size: int) -> torch.nn.Module:
    """Depth-Anything-V2-Small's architecture (transformers' config of depth-anything/Depth-Anything-V2-Small-hf),
    random weights moved off their init so LayerScale, biases and norms matter."""
    import transformers

    backbone = transformers.Dinov2Config(image_size=size, patch_size=14, hidden_size=384, num_hidden_layers=12,
                                         num_attention_heads=6, mlp_ratio=4, out_indices=[3, 6, 9, 12],
                                         reshape_hidden_states=False)
    config = transformers.DepthAnythingConfig(backbone_config=backbone, patch_size=14, reassemble_hidden_size=384,
                                              neck_hidden_sizes=[48, 96, 192, 384], fusion_hidden_size=64,
                                              head_hidden_size=32)
    torch.manual_seed(0)
    model = transformers.DepthAnythingForDepthEstimation(config).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
                module.reset_parameters()  # PyTorch's init: transformers' std 0.02 leaves a flat map
        for param in model.parameters():
            param.add_(0.02 * torch.randn_like(param))
    return model


def vit_edge_entries(model: torch.nn.Module, calib: np.ndarray, work: Path,
                     targets: tuple[str, ...]) -> list[DepthEntry]:
    """FP32 exports and vit-edge INT8 per target; a failure becomes an entry with its error."""
    entries: list[DepthEntry] = []
    for target in targets:
        for precision in ("fp32", "int8"):
            entry = DepthEntry("vit-edge", target, precision)
            out = work / f"{target}-{precision}"
            try:
                art = (export(model, target, out, parity_samples=2, force=True) if precision == "fp32" else
                       quantize(model, target, out, calib=calib, calib_size=len(calib), parity_samples=2,
                                force=True))
                entry.artifact, entry.file = art.path, art.path / art.manifest.model_file
                if precision == "int8":
                    scope = art.manifest.quantization.int8_scope if art.manifest.quantization else ""
                    entry.note = f"INT8: {scope}"
            except Exception as exc:  # vit-edge errors, converter errors: the row says which
                entry.error = f"not available: {first_line(exc)}"
            entries.append(entry)
            if target == "openvino" and precision == "fp32" and entry.error is None:
                entries.append(DepthEntry("vit-edge", target, precision, entry.file, entry.artifact, hint=None))
    return entries


def as_depth(entry: Entry) -> DepthEntry:
    return entry if isinstance(entry, DepthEntry) else DepthEntry(**vars(entry))


def peer_entries(loaded: LoadedModel, fp32: dict[str, Path], calib: np.ndarray, work: Path,
                 targets: tuple[str, ...]) -> list[DepthEntry]:
    makers: list[tuple[str, str, Callable[[], Entry]]] = [
        ("ORT quantize_static", "onnx", lambda: ort_peer(fp32["onnx"], calib, work, "QUInt8", None)),
        ("ORT quantize_static (MatMul/Gemm)", "onnx",
         lambda: ort_peer(fp32["onnx"], calib, work, "QUInt8", ["MatMul", "Gemm"])),
        ("NNCF", "openvino", lambda: nncf_peer(fp32["openvino"], calib, work)),
        ("litert-torch PT2E", "tflite", lambda: pt2e_peer(loaded.model, calib, work)),
        ("ExecuTorch XNNPACKQuantizer", "executorch", lambda: executorch_peer(loaded.model, calib, work)),
    ]
    entries = []
    for method, target, make in (m for m in makers if m[1] in targets):
        started = time.perf_counter()
        try:
            with contextlib.redirect_stdout(sys.stderr):  # NNCF's and litert-torch's progress bars
                entry = as_depth(make())
        except Exception as exc:  # a peer that fails is a result too
            entry = DepthEntry(method, target, "int8", error=f"failed: {first_line(exc)}")
        print(f"  {method}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
        entries.append(entry)
    return entries


def score(entry: DepthEntry, batch: np.ndarray, reference: np.ndarray, threads: int) -> None:
    """AbsRel, δ<1.25 and SQNR of the file's depth against PyTorch FP32's, over every evaluation image."""
    session = open_session(entry, threads, None)
    depth = np.concatenate([session.run(batch[i : i + 4]) for i in range(0, len(batch), 4)])
    scores = depth_scores(depth.reshape(reference.shape).astype(np.float64), reference.astype(np.float64))
    entry.abs_rel, entry.delta1, entry.sqnr_db = scores.abs_rel, scores.delta1, scores.sqnr_db


def print_table(entries: list[DepthEntry], args: argparse.Namespace) -> None:
    latency = "" if args.no_latency else f", p50 ms batch 1, {args.threads} threads, median of {args.rounds} rounds"
    print(f"\nDepth-Anything-V2-Small shape at {args.size} px (random weights), {args.calib} calibration / "
          f"{args.eval} evaluation smooth images, vs PyTorch FP32{latency}; CPU: {cpu_name()}")
    print(f"{'method':<42} {'target':<10} {'AbsRel %':>8} {'δ1 %':>7} {'SQNR dB':>7} {'p50 ms':>8} {'vs fp32':>8}")
    speedup_of = speedup_over_fp32(entries)
    for e in entries:
        if e.error:
            print(f"{e.label:<42} {e.target:<10} {e.error}")
            continue
        speedup = speedup_of(e)
        print(f"{e.label:<42} {e.target:<10} {fmt(pct(e.abs_rel), '8.3f')} {fmt(pct(e.delta1), '7.2f')} "
              f"{fmt(e.sqnr_db, '7.1f')} {fmt(e.p50, '8.2f')} {fmt(speedup, '7.2f', 'x')}"
              + (f"  [{e.note}]" if e.note else ""))
    print_ratios(entries)


def print_ratios(entries: list[DepthEntry]) -> None:
    """vit-edge / peer per target: AbsRel ratio (< 1: vit-edge closer to FP32) and latency ratio (< 1: faster)."""
    print(f"{'vit-edge / peer':<42} {'target':<10} {'AbsRel':>8} {'p50':>7}")
    for peer in (e for e in entries if e.method != "vit-edge"):
        ours = next((e for e in entries if e.method == "vit-edge" and e.precision == "int8"
                     and e.target == peer.target and e.error is None), None)
        if ours is None or peer.error is not None:
            print(f"{'vs ' + peer.method:<42} {peer.target:<10} n/a (one side failed)")
            continue
        err = ours.abs_rel / peer.abs_rel if ours.abs_rel is not None and peer.abs_rel else None
        lat = ours.p50 / peer.p50 if ours.p50 and peer.p50 else None
        print(f"{'vs ' + peer.method:<42} {peer.target:<10} {fmt(err, '8.3f')} {fmt(lat, '7.2f')}")


def pct(value: float | None) -> float | None:
    return None if value is None else 100 * value


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def run(args: argparse.Namespace, work: Path) -> None:
    targets = tuple(args.targets)
    model = depth_anything_v2_small(args.size)
    loaded = load_model(model)
    calib = preprocess_uint8(smooth_images(args.calib, args.size, 3, seed=1), loaded.spec)
    evaluation = preprocess_uint8(smooth_images(args.eval, args.size, 3, seed=2), loaded.spec)
    with torch.inference_mode():
        reference = model(pixel_values=torch.from_numpy(evaluation)).predicted_depth.numpy()
    print("exporting and quantizing …", file=sys.stderr)
    ours = vit_edge_entries(model, calib, work, targets)
    fp32 = {e.target: e.file for e in ours if e.precision == "fp32" and e.file is not None}
    entries = ours + peer_entries(loaded, fp32, calib, work, targets)
    for entry in entries:
        if entry.error is None:
            try:
                score(entry, evaluation, reference, args.threads)
            except Exception as exc:  # a file its runtime cannot run is a row
                entry.error = f"does not run: {first_line(exc)}"
    if not args.no_latency:
        measure([e for e in entries if e.error is None], evaluation[:1], args)
    entries.sort(key=lambda e: (targets.index(e.target), e.precision != "fp32", e.method != "vit-edge"))
    print_table(entries, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=266, help="input side in px, a multiple of 14 (518 upstream)")
    parser.add_argument("--calib", type=int, default=32, help="calibration images, the same for every method")
    parser.add_argument("--eval", type=int, default=16, help="evaluation images (another seed than calibration)")
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-latency", action="store_true", help="fidelity only")
    parser.add_argument("--keep", type=Path, help="write the models here and keep them (default: a temp dir)")
    args = parser.parse_args()
    if args.size % 14:
        parser.error(f"--size {args.size} is not a multiple of the patch size 14")
    work = args.keep or Path(tempfile.mkdtemp(prefix="vit-edge-depth-peers-"))
    try:
        run(args, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
