"""DPT (Ranftl et al., 2021) on the reference ViT: the class-token readout, DPT's own fusion arithmetic, its depth
head and its semantic-segmentation head, as a `DenseModel` (so loading, INT8 and every target treat it as they treat
Depth Anything).

What differs from Depth Anything (models/dense_heads.py), each as transformers' `DPTForDepthEstimation` and
`DPTForSemanticSegmentation` compute it (modeling_dpt.py, checked in tests/integration/test_dpt.py):
- the neck reads each chosen block's tokens *before* any final norm (the ViT has none here), class token included;
  the readout brings the class token into every patch token: "ignore" drops it, "add" adds it, "project" concatenates
  it and applies a linear + the encoder's activation. The linear over [token; class] is written as two linears
  (token part with the bias, class part without) added: the same sum without a broadcast concatenation, which
  ExecuTorch's XNNPACK partitioner would leave outside its delegate.
- each fusion block doubles its input (transformers' `scale_factor=2`), the next level being resized to it where the
  sizes differ, so the output size is 2^(levels+1) times the deepest level's, not the input's;
- the depth head's hidden width is 32 and it doubles instead of resizing to the input; an optional projection
  (conv + ReLU) goes first (`add_projection`);
- the segmentation head: 3×3 conv with its BatchNorm folded in, ReLU, 1×1 conv to the classes, bilinear ×2 (corners
  aligned): logits (B, classes, H', W'). The auxiliary head is a training loss only and is not part of the model.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vit_edge.core.output_kinds import OUTPUTS, ModelOutput
from vit_edge.models.config import Size, to_hw
from vit_edge.models.dense_heads import DenseConfig, DenseModel, DepthHead
from vit_edge.models.layers import make_activation
from vit_edge.models.vit import VisionTransformer

__all__ = ["READOUTS", "SegmentationHeadConfig", "DPTConfig", "Readout", "DPTDepthHead", "SegmentationHead",
           "DPTModel", "reassembled_side"]

READOUTS = ("ignore", "add", "project")


@dataclass(frozen=True)
class SegmentationHeadConfig:
    """DPT's semantic-segmentation head: `num_labels` logits per pixel."""

    num_labels: int


@dataclass(frozen=True)
class DPTConfig(DenseConfig):
    """A DPT: the encoder (no final norm; its chosen blocks are the neck's levels), the readout, the neck, and either
    the depth head (`head`, hidden width 32) or, with `segmentation`, the segmentation head; both read the fused level
    `head.in_index` (transformers' head_in_index)."""

    readout: str = "project"
    add_projection: bool = False  # depth: a 3×3 conv + ReLU before the head
    segmentation: SegmentationHeadConfig | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.readout not in READOUTS:
            raise ValueError(f"readout_type '{self.readout}' is not one of {', '.join(READOUTS)}")
        if not self.encoder.class_token or self.encoder.num_prefix_tokens != 1 or self.encoder.final_norm:
            raise ValueError("DPT's encoder has one class token and no final norm before the neck")
        if self.segmentation is not None and (self.segmentation.num_labels < 1 or self.add_projection):
            raise ValueError("a segmentation head needs at least one label and has no depth projection")

    @property
    def model_output(self) -> ModelOutput:
        return OUTPUTS["segmentation" if self.segmentation is not None else "depth"]

    @property
    def num_classes(self) -> int:
        return self.segmentation.num_labels if self.segmentation is not None else 0

    @property
    def output_hw(self) -> Size:
        """The map's size: the deepest level's side doubled by each fusion block up to the one the head reads (fused
        level k, deepest first, is doubled k + 1 times), and once more by the head."""
        rows, cols = self.encoder.grid
        factor, doublings = self.neck.factors[-1], self.head.in_index % len(self.neck.factors) + 2
        return (reassembled_side(rows, factor) * 2 ** doublings, reassembled_side(cols, factor) * 2 ** doublings)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Per sample: (height, width) of a depth map, (classes, height, width) of segmentation logits."""
        return (self.num_classes, *self.output_hw) if self.segmentation is not None else self.output_hw

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data.update(output=self.model_output.name, num_classes=self.num_classes, readout=self.readout,
                    add_projection=self.add_projection)
        if self.segmentation is not None:
            data["head"] = {"in_index": self.head.in_index, **asdict(self.segmentation)}
        return data


def reassembled_side(side: int, factor: float) -> int:
    """A grid side after a reassemble resize: ×factor (transposed conv), as is, or a 3×3 conv of stride 1/factor."""
    if factor >= 1:
        return int(side * factor)
    return (side - 1) // round(1 / factor) + 1


class Readout(nn.Module):
    """One level's readout: the class token into each patch token ("add": plus; "project": act(W·[token; class] + b),
    written as W_t·token + b + W_c·class); "ignore" leaves the patch tokens as they are."""

    def __init__(self, dim: int, kind: str, act: str) -> None:
        super().__init__()
        self.kind = kind
        self.tokens = nn.Linear(dim, dim) if kind == "project" else None
        self.readout = nn.Linear(dim, dim, bias=False) if kind == "project" else None
        self.act = make_activation(act) if kind == "project" else nn.Identity()

    def forward(self, tokens: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
        """(B, N, D) patch tokens and (B, 1, D) class token → (B, N, D)."""
        if self.tokens is not None and self.readout is not None:
            return self.act(self.tokens(tokens) + self.readout(cls))
        return tokens + cls if self.kind == "add" else tokens


class DPTDepthHead(nn.Module):
    """DPT's depth head on the fused level `in_index`: the optional projection (conv + ReLU), then Depth Anything's
    conv stack, doubling the map (`out_hw`)."""

    def __init__(self, cfg: DPTConfig) -> None:
        super().__init__()
        dim = cfg.neck.fusion_dim
        self.in_index = cfg.head.in_index
        self.projection = nn.Conv2d(dim, dim, kernel_size=3, padding=1) if cfg.add_projection else None
        self.depth = DepthHead(dim, replace(cfg.head, in_index=-1))  # given the one map it reads

    def forward(self, fused: list[torch.Tensor], out_hw: Size) -> torch.Tensor:
        x = fused[self.in_index]
        if self.projection is not None:
            x = F.relu(self.projection(x))
        return self.depth([x], out_hw)


class SegmentationHead(nn.Module):
    """DPT's segmentation head on the fused level `in_index`: (B, D, h, w) → logits (B, classes, 2h, 2w)."""

    def __init__(self, dim: int, num_labels: int, in_index: int) -> None:
        super().__init__()
        self.in_index = in_index
        self.conv1 = nn.Conv2d(dim, dim, kernel_size=3, padding=1)  # transformers' conv + BatchNorm, folded
        self.conv2 = nn.Conv2d(dim, num_labels, kernel_size=1)

    def forward(self, fused: list[torch.Tensor], out_hw: Size) -> torch.Tensor:
        x = self.conv2(F.relu(self.conv1(fused[self.in_index])))
        return F.interpolate(x, size=out_hw, mode="bilinear", align_corners=True)


class DPTModel(DenseModel):
    """Encoder → readout → neck (DPT's doubling fusion) → depth or segmentation head."""

    cfg: DPTConfig

    def __init__(self, cfg: DPTConfig) -> None:
        super().__init__(cfg)  # the encoder, the neck's modules and a depth head (replaced below)
        self.readout = nn.ModuleList(Readout(cfg.encoder.embed_dim, cfg.readout, cfg.encoder.act)
                                     for _ in cfg.neck.channels)
        segmentation = cfg.segmentation
        self.head = (DPTDepthHead(cfg) if segmentation is None else
                     SegmentationHead(cfg.neck.fusion_dim, segmentation.num_labels, cfg.head.in_index))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stacked = self.encoder._intermediates(x)  # (B, levels, 1 + N, D): each read block's tokens, no norm
        rows, cols = self.encoder.input_grid(x)  # the config's grid, or the input's with dynamic_size
        levels = []
        for index, (readout, reassemble, conv) in enumerate(zip(self.readout, self.neck.reassemble, self.neck.convs)):
            tokens = stacked[:, index : index + 1].flatten(1, 2)  # slice + flatten: XNNPACK-friendly, as DenseModel
            mixed = readout(tokens[:, 1:], tokens[:, :1])
            grid = mixed.transpose(1, 2).reshape(mixed.shape[0], mixed.shape[2], rows, cols)
            levels.append(conv(reassemble(grid)))
        fused = self._fuse(levels[::-1])
        read = fused[self.cfg.head.in_index]  # the head doubles the level it reads: cfg.output_hw at the config's size
        return self.head(fused, (2 * read.shape[2], 2 * read.shape[3]))

    def with_dynamic_size(self) -> "DPTModel":
        """A copy whose graph takes any input size that is a multiple of the patch: the encoder resamples its
        position table to each input's grid (bilinear, as transformers' DPT does at every call), the readout lays
        the tokens out on the input's grid, and the map's size follows from the fused levels'."""
        return self._with_encoder_config(self.encoder.reconfigured(dynamic_size=True))

    def _fuse(self, levels: list[torch.Tensor]) -> list[torch.Tensor]:
        """transformers' DPTFeatureFusionStage: deepest level first, each block doubling its input."""
        fused: torch.Tensor | None = None
        out = []
        for features, block in zip(levels, self.neck.fusion):
            current = features if fused is None else fused
            size = (2 * current.shape[2], 2 * current.shape[3])
            if fused is not None and self.cfg.encoder.choices.dynamic_size:
                # the fused map and the level differ in size at some grids only: an any-size graph resizes always
                # (bilinear to its own size is the identity), where a traced `if` would hold for the traced size
                features = F.interpolate(features, size=(fused.shape[2], fused.shape[3]), mode="bilinear",
                                         align_corners=False)
            fused = block(features, None, size) if fused is None else block(fused, features, size)
            out.append(fused)
        return out

    def with_img_size(self, img_size: int | Size) -> "DPTModel":
        """A copy for another input size: the position embeddings resampled as the encoder's config says (bilinear,
        as transformers' DPT does at every call); the readout, neck and heads read their sizes from the grid."""
        if to_hw(img_size) == self.cfg.image_hw:
            return self
        return self._with_encoder_config(self.encoder.with_img_size(img_size))

    def _with_encoder_config(self, encoder: VisionTransformer) -> "DPTModel":
        """A copy whose encoder is `encoder` (same weights, another size or any size), everything else as is."""
        clone = DPTModel(replace(self.cfg, encoder=encoder.cfg))
        state = {k: v for k, v in self.state_dict().items() if not k.startswith("encoder.")}
        state.update({f"encoder.{k}": v for k, v in encoder.state_dict().items()})
        clone.load_state_dict(state)
        return clone.train(self.training)
