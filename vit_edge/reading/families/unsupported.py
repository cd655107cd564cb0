"""timm families outside what the reference ViT can express: the feature each lacks, and the nearest that loads.

Declared so a refusal names the feature, for a model name and for weights whose keys show it.
"""
from __future__ import annotations

from vit_edge.reading.families.base import Family

__all__ = ["UNSUPPORTED", "VITAMIN"]

_LAST = 4  # after every family that loads, before patch14's catch-all rule (a refused name is refused, not patch14's)


def _refused(name: str, missing: str, nearest: str, weight_keys: tuple[str, ...] = ()) -> Family:
    return Family(name, f"not supported: needs {missing}", rf"^{name}_", weight_keys=weight_keys, missing=missing,
                  nearest=nearest, search_order=_LAST)


UNSUPPORTED = (
    _refused("beit", "relative position bias (BEiT)", "deit3_* (LayerScale, no relative bias)",
             ("relative_position_bias",)),
    _refused("beitv2", "relative position bias (BEiT v2)", "deit3_* (LayerScale, no relative bias)"),
    _refused("swin", "shifted-window attention (Swin)", "vit_* or deit3_*", ("attn_mask", "relative_position_index")),
    _refused("swinv2", "shifted-window attention (Swin v2)", "vit_* or deit3_*"),
    _refused("cait", "class-attention layers (CaiT)", "deit3_* (LayerScale)"),
    _refused("xcit", "cross-covariance attention (XCiT)", "deit3_*"),
    _refused("levit", "convolutional attention stages (LeViT)", "vit_*_r26_s32_* (hybrid stem)"),
    _refused("pit", "pooling stages (PiT)", "vit_*"),
    _refused("crossvit", "two-branch cross attention (CrossViT)", "vit_*"),
    _refused("twins", "locally-grouped attention (Twins)", "vit_*"),
    _refused("mvitv2", "pooling attention (MViT v2)", "vit_*"),
)

# In the timm table, every name refused one by one (each entry says what its stem needs)
VITAMIN = Family("vitamin", "ViTamin: MbConv stages before the ViT", r"^vitamin_", search_order=_LAST)
