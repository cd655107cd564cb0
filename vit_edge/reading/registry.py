"""Named architectures: the reference ViT variants, the shipped model and every timm ViT name we understand.

One small entry per name (as timm's registry does); no entry holds code. The timm table (`timm_models.json`) is
read from real timm modules by `tests/fixtures/make_timm_golden.py`; names whose modules need a feature the
reference ViT lacks keep that feature's name, so the refusal can say it.
"""
from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from vit_edge.core.errors import UnsupportedModelError, did_you_mean
from vit_edge.core.types import InputSpec
from vit_edge.data.datasets import FASHION_MNIST_CLASSES
from vit_edge.models.vit import ViTConfig
from vit_edge.reading.families import refused_timm_family, timm_family

__all__ = [
    "REFERENCE_SIZES",
    "reference_config",
    "REFERENCE_NAMES",
    "TimmEntry",
    "timm_entry",
    "TIMM_NAMES",
    "TIMM_FAMILIES",
    "TIMM_REFUSED",
    "TIMM_VERSION",
    "family_of",
    "SHIPPED_MODELS",
    "FMNIST_TINY_CONFIG",
    "FMNIST_SPEC",
]

# (embed_dim, depth, num_heads) from the ViT and DeiT papers; MLP ratio 4 throughout.
REFERENCE_SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (192, 12, 3),
    "small": (384, 12, 6),
    "base": (768, 12, 12),
    "large": (1024, 24, 16),
    "huge": (1280, 32, 16),
}
REFERENCE_PATCHES = (16, 32)
REFERENCE_NAMES = tuple(f"vit_{size}_patch{p}" for size in REFERENCE_SIZES for p in REFERENCE_PATCHES)



def reference_config(name: str, img_size: int | tuple[int, int] = 224, num_classes: int = 1000,
                     in_chans: int = 3) -> ViTConfig:
    """Config of a reference variant such as 'vit_small_patch16' for any image size and class count."""
    match = re.fullmatch(r"vit_(\w+?)_patch(\d+)", name)
    if not match or match.group(1) not in REFERENCE_SIZES or int(match.group(2)) not in REFERENCE_PATCHES:
        raise UnsupportedModelError(
            f"unknown reference ViT '{name}'{did_you_mean(name, REFERENCE_NAMES)}; known: {', '.join(REFERENCE_NAMES)}"
        )
    dim, depth, heads = REFERENCE_SIZES[match.group(1)]
    return ViTConfig(img_size=img_size, patch_size=int(match.group(2)), in_chans=in_chans, num_classes=num_classes,
                     embed_dim=dim, depth=depth, num_heads=heads, mlp_hidden_dim=4 * dim)


@dataclass(frozen=True)
class TimmEntry:
    """A timm model name: its architecture, its pretrained preprocessing (as timm declares) and its family."""

    name: str
    config: ViTConfig
    spec: InputSpec
    family: str


TIMM_TABLE_FILE = Path(__file__).with_name("timm_models.json")


def family_of(name: str) -> str:
    """The family a timm name belongs to (for `vit-edge models`, `info` and the manifest): reading/families decides."""
    return timm_family(name).name


def _read_timm_table() -> tuple[str, dict[str, dict]]:
    data = json.loads(TIMM_TABLE_FILE.read_text())
    return data["timm_version"], data["models"]


TIMM_VERSION, _TIMM = _read_timm_table()
TIMM_NAMES = tuple(name for name, entry in _TIMM.items() if "config" in entry)
TIMM_FAMILIES = tuple(sorted({entry["family"] for entry in _TIMM.values() if "config" in entry}))
# the names read from timm that do not load: name → (family, the feature the reference lacks)
TIMM_REFUSED = {name: (str(entry["family"]), str(entry["unsupported"])) for name, entry in sorted(_TIMM.items())
                if "unsupported" in entry}


def _timm_refusal(base: str) -> UnsupportedModelError:
    entry, refused = _TIMM.get(base), refused_timm_family(base)
    if entry is not None:
        close = difflib.get_close_matches(base, TIMM_NAMES, n=1, cutoff=0.0)
        missing, nearest = entry["unsupported"], (close[0] if close else "vit_base_patch16_224")
    elif refused is not None:
        missing, nearest = refused.missing, refused.nearest
    else:
        return UnsupportedModelError(
            f"timm model '{base}' is not a ViT that vit-edge knows{did_you_mean(base, TIMM_NAMES)}; "
            "`vit-edge models` lists the families and names that load")
    return UnsupportedModelError(
        f"timm model '{base}' needs {missing}, which vit-edge's ViT cannot express; nearest that loads: {nearest} "
        "(`vit-edge models` lists them)")


def timm_entry(name: str) -> TimmEntry:
    """The entry for a timm name; a pretrained tag ('.augreg_in21k_ft_in1k') is accepted and ignored."""
    base = name.split(".", 1)[0]
    entry = _TIMM.get(base)
    if entry is None or "config" not in entry:
        raise _timm_refusal(base)
    spec = entry["spec"]
    size = spec["img_size"]
    input_spec = InputSpec(img_size=size if isinstance(size, int) else (size[0], size[1]), mean=tuple(spec["mean"]),
                           std=tuple(spec["std"]), interpolation=spec["interpolation"], crop_pct=spec["crop_pct"])
    return TimmEntry(base, ViTConfig.from_json(entry["config"]), input_spec, entry["family"])


FMNIST_TINY_CONFIG = ViTConfig(img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=64, depth=4,
                               num_heads=4, mlp_hidden_dim=256)
FMNIST_SPEC = InputSpec(img_size=28, channels=1, mean=(0.2860,), std=(0.3530,), interpolation="bilinear",
                        crop_pct=1.0, class_names=FASHION_MNIST_CLASSES)

WEIGHTS_DIR = Path(__file__).with_name("weights")
# Models whose trained weights ship inside the package (name → checkpoint file).
SHIPPED_MODELS: dict[str, Path] = {"fmnist-vit-tiny": WEIGHTS_DIR / "fmnist_vit_tiny.pt"}
