"""INT8 of a dense model (Depth Anything, DPT: #37): the encoder's matmuls exactly as any ViT's (the same recipe,
`quantize_model` on the encoder), and for a depth map the neck's and head's convolutions per output channel, within
a depth budget.

The budget is AbsRel against the FP32 model on the calibration images (`--max-abs-rel`, in percent; 1 % when not
given, half of the 2 % at which bench marks a depth artifact a mismatch, so that other images keep a margin). It
decides as `--max-drop` does for a classifier's matmuls: everything is quantized, the model the target ships (its
`lower` applied) is measured, and while it is over the budget the INT8 op that costs most goes back to float, an
encoder matmul or a convolution alike. The cost is each op's AbsRel when it alone is INT8, measured once (on 16
images), not its SQNR: on the tests' model SQNR ranked the head's last convolutions (most of the error: a depth
map's relative error lives in its small values) below twenty matmuls that cost almost nothing. Ranges are
calibrated once (the encoder's on float activations, the convolutions' on the INT8 encoder's output), so sending
one op back to float changes no other op's scale, and every target lowers the same scales. The transposed
convolutions (DPT's ×4 and ×2 reassemble), the levels' convolutions before fusion (see `head_convs`), DPT's readout
projections and the bilinear resizes stay float.

A segmentation map has no AbsRel to hold a budget in: its encoder's matmuls are INT8, its readout, neck and head
float, and it is measured by pixel agreement and mIoU against FP32's argmax (with --eval masks, against them too).

The result is a `QuantizedViT` whose model is the whole dense model, so the target's lowering, the parity check
against the INT8 simulation and the manifest treat it as they treat a ViT; the scope record (`DenseScope`) says
which convolutions are INT8 (`int8_convs`) and which ops float (`float_ops`).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, cast

import numpy as np
import torch
from torch import nn

from vit_edge.core.depth_metrics import depth_scores
from vit_edge.core.errors import ConfigError, DataError
from vit_edge.core.output_kinds import OUTPUTS, Measure
from vit_edge.core.parity import sample_cosines
from vit_edge.core.segmentation_metrics import AgreementTally, Confusion, predicted_classes
from vit_edge.core.summaries import Accuracy, DepthTruth, KeptFloatOp
from vit_edge.data.masks import MaskedImages
from vit_edge.models.dense_heads import DenseModel, ResidualConvUnit
from vit_edge.models.vit import VisionTransformer
from vit_edge.quantization.budget import evaluate
from vit_edge.quantization.ptq import QuantizedViT, calibrate, fingerprint, op_sqnr, quantize_model
from vit_edge.quantization.qmodules import QuantConv2d
from vit_edge.quantization.recipe import Recipe
from vit_edge.reading.torch_session import torch_runner
from vit_edge.runtime.accuracy import run_batched, stream_outputs

if TYPE_CHECKING:
    from vit_edge.core.types import InputSpec
    from vit_edge.data.depth_truth import DepthEval

__all__ = ["INT8_SCOPE", "ENCODER_ONLY_SCOPE", "DEFAULT_MAX_ABS_REL", "DenseScope", "quantize_dense", "float_ops",
           "head_convs", "neck_and_head_ops", "mask_accuracy", "truth_metrics"]

INT8_SCOPE = ("the encoder's matmuls (as for any ViT) and the neck's and head's convolutions (per output channel), "
              "each where the AbsRel budget against FP32 holds; in float: the transposed convolutions, the levels' "
              "convolutions before fusion (their output enters a residual unit: ExecuTorch's XNNPACK cannot run "
              "that quantized), DPT's readout projections and the bilinear resizes")
ENCODER_ONLY_SCOPE = ("the encoder's matmuls (as for any ViT); the neck's and head's convolutions and resizes (and "
                      "DPT's readout projections) run in float")
DEFAULT_MAX_ABS_REL = 1.0  # percent: half of core/depth_metrics.ABS_REL_TOLERANCE, bench's mismatch line

Runner = Callable[[np.ndarray], np.ndarray]  # a batch → outputs function (reading/torch_session.torch_runner)
COST_IMAGES = 16  # each op's cost is measured on the first calibration images only: one pass per op


@dataclass(frozen=True)
class DenseScope:
    """What a dense model's INT8 covers, for the manifest: the rule in words, the neck's and head's convolutions
    INT8, and the readout's, neck's and head's ops left float."""

    int8_scope: str
    int8_convs: tuple[str, ...]
    float_ops: tuple[str, ...]


def float_ops(model: DenseModel) -> list[str]:
    """Every convolution of the neck and head, and DPT's readout projections, by module name (what stays float
    where no budget takes any of them to INT8)."""
    parts = [(name, getattr(model, name)) for name in ("readout", "neck", "head") if hasattr(model, name)]
    return [f"{part}.{name}" for part, module in parts for name, sub in module.named_modules()
            if isinstance(sub, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]


def _readout_ops(model: DenseModel) -> list[str]:
    """DPT's readout projections (float in every scope); a Depth Anything has none."""
    return [name for name in float_ops(model) if name.startswith("readout.")]


def neck_and_head_ops(model: DenseModel) -> list[str]:
    """The neck's and head's convolutions, plain and transposed, that run, by module name: the deepest fusion
    block's first residual unit never does (it has no level to add; transformers keeps its weights too)."""
    return list(_traced(model)[0])


def head_convs(model: DenseModel) -> list[str]:
    """The convolutions INT8 may take: every nn.Conv2d of the neck and head that runs, except the transposed ones
    and those whose output enters a residual unit as it is (the level's 3×3 convolution before fusion: the unit's
    pre-activation ReLU and its skip connection both read it, and XNNPACK (ExecuTorch 1.4) cannot run that quantized:
    with the convolution's output on an INT8 grid it fails to initialise the ReLU between two grids, and without it
    the convolution computes wrong numbers, measured; every target keeps the same ops float)."""
    ran, entering = _traced(model)
    return [name for name in ran if type(model.get_submodule(name)) is nn.Conv2d and name not in entering]


def _traced(model: DenseModel) -> tuple[list[str], set[str]]:
    """(the neck's and head's convolutions that run, in module order; those whose output tensor enters a
    ResidualConvUnit as it is), from one forward pass with hooks."""
    names = [f"{part}.{name}" for part, module in (("neck", model.neck), ("head", model.head))
             for name, sub in module.named_modules() if isinstance(sub, (nn.Conv2d, nn.ConvTranspose2d))]
    produced: dict[int, str] = {}
    entering: set[str] = set()
    kept: list[torch.Tensor] = []  # alive for the pass, so no id is reused

    def after(name: str, out: torch.Tensor) -> None:
        produced[id(out)] = name
        kept.append(out)

    def before(args: tuple[torch.Tensor, ...]) -> None:
        if id(args[0]) in produced:
            entering.add(produced[id(args[0])])

    hooks = [model.get_submodule(name).register_forward_hook(lambda _m, _a, out, name=name: after(name, out))
             for name in names]
    hooks += [unit.register_forward_pre_hook(lambda _m, args: before(args)) for unit in model.modules()
              if isinstance(unit, ResidualConvUnit)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, model.cfg.in_chans, *model.cfg.image_hw))
    finally:
        for hook in hooks:
            hook.remove()
    return [name for name in names if name in set(produced.values())], entering


def quantize_dense(model: DenseModel, recipe: Recipe, calib: np.ndarray,
                   log: Callable[[str], None] = lambda _: None,
                   lower: Callable[[QuantizedViT, np.ndarray], QuantizedViT] = lambda quant, _: quant,
                   masks: tuple[MaskedImages, InputSpec] | None = None,
                   ) -> tuple[QuantizedViT, Accuracy, DenseScope]:
    """The INT8 dense model the target ships (its `lower` applied), its measures against `model` (the output kind's:
    AbsRel, δ<1.25, SQNR and cosine for depth, with the budget and what it sent back to float; pixel agreement and
    mIoU with its argmax for segmentation, on `masks`' images where given (preprocessed by the spec, a batch at a
    time: mask_accuracy); no top-1) and its scope record."""
    if recipe.int16:
        raise ConfigError("--int16/--a16w8 are not built yet for a dense model (Depth Anything, DPT); leave them out")
    encoder = quantize_model(model.encoder, recipe, calib)
    if model.cfg.model_output.supports(Measure.ABS_REL):  # a depth map: its head too, within the AbsRel budget
        return _within_abs_rel(model, encoder, recipe, calib, log, lower)
    whole = copy.deepcopy(model).eval()
    whole.encoder = cast(VisionTransformer, encoder.model)  # its matmuls swapped for quantized modules
    prefixed = replace(encoder, model=whole, scales_sha256=fingerprint(whole),
                       int8_matmuls=[f"encoder.{name}" for name in encoder.int8_matmuls],
                       kept_float=[f"encoder.{name}" for name in encoder.kept_float],
                       smoothquant={f"encoder.{k}": v for k, v in encoder.smoothquant.items()},
                       sqnr_db={f"encoder.{k}": v for k, v in encoder.sqnr_db.items()}, smoothed_float=None)
    quant = lower(prefixed, calib)
    metrics = (evaluate(model, quant, calib, None) if masks is None
               else mask_accuracy(torch_runner(model), torch_runner(quant.model), *masks))
    log(f"INT8 matmuls: {len(quant.int8_matmuls)} in the encoder, neck and head float; against the float model "
        + _measures_words(metrics))
    return quant, metrics, DenseScope(ENCODER_ONLY_SCOPE, (), tuple(float_ops(model)))


def _within_abs_rel(model: DenseModel, encoder: QuantizedViT, recipe: Recipe, calib: np.ndarray,
                    log: Callable[[str], None], lower: Callable[[QuantizedViT, np.ndarray], QuantizedViT],
                    ) -> tuple[QuantizedViT, Accuracy, DenseScope]:
    """A depth model with its neck's and head's convolutions INT8 too, the costliest ops back to float while AbsRel
    against `model` is over the budget."""
    budget = DEFAULT_MAX_ABS_REL if recipe.max_abs_rel is None else recipe.max_abs_rel
    whole, floats = copy.deepcopy(model).eval(), copy.deepcopy(model).eval()
    whole.encoder = cast(VisionTransformer, encoder.model)  # its matmuls swapped for quantized modules
    floats.encoder = cast(VisionTransformer, encoder.smoothed_float)  # each op's float twin, under the same name
    convs = head_convs(model)
    for name in convs:
        _put(whole, name, QuantConv2d(cast(nn.Conv2d, model.get_submodule(name)), not recipe.per_tensor_weights))
    calibrate(whole, recipe, calib)  # only the convolutions' quantizers are still observing
    sqnr = {**{f"encoder.{k}": v for k, v in encoder.sqnr_db.items()},
            **op_sqnr(floats, whole, convs, torch.from_numpy(calib[: min(len(calib), 64)]))}
    search = _FloatPrefix(whole, floats, encoder, sqnr, [f"encoder.{n}" for n in encoder.int8_matmuls] + convs,
                          (calib, _depth(model, calib)), lower, log, budget)
    found = search.at(0)
    kept: list[KeptFloatOp] = []
    if not search.meets(0):
        log(f"over budget: measuring the AbsRel each of {len(search.ops)} INT8 ops costs alone …")
        costs = _costs(floats, whole, search.ops, calib[:COST_IMAGES], search.reference[:COST_IMAGES])
        search.ops.sort(key=lambda name: (-costs[name], sqnr[name]))  # the costliest first, then the lowest SQNR
        count, found = search.fewest_float()
        kept = [KeptFloatOp(name, costs[name], sqnr[name], search.measured.get(index))
                for index, name in enumerate(search.ops[:count])]
        log(f"over budget: kept {count} op(s) float, the costliest alone in INT8 ({', '.join(search.ops[:count])})")
    int8 = search.ops[len(kept):]
    metrics = replace(evaluate(model, found, calib, None), max_abs_rel=budget, kept_float_for_budget=tuple(kept))
    scope = DenseScope(INT8_SCOPE, tuple(name for name in convs if name in int8),
                       tuple(_readout_ops(model) + [name for name in neck_and_head_ops(model) if name not in int8]))
    return found, metrics, scope


class _FloatPrefix:
    """The model with the first `count` ops of a ranked list back in float, measured against the float model. The
    budget bisects on `count` (AbsRel falls as the costliest ops go back to float): about log2(ops) lowerings and
    passes over the calibration images, where one per op kept float took 12 minutes a target on a
    Depth-Anything-V2-Small."""

    def __init__(self, whole: DenseModel, floats: DenseModel, encoder: QuantizedViT, sqnr: dict[str, float],
                 ops: list[str], calib_and_reference: tuple[np.ndarray, np.ndarray],
                 lower: Callable[[QuantizedViT, np.ndarray], QuantizedViT], log: Callable[[str], None],
                 budget: float) -> None:
        self.whole, self.encoder, self.sqnr, self.ops = whole, encoder, sqnr, ops
        self.calib, self.reference = calib_and_reference
        self.lower, self.log, self.budget = lower, log, budget
        self.int8_modules = {name: whole.get_submodule(name) for name in ops}
        self.float_modules = {name: copy.deepcopy(floats.get_submodule(name)) for name in ops}
        self.measured: dict[int, float | None] = {}  # ops kept float → the model's AbsRel measured there
        self.current = -1  # the count the modules are set for

    def at(self, count: int) -> QuantizedViT:
        """The lowered model with `self.ops[:count]` float, its AbsRel measured and logged."""
        for index, name in enumerate(self.ops):
            _put(self.whole, name, self.float_modules[name] if index < count else self.int8_modules[name])
        self.current, int8 = count, self.ops[count:]
        quant = self.lower(_as_quantized(self.whole, self.encoder, int8, self.sqnr), self.calib)
        abs_rel = depth_scores(_depth(quant.model, self.calib), self.reference).abs_rel
        self.measured[count] = abs_rel
        convs = [name for name in self.ops if not name.startswith("encoder.")]
        self.log(f"INT8: {len(quant.int8_matmuls)} encoder matmuls, {sum(n in int8 for n in convs)} of {len(convs)} "
                 f"neck/head convolutions; AbsRel against the float model {_percent(abs_rel)} "
                 f"(budget {self.budget:g}%)")
        return quant

    def meets(self, count: int) -> bool:
        abs_rel = self.measured[count]
        return abs_rel is None or 100 * abs_rel <= self.budget

    def fewest_float(self) -> tuple[int, QuantizedViT]:
        """The fewest costliest ops in float that meet the budget (all but one at most), and that model."""
        over, under = 0, len(self.ops) - 1
        best = self.at(under)
        if not self.meets(under):
            raise ConfigError(f"the budget of AbsRel {self.budget:g}% cannot be met: with one op left in INT8 "
                              f"AbsRel is still {_percent(self.measured[under])}; raise --max-abs-rel")
        while under - over > 1:
            middle = (over + under) // 2
            quant = self.at(middle)
            over, under, best = (over, middle, quant) if self.meets(middle) else (middle, under, best)
        if self.current != under:  # a lowering may share the modules the later steps swapped: set them back
            best = self.at(under)
        return under, best


def _as_quantized(whole: DenseModel, encoder: QuantizedViT, int8: list[str], sqnr: dict[str, float]) -> QuantizedViT:
    """The whole model as a QuantizedViT with the encoder's record under `encoder.` names (its INT8 matmuls those
    still in `int8`; convolutions are in the scope record, not here)."""
    matmuls = [f"encoder.{name}" for name in encoder.int8_matmuls]
    return replace(encoder, model=whole, scales_sha256=fingerprint(whole),
                   int8_matmuls=[name for name in matmuls if name in int8],
                   kept_float=[f"encoder.{n}" for n in encoder.kept_float] + [n for n in matmuls if n not in int8],
                   smoothquant={f"encoder.{k}": v for k, v in encoder.smoothquant.items()},
                   sqnr_db={name: sqnr[name] for name in int8}, smoothed_float=None)


def _costs(floats: DenseModel, whole: DenseModel, names: list[str], calib: np.ndarray,
           reference: np.ndarray) -> dict[str, float]:
    """Each op's AbsRel against the float model when it alone is INT8 (its quantized module swapped into the float
    model and back): a depth map's relative error lives in its small values, which an op's SQNR does not see (on the
    tests' model the head's last convolutions cost most, and the lowest-SQNR matmuls almost nothing)."""
    found = {}
    for name in names:
        original = floats.get_submodule(name)
        _put(floats, name, whole.get_submodule(name))
        try:
            found[name] = depth_scores(_depth(floats, calib), reference).abs_rel or 0.0
        finally:
            _put(floats, name, original)
    return found


def _put(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, attr, module)


def _depth(module: nn.Module, batch: np.ndarray) -> np.ndarray:
    return run_batched(torch_runner(module), batch, what="scoring")


def mask_accuracy(reference: Runner, quantized: Runner, masks: MaskedImages, spec: InputSpec,
                  limit_bytes: int | None = None) -> Accuracy:
    """--eval of a segmentation model: the INT8 model (`quantized`, a batch → outputs function) against the float
    one on the masks' images (cosine, pixel agreement and mIoU with its argmax, as `evaluate` takes them) and each
    model's mIoU and pixel accuracy against the masks. Streamed: a batch of uint8 images at a time (runtime/accuracy's
    stream_outputs, within `limit_bytes`), preprocessed and run through both models, and only what the measures need
    kept; the same numbers as compare_logits, segmentation_against_fp32 and mask_scores on the whole logits, which at
    ADE20K's scale (2,000 images × 150 classes × 128² pixels, float32, a model) would not fit in memory."""
    tally: _MaskTally | None = None
    for ref, got in stream_outputs((reference, quantized), masks.images, spec, limit_bytes,
                                   what="scoring the float and the INT8 model on the masks' images"):
        tally = tally or _MaskTally(int(ref.shape[1]))
        tally.add(ref, got, masks.masks[tally.images : tally.images + len(ref)])
    if tally is None:
        raise DataError(f"{masks.source}: no images to score against the masks")
    return tally.accuracy(masks.describe())


class _MaskTally:
    """What mask_accuracy keeps of the batches: each image's cosine (one float), the agreement of the INT8 model's
    class maps with the float model's (a float an image and a confusion) and each model's confusion against the
    masks (classes² counts each): nothing that grows with classes × pixels."""

    def __init__(self, classes: int) -> None:
        self.images = 0
        self.cosines: list[np.ndarray] = []
        self.agreement = AgreementTally(classes)
        self.fp32, self.int8 = Confusion(classes), Confusion(classes)

    def add(self, reference: np.ndarray, quantized: np.ndarray, masks: np.ndarray) -> None:
        """The next images' logits (B, C, h, w) from both models and their masks (B, H, W)."""
        self.cosines.append(sample_cosines(reference, quantized, OUTPUTS["segmentation"]))
        ref, got = predicted_classes(reference), predicted_classes(quantized)
        self.agreement.add(got, ref)
        self.fp32.add_masks(ref, masks)
        self.int8.add_masks(got, masks)
        self.images += len(ref)

    def accuracy(self, eval_data: str) -> Accuracy:
        """The record: a segmentation map is one vector an image, so the mean of the images' cosines is
        compare_logits' mean_cosine."""
        cosines = np.concatenate(self.cosines)
        fp32, int8 = self.fp32.scores(), self.int8.scores()
        return Accuracy(images=self.images, cosine=float(cosines.mean()), min_cosine=float(cosines.min()),
                        segmentation=self.agreement.result(),
                        fp32_miou=fp32.miou, fp32_pixel_accuracy=fp32.pixel_accuracy,
                        fp32_classes_present=fp32.classes_present, fp32_pixels=fp32.pixels,
                        int8_miou=int8.miou, int8_pixel_accuracy=int8.pixel_accuracy,
                        int8_classes_present=int8.classes_present, int8_pixels=int8.pixels, eval_data=eval_data)


def _measures_words(metrics: Accuracy) -> str:
    """The output kind's measures against the float model, in words (depth or segmentation)."""
    seg, depth = metrics.segmentation, metrics.depth
    if seg is not None:
        masks = (f"; mIoU on the masks {_percent(metrics.fp32_miou)} → {_percent(metrics.int8_miou)}"
                 if metrics.int8_miou is not None else "")
        return (f"pixel agreement {_percent(seg.pixel_agreement)}, mIoU with its argmax "
                f"{_percent(seg.miou_vs_fp32)}{masks}")
    if depth is None:
        return f"mean cosine {metrics.cosine}"
    return f"AbsRel {_percent(depth.abs_rel)}, δ<1.25 {_percent(depth.delta1)}, SQNR {depth.sqnr_db:.1f} dB"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def truth_metrics(model: DenseModel, quant: QuantizedViT, truth: DepthEval, spec: InputSpec,
                  log: Callable[[str], None] = lambda _: None) -> DepthTruth:
    """AbsRel and δ<1.25 of the float and the INT8 model against ground-truth depth (core/depth_metrics.truth_scores:
    a relative model's disparity aligned per image by least-squares scale and shift, a metric model's metres as
    they are)."""
    from vit_edge.core.depth_metrics import truth_scores
    from vit_edge.data.preprocess import preprocess_uint8

    batch = preprocess_uint8(truth.images, spec)
    relative = not model.cfg.head.metric
    fp32, int8 = (truth_scores(run_batched(torch_runner(module), batch, what=f"scoring {name}"), truth.depth, relative)
                  for name, module in (("fp32", model), ("int8", quant.model)))
    log(f"against ground truth on {truth.describe()}: AbsRel {_percent(fp32.abs_rel)} (fp32) → "
        f"{_percent(int8.abs_rel)} (int8), δ<1.25 {_percent(fp32.delta1)} → {_percent(int8.delta1)}")
    return DepthTruth(eval_data=truth.describe(), alignment=fp32.alignment, fp32_abs_rel=fp32.abs_rel,
                      fp32_delta1=fp32.delta1, int8_abs_rel=int8.abs_rel, int8_delta1=int8.delta1)
