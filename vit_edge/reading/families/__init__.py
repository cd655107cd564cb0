"""Every model family as one declaration (see base.Family), found in the modules of this package.

A module here declares a family by naming its `Family` (or a tuple of them) in `__all__`; FAMILIES is every such
family, ordered by `search_order`, then name. Adding a family that needs no new layer is its module and its tests:
no table here, in hf_compat or elsewhere lists it (docs/architecture.md, "Adding a family").
"""
from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import Any, Iterator

from vit_edge.core.errors import ConfigError, did_you_mean
from vit_edge.models.config import ViTConfig
from vit_edge.reading.families.base import Family, HFClass, HFReading, OriginalWeights

__all__ = ["Family", "HFReading", "HFClass", "OriginalWeights", "FAMILIES", "family", "timm_family", "config_family",
           "original_layout", "weights_hint", "refused_timm_family"]


def _declared(module: ModuleType) -> Iterator[Family]:
    """The families a module names in its `__all__`, alone or in a tuple."""
    for name in getattr(module, "__all__", ()):
        value = getattr(module, name)
        yield from (entry for entry in (value if isinstance(value, tuple) else (value,)) if isinstance(entry, Family))


def _discover() -> tuple[Family, ...]:
    """Every family declared in this package's modules, in search order (the first timm rule that matches wins)."""
    found = {id(entry): entry for info in pkgutil.iter_modules(__path__)
             for entry in _declared(importlib.import_module(f"{__name__}.{info.name}"))}
    return tuple(sorted(found.values(), key=lambda entry: (entry.search_order, entry.name)))


FAMILIES: tuple[Family, ...] = _discover()
_BY_NAME = {entry.name: entry for entry in FAMILIES}
VIT = _BY_NAME["vit"]  # what a name no rule claims, or a config no family recognises, is: a plain ViT


def family(name: str) -> Family:
    """The family of this name; ConfigError (with the nearest name) for one that is not declared."""
    if name not in _BY_NAME:
        raise ConfigError(f"unknown family '{name}'{did_you_mean(name, tuple(_BY_NAME))}")
    return _BY_NAME[name]


def timm_family(timm_name: str) -> Family:
    """The family a timm name belongs to (for `vit-edge models`, `info` and the manifest)."""
    return next((entry for entry in FAMILIES if entry.names_timm(timm_name)), VIT)


def config_family(cfg: ViTConfig) -> Family:
    """A family for models whose source does not say one (reference ViTs, checkpoints, modules)."""
    return next((entry for entry in FAMILIES if entry.recognise_config is not None and entry.recognise_config(cfg)),
                VIT)


def original_layout(state: dict[str, Any]) -> OriginalWeights | None:
    """The authors' checkpoint layout these weights are in (DINOv3's, PE's), None for timm's own names."""
    return next((entry.original_weights for entry in FAMILIES
                 if entry.original_weights is not None and entry.original_weights.recognise(state)), None)


def weights_hint(unexpected: list[str]) -> str:
    """'; these weights need X ...' when an unexpected key shows a family's own weights."""
    for entry in FAMILIES:
        if any(fragment in key for fragment in entry.weight_keys for key in unexpected):
            if entry.missing:
                return f"; these weights need {entry.missing}, which vit-edge's ViT cannot express; nearest that " \
                       f"loads: {entry.nearest}"
            return f"; these weights look like the {entry.name} family's ({entry.note}): load them with one of its " \
                   f"names (vit-edge models --family {entry.name})"
    return ""


def refused_timm_family(timm_name: str) -> Family | None:
    """The unsupported family a timm name belongs to, None when it is not one."""
    entry = timm_family(timm_name)
    return entry if entry.missing else None
