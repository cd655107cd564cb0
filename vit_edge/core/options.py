"""Export options: a torch-free dataclass so the API and CLI can build it cheaply."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields
from typing import Any

from vit_edge.core.errors import ConfigError, did_you_mean
from vit_edge.core.targets import (
    DEFAULT_TARGET,
    TARGET_OPTIONS,
    TARGETS,
    Build,
    Target,
    flag,
    takers,
    target,
    target_name,
)
from vit_edge.core.types import Layout, Precision

OUTPUTS = ("pooled", "tokens", "features")  # what a model returns (here: this module stays torch-free)
NECK_FEATS = ("after", "before")

# parity runs every input through both models at once: 10,000 (a whole test set) at most, never gigabytes by a typo
MAX_PARITY_SAMPLES = 10_000

__all__ = ["ExportOptions", "ReIDOptions", "MAX_PARITY_SAMPLES", "check_count", "check_counts", "check_number",
           "check_size", "check_path", "check_flag", "check_callable", "check_instance", "check_model", "check_layers",
           "shown"]


@dataclass(frozen=True)
class ReIDOptions:
    """What a re-identification checkpoint (TransReID) is specialised to at export; no other model reads them."""

    camera: int = 0  # the camera/view whose side-information embedding is built in
    view: int = 0
    neck_feat: str = "after"  # the output: the BNNeck feature ("after") or the class token ("before")
    stride: int | None = None  # MODEL.STRIDE_SIZE, where its weights alone cannot tell
    num_heads: int | None = None  # its head count, where its width alone cannot tell

    def __post_init__(self) -> None:
        for name in ("camera", "view"):
            check_count(name, getattr(self, name), 0)
        for name in ("stride", "num_heads"):
            check_count(name, getattr(self, name), optional=True)
        if self.neck_feat not in NECK_FEATS:
            raise ConfigError(f"neck_feat must be 'after' or 'before', not {shown(self.neck_feat)}")


@dataclass(frozen=True)
class ExportOptions:
    """Everything an export can be asked for; each CLI flag maps to one field (`reid`'s flags to its fields).

    The fields in core/targets.TARGET_OPTIONS belong to the targets that declare them (`opset` and `ort_fusions`
    to ONNX, `dynamic_size` to ONNX and OpenVINO, `npu`, the Ethos-U sub-target's configuration, to TFLite):
    another target refuses them."""

    target: str
    precision: Precision = Precision.FP32
    img_size: int | tuple[int, int] | None = None  # (height, width) for a non-square input
    layout: Layout = Layout.NCHW
    verify: bool = True
    parity_samples: int = 16
    force: bool = False
    merge: int = 0  # ToMe: tokens merged after each block's attention (0: none)
    max_depth: float | None = None  # a Depth Anything V2 checkpoint's metric range (sigmoid × it), not in its weights
    output: str = "pooled"  # "pooled" (logits or embedding), "tokens" (B, N, D patch tokens), "features" (B, D, H, W)
    layers: tuple[int, ...] = ()  # with a dense output: these blocks' tokens (negative from the end), stacked
    reid: ReIDOptions = field(default_factory=ReIDOptions)
    opset: int = 20  # 20: GELU as one Gelu op, which ONNX Runtime fuses with its bias (BiasGelu)
    ort_fusions: bool = False  # save ONNX Runtime's own graph (contrib ops; runs in ONNX Runtime only)
    npu: str | None = None  # an Ethos-U configuration: Vela compiles the INT8 TFLite for it and estimates it
    # any height and width that are multiples of the patch (img_size: the default): ONNX's and OpenVINO's
    dynamic_size: bool = False

    def __post_init__(self) -> None:
        """Types checked once, for the API as for the CLI: `img_size="32"` is not 3×2, `parity_samples="4"` no count.
        A precision or layout may be given by its name ("int8", "nhwc"), as the CLI and keyword callers do."""
        object.__setattr__(self, "precision", _member(Precision, self.precision, "precision"))
        object.__setattr__(self, "layout", _member(Layout, self.layout, "layout"))
        if not isinstance(self.target, str):
            raise ConfigError(f"target must be a target name such as '{DEFAULT_TARGET}', not {shown(self.target)}")
        object.__setattr__(self, "target", target_name(self.target))
        check_count("parity_samples", self.parity_samples, most=MAX_PARITY_SAMPLES)
        for name in ("opset", "merge"):
            check_count(name, getattr(self, name), 0)
        for name in ("verify", "force", "ort_fusions", "dynamic_size"):
            check_flag(name, getattr(self, name))
        check_size("img_size", self.img_size, optional=True)
        check_instance("reid", self.reid, ReIDOptions, "a vit_edge.ReIDOptions", optional=False)
        check_instance("npu", self.npu, str, "an Ethos-U configuration name")
        if self.max_depth is not None and (isinstance(self.max_depth, bool)
                                           or not isinstance(self.max_depth, (int, float))
                                           or not 0 < self.max_depth < float("inf")):
            raise ConfigError(f"max_depth must be a positive number of metres or None, not {shown(self.max_depth)}")
        if self.output not in OUTPUTS:
            raise ConfigError(f"output must be one of {', '.join(OUTPUTS)}, not {self.output!r}")
        object.__setattr__(self, "layers", check_layers(self.layers))
        if self.layers and self.output == "pooled":
            raise ConfigError("--layers reads blocks' tokens: use it with --output tokens or --output features")
        if self.target in TARGETS:  # an unknown target is the exporter registry's to refuse, with suggestions
            _check_target_options(self, TARGETS[self.target])

    @property
    def build(self) -> Build:
        """What these options build: the target, or the sub-target one of its options chose."""
        declared = target(self.target)
        for sub in declared.sub_targets:
            configuration = getattr(self, sub.option)
            if configuration is not None:
                return Build(declared, sub, configuration)
        return Build(declared)


def _member(kind: type[Precision] | type[Layout], value: object, what: str) -> Any:
    """`value` as a member of `kind`, read from its name in any case; one line naming the known ones otherwise."""
    if isinstance(value, kind):
        return value
    try:
        return kind(str(value).upper() if kind is Layout else str(value).lower())
    except ValueError:
        known = ", ".join(member.value for member in kind)
        raise ConfigError(f"unknown {what} '{value}'; known: {known}") from None


_DEFAULTS = {option.name: option.default for option in fields(ExportOptions)}


def _check_target_options(options: ExportOptions, declared: Target) -> None:
    """The one check of target-specific options, from the declarations: an option the target does not take stays
    at its default ('--ort-fusions applies to --target onnx only'), and a sub-target's configuration is one the
    declaration knows."""
    for option in TARGET_OPTIONS:
        if option not in declared.accepts and getattr(options, option) != _DEFAULTS[option]:
            raise ConfigError(f"--{flag(option)} applies to {takers(option)} only")
    for sub in declared.sub_targets:
        chosen = getattr(options, sub.option)
        if chosen is not None and chosen not in sub.configurations:
            raise ConfigError(f"unknown --{flag(sub.option)} configuration '{chosen}'"
                              f"{did_you_mean(chosen, sub.configurations)}; known: {', '.join(sub.configurations)}")


def shown(value: object) -> str:
    """A wrong value as a message shows it: a short literal as itself, anything else by its type."""
    text = repr(value)
    if isinstance(value, (str, int, float, type(None))) and len(text) <= 40:
        return text
    return f"a {type(value).__name__}"


def check_size(name: str, size: object, optional: bool = False) -> None:
    """An image size: a positive int or a (height, width) pair (`"32"` is not 3×2); None too when `optional`."""
    if optional and size is None:
        return
    values = size if isinstance(size, tuple) else (size,)
    if (not isinstance(size, (int, tuple)) or len(values) not in (1, 2)
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values)):
        raise ConfigError(f"{name} must be a positive integer or a (height, width) pair, not {shown(size)}")


def check_count(name: str, value: object, least: int = 1, optional: bool = False, most: int | None = None) -> None:
    """An API field that must be an int ≥ `least` (and ≤ `most`; None too when `optional`): `threads=0` or
    `runs="5"` stop here as one ConfigError, not deep in a runtime."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"{name} must be an integer ≥ {least}{' or None' if optional else ''}, not {value!r}")
    if most is not None and value > most:
        raise ConfigError(f"{name} must be at most {most:,}, not {value:,}")


def check_path(name: str, value: object, optional: bool = False) -> None:
    """A file or folder argument: a non-empty str or os.PathLike (None too when `optional`); `out=5` stops here,
    not in pathlib."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise ConfigError(f"{name} must be a path (a str or pathlib.Path){' or None' if optional else ''}, "
                          f"not {shown(value)}")


def check_model(value: object) -> None:
    """What names a model: a name or path, or a torch module in memory (whoever built one has imported torch)."""
    if isinstance(value, (str, os.PathLike)) and os.fspath(value):
        return
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.nn.Module):
        return
    raise ConfigError(f"model must be a model name, a path or a torch module (timm, transformers or vit-edge), "
                      f"not {shown(value)}")


def check_layers(layers: object) -> tuple[int, ...]:
    """Block indices (negative: from the end) as a tuple; the API takes a list as readily as a tuple."""
    if isinstance(layers, list):
        layers = tuple(layers)
    if not isinstance(layers, tuple) or any(isinstance(v, bool) or not isinstance(v, int) for v in layers):
        raise ConfigError(f"layers must be a tuple of block indices, not {shown(layers)}")
    return layers


def check_flag(name: str, value: object) -> None:
    """A yes/no argument: True or False only (a string 'no' is truthy)."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False, not {shown(value)}")


def check_callable(name: str, value: object) -> None:
    """A callback (log, progress): refused at the call, not when the first line is printed after the work."""
    if not callable(value):
        raise ConfigError(f"{name} must be a function, not {shown(value)}")


def check_instance(name: str, value: object, kind: type | tuple[type, ...], what: str, optional: bool = True) -> None:
    """An argument that must be a `kind` (None too when `optional`); `what` names it as the user writes it."""
    if (optional and value is None) or isinstance(value, kind):
        return
    raise ConfigError(f"{name} must be {what}{' or None' if optional else ''}, not {shown(value)}")


def check_counts(name: str, values: object, least: int = 1, allow_empty: bool = False) -> None:
    """A tuple (or list) of counts, each ≥ `least`; empty only when `allow_empty`."""
    if not isinstance(values, (tuple, list)) or (not values and not allow_empty):
        raise ConfigError(f"{name} must be a tuple of integers ≥ {least}, not {values!r}")
    for value in values:
        check_count(f"each of {name}", value, least)


def check_number(name: str, value: object, least: float = 0.0) -> None:
    """A finite real ≥ `least` (an int is fine; a bool or a string is not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= least or value == float("inf"):
        raise ConfigError(f"{name} must be a number ≥ {least}, not {value!r}")
