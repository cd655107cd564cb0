"""Each runtime's own INT8 matmul peak on this machine, and how much of it DeiT-S's INT8 artifacts reach.

The peak: one large INT8 GEMM (M tokens × K → N, default 1024 × 1024 → 4096: 4.3 GMAC) as a model of its own,
run through the runtime's Python API like every artifact:
- ONNX Runtime: QuantizeLinear → DequantizeLinear → MatMul with an int8 per-channel weight under
  DequantizeLinear (the QDQ form vit-edge's ONNX INT8 has), with and without a quantized output; ORT fuses both
  into its INT8 GEMM kernels; the faster is the peak;
- OpenVINO: the same files read by OpenVINO (FakeQuantize → INT8 FullyConnected), under the f32 hint and the
  default hint;
- LiteRT + XNNPACK: a one-op full-integer .tflite (int8 FULLY_CONNECTED, per-channel weights), written by
  litert-torch from vit-edge's QuantLinear; ExecuTorch runs the same XNNPACK kernels, so its rows are read
  against this peak too.
The artifacts: every INT8 file latency_vs_peers.py builds for the model (vit-edge's and the peers'), timed in
interleaved rounds at batch 1. Achieved MAC/s = the MACs the file computes (from the model's config: the plain
graph for the peers; vit-edge's last block computes only the head's tokens, counted as such) / p50; the fraction
of the runtime's peak; and where the runtime has a per-op profiler (ORT, OpenVINO) the share of time spent
outside matmuls. The goal (issue 23): vit-edge's DeiT-S at ≥ 60 % of the peak on at least two runtimes.

    PYTHONPATH=. .venv/bin/python benchmarks/roofline.py [--model deit_small_patch16_224] [--threads 2]
        [--rounds 5] [--runs 20] [--gemm 1024,1024,4096]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import int8_vs_peers as peers  # noqa: E402  (first: it pins the converters' RNG use before the first seed)
import latency_vs_peers as latency  # noqa: E402
import numpy as np  # noqa: E402

GOAL = 0.60
PEAK_OF = {"onnx": "onnx", "openvino": "openvino", "tflite": "tflite", "executorch": "tflite"}


def gemm_onnx(m: int, k: int, n: int, path: Path, quantized_output: bool) -> Path:
    """X (float, M×K) → Q/DQ (uint8) → MatMul with DQ(int8 weight, per output channel) [→ Q/DQ] → Y."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = rng.integers(-127, 128, size=(k, n), dtype=np.int8)
    inits = [numpy_helper.from_array(weight, "w_q"),
             numpy_helper.from_array(np.full(n, 0.01, np.float32), "w_scale"),
             numpy_helper.from_array(np.zeros(n, np.int8), "w_zero"),
             numpy_helper.from_array(np.array(0.02, np.float32), "x_scale"),
             numpy_helper.from_array(np.array(128, np.uint8), "x_zero"),
             numpy_helper.from_array(np.array(0.5, np.float32), "y_scale"),
             numpy_helper.from_array(np.array(128, np.uint8), "y_zero")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["x_q"]),
             helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zero"], ["x_dq"]),
             helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w_dq"], axis=1),
             helper.make_node("MatMul", ["x_dq", "w_dq"], ["y_float" if quantized_output else "y"])]
    if quantized_output:
        nodes += [helper.make_node("QuantizeLinear", ["y_float", "y_scale", "y_zero"], ["y_q"]),
                  helper.make_node("DequantizeLinear", ["y_q", "y_scale", "y_zero"], ["y"])]
    graph = helper.make_graph(nodes, "int8_gemm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(path))
    return path


def gemm_tflite(m: int, k: int, n: int, path: Path) -> Path:
    """A one-op full-integer .tflite: vit-edge's QuantLinear (int8 in, per-channel int8 weight, int8 out)."""
    import litert_torch
    import torch

    from vit_edge.core.types import Precision
    from vit_edge.exporters.tflite import _quant_config
    from vit_edge.quantization.qmodules import ActQuant, QuantLinear

    torch.manual_seed(0)
    layer = QuantLinear(torch.nn.Linear(k, n))
    layer.input_quant.set_range(-2.5, 2.5)
    layer.output_quant = ActQuant()
    layer.output_quant.set_range(-60.0, 60.0)
    layer.keep_weight_as_float_on_grid()
    edge = litert_torch.convert(layer.eval(), (torch.zeros(m, k),), quant_config=_quant_config(Precision.INT8))
    path.write_bytes(edge.model_content())
    return path


def peaks(args: argparse.Namespace, work: Path) -> dict[str, dict[str, Any]]:
    """runtime → {'gmacs': best GMAC/s, 'label': which file and hint, 'all': every variant's GMAC/s}."""
    m, k, n = args.gemm
    macs = m * k * n
    x = np.random.default_rng(1).standard_normal((m, k)).astype(np.float32)
    variants: list[tuple[str, peers.Entry]] = []
    for quantized_output in (False, True):
        path = gemm_onnx(m, k, n, work / f"gemm-q{int(quantized_output)}.onnx", quantized_output)
        name = "QDQ MatMul" + (" + Q output" if quantized_output else "")
        variants.append(("onnx", peers.Entry(name, "onnx", "int8", file=path)))
        for hint in ("f32", None):
            variants.append(("openvino", peers.Entry(name, "openvino", "int8", file=path, hint=hint)))
    variants.append(("tflite", peers.Entry("int8 FULLY_CONNECTED", "tflite", "int8",
                                           file=gemm_tflite(m, k, n, work / "gemm.tflite"))))
    for _ in range(args.rounds):  # interleaved, as the artifacts are
        for _runtime, entry in variants:
            session = peers.open_session(entry, args.threads, None)
            entry.times.append(peers.timed_loop(session, x, max(3, args.runs // 4), args.min_seconds, warmup=3))
            del session
    result: dict[str, dict[str, Any]] = {}
    for runtime, entry in variants:
        rate = macs / ((entry.p50 or 1.0) * 1e-3) / 1e9
        best = result.setdefault(runtime, {"gmacs": 0.0, "label": "", "all": {}})
        best["all"][entry.label] = round(rate, 1)
        if rate > best["gmacs"]:
            best.update(gmacs=rate, label=entry.label)
    return result


def model_macs(cfg: Any, head_tokens_only: bool) -> int:
    """Multiply-accumulates of one image: patch embedding, the blocks' six matmuls, the head; with
    `head_tokens_only` the last block's queries, projection and MLP run on the head's tokens alone."""
    rows, cols = cfg.grid
    patches = rows * cols
    tokens, dim, hidden = cfg.num_tokens, cfg.embed_dim, cfg.mlp_hidden_dim
    patch_embed = patches * dim * cfg.in_chans * cfg.patch_size * cfg.patch_size

    def block(asking: int) -> int:
        return tokens * 3 * dim * dim + 2 * asking * tokens * dim + asking * dim * dim + 2 * asking * dim * hidden

    last = (2 if cfg.distilled else 1) if head_tokens_only else tokens
    return patch_embed + (cfg.depth - 1) * block(tokens) + block(last) + dim * max(cfg.num_classes, 0)


def outside_matmuls(entry: peers.Entry, x: np.ndarray, threads: int) -> float | None:
    """Share of the time outside matmuls, from the runtime's own per-op profile (None where it has none)."""
    session = peers.open_session(entry, threads, 1)
    if not getattr(session, "can_profile", False):
        return None
    ops = session.profile(x, 20)
    total = sum(op["ms"] for op in ops) or 1.0
    return 1.0 - sum(op["ms"] for op in ops if op["type"] in _matmul_types()) / total


def _matmul_types() -> tuple[str, ...]:
    """The op types that are matmuls in the profiles: bench's list, and the fused attention ops (their time is
    mostly Q·Kᵀ and attn·V)."""
    from vit_edge.runtime.base import MATMUL_OPS

    return MATMUL_OPS + ("Attention", "MultiHeadAttention", "QAttention", "ScaledDotProductAttention")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="deit_small_patch16_224")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--min-seconds", type=float, default=0.5)
    parser.add_argument("--calib", type=int, default=32)
    parser.add_argument("--eval", type=int, default=16)
    parser.add_argument("--ort-activation", choices=("QUInt8", "QInt8"), default="QUInt8")
    parser.add_argument("--gemm", type=lambda s: tuple(int(v) for v in s.split(",")), default=(1024, 1024, 4096))
    parser.add_argument("--keep", type=Path)
    parser.set_defaults(targets=list(peers.TARGETS))  # every runtime's artifacts (latency_vs_peers.build reads it)
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="vit-edge-roofline-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        peak = peaks(args, work)
        entries, x = latency.build(args.model, args, work / args.model)
        int8 = [e for e in entries if e.precision == "int8" and e.error is None]
        latency.measure(int8, x, args)
        cfg = peers.seeded_load(args.model).model.cfg
        print_table(args, peak, int8, cfg, x)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def print_table(args: argparse.Namespace, peak: dict[str, dict[str, Any]], entries: list[peers.Entry], cfg: Any,
                x: np.ndarray) -> None:
    m, k, n = args.gemm
    print(f"INT8 GEMM peak ({m}×{k}→{n}, {args.threads} threads, CPU: {latency.cpu_name()}), GMAC/s:")
    for runtime, best in peak.items():
        variants = ", ".join(f"{label} {rate}" for label, rate in best["all"].items())
        print(f"- {runtime}: {best['gmacs']:.1f} ({variants})")
    print(f"\n{args.model}, batch 1, p50 over {args.rounds} interleaved rounds:\n")
    print("| runtime | file | MACs (G) | p50 ms | GMAC/s | of the peak | outside matmuls |")
    print("|---|---|---|---|---|---|---|")
    met = set()
    for entry in sorted(entries, key=lambda e: (peers.TARGETS.index(e.target), not peers.is_ours(e))):
        ours = peers.is_ours(entry)
        macs = model_macs(cfg, head_tokens_only=ours)
        rate = macs / ((entry.p50 or 1.0) * 1e-3) / 1e9
        fraction = rate / peak[PEAK_OF[entry.target]]["gmacs"]
        outside = outside_matmuls(entry, x, args.threads)
        if ours and fraction >= GOAL:
            met.add(entry.target)
        print(f"| {entry.target} | {entry.label} | {macs / 1e9:.2f} | {statistics.median(entry.times):.2f} | "
              f"{rate:.1f} | {100 * fraction:.0f} % | {'-' if outside is None else f'{100 * outside:.0f} %'} |")
    print(f"\nvit-edge at ≥ {100 * GOAL:.0f} % of its runtime's peak on: {', '.join(sorted(met)) or 'none'} "
          f"(goal: at least two runtimes)")


if __name__ == "__main__":
    main()
