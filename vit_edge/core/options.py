"""Export options: a torch-free dataclass so the API and CLI can build it cheaply."""
from __future__ import annotations

from dataclasses import dataclass

from vit_edge.core.errors import ConfigError
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

    def __post_init__(self) -> None:
        """Types checked once, for the API as for the CLI: `img_size="32"` is not 3×2, `parity_samples="4"` no count."""
        for name in ("parity_samples", "opset", "camera", "view", "merge"):
            value = getattr(self, name)
            least = 1 if name == "parity_samples" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigError(f"{name} must be an integer ≥ {least}, not {value!r}")
        for name in ("verify", "force"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, not {getattr(self, name)!r}")
        _check_size(self.img_size)
        if not isinstance(self.precision, Precision) or not isinstance(self.layout, Layout):
            raise ConfigError(f"precision and layout must be a Precision and a Layout, not {self.precision!r} and "
                              f"{self.layout!r}")


def _check_size(size: object) -> None:
    if size is None:
        return
    values = size if isinstance(size, tuple) else (size,)
    if (not isinstance(size, (int, tuple)) or len(values) not in (1, 2)
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values)):
        raise ConfigError(f"img_size must be a positive integer or a (height, width) pair, not {size!r}")


