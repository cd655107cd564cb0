"""EVA-02 (timm's Eva class) and RoPE-ViT: axial rotary embeddings on q and k (see models/rope.py).

timm's Eva state-dict names (gamma_1/2, q_bias/v_bias, unfused q/k/v, fc1_g/fc1_x) are read by
timm_compat.eva_state_to_reference, which DINOv3 and PE in timm's layout share.
"""
from __future__ import annotations

from vit_edge.reading.families.base import Family

__all__ = ["EVA02", "ROPE_VIT"]

EVA02 = Family("eva02", "EVA-02: absolute + interleaved rotary embeddings, SwiGLU with its inner norm; CLIP towers",
               r"^eva02_", fields=("rope", "rope_temperature", "rope_rotate_half", "rope_ref_grid", "mlp_norm",
                                   "attn_out_norm", "mlp"),
               weight_keys=("rope.", "freqs"))
ROPE_VIT = Family("rope-vit", "RoPE-ViT: axial rotary embeddings on a plain ViT (with or without absolute ones)",
                  r"_rope_", fields=("rope", "rope_xy", "rope_ref_grid", "abs_pos_embed"))
