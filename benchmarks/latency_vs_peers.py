"""vit-edge's INT8 against each runtime's own best INT8 tool and against the runtime's FP32 default, one table.

Per model (timm ViT-Ti / DeiT-S / ViT-B, random init, batch 1) and runtime:
- ONNX Runtime: vit-edge INT8, plain QDQ and its --ort-fusions graph (ONNX Runtime's own, com.microsoft ops); ORT
  quantize_static (QDQ, every op, and MatMul/Gemm only); ORT quantize_dynamic (per-channel MatMulInteger, what ORT
  recommends for transformers); ORT's transformer optimizer (model_type "vit": Attention, SkipLayerNormalization,
  BiasGelu fusions) then quantize_dynamic, as Optimum runs it; FP32, and the optimizer's FP32 (FP32's best).
- OpenVINO: vit-edge INT8 and NNCF (TRANSFORMER, MIXED), each under the f32 hint and the default hint (bf16 where
  the CPU has it: what users run); FP32 under both.
- LiteRT + XNNPACK: vit-edge INT8; litert-torch PT2E; AI Edge Quantizer static W8A8 (static_wi8_ai8) on the
  plain FP32 .tflite; FP32.
- ExecuTorch + XNNPACK: vit-edge INT8; ExecuTorch's XNNPACKQuantizer; FP32.
The peers start from the plain graph, the model as timm defines it (see int8_vs_peers.py); vit-edge's rows, FP32
included, use its defaults (the last block computes only the tokens the head reads: same output, less work).
Every file is timed the same way: its runtime's own Python API in this process (vit-edge's session classes are
thin wrappers over it), warm-up, then `--runs` runs; rounds are interleaved (each configuration once per round)
and the p50 is the median over rounds. Fidelity: logit cosine and top-1 agreement with PyTorch FP32 on smooth
images. The summary's ratio is best peer INT8 p50 / vit-edge's best INT8 p50 (≥ 1.10 is issue 23's goal), with
the spread of the same ratio round by round beside it, and the runtime's best FP32 / vit-edge's best INT8
(≥ 1.00: INT8 is worth having).

    PYTHONPATH=. .venv/bin/python benchmarks/latency_vs_peers.py [--models vit_tiny_patch16_224 ...]
        [--targets onnx ...] [--threads 2] [--runs 30] [--rounds 7] [--calib 32] [--eval 32] [--keep DIR]

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


def ort_optimizer_peers(fp32_onnx: Path, work: Path, heads: int, width: int) -> list[Entry]:
    """ORT's transformer optimizer on the plain graph (its FP32 is FP32's best on ORT), then quantize_dynamic on
    the fused graph: Optimum's ONNX Runtime path."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer

    fused = Entry("ORT optimizer", "onnx", "fp32", file=work / "ort-optimized-fp32.onnx", note="model_type vit")
    optimized = optimizer.optimize_model(str(fp32_onnx), model_type="vit", num_heads=heads, hidden_size=width)
    optimized.save_model_to_file(str(fused.file))
    fused.note = f"model_type vit, fused: {_fused_ops(optimized.get_fused_operator_statistics())}"
    dynamic = Entry("ORT optimizer + quantize_dynamic", "onnx", "int8", file=work / "ort-optimized-dynamic.onnx")
    quantize_dynamic(str(fused.file), str(dynamic.file), per_channel=True, weight_type=QuantType.QInt8)
    dynamic.note = "fused graph, per-channel QInt8 weights, dynamic activations"
    return [fused, dynamic]


def _fused_ops(statistics: dict[str, int]) -> str:
    return ", ".join(f"{op} {n}" for op, n in sorted(statistics.items()) if n) or "none"


def ai_edge_quantizer_peer(fp32_tflite: Path, calib: np.ndarray, work: Path) -> Entry:
    """Google's AI Edge Quantizer, static INT8 weights and activations, calibrated on the same images."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer, recipe

    entry = Entry("AI Edge Quantizer", "tflite", "int8", file=work / "aeq-static-w8a8.tflite")
    signature = Interpreter(model_path=str(fp32_tflite)).get_signature_list()
    key = next(iter(signature))
    name = signature[key]["inputs"][0]
    layout = calib.transpose(0, 2, 3, 1) if _nhwc(fp32_tflite) else calib  # vit-edge's TFLite files take NHWC
    tool = quantizer.Quantizer(str(fp32_tflite))
    tool.load_quantization_recipe(recipe.static_wi8_ai8())
    result = tool.calibrate({key: [{name: layout[i : i + 1]} for i in range(len(layout))]})
    tool.quantize(result).export_model(str(entry.file), overwrite=True)
    entry.note = f"static_wi8_ai8, {len(calib)} calibration images, I/O {peers.tflite_io(entry.file)}"
    return entry


def _nhwc(path: Path) -> bool:
    from ai_edge_litert.interpreter import Interpreter

    shape = Interpreter(model_path=str(path)).get_input_details()[0]["shape"]
    return int(shape[-1]) in (1, 3)


def with_default_hint(entries: list[Entry]) -> list[Entry]:
    """OpenVINO INT8 files once more under the default hint (FP32 already has its default-hint row)."""
    extra = [dataclasses.replace(e, hint=None, times=[]) for e in entries
             if e.target == "openvino" and e.precision == "int8" and e.error is None and e.hint == "f32"]
    return entries + extra


def build(name: str, args: argparse.Namespace, work: Path) -> tuple[list[Entry], np.ndarray]:
    loaded = peers.seeded_load(name)
    sha = loaded.source.weights_sha256
    size = loaded.spec.img_size
    calib = preprocess_uint8(smooth_images(args.calib, size, 3, seed=1), loaded.spec)
    evaluation = preprocess_uint8(smooth_images(args.eval, size, 3, seed=2), loaded.spec)
    with torch.inference_mode():
        reference = loaded.model(torch.from_numpy(evaluation)).numpy()
    ours = peers.vit_edge_entries(name, calib, work, sha, args.targets)
    plain = peers.plain_model(loaded, work)
    theirs = peers.peer_entries(plain, calib, work, args.ort_activation, args.targets)
    cfg = loaded.model.cfg
    more = [("ORT quantize_dynamic", "onnx", lambda: [ort_dynamic_peer(plain.files["onnx"], work)]),
            ("ORT optimizer + quantize_dynamic", "onnx",
             lambda: ort_optimizer_peers(plain.files["onnx"], work, cfg.num_heads, cfg.embed_dim)),
            ("AI Edge Quantizer", "tflite", lambda: [ai_edge_quantizer_peer(plain_tflite(loaded, work), calib, work)])]
    for method, target, make in (m for m in more if m[1] in args.targets):
        try:
            theirs += make()
        except Exception as exc:  # a peer that fails is a row
            theirs.append(Entry(method, target, "int8", error=f"failed: {peers.first_line(exc)}"))
    entries = with_default_hint(ours + theirs)
    for entry in entries:
        if entry.error is None:
            peers.score(entry, evaluation, reference, args.threads)
    return entries, evaluation[:1]


def plain_tflite(loaded: Any, work: Path) -> Path:
    """The plain graph as an FP32 .tflite (vit-edge's converter, every token through the last block)."""
    from vit_edge.api import export

    art = export(loaded.model.reconfigured(head_tokens_only=False), "tflite", work / "plain-tflite-fp32",
                 parity_samples=2, force=True)
    return art.path / art.manifest.model_file


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
        fp32 = sorted((e for e in here if e.precision == "fp32" and (e.hint is None or target != "openvino")),
                      key=lambda e: e.p50 or 0.0)  # the fastest FP32 (ORT's optimizer where it wins)
        ours = [e for e in here if e.precision == "int8" and peers.is_ours(e)]
        theirs = [e for e in here if e.precision == "int8" and not peers.is_ours(e)]
        if not (fp32 and ours):
            continue
        best_ours = min(ours, key=lambda e: e.p50 or 0.0)
        best_peer = min(theirs, key=lambda e: e.p50 or 0.0) if theirs else None
        ratio = best_peer.p50 / best_ours.p50 if best_peer and best_peer.p50 and best_ours.p50 else None
        rounds = ([p / o for p, o in zip(best_peer.times, best_ours.times)] if best_peer else [])
        rows.append({"model": name, "runtime": target, "fp32_default": fp32[0].p50, "fp32_label": fp32[0].label,
                     "peer": best_peer, "ours": best_ours, "vs_peer": ratio,
                     "spread": (min(rounds), max(rounds)) if rounds else None,
                     "vs_fp32": (fp32[0].p50 or 0.0) / (best_ours.p50 or 1.0)})
    return rows


def print_summary(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"\nSummary: p50 ms, batch 1, {args.threads} threads, median of {args.rounds} interleaved rounds "
          f"(CPU: {cpu_name()}); OpenVINO's FP32 is its default hint; the spread is the lowest and highest "
          "round's ratio")
    print("| model | runtime | best FP32 | best peer INT8 | vit-edge best INT8 | peer / vit-edge (spread) | "
          "FP32 / vit-edge | goal |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        peer, ours = r["peer"], r["ours"]
        peer_text = f"{peer.p50:.2f} ({peer.label}, cos {peer.cosine:.4f})" if peer else "-"
        spread = f" ({r['spread'][0]:.2f}–{r['spread'][1]:.2f})" if r["spread"] else ""
        ok = r["vs_peer"] is not None and r["vs_peer"] >= GOAL and r["vs_fp32"] >= 1.0
        print(f"| {r['model']} | {r['runtime']} | {r['fp32_default']:.2f} ({r['fp32_label']}) | {peer_text} | "
              f"{ours.p50:.2f} ({ours.label}, cos {ours.cosine:.4f}) | {peers.fmt(r['vs_peer'], '.2f', '×')}{spread} | "
              f"{r['vs_fp32']:.2f}× | {'met' if ok else 'not met'} |")


def cpu_name() -> str:
    """The CPU's model name: the figures are ratios on this CPU, and the CPU changes between machines."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--targets", nargs="+", default=list(peers.TARGETS), choices=peers.TARGETS,
                        help="the runtimes to compare (default: all four)")
    parser.add_argument("--calib", type=int, default=32)
    parser.add_argument("--eval", type=int, default=32)
    parser.add_argument("--ort-activation", choices=("QUInt8", "QInt8"), default="QUInt8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--min-seconds", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=7)
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
            entries.sort(key=lambda e: (peers.TARGETS.index(e.target), e.precision != "fp32", not peers.is_ours(e)))
            peers.print_table(name, entries, args)
            rows += summary(name, entries)
            print(f"  {name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print_summary(rows, args)


if __name__ == "__main__":
    main()
