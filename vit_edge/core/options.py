"""Export options: a torch-free dataclass so the API and CLI can build it cheaply."""
from __future__ import annotations

from dataclasses import dataclass

from vit_edge.core.types import Layout, Precision

__all__ = ["ExportOptions"]


@dataclass(frozen=True)
class ExportOptions:
    """Everything an export can be asked for; each CLI flag maps to one field."""

    target: str
    precision: Precision = Precision.FP32
    img_size: int | tuple[int, int] | None = None  # (height, width) for a non-square input
    layout: Layout = Layout.NCHW
    verify: bool = True
    parity_samples: int = 16
    opset: int = 20  # 20: GELU as one Gelu op, which ONNX Runtime fuses with its bias (BiasGelu)
    force: bool = False
    camera: int = 0  # re-identification models (TransReID): the camera/view the artifact is specialised to
    view: int = 0
    merge: int = 0  # ToMe: tokens merged after each block's attention (0: none)
    neck_feat: str = "after"  # TransReID's output: the BNNeck feature ("after") or the class token ("before")
