"""`vit-edge` command line: a thin layer where each flag maps to one field of an options object in api.py.

User errors (VitEdgeError) print one line and exit 2; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path
from typing import Any, Sequence

from vit_edge.core.errors import VitEdgeError
from vit_edge.core.identity import ModelFacts
from vit_edge.core.targets import TARGETS
from vit_edge.core.types import Precision

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"vit-edge: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _targets_help() -> str:
    return "; ".join(f"{t.name}: {t.summary}" for t in TARGETS.values())


def _precisions_help(exclude: Precision) -> str:
    """Each precision and the targets that take it, read from the declarations."""
    parts = []
    for precision in Precision:
        names = [t.name for t in TARGETS.values() if precision in t.precisions]
        if precision is not exclude and names:
            parts.append(f"{precision.value} ({', '.join(names) if len(names) < len(TARGETS) else 'all targets'})")
    return " | ".join(parts)


def _add_export(sub: Any) -> None:
    p = sub.add_parser("export", help=f"export a ViT to {' | '.join(TARGETS)} and verify it against PyTorch")
    p.add_argument("model", help="fmnist-vit-tiny | vit_small_patch16 | timm:NAME | HF directory | checkpoint file")
    p.add_argument("--target", required=True, help=_targets_help())
    p.add_argument("--precision", default="fp32", help=_precisions_help(exclude=Precision.INT8))
    p.add_argument("--out", type=Path, help="artifact directory (default: artifacts/MODEL-TARGET-PRECISION)")
    p.add_argument("--img-size", type=_img_size,
                   help="export for another input size, N or HxW (position embeddings resampled)")
    p.add_argument("--layout", default="nchw", help="nchw | nhwc input")
    p.add_argument("--weights", type=Path, help="weights file for timm:NAME or a reference ViT (.pth/.safetensors)")
    p.add_argument("--random-init", action="store_true", help="export an untrained model (recorded in the manifest)")
    p.add_argument("--data", help="parity on real images (with --merge and --max-drop: labelled, for the budget): "
                                  "DIR/class/*.jpg, a flat DIR, a list file, .npy/.npz, or fashion-mnist")
    p.add_argument("--parity-samples", type=_positive, default=16, help="inputs compared with PyTorch (default 16)")
    p.add_argument("--opset", type=int, default=20, help="ONNX opset, ≥ 17 (default 20)")
    _add_merge_option(p)
    _add_output_option(p)
    p.add_argument("--max-drop", type=_non_negative_float,
                   help="with --merge and labelled --data: top-1 points merging may cost, else exit 2")
    p.add_argument("--no-verify", dest="verify", action="store_false", help="skip the parity check")
    p.add_argument("--force", action="store_true", help="replace an existing output directory")
    _add_data_options(p)
    _add_reid_options(p)


def _add_data_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("reading images (folders, list files)")
    group.add_argument("--class-names", metavar="FILE",
                       help="the model's class names, one a line in output order, to match folder names against "
                            "(default: the model's own names)")
    group.add_argument("--skip-unreadable", action="store_true",
                       help="leave out image files that cannot be decoded and count them (default: stop at the first)")
    group.add_argument("--max-image-pixels", type=_positive, metavar="N",
                       help="raise Pillow's decompression-bomb limit (about 89 million pixels) for very large photos")


def _data_options(args: argparse.Namespace) -> Any:
    from vit_edge.data.sources import DataOptions

    return DataOptions(class_names=args.class_names, skip_unreadable=args.skip_unreadable,
                       max_image_pixels=args.max_image_pixels)


def _add_merge_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--merge", type=_non_negative, default=0, metavar="R",
                   help="token merging (ToMe): merge R tokens after each block's attention (default 0: none)")


def _layer_list(text: str) -> tuple[int, ...]:
    try:
        layers = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of block indices (e.g. 2,5,8,11)")
    if len(set(layers)) != len(layers):
        raise argparse.ArgumentTypeError(f"'{text}' names a block twice")
    return layers


def _add_output_option(p: argparse.ArgumentParser) -> None:
    from vit_edge.core.options import OUTPUTS

    p.add_argument("--output", default="pooled", choices=OUTPUTS,
                   help="pooled: logits, or the embedding without a head (default); tokens: the normed patch tokens "
                        "(B, N, D), as timm's forward_features minus the prefix; features: them as (B, D, H/p, W/p)")
    p.add_argument("--layers", type=_layer_list, default=(), metavar="I,J,...",
                   help="with --output tokens/features: these blocks' tokens, each after the final norm, stacked as "
                        "(B, L, N, D) or (B, L, D, H/p, W/p), as DPT-style heads read them (timm's "
                        "forward_intermediates); negative counts from the end: --layers=-4,-3,-2,-1")


def _add_reid_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("re-identification checkpoints (TransReID)")
    group.add_argument("--camera", type=_non_negative, default=0,
                       help="0-based camera id whose side-information embedding is built in (default 0)")
    group.add_argument("--view", type=_non_negative, default=0, help="0-based view id (vehicle models)")
    group.add_argument("--neck-feat", default="after", choices=("after", "before"),
                       help="output the BNNeck feature (after) or the class token before it")
    group.add_argument("--stride", type=_positive, default=None,
                       help="MODEL.STRIDE_SIZE it was trained with, where the weights alone cannot tell (then "
                            "--img-size is its INPUT.SIZE_TEST)")
    group.add_argument("--num-heads", type=_positive, default=None,
                       help="its attention head count, where the embedding width alone cannot tell")


def _add_qat_options(group: Any) -> None:
    group.add_argument("--data", help="labelled training images: dataset name or DIR/class_name/*.png")
    group.add_argument("--epochs", type=_positive, default=3)
    group.add_argument("--lr", type=_positive_float, default=1e-4)
    group.add_argument("--batch-size", type=_positive, default=64, help="per process")
    group.add_argument("--lsq", action="store_true", help="learn the scales too (LSQ)")
    group.add_argument("--distill", action="store_true", help="the FP32 model as teacher")
    group.add_argument("--checkpoint-dir", help="default: OUT-qat-checkpoints")
    group.add_argument("--checkpoint-every", type=_positive, default=200, help="steps (default 200)")
    group.add_argument("--max-steps", type=_positive, help="cap the steps per epoch")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--resume", action="store_true", help="continue from the checkpoint directory's last.pt")


def _add_quantize(sub: Any) -> None:
    p = sub.add_parser("quantize", help="INT8 quantization (PTQ or QAT) of the attention and MLP matmuls")
    p.add_argument("model", help="as for export")
    p.add_argument("--target", required=True,
                   help=" | ".join(t.name for t in TARGETS.values() if Precision.INT8 in t.precisions))
    p.add_argument("--method", default="ptq", help="ptq (default) | qat (fine-tune with INT8 simulated)")
    p.add_argument("--calib", required=True, help="calibration images (no labels needed): DIR/class/*.jpg, a flat DIR, "
                                                  "a list file, .npy/.npz, or a dataset name")
    p.add_argument("--calib-size", type=_positive, default=256, help="calibration images used (default 256)")
    p.add_argument("--calib-method", default="percentile", help="minmax | percentile | entropy | mse")
    p.add_argument("--percentile", type=float, default=99.99)
    p.add_argument("--quantize-inputs-of", default="", help="also INT8 inputs of: softmax,gelu,layernorm")
    p.add_argument("--clip-attention", action="store_true",
                   help="calibrate attention logits/probabilities like every tensor (default: full range)")
    p.add_argument("--kinds", default="qkv,qk,av,proj,fc1,fc2",
                   help="matmuls to quantize (add patch_embed, head); default qkv,qk,av,proj,fc1,fc2")
    p.add_argument("--skip", action="append", default=[], help="keep matching matmuls float, e.g. 'blocks.0.*'")
    p.add_argument("--per-tensor-weights", action="store_true", help="one weight scale per matrix")
    p.add_argument("--smoothquant", default="auto", help="auto | off | ALPHA in (0, 1)")
    p.add_argument("--max-drop", type=_non_negative_float,
                   help="top-1 budget in points on the labelled --eval data (token merging included); sensitive "
                        "matmuls stay float")
    _add_merge_option(p)
    _add_output_option(p)
    p.add_argument("--eval", dest="eval_data", help="labelled images for accuracy before/after and the budget: "
                                                    "DIR/class/*.jpg, a list file, a labelled .npz, or a dataset name")
    _add_qat_options(p.add_argument_group("QAT (--method qat)"))
    p.add_argument("--eval-limit", type=_positive, help="use only the first N evaluation images")
    p.add_argument("--out", type=Path, help="artifact directory (default: artifacts/MODEL-TARGET-int8)")
    p.add_argument("--weights", type=Path)
    p.add_argument("--random-init", action="store_true")
    p.add_argument("--img-size", type=_img_size, help="N or HxW")
    _add_reid_options(p)
    p.add_argument("--parity-samples", type=_positive, default=16)
    p.add_argument("--no-verify", dest="verify", action="store_false")
    p.add_argument("--force", action="store_true")
    _add_data_options(p)


def _add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train a small ViT from scratch (how the shipped model was made)")
    p.add_argument("--data", default="fashion-mnist-train", help="'fashion-mnist-train' or an image folder")
    p.add_argument("--eval-data", default="fashion-mnist", help="'fashion-mnist' or an image folder")
    p.add_argument("--epochs", type=_positive, default=10)
    p.add_argument("--batch-size", type=_positive, default=64)
    p.add_argument("--lr", type=_positive_float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="checkpoint file to write (.pt)")
    p.add_argument("--force", action="store_true", help="replace an existing checkpoint")


def _add_info(sub: Any) -> None:
    p = sub.add_parser("info", help="show an artifact's manifest and check its files' sha256")
    p.add_argument("artifact", type=Path)
    p.add_argument("--json", action="store_true", help="print the whole manifest as JSON")


def _img_size(text: str) -> int | tuple[int, int]:
    """'224' or '256x128' (height × width)."""
    try:
        parts = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or HxW (e.g. 224 or 256x128), got {text!r}") from None
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected N or HxW with positive sizes, got {text!r}")
    return parts[0] if len(parts) == 1 or parts[0] == parts[1] else (parts[0], parts[1])


def _number(kind: type, minimum: float, what: str) -> Any:
    """An argparse type: a `kind` number ≥ `minimum`, or one line saying what was expected."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value != value or value < minimum or value in (float("inf"),):  # NaN, too small, infinite
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_positive = _number(int, 1, "an integer ≥ 1")
_positive_float = _number(float, 1e-12, "a positive number")
_non_negative_float = _number(float, 0.0, "a number ≥ 0")


def _cpu_list(text: str) -> tuple[int, ...]:
    """'0,1': CPUs this machine has (checked here, before any measurement starts)."""
    import os

    try:
        cpus = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated CPU numbers, got {text!r}") from None
    available = (sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                 else list(range(os.cpu_count() or 1)))
    missing = [cpu for cpu in cpus if cpu not in available]
    if not cpus or missing:
        raise argparse.ArgumentTypeError(f"CPU(s) {missing or repr(text)} not available here; this process may use "
                                         f"{','.join(map(str, available))}")
    return cpus


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 0, got {text!r}")
    return value


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _add_bench(sub: Any) -> None:
    p = sub.add_parser("bench", help="measure latency, memory and accuracy of artifacts, here or on a device")
    p.add_argument("artifacts", nargs="+", type=Path, help="artifact directories")
    p.add_argument("--threads", type=_int_list, default=(1,), help="comma list, e.g. 1,2 (default 1)")
    p.add_argument("--batch", type=_int_list, default=(1,), help="comma list, e.g. 1,8 (default 1)")
    p.add_argument("--runs", type=_positive, default=50, help="timed runs at least (default 50)")
    p.add_argument("--warmup", type=_non_negative, default=10, help="untimed runs first (default 10)")
    p.add_argument("--min-time", type=_non_negative_float, default=1.0,
                   help="keep timing for at least this many seconds")
    p.add_argument("--device", action="append", default=[],
                   help="local | ssh://user@host[:port] | adb:SERIAL; repeat it for a fleet")
    p.add_argument("--devices", type=Path, help="a devices file: one device a line (address name=… python=… "
                                                "ssh-option=…), measured in parallel into one report")
    p.add_argument("--accelerator", "--ov-device", dest="accelerator", default="CPU",
                   help="the runtime's accelerator on the device: CPU | GPU | NPU | AUTO (OpenVINO)")
    p.add_argument("--precision-hint", default="f32",
                   help="OpenVINO inference precision: f32 | bf16 | f16 | default (the plugin's choice)")
    p.add_argument("--runtime", help="run every artifact in this runtime (e.g. pytorch) instead of its own")
    p.add_argument("--data", help="images for top-1/top-5 (labelled) and agreement: DIR/class/*.jpg, a flat DIR, a "
                                  "list file, .npy/.npz, or fashion-mnist; labels matched to each model's classes")
    p.add_argument("--eval-limit", type=_positive, help="use only the first N labelled images")
    p.add_argument("--reference", help="artifact (or 'pytorch') whose predictions others are compared with")
    p.add_argument("--cpus", type=_cpu_list, default=(),
                   help="pin each measuring process to these CPUs, e.g. 0,1")
    p.add_argument("--out", type=Path, default=Path("reports/bench"), help="report folder (default reports/bench)")
    p.add_argument("--timeout", type=_positive_float, default=600.0, help="seconds allowed per configuration")
    p.add_argument("--ssh-option", action="append", default=[], help="passed to ssh/scp as -o OPTION")
    p.add_argument("--remote-python", default="python3", help="Python on the SSH device")
    p.add_argument("--profile", action="store_true",
                   help="the runtime's own per-op timing and which matmuls ran INT8 (ONNX Runtime, OpenVINO)")
    p.add_argument("--adb-benchmark", default="/data/local/tmp/benchmark_model",
                   help="benchmark_model binary on the Android device")
    _add_data_options(p)


def _count_list(text: str) -> tuple[int, ...]:
    """'0,4,8': integers ≥ 0 (token-merging r values)."""
    values = tuple(_non_negative(v) for v in text.split(",") if v.strip())
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers ≥ 0, got {text!r}")
    return values


def _add_tune(sub: Any) -> None:
    p = sub.add_parser("tune", help="measure candidate recipes on a device; write the latency–accuracy Pareto front "
                                    "and the fastest artifact within --max-drop")
    p.add_argument("model", help="as for export")
    p.add_argument("--target", required=True, help=" | ".join(TARGETS))
    p.add_argument("--calib", required=True, help="calibration images for the INT8 candidates")
    p.add_argument("--eval", dest="eval_data", required=True,
                   help="labelled images: DIR/class/*.jpg, a list file, a labelled .npz, or a dataset name")
    p.add_argument("--max-drop", type=_non_negative_float, required=True, help="top-1 budget in points")
    p.add_argument("--merge", type=_count_list, help="token-merging r values to try (default: 0 and two that merge "
                                                      "about a quarter and half of the patches)")
    p.add_argument("--precisions", default="fp32,int8,int8-mlp",
                   help="fp32 | int8 (every matmul) | int8-mlp (Q·Kᵀ and attn·V float); default all three")
    p.add_argument("--threads", type=_int_list, default=(1, 2), help="comma list (default 1,2)")
    p.add_argument("--device", default="local", help="local | ssh://user@host[:port] | adb:SERIAL")
    p.add_argument("--ssh-option", action="append", default=[], help="passed to ssh/scp as -o OPTION")
    p.add_argument("--remote-python", default="python3", help="Python on the SSH device")
    p.add_argument("--eval-limit", type=_positive, default=1000, help="evaluation images used (default 1000)")
    p.add_argument("--calib-size", type=_positive, default=128)
    p.add_argument("--runs", type=_positive, default=30, help="timed runs per configuration (default 30)")
    p.add_argument("--weights", type=Path)
    p.add_argument("--random-init", action="store_true")
    p.add_argument("--out", type=Path, required=True, help="folder for tune.json, the candidates and chosen/")
    p.add_argument("--force", action="store_true", help="replace an existing --out folder")
    _add_data_options(p)


def build_parser() -> argparse.ArgumentParser:
    from vit_edge import __version__

    parser = _Parser(prog="vit-edge", description="Take a trained Vision Transformer to the edge, verified.")
    parser.add_argument("--version", action="version", version=f"vit-edge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_export(sub)
    _add_quantize(sub)
    _add_train(sub)
    _add_info(sub)
    _add_bench(sub)
    _add_tune(sub)
    sub.add_parser("devices", help="list the runtimes installed here, their versions and OpenVINO's devices")
    p = sub.add_parser("models", help="list the model families and timm names that load, with their input spec")
    p.add_argument("--family", help="only this family (e.g. dinov2, clip, siglip, deit3, hybrid)")
    p.add_argument("--unsupported", action="store_true", help="list timm ViT names that do not load, and why")
    return parser


def _cmd_export(args: argparse.Namespace) -> int:
    from vit_edge.api import export

    artifact = export(
        args.model, args.target, args.out, weights=args.weights, random_init=args.random_init, data=args.data,
        max_drop=args.max_drop, data_options=_data_options(args), log=_log, precision=args.precision,
        img_size=args.img_size, layout=args.layout,
        verify=args.verify, parity_samples=args.parity_samples, opset=args.opset, force=args.force,
        camera=args.camera, view=args.view, neck_feat=args.neck_feat, stride=args.stride,
        num_heads=args.num_heads, merge=args.merge, output=args.output, layers=args.layers,
    )
    parity = artifact.manifest.parity
    check = (f"parity ok: min cosine {parity['min_cosine']:.7f}, top-1 agreement "
             f"{100 * parity['top1_agreement']:.1f}%, max abs diff {parity['max_abs_diff']:.2e}"
             if parity else "parity not checked (--no-verify)")
    print(f"{artifact.path}  ({artifact.manifest.target} {artifact.manifest.precision.value}; {check})")
    _print_delegation(artifact.manifest.parity)
    return 0


def _print_delegation(parity: dict[str, Any] | None) -> None:
    """Where a delegate (XNNPACK) did not take the whole graph, name the ops that run outside it."""
    session = (parity or {}).get("runtime") or {}
    if session.get("fully_delegated") is False:
        ops = ", ".join(session.get("undelegated_ops", [])) or "?"
        print(f"  not all in {session.get('delegate', 'the delegate')}: {ops} run on the runtime's own kernels")


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _qat_request(args: argparse.Namespace) -> Any:
    from vit_edge.quantization.qat import QatConfig, QatTraining

    config = QatConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, lsq=args.lsq, distill=args.distill,
                       checkpoint_every=args.checkpoint_every, max_steps=args.max_steps, seed=args.seed)
    return QatTraining(args.data, config, args.checkpoint_dir, args.resume, args.force)


def _cmd_quantize(args: argparse.Namespace) -> int:
    from vit_edge.api import quantize
    from vit_edge.quantization.recipe import Recipe

    recipe = Recipe(kinds=_names(args.kinds), skip=tuple(args.skip), calibration=args.calib_method,
                    percentile=args.percentile, per_tensor_weights=args.per_tensor_weights,
                    smoothquant=args.smoothquant, max_drop=args.max_drop,
                    nonlinear_inputs=_names(args.quantize_inputs_of), keep_attention_range=not args.clip_attention)
    artifact = quantize(args.model, args.target, args.out, calib=args.calib, recipe=recipe,
                        calib_size=args.calib_size, eval_data=args.eval_data, eval_limit=args.eval_limit,
                        data_options=_data_options(args),
                        weights=args.weights, random_init=args.random_init, method=args.method,
                        qat=_qat_request(args) if args.method == "qat" else None, log=_log, img_size=args.img_size,
                        verify=args.verify, parity_samples=args.parity_samples, force=args.force,
                        camera=args.camera, view=args.view, neck_feat=args.neck_feat, stride=args.stride,
                        num_heads=args.num_heads, merge=args.merge, output=args.output, layers=args.layers)
    if artifact is None:  # a torchrun rank other than 0: rank 0 writes and reports
        return 0
    q = artifact.manifest.quantization or {}
    accuracy = q.get("accuracy", {})
    line = f"{len(q.get('int8_matmuls', []))} matmuls INT8, {len(q.get('kept_float', []))} float"
    if "int8_top1" in accuracy:
        line += f"; top-1 {accuracy['fp32_top1']:.2f}% → {accuracy['int8_top1']:.2f}%"
    line += f"; agreement with fp32 {accuracy.get('agreement_top1', float('nan')):.2f}%"
    print(f"{artifact.path}  ({artifact.manifest.target} int8: {line})")
    _print_delegation(artifact.manifest.parity)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from vit_edge.api import train

    metrics = train(args.out, data=args.data, eval_data=args.eval_data, epochs=args.epochs,
                    batch_size=args.batch_size, lr=args.lr, seed=args.seed, force=args.force, log=_log)
    print(f"{args.out}  (test top-1 {metrics['test_top1']:.2f}% after {metrics['epoch']} epochs)")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    import json

    from vit_edge.api import info

    manifest = info(args.artifact)
    if args.json:
        print(json.dumps(manifest.to_json(), indent=2))
        return 0
    spec, facts = manifest.input_spec, manifest.model_facts
    size = manifest.size_bytes(args.artifact)
    rows = [
        ("target", f"{manifest.target} ({manifest.precision.value})"),
        ("model file", f"{manifest.model_file}  ({size / 1e6:.2f} MB in all; sha256 verified)"),
        ("source", f"{facts.kind}: {facts.ident}"),
        ("family", _family_line(facts)),
        ("input", f"{spec.shape(1)} {spec.layout.value}, mean {spec.mean}, std {spec.std}, {spec.interpolation}"),
        ("parity", _parity_line(manifest.parity)),
        *([("quantized", _quantization_line(manifest.quantization))] if manifest.quantization else []),
        ("created", f"{manifest.created_at} with torch {manifest.tool_versions.get('torch', '?')}"),
    ]
    rows += _sqnr_rows(manifest.quantization or {})
    for key, value in rows:
        print(f"{key:>10}  {value}")
    return 0


def _family_line(facts: ModelFacts) -> str:
    line = f"{facts.family}; output: {facts.output_line()}"
    if facts.reid is not None:
        camera, view, neck_feat = facts.reid
        line += f"; camera {camera}, view {view}, feature {neck_feat}"
    return line


def _sqnr_rows(q: dict[str, Any]) -> list[tuple[str, str]]:
    """Per-matmul SQNR (dB), a block per line, and why any matmul stayed float."""
    by_block: dict[str, list[str]] = {}
    for name, value in q.get("sqnr_db", {}).items():
        if name.startswith("blocks."):
            block, _, leaf = name[len("blocks."):].partition(".")
            group = f"block {block}"
        elif name.startswith("attn_pool."):  # SigLIP's attention-pool head, one line like a block
            group, leaf = "attention pool", name
        else:
            group, leaf = name, name
        by_block.setdefault(group, []).append(f"{leaf.rpartition('.')[2]} {value:.1f}")
    rows = [("SQNR dB" if i == 0 else "", f"{block}: {', '.join(items)}")
            for i, (block, items) in enumerate(by_block.items())]
    for kept in q.get("accuracy", {}).get("kept_float_for_budget", []):
        rows.append(("kept float", f"{kept['matmul']} (SQNR {kept['sqnr_db']:.1f} dB, the lowest, while the drop "
                                   f"was {kept['drop_before_pt']:.2f} pt)"))
    return rows


def _quantization_line(q: dict[str, Any]) -> str:
    calibration = q.get("calibration", {})
    line = (f"{q.get('method', '?')}: {len(q.get('int8_matmuls', []))} INT8 matmuls, {len(q.get('kept_float', []))} "
            f"float; {q.get('recipe', {}).get('calibration', '?')} calibration on {calibration.get('images', '?')} "
            f"images of {calibration.get('source', '?')}")
    qat = q.get("qat")
    if qat:
        best = qat.get("best") or {}
        line += (f"; QAT {len(qat.get('history', []))} epoch(s) on {qat.get('train_data')}, best epoch "
                 f"{best.get('epoch', '?')}")
    accuracy = q.get("accuracy", {})
    if "int8_top1" in accuracy:
        line += f"; top-1 {accuracy['fp32_top1']:.2f}% → {accuracy['int8_top1']:.2f}%"
        if "int8_top1_measured_in" in accuracy:
            line += (f" (INT8 as {accuracy['int8_top1_measured_in']} scored it; PyTorch's simulation "
                     f"{accuracy['int8_top1_simulated']:.2f}%)")
    return line


def _parity_line(parity: dict[str, Any]) -> str:
    if not parity:
        return "not checked"
    agreement = ("" if parity.get("output") == "embedding" else
                 f", top-1 agreement {100 * parity['top1_agreement']:.1f}%")
    return (f"{'passed' if parity.get('passed') else 'FAILED'}: min cosine {parity['min_cosine']:.7f}{agreement} on "
            f"{parity['samples']} {parity.get('inputs')}")


def _cmd_bench(args: argparse.Namespace) -> int:
    from vit_edge.api import bench
    from vit_edge.benchmarking.fleet import FleetDevice, check_fleet, read_devices_file
    from vit_edge.benchmarking.record import BenchRecord
    from vit_edge.benchmarking.report import append_records, markdown_table, write_reports
    from vit_edge.benchmarking.sweep import BenchConfig
    from vit_edge.core.artifact import check_writable

    fleet = [FleetDevice(address) for address in args.device]
    fleet += read_devices_file(args.devices) if args.devices else []
    check_fleet(fleet or [FleetDevice("local")])  # a duplicate stops here, before the report folder is made
    cfg = BenchConfig(
        threads=args.threads, batches=args.batch, warmup=args.warmup, runs=args.runs, min_seconds=args.min_time,
        accelerator=args.accelerator, precision_hint=None if args.precision_hint == "default" else args.precision_hint,
        runtime=args.runtime, data=args.data, eval_limit=args.eval_limit, reference=args.reference, cpus=args.cpus,
        timeout_s=args.timeout, ssh_options=tuple(args.ssh_option), remote_python=args.remote_python,
        adb_benchmark=args.adb_benchmark, profile=args.profile, data_options=_data_options(args),
    )
    check_writable(args.out)  # a read-only or missing report folder is found before measuring, not after
    def keep(found: list[BenchRecord]) -> None:  # each artifact's rows reach bench.jsonl as soon as they exist
        append_records(found, args.out)

    records = bench(args.artifacts, cfg, devices=fleet, progress=_log, on_records=keep)
    paths = write_reports(records, args.out, append_jsonl=False)
    print(markdown_table(records))
    print("reports: " + ", ".join(str(p) for p in paths.values()))
    failed = [r for r in records if not r.ok]
    if failed:
        print(f"vit-edge: error: {len(failed)} of {len(records)} configurations failed; the status column says why",
              file=sys.stderr)
        return 2
    return 0


def _cmd_devices(args: argparse.Namespace) -> int:
    from vit_edge.benchmarking.inventory import inventory

    for line in inventory():
        print(line)
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from vit_edge.models.catalog import model_rows

    for line in model_rows(family=args.family, unsupported=args.unsupported):
        print(line)
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from vit_edge.tuning import TuneConfig, tune

    config = TuneConfig(target=args.target, calib=args.calib, eval_data=args.eval_data, max_drop=args.max_drop,
                        merges=args.merge, threads=args.threads, precisions=_names(args.precisions),
                        device=args.device, eval_limit=args.eval_limit, calib_size=args.calib_size, runs=args.runs,
                        ssh_options=tuple(args.ssh_option), remote_python=args.remote_python,
                        data_options=_data_options(args))
    document = tune(args.model, config, args.out, weights=args.weights, random_init=args.random_init,
                    force=args.force, log=_log)
    print("| candidate | threads | hint | p50 ms | top-1 % | drop pt |\n|---|---|---|---|---|---|")
    for row in document["pareto_front"]:
        print(f"| {row['candidate']} | {row['threads']} | {row['hint']} | {row['p50_ms']:.2f} | {row['top1']:.2f} "
              f"| {row['drop']:.2f} |")
    chosen = document["chosen"]
    print(f"{args.out / 'chosen'}  ({chosen['candidate']}, {chosen['threads']} threads, hint {chosen['hint']}: "
          f"{chosen['p50_ms']:.2f} ms, drop {chosen['drop']:.2f} pt ≤ {args.max_drop})")
    return 0


COMMANDS = {"tune": _cmd_tune, "export": _cmd_export, "quantize": _cmd_quantize, "train": _cmd_train, "info": _cmd_info,
            "bench": _cmd_bench, "devices": _cmd_devices, "models": _cmd_models}


def main(argv: Sequence[str] | None = None) -> int:
    from vit_edge.core import signals

    args = build_parser().parse_args(argv)
    signals.install()
    try:
        code = COMMANDS[args.command](args)
        signals.raise_if_stopped()  # a converter that swallowed the signal does not make it a success
        return code
    except VitEdgeError as exc:
        if signals.stop_signal() is None:
            print(f"vit-edge: error: {exc}", file=sys.stderr)
            return 2
        return _stopped(signals.stop_signal())  # the converter wrapped our signal in its own error
    except KeyboardInterrupt:
        return _stopped(2)
    except signals.Terminated as exc:
        return _stopped(exc.signum)
    except BrokenPipeError:  # `vit-edge models | head`: the reader has gone, nothing is wrong
        sys.stderr.close()
        return 0
    except OSError as exc:
        if exc.errno not in ENVIRONMENT_ERRNOS:
            raise  # anything else is a bug in vit-edge: keep its traceback
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"vit-edge: error: {exc.strerror}{where}: {ENVIRONMENT_ERRNOS[exc.errno]}", file=sys.stderr)
        return 2


# faults of the machine, not of vit-edge: what the user can do about each
ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "free some space or write elsewhere (--out)", errno.EDQUOT: "free some space or write elsewhere",
    errno.EFBIG: "the file size limit (ulimit -f) is too small", errno.EROFS: "write elsewhere (--out)",
    errno.EACCES: "check the file's permissions", errno.EPERM: "check the file's permissions",
    errno.EIO: "the disk or network file system failed; check it and run again",
}


def _stopped(signum: int | None) -> int:
    """One line and 128 + the signal: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP."""
    import signal

    number = signum or signal.SIGINT
    print("vit-edge: interrupted" if number == signal.SIGINT else
          f"vit-edge: stopped by {signal.Signals(number).name}", file=sys.stderr)
    return 128 + number


if __name__ == "__main__":
    raise SystemExit(main())
