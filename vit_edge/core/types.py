"""Small value types that flow between stages and serialise to JSON."""
from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from vit_edge.core.records import extra, flat, optional

__all__ = ["Precision", "Layout", "InputSpec", "CROP_MODES", "CROP_OFFSETS", "SessionInfo", "Delegated"]

CROP_MODES = ("center", "squash")
CROP_OFFSETS = ("round", "floor")


class Precision(str, enum.Enum):
    """Numeric precision of an artifact's weights and arithmetic (never a boolean flag)."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


class Layout(str, enum.Enum):
    """Memory layout of the image input: PyTorch's NCHW, or NHWC for mobile camera pipelines."""

    NCHW = "NCHW"
    NHWC = "NHWC"


# The any-size and keep-aspect fields, left out of the JSON at these values: manifests written before them (and
# every fixed-size one since) keep the same bytes and hash when read and written back.
_WRITTEN_WHEN_SET: dict[str, object] = {"size_multiple": 0, "keep_aspect_ratio": False, "ensure_multiple_of": 1}


@dataclass(frozen=True)
class InputSpec:
    """What a caller must feed the model: the facts timm keeps in its pretrained config.

    Field names follow timm's `PretrainedCfg` where they fit (input_size, mean, std, interpolation, crop_pct).
    """

    img_size: int | tuple[int, int]  # an int when square, else (height, width)
    channels: int = 3
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    interpolation: str = "bicubic"
    crop_pct: float = 1.0
    layout: Layout = Layout.NCHW
    class_names: tuple[str, ...] = ()
    # how a photo becomes the input: "center" (timm's default: shorter side to size / crop_pct, aspect kept, then a
    # center crop) or "squash" (both sides to size / crop_pct, then the crop: Hugging Face's {height, width} resize)
    crop_mode: str = "center"
    # where an odd crop margin goes: "round" (torchvision's CenterCrop, so timm) or "floor" (transformers)
    crop_offset: str = "round"
    # 0: the model takes img_size only. N: it takes any height and width that are multiples of N (the patch), at
    # least 2·N each, and img_size is the size a batch is made at by default (ONNX, OpenVINO: --dynamic-size)
    size_multiple: int = 0
    # the processor's resize keeps the aspect ratio, scaled as little as possible towards img_size, each side
    # rounded to a multiple of `ensure_multiple_of` (transformers' DPT/Depth Anything processor). Each image then
    # has its own size, so only a model of any size (size_multiple) does it; a fixed-size one resizes by crop_mode
    keep_aspect_ratio: bool = False
    ensure_multiple_of: int = 1

    def __post_init__(self) -> None:
        if self.crop_mode not in CROP_MODES:
            raise ValueError(f"crop_mode must be one of {', '.join(CROP_MODES)}, not {self.crop_mode!r}")
        if self.crop_offset not in CROP_OFFSETS:
            raise ValueError(f"crop_offset must be one of {', '.join(CROP_OFFSETS)}, not {self.crop_offset!r}")
        if self.height < 1 or self.width < 1 or self.channels < 1:
            raise ValueError(f"img_size {self.img_size} and channels {self.channels} must be positive")
        if self.size_multiple < 0 or self.ensure_multiple_of < 1:
            raise ValueError(f"size_multiple {self.size_multiple} must be 0 or more and ensure_multiple_of "
                             f"{self.ensure_multiple_of} 1 or more")
        if self.size_multiple and (self.height % self.size_multiple or self.width % self.size_multiple
                                   or min(self.height, self.width) < 2 * self.size_multiple):
            raise ValueError(f"img_size {self.img_size} is not a size the model takes: multiples of "
                             f"{self.size_multiple}, at least {2 * self.size_multiple}")
        if not all(math.isfinite(v) for v in (*self.mean, *self.std)) or 0.0 in self.std:
            raise ValueError(f"mean {list(self.mean)} and std {list(self.std)} must be finite, and std nonzero: "
                             "every input is divided by std")

    @property
    def height(self) -> int:
        return self.img_size if isinstance(self.img_size, int) else self.img_size[0]

    @property
    def width(self) -> int:
        return self.img_size if isinstance(self.img_size, int) else self.img_size[1]

    def shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        """The input tensor's shape for `batch` images in this spec's layout."""
        if self.layout is Layout.NHWC:
            return (batch, self.height, self.width, self.channels)
        return (batch, self.channels, self.height, self.width)

    def with_(self, **changes: Any) -> "InputSpec":
        """A copy with some fields changed."""
        return replace(self, **changes)

    @property
    def keeps_aspect(self) -> bool:
        """Whether images are resized each to its own size (the processor's keep-aspect-ratio resize, on a model
        that takes any size); otherwise every image comes out at img_size."""
        return bool(self.size_multiple) and self.keep_aspect_ratio

    def fixed(self) -> "InputSpec":
        """This spec for a batch of one size (a data set in one array, a benchmark): every image at img_size, by
        crop_mode, even where the model would take each at its own."""
        return self.with_(size_multiple=0) if self.size_multiple else self

    def size_problem(self, height: int, width: int) -> str | None:
        """What is wrong with an input of height × width for this model, or None when it takes it."""
        step = self.size_multiple
        if not step:
            return None if (height, width) == (self.height, self.width) else \
                f"the model takes {self.height}x{self.width} only"
        if height % step or width % step or min(height, width) < 2 * step:
            return (f"the model takes heights and widths that are multiples of {step} (the patch), {2 * step} at "
                    "least")
        return None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["layout"] = self.layout.value
        if not isinstance(self.img_size, int):
            data["img_size"] = list(self.img_size)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        data["class_names"] = list(self.class_names)
        for name, default in _WRITTEN_WHEN_SET.items():  # a fixed-size spec reads back as it was written before
            if data[name] == default:
                del data[name]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "InputSpec":
        return cls(
            img_size=_size(data["img_size"]),
            channels=int(data.get("channels", 3)),
            mean=tuple(float(v) for v in data.get("mean", cls.mean)),
            std=tuple(float(v) for v in data.get("std", cls.std)),
            interpolation=str(data.get("interpolation", "bicubic")),
            crop_pct=float(data.get("crop_pct", 1.0)),
            layout=Layout(data.get("layout", "NCHW")),
            class_names=tuple(str(c) for c in data.get("class_names", ())),
            crop_mode=str(data.get("crop_mode", "center")),
            crop_offset=str(data.get("crop_offset", "round")),
            size_multiple=int(data.get("size_multiple", 0)),
            keep_aspect_ratio=bool(data.get("keep_aspect_ratio", False)),
            ensure_multiple_of=int(data.get("ensure_multiple_of", 1)),
        )


def _size(value: Any) -> int | tuple[int, int]:
    """A manifest's img_size: an int, or [height, width] (an equal pair collapses to the int)."""
    if isinstance(value, (list, tuple)):
        height, width = (int(v) for v in value)
        return height if height == width else (height, width)
    return int(value)


@dataclass(frozen=True)
class Delegated:
    """Where a delegate (XNNPACK) took the graph: the threads it ran on and the ops it left to the runtime's own
    kernels (empty: it took them all)."""

    delegate: str
    threads: int | None
    fully_delegated: bool
    undelegated_ops: tuple[str, ...]


@dataclass(frozen=True)
class SessionInfo:
    """What really ran (a session's `info()`): the runtime and its version, the accelerator, the precision its
    kernels ran in, and the delegation where a delegate took the graph. Kept in a manifest's parity and in every
    bench row, as the runtime said it."""

    runtime: str
    version: str
    accelerator: str
    providers: tuple[str, ...] | None = optional()  # ONNX Runtime's execution providers, in order
    delegation: Delegated | None = flat(None)
    precision: str | None = optional()  # fp32, bf16, int8, int8+fp32 (OpenVINO), int8+int16 (LiteRT)
    delegates: int | None = optional()  # ExecuTorch: how many XNNPACK partitions the program has
    unknown: dict[str, Any] = extra()  # what another vit-edge's runtime said beyond these
