"""What a manifest says of an INT8 build, typed: the quantization summary (which matmuls are INT8, the scales'
fingerprint, what the target's lowering added), its calibration, its accuracy as measured, QAT's run, and Vela's
estimate for an Ethos-U. Quantization writes them, the manifest keeps them (core/records.py's JSON, the format
written before), `vit-edge info` and bench read their fields.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vit_edge.core.depth_metrics import DepthScores
from vit_edge.core.records import extra, flat, optional
from vit_edge.core.segmentation_metrics import PixelAgreement

__all__ = ["CalibInfo", "KeptFloat", "KeptFloatOp", "WidenedOp", "DepthTruth", "Accuracy", "EpochScore", "QatSummary",
           "IntegerSites", "Lowering", "QuantSummary", "NpuEstimate"]


@dataclass(frozen=True)
class CalibInfo:
    """The calibration images: where they came from, how many, and their sha256 (the same data, the same scales)."""

    source: str
    images: int
    fingerprint: str


@dataclass(frozen=True)
class KeptFloat:
    """A matmul the accuracy budget kept in float: the one of lowest SQNR while the drop was over budget."""

    matmul: str
    sqnr_db: float
    drop_before_pt: float


@dataclass(frozen=True)
class KeptFloatOp:
    """An op (an encoder matmul or a neck/head convolution) a depth model's AbsRel budget kept in float: the one
    that cost most alone in INT8 while AbsRel against FP32 was over budget (quantization/dense.py)."""

    op: str
    abs_rel_alone: float  # AbsRel against FP32 with this op alone INT8 (a fraction)
    sqnr_db: float
    # the model's AbsRel against FP32 with the costlier ops float and this one INT8, where the budget's bisection
    # measured that step (always for the first)
    abs_rel_before: float | None = optional()


@dataclass(frozen=True)
class DepthTruth:
    """A depth model against ground-truth depth (--eval DIR/images + DIR/depth): AbsRel and δ<1.25 (fractions) of
    the FP32 and the INT8 model, and how their predictions were aligned to it (core/depth_metrics.truth_scores)."""

    eval_data: str
    alignment: str
    fp32_abs_rel: float
    fp32_delta1: float
    int8_abs_rel: float
    int8_delta1: float


@dataclass(frozen=True)
class WidenedOp:
    """An op the budget gave INT16 activations: the one whose INT8 activations cost most."""

    matmul: str
    int8_cost_pt: float
    drop_before_pt: float


@dataclass(frozen=True)
class Accuracy:
    """The INT8 model against the float one, each number named for what it measured (a manifest's
    `quantization.accuracy`). With labelled --eval images: top-1 before and after and its `drop`; without,
    `disagreement` with the float model on the calibration images (never called a drop); an output without
    classes its cosine, a depth map its own measures. After the artifact is scored in its runtime, `int8_top1` is
    the runtime's and PyTorch's simulation stays beside it."""

    images: int | None = optional()
    agreement_top1: float | None = optional()  # % of images whose top-1 equals the float model's
    logit_cosine: float | None = optional()
    cosine: float | None = optional()  # an output without classes: mean and worst cosine with the float model
    min_cosine: float | None = optional()
    depth: DepthScores | None = flat(None)
    segmentation: PixelAgreement | None = flat(None)  # a segmentation map against FP32's argmax
    # with --eval masks (a segmentation model): each model's mIoU and pixel accuracy against them
    fp32_miou: float | None = optional()
    fp32_pixel_accuracy: float | None = optional()
    fp32_classes_present: int | None = optional()
    fp32_pixels: int | None = optional()
    int8_miou: float | None = optional()
    int8_pixel_accuracy: float | None = optional()
    int8_classes_present: int | None = optional()
    int8_pixels: int | None = optional()
    labelled_classes: int | None = optional()
    fp32_top_class_share: float | None = optional()
    fp32_top1: float | None = optional()
    int8_top1: float | None = optional()
    drop: float | None = optional()  # top-1 points lost: what --max-drop holds
    disagreement: float | None = optional()  # without labels: 100 - agreement_top1
    merge_drop: float | None = optional()  # of the drop, what token merging costs in float
    merge_disagreement: float | None = optional()
    # --max-drop: matmuls by SQNR; a depth model's --max-abs-rel: ops by their AbsRel cost alone
    kept_float_for_budget: tuple[KeptFloat | KeptFloatOp, ...] | None = optional()
    max_abs_rel: float | None = optional()  # a depth model: the AbsRel budget against FP32 it was held to, in %
    ground_truth: DepthTruth | None = optional()  # a depth model with --eval depth maps
    int16_for_budget: tuple[WidenedOp, ...] | None = optional()
    eval_data: str | None = optional()
    measured_on: str | None = optional()
    int8_top1_simulated: float | None = optional()
    int8_top1_measured_in: str | None = optional()  # the runtime that scored the artifact
    drop_simulated: float | None = optional()
    budget_met_in_runtime: bool | None = optional()
    unknown: dict[str, Any] = extra()


@dataclass(frozen=True)
class EpochScore:
    """One QAT epoch: its held-out top-1 and, in the history, its training loss."""

    epoch: int
    eval_top1: float
    train_loss: float | None = optional()


@dataclass(frozen=True)
class QatSummary:
    """The QAT run behind an artifact: each epoch, the best one (whose weights ship), its settings and data."""

    history: tuple[EpochScore, ...]
    best: EpochScore | None
    config: dict[str, Any]  # QatConfig's fields
    train_data: str
    train_fingerprint: str
    eval_data: str
    world_size: int
    checkpoints: str | None = optional()


@dataclass(frozen=True)
class IntegerSites:
    """What the NPU's integer graph added: quantizers by the op they follow, constants quantized, requantizers."""

    activation_quantizers: dict[str, int]
    quantized_constants: int
    requantize: int | None = optional()


@dataclass(frozen=True)
class Lowering:
    """What a target's INT8 lowering added to the quantized modules (quantization/lowering.py)."""

    tflite_output_quantized: tuple[str, ...] | None = optional()
    xnnpack_output_quantized: tuple[str, ...] | None = optional()
    float_batch_matmuls: tuple[str, ...] | None = optional()
    integer_softmax_gelu: bool | None = optional()
    softmax_output_grid: tuple[str, ...] | None = optional()
    integer_graph: IntegerSites | None = optional()


@dataclass(frozen=True)
class QuantSummary:
    """A manifest's `quantization`: the recipe, which matmuls are INT8 (and which of them take INT16 activations),
    SmoothQuant's factors, each matmul's SQNR, the scales' fingerprint, the lowering, the calibration and the
    accuracy; a dense model's INT8 scope, or the QAT run."""

    recipe: dict[str, Any]  # the Recipe's own JSON (vit_edge.quantization.recipe.Recipe.from_json reads it)
    int8_matmuls: tuple[str, ...]
    kept_float: tuple[str, ...]
    int16_activations: tuple[str, ...]
    smoothquant_alpha: dict[str, float]
    sqnr_db: dict[str, float]
    scales_sha256: str
    lowering: Lowering | None = optional()
    calibration: CalibInfo | None = optional()
    accuracy: Accuracy = Accuracy()
    int8_scope: str | None = optional()  # a dense model: what is INT8 (the rule, in words)
    int8_convs: tuple[str, ...] | None = optional()  # a depth model: the neck's and head's convolutions INT8
    float_ops: tuple[str, ...] | None = optional()  # a dense model: the readout's, neck's and head's ops left float
    qat: QatSummary | None = optional()
    method: str = "ptq"  # ptq | qat
    unknown: dict[str, Any] = extra()


@dataclass(frozen=True)
class NpuEstimate:
    """Vela's placement and estimate for an Ethos-U (never a measurement): where the operators run, time, memory
    traffic, and the configuration and command that reproduce it."""

    system_config: str
    memory_mode: str
    clock_mhz: float
    npu_ops: int
    cpu_ops: int
    npu_share: float
    cpu_op_types: dict[str, int]  # the operators left to the CPU, by type
    inference_ms: float
    inferences_per_second: float
    sram_used_kib: float
    dram_used_kib: float
    sram_traffic_mb: float
    dram_traffic_mb: float
    macs: int
    accelerator: str
    compiled_file: str
    tool: str
    command: str
    ops_by_activation: dict[str, dict[str, int]] | None = optional()  # int8/int16/float32 → op → count
