"""DINOv2, with and without register tokens (timm and transformers).

transformers' classes: Dinov2Model and Dinov2WithRegistersModel return `pooler_output`, the layernormed class token;
their ForImageClassification classes `logits` of the classifier on [class token, mean of patch tokens].
DINOv2's preprocessor crops (224) smaller than config.image_size (518) and transformers resamples the position
embeddings at every call; here the model is built once at the crop size (`VisionTransformer.with_img_size`),
resampled as transformers does (plain DINOv2 without antialiasing, the registers model with it).
"""
from __future__ import annotations

from typing import Any

from vit_edge.reading.families.base import CLASSIFIER, IMAGENET, Family, HFClass, HFReading, Options
from vit_edge.reading.families.hf_config import activation, positive_number, read_int

__all__ = ["DINOV2", "DINOV2_REG", "dinov2_options"]


def dinov2_options(config: dict[str, Any]) -> Options:
    """DINOv2: LayerScale, hidden size from mlp_ratio, SwiGLU as the packed GLU; registers skip the position embedding.

    transformers adds the class token's position embedding before inserting the registers, which have none:
    that is `no_embed_class` once the class position is folded into the class token (see hf_compat's
    `_fold_class_position`).
    """
    ratio = positive_number(config, "mlp_ratio", 4, 1e4)
    hidden = int(read_int(config, "hidden_size") * ratio)
    registers = read_int(config, "num_register_tokens", 0, minimum=0)
    options: Options = dict(init_values=1.0,  # LayerScale on; its values come with the weights
                            qkv_bias=bool(config.get("qkv_bias", True)), reg_tokens=registers,
                            no_embed_class=registers > 0)
    if config.get("use_swiglu_ffn"):  # silu(gate) · up, whatever hidden_act says; fc1 = [gate; up] is timm's packing
        return {**options, "mlp": "glu", "act": "silu", "mlp_hidden_dim": 2 * ((int(hidden * 2 / 3) + 7) // 8 * 8)}
    return {**options, "mlp_hidden_dim": hidden, "act": activation(config, "gelu")}


def _classes(model: str) -> tuple[HFClass, ...]:
    return (HFClass(f"{model}Model", "pooler_output"),
            HFClass(f"{model}ForImageClassification", "logits", "labels", dict(global_pool="token_avg"), CLASSIFIER))


DINOV2 = Family("dinov2", "DINOv2: patch 14, LayerScale; encoders output the normed class token", r"_dinov2",
                fields=("init_values", "mlp", "act"),
                hf=HFReading(("dinov2.",), dinov2_options, 1e-6, norm=IMAGENET, antialias=False,
                             classes=_classes("Dinov2")),
                search_order=1)  # after dinov2-reg
DINOV2_REG = Family("dinov2-reg", "DINOv2 with 4 register tokens", r"_reg\d+_dinov2",
                    fields=("reg_tokens", "no_embed_class"),
                    hf=HFReading(("dinov2_with_registers.",), dinov2_options, 1e-6, norm=IMAGENET, antialias=True,
                                 classes=_classes("Dinov2WithRegisters")))
