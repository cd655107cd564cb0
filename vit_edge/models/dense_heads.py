"""Dense prediction on the reference ViT: DPT's neck (reassemble, fusion blocks with residual conv units) and Depth
Anything's depth head, as small torch modules of vit-edge's own, and the whole model (`DenseModel`).

Why our own: the encoder stays vit-edge's `VisionTransformer` (every matmul a named module, so INT8 and every target
treat it as they treat a DINOv2 backbone), and the head is a handful of convolutions, bilinear resizes and ReLUs at
sizes fixed at export, which every converter lowers. The encoder returns the normed patch tokens of the blocks the
neck reads as stacked feature maps (`--output features --layers`, timm's `forward_intermediates(norm=True)`); Depth
Anything's reassemble stage drops the class token (no readout), so nothing else is read. The layer arithmetic is
transformers' `DepthAnythingForDepthEstimation` (modeling_depth_anything.py), checked against it in
tests/integration/test_depth_anything.py.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vit_edge.core.output_kinds import OUTPUTS, ModelOutput
from vit_edge.models.config import ExportChoices, Size, ViTConfig, to_hw
from vit_edge.models.vit import VisionTransformer

__all__ = ["NeckConfig", "DepthHeadConfig", "DenseConfig", "DenseModel", "Reassemble", "ResidualConvUnit",
           "FusionBlock", "DPTNeck", "DepthHead"]


@dataclass(frozen=True)
class NeckConfig:
    """DPT's neck: one reassemble level per block read (project to `channels`, resize by `factor`), each brought to
    `fusion_dim` by a 3×3 convolution and fused from the deepest level up."""

    in_dim: int  # the encoder's width (transformers' reassemble_hidden_size)
    channels: tuple[int, ...]  # neck_hidden_sizes
    factors: tuple[float, ...]  # reassemble_factors: > 1 a transposed convolution, 1 none, < 1 a strided convolution
    fusion_dim: int  # fusion_hidden_size

    def __post_init__(self) -> None:
        if len(self.channels) != len(self.factors) or not self.channels:
            raise ValueError(f"{len(self.channels)} neck sizes for {len(self.factors)} reassemble factors")
        if min(self.in_dim, self.fusion_dim, *self.channels) <= 0:
            raise ValueError("the neck's sizes must be positive")
        for factor in self.factors:
            if factor <= 0 or (factor > 1 and factor != int(factor)) or (factor < 1 and (1 / factor) % 1):
                raise ValueError(f"reassemble factor {factor} is neither a whole upsampling nor 1/n")


@dataclass(frozen=True)
class DepthHeadConfig:
    """Depth Anything's head: 3×3 conv to half the width, bilinear resize to the input, 3×3 conv, ReLU, 1×1 conv to
    one channel, then ReLU (relative depth) or sigmoid (metric), times `max_depth` (transformers multiplies both)."""

    hidden_dim: int = 32  # head_hidden_size
    in_index: int = -1  # which fused level the head reads (head_in_index)
    metric: bool = False  # depth_estimation_type "metric": sigmoid · max_depth
    max_depth: float = 1.0


@dataclass(frozen=True)
class DenseConfig:
    """A dense model: the encoder (its export choices say which blocks it returns as feature maps), the neck, the
    head. Answers the questions the pipeline asks a ViT's config (what it returns, its classes, its input)."""

    encoder: ViTConfig
    neck: NeckConfig
    head: DepthHeadConfig

    def __post_init__(self) -> None:
        chosen = self.encoder.choices
        if chosen.output != "features" or len(chosen.layers) != len(self.neck.channels):
            raise ValueError(f"the encoder must return {len(self.neck.channels)} blocks as feature maps for the neck")
        if self.encoder.embed_dim != self.neck.in_dim:
            raise ValueError(f"the neck reads width {self.neck.in_dim}, the encoder has {self.encoder.embed_dim}")
        if not -len(self.neck.channels) <= self.head.in_index < len(self.neck.channels):
            raise ValueError(f"head_in_index {self.head.in_index} is not one of the {len(self.neck.channels)} levels")
        if self.neck.fusion_dim < 2 or self.head.hidden_dim <= 0:
            raise ValueError("the depth head's widths must be positive (fusion width at least 2)")

    @property
    def model_output(self) -> ModelOutput:
        return OUTPUTS["depth"]

    @property
    def num_classes(self) -> int:
        return 0

    @property
    def choices(self) -> ExportChoices:
        """No export choice applies to the whole model (merge, pruning, --output are the encoder's business)."""
        return ExportChoices()

    @property
    def in_chans(self) -> int:
        return self.encoder.in_chans

    @property
    def img_size(self) -> int | Size:
        return self.encoder.img_size

    @property
    def image_hw(self) -> Size:
        return self.encoder.image_hw

    @property
    def output_hw(self) -> Size:
        """The depth map's size: the patch grid times the patch (the input, for sides that are multiples of it)."""
        rows, cols = self.encoder.grid
        return (rows * self.encoder.patch_size, cols * self.encoder.patch_size)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """What one sample's output is (the manifest's output_shape): the depth map's (height, width)."""
        return self.output_hw

    def to_json(self) -> dict[str, Any]:
        """For the manifest: what it returns (read by core.identity) and each part's own record."""
        size = self.encoder.img_size
        return {"output": "depth", "num_classes": 0, "merge": 0, "head_tokens_only": True,
                "dynamic_size": self.encoder.choices.dynamic_size,
                "img_size": list(size) if isinstance(size, tuple) else size, "encoder": self.encoder.to_json(),
                "neck": asdict(self.neck), "head": asdict(self.head)}


class Reassemble(nn.Module):
    """One level of DPT's reassemble stage: a 1×1 projection, then up- or downsampling by the level's factor."""

    def __init__(self, in_dim: int, channels: int, factor: float) -> None:
        super().__init__()
        self.project = nn.Conv2d(in_dim, channels, kernel_size=1)
        self.resize: nn.Module
        if factor > 1:
            self.resize = nn.ConvTranspose2d(channels, channels, kernel_size=int(factor), stride=int(factor))
        elif factor == 1:
            self.resize = nn.Identity()
        else:
            self.resize = nn.Conv2d(channels, channels, kernel_size=3, stride=round(1 / factor), padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resize(self.project(x))


class ResidualConvUnit(nn.Module):
    """DPT's pre-activation residual unit: x + conv(relu(conv(relu(x))))."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(dim, dim, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FusionBlock(nn.Module):
    """DPT's feature fusion: add the level's features (through a residual unit), a second unit, a bilinear resize
    (corners aligned) to the next level's size, a 1×1 projection."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.project = nn.Conv2d(dim, dim, kernel_size=1)
        self.unit1 = ResidualConvUnit(dim)
        self.unit2 = ResidualConvUnit(dim)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None, size: Size) -> torch.Tensor:
        if skip is not None:
            if skip.shape != x.shape:  # transformers resizes the level's features to the fused map (no aligned corners)
                skip = F.interpolate(skip, size=(x.shape[2], x.shape[3]), mode="bilinear", align_corners=False)
            x = x + self.unit1(skip)
        x = F.interpolate(self.unit2(x), size=size, mode="bilinear", align_corners=True)
        return self.project(x)


class DPTNeck(nn.Module):
    """Reassemble each block's feature map, bring it to the fusion width, fuse from the deepest level up; returns
    every fused map, deepest first (as transformers' fusion stage does)."""

    def __init__(self, cfg: NeckConfig) -> None:
        super().__init__()
        self.reassemble = nn.ModuleList(Reassemble(cfg.in_dim, c, f) for c, f in zip(cfg.channels, cfg.factors))
        self.convs = nn.ModuleList(nn.Conv2d(c, cfg.fusion_dim, kernel_size=3, padding=1, bias=False)
                                   for c in cfg.channels)
        self.fusion = nn.ModuleList(FusionBlock(cfg.fusion_dim) for _ in cfg.channels)

    def forward(self, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        levels = [conv(level(x)) for x, level, conv in zip(maps, self.reassemble, self.convs)][::-1]
        fused: torch.Tensor | None = None
        out = []
        for index, (features, block) in enumerate(zip(levels, self.fusion)):
            height, width = features.shape[2], features.shape[3]
            size = (levels[index + 1].shape[2], levels[index + 1].shape[3]) if index + 1 < len(levels) else (
                2 * height, 2 * width)  # the last level doubles (transformers' scale_factor 2)
            fused = block(features, None, size) if fused is None else block(fused, features, size)
            out.append(fused)
        return out


class DepthHead(nn.Module):
    """Depth Anything's head on one fused map: (B, fusion_dim, h, w) → (B, H, W) at `out_hw`."""

    def __init__(self, fusion_dim: int, cfg: DepthHeadConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.conv1 = nn.Conv2d(fusion_dim, fusion_dim // 2, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(fusion_dim // 2, cfg.hidden_dim, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(cfg.hidden_dim, 1, kernel_size=1)

    def forward(self, fused: list[torch.Tensor], out_hw: Size) -> torch.Tensor:
        x = self.conv1(fused[self.cfg.in_index])
        x = F.interpolate(x, size=out_hw, mode="bilinear", align_corners=True)
        x = self.conv3(F.relu(self.conv2(x)))
        x = torch.sigmoid(x) if self.cfg.metric else F.relu(x)
        return (x * self.cfg.max_depth).flatten(1, 2)  # (B, 1, H, W) → (B, H, W); squeeze is not XNNPACK's


class DenseModel(nn.Module):
    """Encoder → neck → head: an image batch (B, C, H, W) to a depth map (B, H, W)."""

    def __init__(self, cfg: DenseConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = VisionTransformer(cfg.encoder)
        self.neck = DPTNeck(cfg.neck)
        self.head: nn.Module = DepthHead(cfg.neck.fusion_dim, cfg.head)  # DPT's models put theirs here (models/dpt.py)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, cols = self.encoder.input_grid(x)  # the config's grid, or the input's with dynamic_size
        maps = self.encoder(x)  # (B, levels, D, rows, cols): each read block's normed patch tokens
        # slice + flatten, not unbind: ExecuTorch's XNNPACK partitioner leaves unbind's squeeze outside its delegate
        levels = [maps[:, index : index + 1].flatten(1, 2) for index in range(maps.shape[1])]
        patch = self.cfg.encoder.patch_size
        return self.head(self.neck(levels), (rows * patch, cols * patch))

    def with_img_size(self, img_size: int | Size) -> "DenseModel":
        """A copy for another input size: the encoder's position embeddings resampled as its source does
        (transformers' DINOv2 backbone: bicubic without antialiasing, at every call; antialiased bicubic is another
        kernel even when upsampling: 0.4 % of the depth's scale apart at 56 → 84 px); the neck and head read their
        sizes from the grid."""
        if to_hw(img_size) == self.cfg.image_hw:
            return self
        return self._with_encoder(self.encoder.with_img_size(img_size))

    def with_dynamic_size(self) -> "DenseModel":
        """A copy whose graph takes any input size that is a multiple of the patch (see ExportChoices.dynamic_size):
        the encoder resamples its position table to each input's grid, the head returns the input's size."""
        return self._with_encoder(self.encoder.reconfigured(dynamic_size=True))

    def _with_encoder(self, encoder: VisionTransformer) -> "DenseModel":
        if encoder is self.encoder:
            return self
        clone = DenseModel(DenseConfig(encoder.cfg, self.cfg.neck, self.cfg.head))
        state = {k: v for k, v in self.state_dict().items() if not k.startswith("encoder.")}
        state.update({f"encoder.{k}": v for k, v in encoder.state_dict().items()})
        clone.load_state_dict(state)
        return clone.train(self.training)
