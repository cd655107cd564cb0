"""The argument parser: every verb's flags, each with the dest of the options field it fills."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vit_edge.cli import values
from vit_edge.core.targets import TARGETS, flag, takers
from vit_edge.core.types import Precision

__all__ = ["build_parser"]


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"vit-edge: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


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


def _add_export(sub: Any) -> None:
    p = sub.add_parser("export", help=f"export a ViT to {' | '.join(TARGETS)} and verify it against PyTorch")
    p.add_argument("model", help="fmnist-vit-tiny | vit_small_patch16 | timm:NAME | HF directory | checkpoint file")
    p.add_argument("--target", required=True, help=_targets_help())
    p.add_argument("--precision", default="fp32", help=_precisions_help(exclude=Precision.INT8))
    p.add_argument("--data", help="parity on real images (with --merge and --max-drop: labelled, for the budget): "
                                  "DIR/class/*.jpg, a flat DIR, a list file, .npy/.npz, or fashion-mnist")
    p.add_argument("--max-drop", type=values.non_negative_float,
                   help="with --merge and labelled --data: top-1 points merging may cost, else exit 2")
    _add_artifact_options(p, "artifacts/MODEL-TARGET-PRECISION")


def _add_artifact_options(p: argparse.ArgumentParser, default_out: str) -> None:
    """What export and quantize share, declared once: the artifact, the model read and the graph exported (the
    flags that fill ExportOptions and the loader's arguments; tests/hostile/test_words.py checks they match)."""
    p.add_argument("--out", type=Path, help=f"artifact directory (default: {default_out})")
    p.add_argument("--img-size", type=values.img_size,
                   help="export for another input size, N or HxW (position embeddings resampled)")
    p.add_argument("--dynamic-size", action="store_true",
                   help=f"with {takers('dynamic_size')}: the artifact takes any height and width that are multiples of "
                        "the patch "
                        "(the position embeddings resampled in the graph, as the model does at every call; parity "
                        "checked at 3 sizes); --img-size, or the model's size, is the default")
    p.add_argument("--layout", default="nchw", help="nchw | nhwc input")
    p.add_argument("--weights", type=Path, help="weights file for timm:NAME or a reference ViT (.pth/.safetensors)")
    p.add_argument("--random-init", action="store_true", help="export an untrained model (recorded in the manifest)")
    p.add_argument("--parity-samples", type=values.parity_samples, default=16,
                   help="inputs compared with PyTorch (default 16, at most 10000)")
    _add_target_options(p)
    _add_merge_option(p)
    _add_output_option(p)
    p.add_argument("--no-verify", dest="verify", action="store_false", help="skip the parity check")
    p.add_argument("--force", action="store_true", help="replace an existing output directory")
    _add_data_options(p)
    _add_reid_options(p)
    p.add_argument("--max-depth", type=values.positive_float, metavar="METRES",
                   help="a metric Depth Anything V2 checkpoint in its authors' layout (.pth): the depth its sigmoid "
                        "spans (20 for the Hypersim models, 80 for Virtual KITTI), which the weights do not hold")


def _add_data_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("reading images (folders, list files)")
    group.add_argument("--class-names", metavar="FILE",
                       help="the model's class names, one a line in output order, to match folder names against "
                            "(default: the model's own names)")
    group.add_argument("--skip-unreadable", action="store_true",
                       help="leave out image files that cannot be decoded and count them (default: stop at the first)")
    group.add_argument("--depth-scale", type=values.positive_float, default=1000.0, metavar="UNITS",
                       help="ground-truth depth in a DIR/images + DIR/depth folder: 16-bit PNG integers per metre "
                            "(default 1000: millimetres; KITTI's are 256); a .npy map is metres")
    group.add_argument("--max-image-pixels", type=values.positive, metavar="N",
                       help="raise Pillow's decompression-bomb limit (about 89 million pixels) for very large photos")


def _add_target_options(p: argparse.ArgumentParser) -> None:
    """The options one target takes (core/targets.py declares which), each help naming its targets from there;
    a sub-target's flag (--npu CONFIG) is generated from its declaration."""
    p.add_argument("--opset", type=int, default=20, help=f"with {takers('opset')}: the opset, ≥ 17 (default 20)")
    p.add_argument("--ort-fusions", action="store_true",
                   help=f"with {takers('ort_fusions')}: save ONNX Runtime's own graph (its fusions, each bias inside "
                        "its INT8 matmul, the attention scale inside the query's quantizer): faster in ONNX Runtime, "
                        "but com.microsoft operators no other runtime runs (default: plain, portable ONNX)")
    for sub in (sub for declared in TARGETS.values() for sub in declared.sub_targets):
        known = f"{sub.configurations[0]} … {sub.configurations[-1]}"
        p.add_argument(f"--{flag(sub.option)}", metavar="CONFIG",
                       help=f"with {takers(sub.option)}, quantize only: {sub.summary}: {known}")


def _add_merge_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--merge", type=values.non_negative, default=0, metavar="R",
                   help="token merging (ToMe): merge R tokens after each block's attention (default 0: none)")


def _add_output_option(p: argparse.ArgumentParser) -> None:
    from vit_edge.core.options import OUTPUTS

    p.add_argument("--output", default="pooled", choices=OUTPUTS,
                   help="pooled: logits, or the embedding without a head (default); tokens: the normed patch tokens "
                        "(B, N, D), as timm's forward_features minus the prefix; features: them as (B, D, H/p, W/p)")
    p.add_argument("--layers", type=values.layer_list, default=(), metavar="I,J,...",
                   help="with --output tokens/features: these blocks' tokens, each after the final norm, stacked as "
                        "(B, L, N, D) or (B, L, D, H/p, W/p), as DPT-style heads read them (timm's "
                        "forward_intermediates); negative counts from the end: --layers=-4,-3,-2,-1")


def _add_reid_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("re-identification checkpoints (TransReID)")
    group.add_argument("--camera", type=values.non_negative, default=0,
                       help="0-based camera id whose side-information embedding is built in (default 0)")
    group.add_argument("--view", type=values.non_negative, default=0, help="0-based view id (vehicle models)")
    group.add_argument("--neck-feat", default="after", choices=("after", "before"),
                       help="output the BNNeck feature (after) or the class token before it")
    group.add_argument("--stride", type=values.positive, default=None,
                       help="MODEL.STRIDE_SIZE it was trained with, where the weights alone cannot tell (then "
                            "--img-size is its INPUT.SIZE_TEST)")
    group.add_argument("--num-heads", type=values.positive, default=None,
                       help="its attention head count, where the embedding width alone cannot tell")


def _add_quantize(sub: Any) -> None:
    p = sub.add_parser("quantize", help="INT8 quantization (PTQ or QAT) of the attention and MLP matmuls")
    p.add_argument("model", help="as for export")
    p.add_argument("--target", required=True,
                   help=" | ".join(t.name for t in TARGETS.values() if Precision.INT8 in t.precisions))
    p.add_argument("--method", default="ptq", choices=("ptq", "qat"),
                   help="ptq (default) | qat (fine-tune with INT8 simulated)")
    p.add_argument("--calib", required=True, help="calibration images (no labels needed): DIR/class/*.jpg, a flat DIR, "
                                                  "a list file, .npy/.npz, or a dataset name")
    p.add_argument("--calib-size", type=values.positive, default=256, help="calibration images used (default 256)")
    p.add_argument("--calib-method", dest="calibration", default="percentile",
                   help="minmax | percentile | entropy | mse")
    p.add_argument("--percentile", type=float, default=99.99)
    p.add_argument("--quantize-inputs-of", dest="nonlinear_inputs", type=values.names, default=(),
                   help="also INT8 inputs of: softmax,gelu,layernorm")
    p.add_argument("--clip-attention", dest="keep_attention_range", action="store_false",
                   help="calibrate attention logits/probabilities like every tensor (default: full range)")
    p.add_argument("--kinds", type=values.names, default=("qkv", "qk", "av", "proj", "fc1", "fc2"),
                   help="matmuls to quantize (add patch_embed, head); default qkv,qk,av,proj,fc1,fc2")
    p.add_argument("--skip", action="append", default=[], help="keep matching matmuls float, e.g. 'blocks.0.*'")
    p.add_argument("--int16", action="append", default=[], metavar="PATTERN",
                   help="16-bit activations, 8-bit weights (A16W8) for matching matmuls, e.g. 'blocks.0.*' or "
                        "'*.mlp.fc2' (ONNX: opset 21 Q/DQ, as ONNX Runtime's QNN EP reads them); with --max-drop "
                        "the budget moves the ops that cost most to INT16 before any to float")
    p.add_argument("--a16w8", dest="int16", action="append_const", const="*",
                   help="16-bit activations on every quantized matmul (the same as --int16 '*')")
    p.add_argument("--per-tensor-weights", action="store_true", help="one weight scale per matrix")
    p.add_argument("--smoothquant", default="auto", help="auto | off | ALPHA in (0, 1)")
    p.add_argument("--max-drop", type=values.non_negative_float,
                   help="top-1 budget in points on the labelled --eval data (token merging included); the ops "
                        "that cost most get INT16 activations where the target has them, then stay float")
    p.add_argument("--max-abs-rel", type=values.non_negative_float, metavar="PERCENT",
                   help="a depth model's budget: AbsRel against FP32 on the calibration images, in percent "
                        "(default 1); its neck's and head's convolutions and the encoder's matmuls go back to float, "
                        "lowest SQNR first, until it holds")
    p.add_argument("--eval", dest="eval_data", help="labelled images for accuracy before/after and the budget: "
                                                    "DIR/class/*.jpg, a list file, a labelled .npz, or a dataset name; "
                                                    "for a depth model DIR/images/* with DIR/depth/* (ground truth)")
    _add_qat_options(p.add_argument_group("QAT (--method qat)"))
    p.add_argument("--eval-limit", type=values.positive, help="use only the first N evaluation images")
    _add_artifact_options(p, "artifacts/MODEL-TARGET-int8")


def _add_qat_options(group: Any) -> None:
    group.add_argument("--data", help="labelled training images: dataset name or DIR/class_name/*.png")
    group.add_argument("--epochs", type=values.positive, default=3)
    group.add_argument("--lr", type=values.positive_float, default=1e-4)
    group.add_argument("--batch-size", type=values.positive, default=64, help="per process")
    group.add_argument("--lsq", action="store_true", help="learn the scales too (LSQ)")
    group.add_argument("--distill", action="store_true", help="the FP32 model as teacher")
    group.add_argument("--checkpoint-dir", help="default: OUT-qat-checkpoints")
    group.add_argument("--checkpoint-every", type=values.positive, default=200, help="steps (default 200)")
    group.add_argument("--max-steps", type=values.positive, help="cap the steps per epoch")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--resume", action="store_true", help="continue from the checkpoint directory's last.pt")


def _add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train a small ViT from scratch (how the shipped model was made)")
    p.add_argument("--data", default="fashion-mnist-train", help="'fashion-mnist-train' or an image folder")
    p.add_argument("--eval-data", default="fashion-mnist", help="'fashion-mnist' or an image folder")
    p.add_argument("--epochs", type=values.positive, default=10)
    p.add_argument("--batch-size", type=values.positive, default=64)
    p.add_argument("--lr", type=values.positive_float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="checkpoint file to write (.pt)")
    p.add_argument("--force", action="store_true", help="replace an existing checkpoint")


def _add_info(sub: Any) -> None:
    p = sub.add_parser("info", help="show an artifact's manifest and check its files' sha256")
    p.add_argument("artifact", type=Path)
    p.add_argument("--json", action="store_true", help="print the whole manifest as JSON")


def _add_bench(sub: Any) -> None:
    p = sub.add_parser("bench", help="measure latency, memory and accuracy of artifacts, here or on a device")
    p.add_argument("artifacts", nargs="+", type=Path, help="artifact directories")
    p.add_argument("--threads", type=values.int_list, default=(1,), help="comma list, e.g. 1,2 (default 1)")
    p.add_argument("--batch", dest="batches", type=values.int_list, default=(1,),
                   help="comma list, e.g. 1,8 (default 1)")
    p.add_argument("--runs", type=values.positive, default=50, help="timed runs at least (default 50)")
    p.add_argument("--warmup", type=values.non_negative, default=10, help="untimed runs first (default 10)")
    p.add_argument("--min-time", dest="min_seconds", type=values.non_negative_float, default=1.0,
                   help="keep timing for at least this many seconds")
    p.add_argument("--device", dest="addresses", action="append", default=[],
                   help="local | ssh://user@host[:port] | adb:SERIAL; repeat it for a fleet")
    p.add_argument("--devices", type=Path, help="a devices file: one device a line (address name=… python=… "
                                                "ssh-option=…), measured in parallel into one report")
    p.add_argument("--accelerator", "--ov-device", dest="accelerator", default="CPU",
                   help="the runtime's accelerator on the device: CPU | GPU | NPU | AUTO (OpenVINO)")
    p.add_argument("--precision-hint", default="f32", type=values.precision_hint,
                   help="OpenVINO inference precision: f32 | bf16 | f16 | default (the plugin's choice)")
    p.add_argument("--runtime", help="run every artifact in this runtime (e.g. pytorch) instead of its own")
    p.add_argument("--data", help="images for top-1/top-5 (labelled) and agreement: DIR/class/*.jpg, a flat DIR, a "
                                  "list file, .npy/.npz, or fashion-mnist; labels matched to each model's classes; "
                                  "DIR/images/* with DIR/depth/*: a depth model's AbsRel and δ<1.25 against them")
    p.add_argument("--eval-limit", type=values.positive, help="use only the first N labelled images")
    p.add_argument("--reference", help="artifact (or 'pytorch') whose predictions others are compared with")
    p.add_argument("--cpus", type=values.cpu_list, default=(),
                   help="pin each measuring process to these CPUs, e.g. 0,1")
    p.add_argument("--out", type=Path, default=Path("reports/bench"), help="report folder (default reports/bench)")
    p.add_argument("--force", action="store_true", help="replace an existing report folder that vit-edge wrote")
    p.add_argument("--timeout", dest="timeout_s", type=values.positive_float, default=600.0,
                   help="seconds allowed per configuration")
    p.add_argument("--ssh-option", dest="ssh_options", action="append", default=[],
                   help="passed to ssh/scp as -o OPTION")
    p.add_argument("--remote-python", default="python3", help="Python on the SSH device")
    p.add_argument("--profile", action="store_true",
                   help="the runtime's own per-op timing and which matmuls ran INT8 (ONNX Runtime, OpenVINO)")
    p.add_argument("--adb-benchmark", default="/data/local/tmp/benchmark_model",
                   help="benchmark_model binary on the Android device")
    _add_data_options(p)


def _add_tune(sub: Any) -> None:
    p = sub.add_parser("tune", help="measure candidate recipes on a device; write the latency–accuracy Pareto front "
                                    "and the fastest artifact within --max-drop")
    p.add_argument("model", help="as for export")
    p.add_argument("--target", required=True, help=" | ".join(TARGETS))
    p.add_argument("--calib", required=True, help="calibration images for the INT8 candidates")
    p.add_argument("--eval", dest="eval_data", required=True,
                   help="labelled images: DIR/class/*.jpg, a list file, a labelled .npz, or a dataset name")
    p.add_argument("--max-drop", type=values.non_negative_float, required=True, help="top-1 budget in points")
    p.add_argument("--merge", dest="merges", type=values.count_list,
                   help="token-merging r values to try (default: 0 and two that merge "
                                                      "about a quarter and half of the patches)")
    p.add_argument("--precisions", type=values.names, default=("fp32", "int8", "int8-linear"),
                   help="fp32 | int8 (every matmul) | int8-linear (qkv, proj, fc1, fc2 INT8; Q·Kᵀ and attn·V "
                        "float); default all three")
    p.add_argument("--threads", type=values.int_list, default=(1, 2), help="comma list (default 1,2)")
    p.add_argument("--device", default="local", help="local | ssh://user@host[:port] | adb:SERIAL")
    p.add_argument("--ssh-option", dest="ssh_options", action="append", default=[],
                   help="passed to ssh/scp as -o OPTION")
    p.add_argument("--remote-python", default="python3", help="Python on the SSH device")
    p.add_argument("--eval-limit", type=values.positive, default=1000, help="evaluation images used (default 1000)")
    p.add_argument("--calib-size", type=values.positive, default=128)
    p.add_argument("--runs", type=values.positive, default=30, help="timed runs per configuration (default 30)")
    p.add_argument("--weights", type=Path)
    p.add_argument("--random-init", action="store_true")
    p.add_argument("--out", type=Path, required=True, help="folder for tune.json, the candidates and chosen/")
    p.add_argument("--force", action="store_true", help="replace an existing --out folder")
    _add_data_options(p)
