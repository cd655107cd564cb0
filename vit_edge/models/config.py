"""The reference ViT's architecture as one frozen record (timm's option names), checked before any tensor exists.

Kept apart from the modules (models/layers.py) and their assembly (models/vit.py) so that loaders, the timm
table and the manifest read and write an architecture without building one.
"""
from __future__ import annotations

import operator
from dataclasses import asdict, dataclass, fields, replace
from itertools import accumulate
from typing import Any

from vit_edge.core.options import OUTPUTS  # one list for the CLI, the API options and the model
from vit_edge.core.output_kinds import ModelOutput, output_of
from vit_edge.models.rope import ROPES

__all__ = ["ViTConfig", "ExportChoices", "to_hw", "Size", "SIZE_FIELDS", "EXPORT_CHOICES", "POOLS", "ACTIVATIONS",
           "MLPS", "NORMS", "OUTPUTS", "MAX_IMAGE_SIDE", "MAX_TOKENS", "MAX_PARAMETERS", "MAX_CLASSES", "MAX_SIZES"]

POOLS = ("token", "avg", "max", "avgmax", "map", "token_avg")  # token_avg: [class token, mean of patches]
ACTIVATIONS = ("gelu", "gelu_tanh", "quick_gelu", "silu")
MLPS = ("mlp", "glu")  # glu: timm's SwiGLUPacked (fc1 → [x, gate] → act(x) · gate → fc2)
NORMS = ("layer", "rms")  # LayerNorm, or RMSNorm (AIMv2): every norm of the model is of the one kind

Size = tuple[int, int]
# bounds on what a config may ask for: the largest ViTs deployed are far inside them (ViT-22B aside)
MAX_IMAGE_SIDE = 8192
MAX_TOKENS = 65536
MAX_PARAMETERS = 20_000_000_000
MAX_CLASSES = 1_000_000
# each count a config (a config.json, a checkpoint) may set, bounded where every config passes (ViTConfig): ViT-22B
# has 48 blocks, 48 heads, width 6144 and MLP 24576; DINOv2 4 registers. A typo such as 1e9 registers asked for 128 GB
MAX_SIZES = {"depth": 512, "num_heads": 1024, "attn_pool_heads": 1024, "embed_dim": 65536, "mlp_hidden_dim": 262144,
             "attn_pool_mlp_dim": 262144, "hybrid_width": 4096, "in_chans": 1024, "reg_tokens": 1024,
             "sie_embeds": 65536, "patch_size": MAX_IMAGE_SIDE, "patch_stride": MAX_IMAGE_SIDE}

# The fields every ViT sets (and how its position table is resampled, which the source's reader sets, not the family);
# each other architecture field belongs to the families that use it (reading/families)
SIZE_FIELDS = ("img_size", "patch_size", "in_chans", "num_classes", "embed_dim", "depth", "num_heads", "mlp_hidden_dim",
               "ln_eps", "global_pool", "class_token", "pos_embed_antialias")


@dataclass(frozen=True)
class ExportChoices:
    """What one export chooses of a built architecture, none changing the weights: the TransReID camera/view row,
    ToMe's merge, the output and its blocks, head-token pruning. The timm table and the family declarations never
    set them; `ViTConfig.with_` takes them by name like architecture fields, and checks them against it."""

    sie_index: int = 0  # the camera/view entry folded in at export (the artifact has one image input)
    merge: int = 0  # ToMe's r: tokens merged after each block's attention (0: none); see models/merging.py
    # what forward returns: "pooled" (logits, or the pooled embedding without a head), "tokens" (the normed patch
    # tokens, (B, N, D): timm's forward_features minus the prefix) or "features" (the same as (B, D, rows, cols))
    output: str = "pooled"
    # with a dense output: the blocks whose tokens are returned (timm's forward_intermediates(norm=True), as DPT-style
    # heads read them), each after the final norm, stacked after the batch: (B, L, N, D) or (B, L, D, rows, cols)
    layers: tuple[int, ...] = ()
    # The last block computes only the tokens the output reads (class-token pooling: the class and distillation
    # tokens); every token is still a key and value there, so the output is the same. False: the plain graph.
    head_tokens_only: bool = True
    # The graph takes any height and width that are multiples of the patch: the position embedding is resampled
    # from the stored grid to the input's at every call (as transformers and timm's dynamic_img_size do), and the
    # patch grid of a dense output is read from the input. False: one input size, the table resampled once.
    dynamic_size: bool = False


EXPORT_CHOICES = tuple(f.name for f in fields(ExportChoices))


def to_hw(size: int | Size | list[int]) -> Size:
    """An int or (height, width) pair as (height, width)."""
    if isinstance(size, int):
        return (size, size)
    height, width = size
    return (int(height), int(width))


@dataclass(frozen=True)
class ViTConfig:
    """Architecture of a ViT: everything needed to rebuild it from a state dict (timm's option names)."""

    img_size: int | Size = 224  # an int for square inputs, (height, width) otherwise
    patch_size: int = 16
    in_chans: int = 3
    num_classes: int = 1000  # 0: no head, the pooled (and normed) embedding is the output
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_hidden_dim: int = 3072
    qkv_bias: bool = True
    ln_eps: float = 1e-6  # every norm's eps (LayerNorm or RMSNorm)
    norm: str = "layer"  # "rms": RMSNorm everywhere (AIMv2)
    patch_norm: bool = False  # a norm on the patch embeddings before the position embedding (AIMv2)
    mlp_bias: bool = True  # False: fc1 and fc2 without biases (AIMv2)
    distilled: bool = False  # DeiT: a distillation token after the class token
    dist_head: bool = True  # with `distilled`: a second head on it, averaged with the first (timm, HF ...WithTeacher)
    patch_stride: int = 0  # 0: the patch size (no overlap); TransReID uses overlapping patches (stride 12 of 16)
    patch_bias: bool = True  # CLIP's patch embedding has no bias
    class_token: bool = True
    reg_tokens: int = 0  # register tokens (DINOv2-reg, Darcet et al. 2024), after the class token
    no_embed_class: bool = False  # DeiT-III/DINOv2-reg: position embeddings cover the patches only
    pre_norm: bool = False  # CLIP: a LayerNorm after the position embedding (timm's norm_pre)
    final_norm: bool = True
    fc_norm: bool = False  # the final norm after pooling instead of before (timm: on for avg pooling)
    global_pool: str = "token"
    init_values: float | None = None  # LayerScale (DeiT-III, DINOv2) when set
    qk_norm: bool = False
    act: str = "gelu"
    mlp: str = "mlp"
    proj_bias: bool = True
    sie_embeds: int = 0  # TransReID: camera × view side-information embeddings
    sie_scale: float = 3.0  # TransReID's sie_xishu
    bnneck: bool = False  # TransReID: a BatchNorm1d on the global feature (its test-time output)
    pre_logits: bool = False  # a Linear + tanh on the pooled feature (HF ViTModel's pooler, timm's pre_logits)
    hybrid: tuple[int, ...] | None = None  # a ResNetV2 stem (timm's vit_*_r50_*/r26): blocks per stage
    hybrid_width: int = 64  # the stem's channels (64 in every released hybrid)
    rope: str = "none"  # rotary position embeddings on q and k's patch tokens: "dinov3" (see models/rope.py)
    rope_temperature: float = 100.0
    rope_rotate_half: bool = True  # sin/cos laid out [f, f] and x rotated by halves (else interleaved pairs)
    rope_grid_offset: float = 0.0
    rope_ref_grid: Size | None = None  # EVA-02: positions rescaled to the pretraining grid
    rope_xy: bool = False  # the column coordinate first (Perception Encoder)
    mlp_norm: bool = False  # a LayerNorm inside the MLP before fc2 (EVA-02's scale_mlp)
    attn_out_norm: bool = False  # a LayerNorm on the attention output before proj (EVA-02 CLIP's scale_attn_inner)
    abs_pos_embed: bool = True  # False: no learned position embedding (DINOv3: rotary only)
    pos_embed_resize: str = "bicubic"  # how another grid resamples it: "bilinear" for SigLIP 2 (as its processor)
    # ... with antialiasing (timm's resample_abs_pos_embed) or without (transformers' interpolate_pos_encoding, but
    # for DINOv2 with registers and SigLIP 2): what the model's source does, set by its reader
    pos_embed_antialias: bool = True
    attn_pool_heads: int = 0  # the attention-pool head's own head count (Perception Encoder: 8); 0: num_heads
    attn_pool_mlp_dim: int = 0  # its MLP width; 0: mlp_hidden_dim
    pool_include_prefix: bool = False  # the pooling reads the prefix tokens too (timm's Eva: PE's MAP head)
    attn_pool_mlp: bool = True  # False: the attention-pool head ends at its projection (transformers' AIMv2 head)
    choices: ExportChoices = ExportChoices()  # how this export uses the architecture (not part of it)

    def __post_init__(self) -> None:
        if self.global_pool not in POOLS:
            raise ValueError(f"global_pool '{self.global_pool}' is not one of {', '.join(POOLS)}")
        if self.act not in ACTIVATIONS:
            raise ValueError(f"activation '{self.act}' is not one of {', '.join(ACTIVATIONS)}")
        if self.mlp not in MLPS:
            raise ValueError(f"mlp '{self.mlp}' is not one of {', '.join(MLPS)}")
        if self.pos_embed_resize not in ("bicubic", "bilinear"):
            raise ValueError(f"pos_embed_resize '{self.pos_embed_resize}' is not bicubic or bilinear")
        if self.norm not in NORMS:
            raise ValueError(f"norm '{self.norm}' is not one of {', '.join(NORMS)}")
        if self.rope not in ROPES:
            raise ValueError(f"rope '{self.rope}' is not one of {', '.join(ROPES)}")
        if self.rope != "none" and ((self.embed_dim // max(self.num_heads, 1)) % 4 or self.choices.merge):
            raise ValueError("rotary embeddings need a head dimension divisible by 4 and no token merging (a merged "
                             "token has no single position to rotate by)")
        if self.global_pool in ("token", "token_avg") and not self.class_token:
            raise ValueError("global_pool 'token' needs a class token")
        positive = {"patch_size": self.patch_size, "in_chans": self.in_chans, "embed_dim": self.embed_dim,
                    "depth": self.depth, "num_heads": self.num_heads, "mlp_hidden_dim": self.mlp_hidden_dim}
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if min(self.num_classes, self.reg_tokens, self.patch_stride, self.attn_pool_heads, self.attn_pool_mlp_dim) < 0:
            raise ValueError("num_classes, reg_tokens, patch_stride and the attention-pool sizes cannot be negative")
        if self.attn_pool_heads and self.embed_dim % self.attn_pool_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by attn_pool_heads {self.attn_pool_heads}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if min(self.image_hw) < self.patch_size:
            raise ValueError(f"img_size {self.img_size} is smaller than patch_size {self.patch_size}")
        self._check_bounds()
        self._check_choices()

    def _check_choices(self) -> None:
        """The export choices against this architecture: blocks it has, tokens it can merge, a camera row it has."""
        from vit_edge.models.merging import max_merge

        chosen = self.choices
        if chosen.output not in OUTPUTS:
            raise ValueError(f"output '{chosen.output}' is not one of {', '.join(OUTPUTS)}")
        layers = list(chosen.layers)
        if layers and (chosen.output == "pooled" or layers != sorted(set(layers))
                       or not 0 <= layers[0] <= layers[-1] < self.depth):
            raise ValueError(f"layers {layers} must be increasing block indices below depth {self.depth}, "
                             "with a dense output (tokens or features)")
        if chosen.output != "pooled" and chosen.merge:
            raise ValueError("token merging changes the tokens a dense output would return; use one or the other")
        if chosen.dynamic_size:
            self._check_dynamic_size()
        if self.sie_embeds and not 0 <= chosen.sie_index < self.sie_embeds:
            raise ValueError(f"sie_index {chosen.sie_index} is outside the {self.sie_embeds} side-information rows")
        most = max_merge(self.num_tokens, self.num_prefix_tokens)
        if not 0 <= chosen.merge <= most:
            raise ValueError(f"merge {chosen.merge} is more than {self.num_patches} patch tokens allow: a block merges "
                             f"at most half of them ({most})")

    def _check_dynamic_size(self) -> None:
        """What a graph for any input size cannot hold: token counts fixed by ToMe, rotary tables built for one grid,
        a convolutional stem or overlapping patches (the grid is no longer the input over the patch)."""
        why = ("token merging fixes the token count of every block" if self.choices.merge else
               "its rotary tables are built for one patch grid" if self.rope != "none" else
               "its convolutional stem is traced for one size" if self.hybrid is not None else
               "its patches overlap" if self.stride != self.patch_size else "")
        if why:
            raise ValueError(f"a graph for any input size cannot be built for this model: {why}")

    def _check_bounds(self) -> None:
        """Refuse sizes no exportable ViT has before any tensor is allocated (a typo could ask for terabytes)."""
        for name, most in MAX_SIZES.items():
            if getattr(self, name) > most:
                raise ValueError(f"{name} {getattr(self, name)} is over {most}, beyond any ViT")
        if self.hybrid is not None and (len(self.hybrid) > 8 or min(self.hybrid, default=0) < 0
                                        or sum(self.hybrid) > MAX_SIZES["depth"]):
            raise ValueError(f"hybrid stem stages {list(self.hybrid)} are beyond any ResNet stem (at most 8 stages "
                             f"of {MAX_SIZES['depth']} blocks in all)")
        if max(self.image_hw) > MAX_IMAGE_SIDE:
            raise ValueError(f"img_size {self.img_size} is over {MAX_IMAGE_SIDE} px per side, beyond any ViT")
        if self.pos_embed_len > MAX_TOKENS:
            raise ValueError(f"{self.pos_embed_len} tokens (img_size {self.img_size}, patch {self.patch_size}) is "
                             f"over {MAX_TOKENS}, beyond what the exporters and runtimes handle")
        params = self.depth * (4 * self.embed_dim**2 + 2 * self.embed_dim * self.mlp_hidden_dim)
        params += self.embed_dim * (self.in_chans * self.patch_size**2 + self.pos_embed_len + self.num_prefix_tokens
                                    + self.sie_embeds) + self.num_classes * self.pooled_dim
        if params > MAX_PARAMETERS:
            raise ValueError(f"the model would hold {params / 1e9:.0f} billion parameters (depth {self.depth}, dim "
                             f"{self.embed_dim}, mlp {self.mlp_hidden_dim}, patch {self.patch_size}, "
                             f"{self.in_chans} channels, {self.num_classes} classes); vit-edge stops at "
                             f"{MAX_PARAMETERS / 1e9:.0f} billion")
        if self.num_classes > MAX_CLASSES:
            raise ValueError(f"num_classes {self.num_classes} is over {MAX_CLASSES}")

    @property
    def image_hw(self) -> Size:
        return to_hw(self.img_size)

    @property
    def stride(self) -> int:
        return self.patch_stride or self.patch_size

    @property
    def feature_reduction(self) -> int:
        """How much the hybrid stem shrinks the image before the patch embedding (1 without one)."""
        return 1 if self.hybrid is None else (4 * 2 ** max(len(self.hybrid) - 1, 0))

    @property
    def grid(self) -> Size:
        """Patch grid (rows, columns)."""
        reduction = self.feature_reduction  # the hybrid stem's 'same' padding rounds up
        height, width = (-(-side // reduction) for side in self.image_hw)
        return ((height - self.patch_size) // self.stride + 1, (width - self.patch_size) // self.stride + 1)

    @property
    def num_patches(self) -> int:
        rows, cols = self.grid
        return rows * cols

    @property
    def num_prefix_tokens(self) -> int:
        return int(self.class_token) + int(self.distilled) + self.reg_tokens

    @property
    def num_tokens(self) -> int:
        return self.num_patches + self.num_prefix_tokens

    @property
    def merge_schedule(self) -> list[int]:
        """Tokens merged by each block (ToMe's constant r, capped as the tokens run out)."""
        from vit_edge.models.merging import merge_schedule

        return merge_schedule(self.choices.merge, self.num_tokens, self.num_prefix_tokens, self.depth)

    @property
    def tokens_after_merge(self) -> list[int]:
        """Tokens each block's MLP computes on, once that block has merged (what the runtime sees)."""
        return list(accumulate(self.merge_schedule, operator.sub, initial=self.num_tokens))[1:]

    @property
    def pos_embed_len(self) -> int:
        if not self.abs_pos_embed:
            return 0
        return self.num_patches + (0 if self.no_embed_class else self.num_prefix_tokens)

    @property
    def pooled_dim(self) -> int:
        return 2 * self.embed_dim if self.global_pool == "token_avg" else self.embed_dim

    @property
    def output_dim(self) -> int:
        return self.num_classes or self.pooled_dim

    @property
    def model_output(self) -> ModelOutput:
        """What forward returns (logits, embedding, tokens, feature map) and the measures that apply to it."""
        return output_of(self.choices.output, self.num_classes)

    @property
    def architecture(self) -> "ViTConfig":
        """This config with every export choice at its default: what was trained, apart from how it is exported."""
        return replace(self, choices=ExportChoices())

    def with_(self, **changes: Any) -> "ViTConfig":
        """A copy with other architecture fields or export choices (by their names), checked together."""
        chosen = {name: changes.pop(name) for name in list(changes) if name in EXPORT_CHOICES}
        if chosen:
            changes["choices"] = replace(changes.get("choices", self.choices), **chosen)
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """Flat, as manifests have always stored it: the export choices beside the architecture fields."""
        data = asdict(self)
        data.update(data.pop("choices"))
        if isinstance(self.img_size, tuple):
            data["img_size"] = list(self.img_size)
        if self.hybrid is not None:
            data["hybrid"] = list(self.hybrid)
        if self.rope_ref_grid is not None:
            data["rope_ref_grid"] = list(self.rope_ref_grid)
        data["layers"] = list(self.choices.layers)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ViTConfig":
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        if isinstance(known.get("img_size"), list):
            known["img_size"] = to_hw(known["img_size"])
        if isinstance(known.get("rope_ref_grid"), list):
            known["rope_ref_grid"] = to_hw(known["rope_ref_grid"])
        if known.get("hybrid") is not None:
            known["hybrid"] = tuple(int(n) for n in known["hybrid"])
        chosen = {name: data[name] for name in EXPORT_CHOICES if name in data}
        if "layers" in chosen:
            chosen["layers"] = tuple(int(n) for n in chosen["layers"])
        known.pop("choices", None)
        return cls(**known, choices=ExportChoices(**chosen))

