"""Hugging Face DPT (`DPTForDepthEstimation`, `DPTForSemanticSegmentation`, plain ViT encoder) → the reference ViT plus
DPT's readout, neck and head (models/dpt.py); transformers is never imported.

The config is read and checked whole before the weights (families/dpt.py); the encoder is read as hf_compat reads a
ViT (its final LayerNorm, which only makes last_hidden_state, left out), then cut to the blocks the neck reads. The
neck's and head's tensors are renamed by the family's table, and two things transformers keeps apart are joined here,
exactly: each BatchNorm (the fusion units' with `use_batch_norm_in_fusion_residual`, the segmentation head's) is folded
into the convolution before it (eval statistics), and the readout's linear over [token; class] is split into its token
and class halves. The auxiliary head (a training loss) is left out; any other tensor without a place is refused.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import torch

from vit_edge.core.errors import ModelLoadError, UnsupportedModelError
from vit_edge.core.identity import MaskReading, Provenance
from vit_edge.core.types import InputSpec
from vit_edge.models.dpt import DPTModel
from vit_edge.models.vit import VisionTransformer
from vit_edge.reading.checkpoint import load_strict
from vit_edge.reading.families.dpt import (
    DPT_DEPTH_RENAMES,
    DPT_IGNORED,
    DPT_SEGMENTATION_RENAMES,
    ignore_index,
    read_dpt_head,
)
from vit_edge.reading.hf_compat import SUPPORTED_ARCHITECTURES, convert_hf_state_dict, hf_config_to_vit, input_spec

__all__ = ["build_dpt", "fold_batch_norms", "split_readouts"]

State = dict[str, torch.Tensor]


def build_dpt(config: dict[str, Any], read_state: Callable[[], State], preprocessor: dict[str, Any] | None,
              origin: str, name: str) -> tuple[DPTModel, InputSpec, Provenance]:
    """Config → the DPT record (all checked), then the weights, then the model (at the processor's size)."""
    arch = SUPPORTED_ARCHITECTURES[name]
    segmentation = arch.head == "segmentation"
    vit_cfg, _, spec = hf_config_to_vit(config, name)
    cfg = read_dpt_head(config, vit_cfg, segmentation)
    spec = input_spec(spec, preprocessor, vit_cfg.patch_size)
    encoder_state, head_state = _split_state(read_state(), segmentation)
    encoder = VisionTransformer(vit_cfg)
    load_strict(encoder, convert_hf_state_dict(encoder_state, name, vit_cfg), origin)
    encoder = encoder.reconfigured(output="features").with_layers(list(cfg.encoder.choices.layers))
    model = DPTModel(cfg)
    load_strict(model, {**{f"encoder.{k}": v for k, v in encoder.state_dict().items()}, **head_state}, origin)
    source = Provenance("huggingface", origin, hf_architecture=name, family=arch.family.name, hf_output=arch.output)
    if segmentation:  # how ground-truth masks map to the model's classes (bench --data, quantize --eval)
        reduce = bool((preprocessor or {}).get("do_reduce_labels", (preprocessor or {}).get("reduce_labels", False)))
        source = replace(source, mask_labels=MaskReading(reduce_labels=reduce, ignore_index=ignore_index(config)))
    return model.eval(), spec, source  # at config.image_size; the loader brings it to the processor's size


def _split_state(state: State, segmentation: bool) -> tuple[State, State]:
    """The encoder's tensors (as they are, for hf_compat) and the readout's, neck's and head's (renamed, BatchNorms
    folded, readouts split); the final LayerNorm and the auxiliary head left out; anything else refused."""
    renames = DPT_SEGMENTATION_RENAMES if segmentation else DPT_DEPTH_RENAMES
    encoder, head, unknown = {}, {}, []
    for key, value in state.items():
        if DPT_IGNORED.match(key):
            continue
        if key.startswith("dpt."):
            encoder[key] = value
            continue
        renamed = next((pattern.sub(new, key, count=1) for pattern, new in renames if pattern.match(key)), None)
        if renamed is None:
            unknown.append(key)
        else:
            head[renamed] = value
    if unknown:
        raise UnsupportedModelError(f"{len(unknown)} tensors have no place in vit-edge's DPT "
                                    f"(e.g. {', '.join(unknown[:3])})")
    return encoder, split_readouts(fold_batch_norms(head))


def fold_batch_norms(state: State) -> State:
    """Each `X.bnK` BatchNorm (eval statistics) folded into the convolution `X.convK` before it: w·s, (b − μ)·s + β
    with s = γ / √(σ² + ε) (transformers' default ε, 1e-5). A convolution saved without a bias gets a zero one (the
    reference's residual units and heads always have a bias)."""
    out = {k: v for k, v in state.items() if ".bn" not in k}
    norms = {k.rsplit(".", 1)[0] for k in state if ".bn" in k}
    for norm in sorted(norms):
        conv = norm.replace(".bn", ".conv")
        try:
            gamma, beta = state[f"{norm}.weight"], state[f"{norm}.bias"]
            mean, var = state[f"{norm}.running_mean"], state[f"{norm}.running_var"]
            weight = state[f"{conv}.weight"]
        except KeyError as exc:
            raise ModelLoadError(f"BatchNorm {norm} lacks {exc.args[0]}: the checkpoint is incomplete") from exc
        scale = gamma.double() / torch.sqrt(var.double() + 1e-5)
        bias = state.get(f"{conv}.bias", torch.zeros_like(mean)).double()
        out[f"{conv}.weight"] = (weight.double() * scale.reshape(-1, 1, 1, 1)).to(weight.dtype)
        out[f"{conv}.bias"] = ((bias - mean.double()) * scale + beta.double()).to(weight.dtype)
    for key, weight in list(out.items()):
        if key.endswith(".weight") and weight.ndim == 4 and key[: -len("weight")] + "bias" not in out and (
                ".unit" in key or key.startswith("head.")):
            out[key[: -len("weight")] + "bias"] = torch.zeros(weight.shape[0], dtype=weight.dtype)
    return out


def split_readouts(state: State) -> State:
    """`readout.N.joint` (a linear over [token; class], 2D → D) → `readout.N.tokens` (its first half, with the bias)
    and `readout.N.readout` (its second half, no bias)."""
    out = {k: v for k, v in state.items() if ".joint." not in k}
    for key in [k for k in state if k.endswith(".joint.weight")]:
        prefix = key[: -len(".joint.weight")]
        weight = state[key]
        if weight.ndim != 2 or weight.shape[1] != 2 * weight.shape[0]:
            raise ModelLoadError(f"readout projection {key} has shape {tuple(weight.shape)}, not (D, 2·D)")
        dim = weight.shape[0]
        out[f"{prefix}.tokens.weight"], out[f"{prefix}.readout.weight"] = weight[:, :dim], weight[:, dim:]
        if f"{prefix}.joint.bias" in state:
            out[f"{prefix}.tokens.bias"] = state[f"{prefix}.joint.bias"]
    return out
