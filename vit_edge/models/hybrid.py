"""timm's ResNetV2 stem for hybrid ViTs (vit_tiny_r_s16_p8, vit_*_r26_s32, vit_*_r50_s*), written for export.

Why our own: the state-dict names and shapes are timm's `patch_embed.backbone.*`, so hybrid checkpoints load
without timm; and the two things timm computes in ways exporters dislike are plain ops here. Weight
standardization is mean/variance/rsqrt on the weight (timm calls `F.batch_norm` in training mode), and TF-style
'SAME' padding is an explicit `F.pad` whose amounts are Python ints read from the (static at export) input size,
so the graph holds no data-dependent control flow.

timm builds the backbone as a non-pre-activation ResNetV2: StdConv2dSame(eps=1e-8), GroupNorm(32 groups) + ReLU,
a 7×7/2 stem conv and a 3×3/2 'SAME' max pool, then bottleneck stages (stride 1, then 2) with a 1×1 conv + norm
shortcut in each stage's first block; non-pre-activation means no final norm. The stem-only model
(`vit_tiny_r_s16_p8_*`, `layers=()`) keeps its conv/norm/pool at the top level (`backbone.conv.weight`), the others
nest them (`backbone.stem.conv.weight`, `backbone.stages.0.blocks.0.conv1.weight`).
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ResNetV2Stem", "StdConv2dSame", "GroupNormAct", "MaxPool2dSame", "Bottleneck", "same_padding",
           "fold_weight_standardization"]

STD_CONV_EPS = 1e-8  # timm's vision_transformer_hybrid._resnetv2: partial(StdConv2dSame, eps=1e-8)
GROUPS = 32  # timm's GroupNormAct default
MAX_STAGES = 4  # timm's ResNetV2 has four stage widths (256, 512, 1024, 2048 at width 64)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'SAME' padding of one side length as (before, after); the odd pixel goes after, as timm's pad_same does."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Pad H and W for 'SAME'; the amounts are ints from the static input size, zero padding is skipped."""
    top, bottom = same_padding(x.shape[-2], kernel, stride)
    left, right = same_padding(x.shape[-1], kernel, stride)
    if top or bottom or left or right:
        x = F.pad(x, (left, right, top, bottom))
    return x


class StdConv2dSame(nn.Conv2d):
    """Conv2d with weight standardization (Qiao et al., 2019) and TF 'SAME' padding: timm's StdConv2dSame.

    A stride-1 odd kernel pads the same on every side at any input size, so it keeps the conv's own padding;
    only strided convs pad explicitly.
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1,
                 eps: float = STD_CONV_EPS) -> None:
        static = stride == 1 and kernel_size % 2 == 1
        super().__init__(in_chs, out_chs, kernel_size, stride=stride, padding=(kernel_size - 1) // 2 if static else 0,
                         bias=False)
        self.eps = eps
        self.same_pad = not static
        self.standardize = True  # off once fold_weight_standardization has written the standardized weight

    def standardized_weight(self) -> torch.Tensor:
        """Each output filter scaled to zero mean and unit (biased) variance, as timm's batch_norm call does."""
        weight = self.weight.reshape(self.out_channels, -1)
        centered = weight - weight.mean(dim=1, keepdim=True)
        variance = (centered * centered).mean(dim=1, keepdim=True)
        return (centered * torch.rsqrt(variance + self.eps)).reshape_as(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same_pad:
            x = _pad_same(x, self.kernel_size[0], self.stride[0])
        weight = self.standardized_weight() if self.standardize else self.weight
        return F.conv2d(x, weight, None, self.stride, self.padding)


def fold_weight_standardization(module: nn.Module) -> int:
    """Store each StdConv2dSame's standardized weight and stop standardizing at run time; returns how many.

    For export only: ONNX's optimizer folds the standardization of weights up to 8192 elements, so a released
    R50 stem would otherwise recompute most of it on every inference. Standardizing is idempotent (up to eps
    1e-8), so the folded state dict still gives the same outputs when loaded into an unfolded model.
    """
    folded = 0
    with torch.no_grad():
        for conv in module.modules():
            if isinstance(conv, StdConv2dSame) and conv.standardize:
                conv.weight.copy_(conv.standardized_weight())
                conv.standardize = False
                folded += 1
    return folded


class GroupNormAct(nn.GroupNorm):
    """GroupNorm (32 groups, eps 1e-5) then ReLU unless `act` is off: timm's GroupNormAct, same parameter names."""

    def __init__(self, channels: int, act: bool = True) -> None:
        super().__init__(GROUPS, channels, eps=1e-5)
        self.act = nn.ReLU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """GroupNorm written out with implicitly broadcast arithmetic: litert-torch lowers torch's group_norm with
        BROADCAST_TO ops that XNNPACK does not take (58 of them fell off a released R26 stem, measured)."""
        batch, channels, height, width = x.shape
        groups = x.reshape(batch, self.num_groups, (channels // self.num_groups) * height * width)
        centred = groups - groups.mean(dim=-1, keepdim=True)
        normed = centred * torch.rsqrt((centred * centred).mean(dim=-1, keepdim=True) + self.eps)
        out = normed.reshape(batch, channels, height, width) * self.weight.reshape(1, -1, 1, 1)
        return self.act(out + self.bias.reshape(1, -1, 1, 1))


class MaxPool2dSame(nn.Module):
    """3×3/2 max pool with TF 'SAME' padding, after the stem's ReLU.

    timm pads with -inf; its input is ReLU output (≥ 0) and every window holds a real pixel, so zero padding
    gives the same maximum while keeping infinities out of the exported (and quantized) graph.
    """

    def __init__(self, kernel_size: int = 3, stride: int = 2) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(_pad_same(x, self.kernel_size, self.stride), self.kernel_size, self.stride)


class DownsampleConv(nn.Module):
    """The shortcut of a stage's first block: 1×1 standardized conv (strided) and a norm without activation."""

    def __init__(self, in_chs: int, out_chs: int, stride: int) -> None:
        super().__init__()
        self.conv = StdConv2dSame(in_chs, out_chs, 1, stride=stride)
        self.norm = GroupNormAct(out_chs, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


class Bottleneck(nn.Module):
    """timm's non-pre-activation ResNetV2 bottleneck: 1×1 → 3×3 (strided) → 1×1, add the shortcut, ReLU."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, downsample: bool) -> None:
        super().__init__()
        mid_chs = out_chs // 4  # timm's bottle_ratio 0.25 (already a multiple of 8 here)
        self.downsample = DownsampleConv(in_chs, out_chs, stride) if downsample else None
        self.conv1 = StdConv2dSame(in_chs, mid_chs, 1)
        self.norm1 = GroupNormAct(mid_chs)
        self.conv2 = StdConv2dSame(mid_chs, mid_chs, 3, stride=stride)
        self.norm2 = GroupNormAct(mid_chs)
        self.conv3 = StdConv2dSame(mid_chs, out_chs, 1)
        self.norm3 = GroupNormAct(out_chs, act=False)
        self.act3 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.norm1(self.conv1(x))
        x = self.norm2(self.conv2(x))
        x = self.norm3(self.conv3(x))
        return self.act3(x + shortcut)


class ResNetStage(nn.Module):
    """`depth` bottlenecks; the first one strides and projects the shortcut (timm's ResNetStage, `.blocks.N`)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, depth: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(
            Bottleneck(in_chs if i == 0 else out_chs, out_chs, stride if i == 0 else 1, downsample=i == 0)
            for i in range(depth)
        ))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


def _stem(in_chans: int, width: int) -> "OrderedDict[str, nn.Module]":
    """7×7/2 conv, norm + ReLU, 3×3/2 max pool: timm's create_resnetv2_stem(stem_type='same', preact=False)."""
    return OrderedDict(conv=StdConv2dSame(in_chans, width, 7, stride=2), norm=GroupNormAct(width),
                       pool=MaxPool2dSame(3, 2))


class ResNetV2Stem(nn.Sequential):
    """The hybrid ViT's CNN: timm's `patch_embed.backbone` for `layers` blocks per stage (`()`: the stem alone).

    `width` is the stem's channel count (timm's stem_chs, 64 in every released model); stage i outputs
    4·width·2^i channels (timm's 256, 512, 1024, 2048). `reduction` is the total downsampling of an input whose
    sides it divides; other sides round up, as TF 'SAME' does.
    """

    def __init__(self, in_chans: int, layers: tuple[int, ...], width: int = 64) -> None:
        layers = tuple(int(n) for n in layers)
        if len(layers) > MAX_STAGES or any(n < 1 for n in layers):
            raise ValueError(f"hybrid layers {layers}: at most {MAX_STAGES} stages of at least one block each")
        if width <= 0 or width % GROUPS:
            raise ValueError(f"hybrid width {width} must be a positive multiple of {GROUPS} (GroupNorm groups)")
        if not layers:
            super().__init__(_stem(in_chans, width))
            self.out_channels: int = width
            self.reduction: int = 4
            return
        stages, in_chs = nn.Sequential(), width
        for index, depth in enumerate(layers):
            out_chs = 4 * width * 2**index
            stages.add_module(str(index), ResNetStage(in_chs, out_chs, 1 if index == 0 else 2, depth))
            in_chs = out_chs
        super().__init__(OrderedDict(stem=nn.Sequential(_stem(in_chans, width)), stages=stages))
        self.out_channels = in_chs
        self.reduction = 4 * 2 ** (len(layers) - 1)  # stage 0 keeps the stem's stride 4, each later one halves
