"""vit-edge's INT8 against each runtime's own best INT8 tool and against the runtime's FP32 default, one table.

Per model (timm ViT-Ti / DeiT-S / ViT-B, random init, batch 1) and runtime:
- ONNX Runtime: vit-edge INT8; ORT quantize_static (QDQ, every op, and MatMul/Gemm only); ORT quantize_dynamic
  (per-channel MatMulInteger, what ORT recommends for transformers); FP32.
- OpenVINO: vit-edge INT8 and NNCF (TRANSFORMER, MIXED), each under the f32 hint and the default hint (bf16 where
  the CPU has it: what users run); FP32 under both.
- LiteRT + XNNPACK: vit-edge INT8; litert-torch PT2E; FP32.
- ExecuTorch + XNNPACK: vit-edge INT8; ExecuTorch's XNNPACKQuantizer; FP32.
The peers start from the plain graph, the model as timm defines it (see int8_vs_peers.py); vit-edge's rows, FP32
included, use its defaults (the last block computes only the tokens the head reads: same output, less work).
Every file is timed the same way: its runtime's own Python API in this process (vit-edge's session classes are
thin wrappers over it), warm-up, then `--runs` runs; rounds are interleaved (each configuration once per round)
and the p50 is the median over rounds. Fidelity: logit cosine and top-1 agreement with PyTorch FP32 on smooth
images. The summary's ratio is best peer INT8 p50 / vit-edge's best INT8 p50 (≥ 1.10 is issue 13's goal) and
the runtime's FP32 default / vit-edge's best INT8 (≥ 1.00: INT8 is worth having).

    PYTHONPATH=. .venv/bin/python benchmarks/latency_vs_peers.py [--models vit_tiny_patch16_224 ...]
        [--threads 2] [--runs 30] [--rounds 3] [--calib 32] [--eval 32] [--keep DIR]

Needs the extras onnx, openvino, tflite, executorch and peers (nncf); a peer that is missing or fails is a row.
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import int8_vs_peers as peers  # noqa: E402  (its imports also pin the converters' RNG use before the first seed)
import numpy as np  # noqa: E402
import torch  # noqa: E402

from vit_edge.data.preprocess import preprocess_uint8  # noqa: E402
from vit_edge.data.synthetic import smooth_images  # noqa: E402

Entry = peers.Entry
MODELS = ["vit_tiny_patch16_224", "deit_small_patch16_224", "vit_base_patch16_224"]
GOAL = 1.10


def ort_dynamic_peer(fp32_onnx: Path, work: Path) -> Entry:
    """ORT's dynamic quantization: int8 weights per channel, activations quantized at run time (MatMulInteger)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    entry = Entry("ORT quantize_dynamic", "onnx", "int8", file=work / "ort-dynamic-int8.onnx")
    quantize_dynamic(str(fp32_onnx), str(entry.file), per_channel=True, weight_type=QuantType.QInt8)
    entry.note = "per-channel QInt8 weights, dynamic activations"
    return entry


def with_default_hint(entries: list[Entry]) -> list[Entry]:
    """OpenVINO INT8 files once more under the default hint (FP32 already has its default-hint row)."""
    extra = [dataclasses.replace(e, hint=None, times=[]) for e in entries
             if e.target == "openvino" and e.precision == "int8" and e.error is None and e.hint == "f32"]
    return entries + extra


def build(name: str, args: argparse.Namespace, work: Path) -> tuple[list[Entry], np.ndarray]:
    loaded = peers.seeded_load(name)
    sha = loaded.source["weights_sha256"]
    size = loaded.spec.img_size
    calib = preprocess_uint8(smooth_images(args.calib, size, 3, seed=1), loaded.spec)
    evaluation = preprocess_uint8(smooth_images(args.eval, size, 3, seed=2), loaded.spec)
    with torch.inference_mode():
        reference = loaded.model(torch.from_numpy(evaluation)).numpy()
    ours = peers.vit_edge_entries(name, calib, work, sha)
    plain = peers.plain_model(loaded, work)
    theirs = peers.peer_entries(plain, calib, work, args.ort_activation)
    try:
        theirs.append(ort_dynamic_peer(plain.files["onnx"], work))
    except Exception as exc:  # a peer that fails is a row
        theirs.append(Entry("ORT quantize_dynamic", "onnx", "int8", error=f"failed: {peers.first_line(exc)}"))
    entries = with_default_hint(ours + theirs)
    for entry in entries:
        if entry.error is None:
            peers.score(entry, evaluation, reference, args.threads)
    return entries, evaluation[:1]


def measure(entries: list[Entry], x: np.ndarray, args: argparse.Namespace) -> None:
    """One timing path for every file, interleaved rounds; a session is opened per round and closed after it."""
    live = [e for e in entries if e.error is None]
    for round_ in range(args.rounds):
        for entry in live:
            session = peers.open_session(entry, args.threads, 1)
            entry.times.append(peers.timed_loop(session, x, args.runs, args.min_seconds))
            del session
        print(f"  round {round_ + 1}/{args.rounds}", file=sys.stderr)


def summary(name: str, entries: list[Entry]) -> list[dict[str, Any]]:
    """Per runtime: FP32 default, best peer INT8, vit-edge's best INT8, the ratios and whether the goal holds."""
    rows = []
    for target in peers.TARGETS:
        here = [e for e in entries if e.target == target and e.p50 is not None]
        fp32 = [e for e in here if e.precision == "fp32" and (e.hint is None or target != "openvino")]
        ours = [e for e in here if e.precision == "int8" and e.method == "vit-edge"]
        theirs = [e for e in here if e.precision == "int8" and e.method != "vit-edge"]
        if not (fp32 and ours):
            continue
        best_ours = min(ours, key=lambda e: e.p50 or 0.0)
        best_peer = min(theirs, key=lambda e: e.p50 or 0.0) if theirs else None
        ratio = best_peer.p50 / best_ours.p50 if best_peer and best_peer.p50 and best_ours.p50 else None
        rows.append({"model": name, "runtime": target, "fp32_default": fp32[0].p50, "peer": best_peer,
                     "ours": best_ours, "vs_peer": ratio, "vs_fp32": (fp32[0].p50 or 0.0) / (best_ours.p50 or 1.0)})
    return rows


def print_summary(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"\nSummary: p50 ms, batch 1, {args.threads} threads, median of {args.rounds} interleaved rounds; "
          f"OpenVINO's FP32 default is its default hint")
    print("| model | runtime | FP32 default | best peer INT8 | vit-edge best INT8 | peer / vit-edge | FP32 / vit-edge "
          "| goal |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        peer, ours = r["peer"], r["ours"]
        peer_text = f"{peer.p50:.2f} ({peer.label}, cos {peer.cosine:.4f})" if peer else "-"
        ok = r["vs_peer"] is not None and r["vs_peer"] >= GOAL and r["vs_fp32"] >= 1.0
        print(f"| {r['model']} | {r['runtime']} | {r['fp32_default']:.2f} | {peer_text} | {ours.p50:.2f} "
              f"({ours.label}, cos {ours.cosine:.4f}) | {peers.fmt(r['vs_peer'], '.2f', '×')} | "
              f"{r['vs_fp32']:.2f}× | {'met' if ok else 'not met'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--calib", type=int, default=32)
    parser.add_argument("--eval", type=int, default=32)
    parser.add_argument("--ort-activation", choices=("QUInt8", "QInt8"), default="QUInt8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--min-seconds", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="keep the models here (default: a temporary folder)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="vit-edge-latency-"))
    rows: list[dict[str, Any]] = []
    try:
        for name in args.models:
            started = time.perf_counter()
            entries, x = build(name, args, work / name)
            measure(entries, x, args)
            args.no_latency = False
            entries.sort(key=lambda e: (peers.TARGETS.index(e.target), e.precision != "fp32", e.method != "vit-edge"))
            peers.print_table(name, entries, args)
            rows += summary(name, entries)
            print(f"  {name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print_summary(rows, args)


if __name__ == "__main__":
    main()
