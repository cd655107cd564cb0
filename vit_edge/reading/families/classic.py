"""The plain ViT and the families that add one or two options to it: DeiT, DeiT-III, registers, pooling variants,
the hybrid ResNet stem, EVA-01, FlexiViT, timm's test models and TransReID.

transformers' classes and what the reference returns for each:
- ViTForImageClassification, DeiTForImageClassification(WithTeacher): `logits` (with teacher: the mean of the
  two heads, as transformers does).
- ViTModel: `pooler_output` (dense + tanh on the normed class token → `pre_logits`) when the checkpoint has pooler
  weights, else the normed class token `last_hidden_state[:, 0]`.
"""
from __future__ import annotations

from typing import Any

from vit_edge.core.errors import UnsupportedModelError
from vit_edge.reading.families.base import CLASSIFIER, HALF, Family, HFClass, HFReading, Options
from vit_edge.reading.families.hf_config import activation, read_int

__all__ = ["VIT", "DEIT", "DEIT3", "REGISTERS", "POOLED", "HYBRID", "PATCH14", "EVA", "FLEXIVIT", "TEST",
           "TRANSREID"]


def _vit_options(config: dict[str, Any]) -> Options:
    """ViT/DeiT: plain blocks; a ViTModel pooler other than a square dense + tanh has no place in the reference."""
    if config.get("pooler_act", "tanh") != "tanh":
        raise UnsupportedModelError(f"pooler_act '{config['pooler_act']}' is not supported (only 'tanh')")
    if config.get("pooler_output_size") not in (None, config.get("hidden_size")):
        raise UnsupportedModelError("pooler_output_size differs from hidden_size; the reference pooler is square")
    return dict(mlp_hidden_dim=read_int(config, "intermediate_size"), qkv_bias=bool(config.get("qkv_bias", True)),
                act=activation(config, "gelu"))


_VIT_HF = HFReading(("vit.",), _vit_options, 1e-12, norm=HALF, interpolation="bilinear", classes=(
    HFClass("ViTForImageClassification", "logits", "labels", renames=CLASSIFIER),
    HFClass("ViTModel", "pooler_output", renames=(("pooler.dense.", "pre_logits.fc."),),
            output_without_pooler="last_hidden_state[:, 0]")))

# timm's VisionTransformer options that the plain family already uses or may switch on
VIT = Family("vit", "ViT (AugReg, original), class token", fields=(
    "qkv_bias", "proj_bias", "qk_norm", "final_norm", "pre_logits", "act", "init_values", "no_embed_class"),
    hf=_VIT_HF)
DEIT = Family("deit", "DeiT, incl. distilled (class + distillation heads averaged)", r"^deit_",
              fields=("distilled", "dist_head"),
              hf=HFReading(("deit.",), _vit_options, 1e-12, norm=HALF, interpolation="bilinear",
                           renames=(("cls_classifier.", "head."), ("distillation_classifier.", "head_dist.")),
                           classes=(HFClass("DeiTForImageClassification", "logits", "labels",
                                            dict(distilled=True, dist_head=False), CLASSIFIER),
                                    HFClass("DeiTForImageClassificationWithTeacher", "logits", "labels",
                                            dict(distilled=True)))),
              recognise_config=lambda cfg: cfg.distilled)
DEIT3 = Family("deit3", "DeiT-III: LayerScale, position embeddings without the class token", r"^deit3_",
               fields=("init_values", "no_embed_class"))
REGISTERS = Family("registers", "timm's ViTs with register tokens (reg1/reg4), mostly average pooling", r"_reg\d+_",
                   fields=("reg_tokens", "global_pool", "fc_norm"), recognise_config=lambda cfg: bool(cfg.reg_tokens),
                   search_order=2)  # after dinov2-reg, dinov2 and rope-vit, whose names have _reg4_ too
POOLED = Family("pooled", "average- or MAP-pooled ViTs without a class token", r"_gap_|_map_",
                fields=("class_token", "global_pool", "fc_norm"), search_order=3)  # after registers and siglip
HYBRID = Family("hybrid", "ResNetV2 stem + ViT (R26, R50, tiny-R)", r"_r\d+_s\d+|_r_s\d+|resnet\d+d",
                fields=("hybrid", "hybrid_width"), recognise_config=lambda cfg: cfg.hybrid is not None)
PATCH14 = Family("patch14", "patch-14 ViTs", r"patch14", search_order=5)  # the broadest rule: tried last
EVA = Family("eva", "EVA-01-style large ViT (absolute position embeddings)", r"^eva_", fields=("fc_norm",),
             search_order=2)  # after clip: eva_giant_patch14_clip_224 is a CLIP tower
FLEXIVIT = Family("flexivit", "FlexiViT at its default patch size", r"^flexivit_")
TEST = Family("test", "timm's tiny test models", r"^test_")
TRANSREID = Family("transreid", "TransReID (re-identification): overlapping patches, camera/view side information "
                   "fixed at export, the BNNeck feature", fields=("patch_stride", "sie_embeds", "sie_scale", "bnneck"))
