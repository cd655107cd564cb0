"""Reading transformers' config.json fields, each refused in one line that names the field (shared by the families)."""
from __future__ import annotations

from typing import Any

from vit_edge.core.errors import ModelLoadError, UnsupportedModelError
from vit_edge.reading.families.base import Options

__all__ = ["bad_config", "read_int", "read_size", "collapse", "activation", "positive_number", "common_options", "Size"]

Size = tuple[int, int]  # (height, width)
_ACTIVATIONS = {"gelu": "gelu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh", "quick_gelu": "quick_gelu",
                "silu": "silu", "swish": "silu"}


def bad_config(message: str) -> ModelLoadError:
    return ModelLoadError(f"Hugging Face config: {message}")


def read_int(config: dict[str, Any], key: str, default: int | None = None, minimum: int = 1) -> int:
    """An integer field, refused in one line when missing, not a number or below `minimum`."""
    if key not in config or config[key] is None:
        if default is None:
            raise bad_config(f"'{key}' is missing")
        return default
    value = config[key]
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
        raise bad_config(f"{key} must be an integer, got {value!r}")
    if value < minimum:
        raise bad_config(f"{key} must be at least {minimum}, got {value}")
    return int(value)


def read_size(config: dict[str, Any], key: str, default: int | None = None) -> Size:
    """A size field as (height, width): an int, or a [height, width] pair (ViT takes non-square images)."""
    value = config.get(key, default)
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise bad_config(f"{key} must be an integer or [height, width], got {value!r}")
        return (read_int({key: value[0]}, key), read_int({key: value[1]}, key))
    side = read_int({key: value}, key)
    return (side, side)


def collapse(size: Size) -> int | Size:
    """(h, w) as the config/spec field: an int when square."""
    return size[0] if size[0] == size[1] else size


def activation(config: dict[str, Any], default: str) -> str:
    name = config.get("hidden_act", default)
    if not isinstance(name, str) or name not in _ACTIVATIONS:
        raise UnsupportedModelError(f"hidden_act '{name}' is not supported; vit-edge takes {', '.join(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]


def positive_number(config: dict[str, Any], key: str, default: float, below: float) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < below:
        raise bad_config(f"{key} must be a positive number, got {value!r}")
    return float(value)


def common_options(config: dict[str, Any], ln_eps: float) -> Options:
    """The sizes every family shares, checked with transformers' names so the error names the config field."""
    hidden, heads = read_int(config, "hidden_size"), read_int(config, "num_attention_heads")
    image, (patch, patch_w) = read_size(config, "image_size", 224), read_size(config, "patch_size", 16)
    if patch != patch_w:
        raise UnsupportedModelError(f"patch_size {[patch, patch_w]} is not square; the reference ViT's patches are")
    if hidden % heads:
        raise bad_config(f"hidden_size {hidden} is not divisible by num_attention_heads {heads}")
    if config.get("head_dim") not in (None, hidden // heads):
        raise UnsupportedModelError(f"head_dim {config['head_dim']} differs from hidden_size / num_attention_heads")
    if min(image) < patch:
        raise bad_config(f"image_size {collapse(image)} is smaller than patch_size {patch}")
    if image[0] % patch or image[1] % patch:
        raise UnsupportedModelError(f"image_size {collapse(image)} is not a multiple of patch_size {patch} "
                                    "(transformers drops the remainder, the reference ViT does not)")
    eps = positive_number(config, "layer_norm_eps", ln_eps, 1)
    return dict(img_size=collapse(image), patch_size=patch, in_chans=read_int(config, "num_channels", 3),
                embed_dim=hidden, depth=read_int(config, "num_hidden_layers"), num_heads=heads, ln_eps=eps)
