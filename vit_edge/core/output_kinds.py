"""What a model returns, and which measures mean something on it: the one place that decides whether a top-1, an
agreement or a cosine is computed.

A classifier's logits have a top-1 (with labels), a top-5 and a top-1 agreement with FP32; a pooled embedding, patch
tokens or a feature map have no class axis, so the index of their largest value means nothing: they are measured
by cosine against FP32 (per token for dense outputs). A depth map (B, H, W) has its own measures against FP32
(AbsRel, δ<1.25, SQNR) and is compared by cosine per image. Segmentation logits (B, C, H, W) have a class per pixel:
pixel agreement (argmax) with FP32 and mIoU against masks (ground truth, or FP32's argmax), and are compared by cosine
per image for parity; no top-1 (the image has no one class) and no cosine per token. `--eval`, `--max-drop`, QAT,
bench's accuracy columns and the parity checks ask the output kind (`ModelOutput.require`), which refuses in one line
where a measure does not apply.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from vit_edge.core.errors import ConfigError

__all__ = ["Measure", "ModelOutput", "OUTPUTS", "output_named", "output_of"]


class Measure(str, enum.Enum):
    TOP1 = "top-1 against labels"
    TOP5 = "top-5 against labels"
    AGREEMENT = "top-1 agreement with FP32"
    COSINE = "cosine with FP32"
    TOKEN_COSINE = "cosine with FP32 per token"
    ABS_REL = "AbsRel against FP32"  # mean |d - d_fp32| / d_fp32 over the pixels (depth)
    DELTA1 = "δ<1.25"  # share of pixels with max(d / d_fp32, d_fp32 / d) < 1.25 (depth)
    SQNR = "SQNR against FP32"  # 10·log10(signal power / error power), dB
    PIXEL_AGREEMENT = "pixel agreement with FP32"  # share of pixels whose argmax class is FP32's (segmentation)
    MIOU = "mIoU against masks"  # mean IoU over classes, against ground-truth masks or FP32's argmax (segmentation)
    DEPTH_TRUTH = "AbsRel and δ<1.25 against ground-truth depth"  # core/depth_metrics.truth_scores


@dataclass(frozen=True)
class ModelOutput:
    """One kind of model output: its name in manifests, its words for people, and the measures that apply."""

    name: str  # logits | embedding | tokens | features | depth | segmentation
    words: str
    measures: frozenset[Measure]
    dense: bool = False  # compared per token (tokens, feature maps)
    channels_first: bool = False  # a feature map (B, D, H, W): tokens are its spatial positions
    pixel_map: bool = False  # a map per image ((B, H, W) depth, (B, C, H, W) segmentation): one vector per image
    eval_measure: Measure | None = None  # what --eval measures against the user's ground truth (labels, masks, depth)

    @property
    def judged_by_cosine(self) -> bool:
        """No class axis: parity and agreement are judged by cosine, never by the index of the largest value."""
        return Measure.AGREEMENT not in self.measures

    def supports(self, measure: Measure) -> bool:
        return measure in self.measures

    def require(self, measure: Measure, asked_by: str, remedy: str) -> None:
        """ConfigError, in one line, when `asked_by` (a flag, a verb) needs `measure` and this output has none."""
        if measure not in self.measures:
            has = " and ".join(m.value for m in sorted(self.measures, key=list(Measure).index))
            owners = " and ".join(kind.words for kind in OUTPUTS.values() if measure in kind.measures)
            raise ConfigError(f"{asked_by} needs {measure.value}, which only {owners} have; this model returns "
                              f"{self.words}, which vit-edge measures by {has} without labels: {remedy}")


_LOGITS = ModelOutput("logits", "class logits",
                      frozenset({Measure.TOP1, Measure.TOP5, Measure.AGREEMENT, Measure.COSINE}),
                      eval_measure=Measure.TOP1)
OUTPUTS: dict[str, ModelOutput] = {
    "logits": _LOGITS,
    "embedding": ModelOutput("embedding", "a pooled embedding (no classifier head)", frozenset({Measure.COSINE})),
    "tokens": ModelOutput("tokens", "patch tokens", frozenset({Measure.TOKEN_COSINE}), dense=True),
    "features": ModelOutput("features", "a feature map", frozenset({Measure.TOKEN_COSINE}), dense=True,
                            channels_first=True),
    # a prediction per pixel (Depth Anything's predicted_depth): cosine per image for parity, the depth measures
    "depth": ModelOutput("depth", "a depth map", frozenset({Measure.COSINE, Measure.ABS_REL, Measure.DELTA1,
                                                             Measure.SQNR, Measure.DEPTH_TRUTH}),
                         dense=True, pixel_map=True, eval_measure=Measure.DEPTH_TRUTH),
    # class logits per pixel (DPT's segmentation logits, (B, C, H, W)): argmax agreement with FP32 and mIoU
    "segmentation": ModelOutput("segmentation", "segmentation logits (a class per pixel)",
                                frozenset({Measure.COSINE, Measure.PIXEL_AGREEMENT, Measure.MIOU}), dense=True,
                                channels_first=True, pixel_map=True, eval_measure=Measure.MIOU),
}


def output_named(name: str) -> ModelOutput:
    """The kind a manifest names; ConfigError for a name vit-edge does not know."""
    try:
        return OUTPUTS[name]
    except KeyError:
        raise ConfigError(f"unknown model output '{name}'; known: {', '.join(OUTPUTS)}") from None


def output_of(output: str, num_classes: int) -> ModelOutput:
    """The kind a model returns from its config: `output` (pooled | tokens | features) and its class count."""
    if output == "pooled":
        return OUTPUTS["logits" if num_classes else "embedding"]
    return output_named(output)
