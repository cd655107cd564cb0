"""Named architectures: the reference ViT variants, the shipped model and the timm ViT/DeiT names we understand.

One small entry per name (as timm's registry does); no entry holds code, so adding a model is adding a line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from vit_edge.data.datasets import FASHION_MNIST_CLASSES
from vit_edge.errors import UnsupportedModelError, did_you_mean
from vit_edge.models.vit import ViTConfig
from vit_edge.types import InputSpec

__all__ = [
    "REFERENCE_SIZES",
    "reference_config",
    "REFERENCE_NAMES",
    "TimmEntry",
    "timm_entry",
    "TIMM_NAMES",
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

IMAGENET_SPEC = InputSpec(img_size=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), crop_pct=0.9)
INCEPTION_SPEC = InputSpec(img_size=224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), crop_pct=0.9)


def reference_config(name: str, img_size: int = 224, num_classes: int = 1000, in_chans: int = 3) -> ViTConfig:
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
    """A timm model name: its architecture and its pretrained preprocessing (mean/std/crop as timm declares)."""

    name: str
    config: ViTConfig
    spec: InputSpec


def _timm_table() -> dict[str, TimmEntry]:
    """ViT (AugReg, Inception mean/std) and DeiT (ImageNet mean/std) classifiers as timm registers them.

    Checked against real timm by tests/fixtures/timm_golden.json (vit_huge_patch14_224 is left out: timm builds it
    without a classification head).
    """
    table: dict[str, TimmEntry] = {}
    vit_names = [
        ("tiny", 16, 224), ("tiny", 16, 384), ("small", 16, 224), ("small", 16, 384), ("small", 32, 224),
        ("small", 32, 384), ("base", 16, 224), ("base", 16, 384), ("base", 32, 224), ("base", 32, 384),
        ("large", 16, 224), ("large", 16, 384), ("large", 32, 384),
    ]
    for size, patch, img in vit_names:
        dim, depth, heads = REFERENCE_SIZES[size]
        cfg = ViTConfig(img_size=img, patch_size=patch, embed_dim=dim, depth=depth, num_heads=heads,
                        mlp_hidden_dim=4 * dim)
        name = f"vit_{size}_patch{patch}_{img}"
        table[name] = TimmEntry(name, cfg, INCEPTION_SPEC.with_(img_size=img, crop_pct=0.9 if img == 224 else 1.0))
    for size, img, distilled in [(s, i, d) for s in ("tiny", "small", "base") for i in (224, 384) for d in (0, 1)]:
        if size != "base" and img == 384:
            continue
        dim, depth, heads = REFERENCE_SIZES[size]
        cfg = ViTConfig(img_size=img, patch_size=16, embed_dim=dim, depth=depth, num_heads=heads,
                        mlp_hidden_dim=4 * dim, distilled=bool(distilled))
        name = f"deit_{size}_{'distilled_' if distilled else ''}patch16_{img}"
        table[name] = TimmEntry(name, cfg, IMAGENET_SPEC.with_(img_size=img, crop_pct=0.9 if img == 224 else 1.0))
    return table


_TIMM = _timm_table()
TIMM_NAMES = tuple(_TIMM)


def timm_entry(name: str) -> TimmEntry:
    """The entry for a timm name; a pretrained tag ('.augreg_in21k_ft_in1k') is accepted and ignored."""
    base = name.split(".", 1)[0]
    if base in _TIMM:
        return _TIMM[base]
    raise UnsupportedModelError(
        f"timm model '{name}' is not a ViT/DeiT that vit-edge supports{did_you_mean(base, TIMM_NAMES)}; "
        f"supported: vit_{{tiny,small,base,large}}_patch{{16,32}}_{{224,384}}, "
        f"deit_{{tiny,small,base}}[_distilled]_patch16_224, deit_base[_distilled]_patch16_384"
    )


FMNIST_TINY_CONFIG = ViTConfig(img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=64, depth=4,
                               num_heads=4, mlp_hidden_dim=256)
FMNIST_SPEC = InputSpec(img_size=28, channels=1, mean=(0.2860,), std=(0.3530,), interpolation="bilinear",
                        crop_pct=1.0, class_names=FASHION_MNIST_CLASSES)

WEIGHTS_DIR = Path(__file__).with_name("weights")
# Models whose trained weights ship inside the package (name → checkpoint file).
SHIPPED_MODELS: dict[str, Path] = {"fmnist-vit-tiny": WEIGHTS_DIR / "fmnist_vit_tiny.pt"}
