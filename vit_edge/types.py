"""Small value types that flow between stages and serialise to JSON."""
from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = ["Precision", "Layout", "InputSpec"]


class Precision(str, enum.Enum):
    """Numeric precision of an artifact's weights and arithmetic (never a boolean flag)."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


class Layout(str, enum.Enum):
    """Memory layout of the image input: PyTorch's NCHW, or NHWC for mobile camera pipelines."""

    NCHW = "NCHW"
    NHWC = "NHWC"


@dataclass(frozen=True)
class InputSpec:
    """What a caller must feed the model: the facts timm keeps in its pretrained config.

    Field names follow timm's `PretrainedCfg` where they fit (input_size, mean, std, interpolation, crop_pct).
    """

    img_size: int
    channels: int = 3
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    interpolation: str = "bicubic"
    crop_pct: float = 1.0
    layout: Layout = Layout.NCHW
    class_names: tuple[str, ...] = ()

    def shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        """The input tensor's shape for `batch` images in this spec's layout."""
        if self.layout is Layout.NHWC:
            return (batch, self.img_size, self.img_size, self.channels)
        return (batch, self.channels, self.img_size, self.img_size)

    def with_(self, **changes: Any) -> "InputSpec":
        """A copy with some fields changed."""
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["layout"] = self.layout.value
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        data["class_names"] = list(self.class_names)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "InputSpec":
        return cls(
            img_size=int(data["img_size"]),
            channels=int(data.get("channels", 3)),
            mean=tuple(float(v) for v in data.get("mean", cls.mean)),
            std=tuple(float(v) for v in data.get("std", cls.std)),
            interpolation=str(data.get("interpolation", "bicubic")),
            crop_pct=float(data.get("crop_pct", 1.0)),
            layout=Layout(data.get("layout", "NCHW")),
            class_names=tuple(str(c) for c in data.get("class_names", ())),
        )
