"""Depth Anything V2 in its authors' own checkpoint layout (#37): a `depth_anything_v2_vits.pth`-style state dict
(`pretrained.*` their DINOv2, `depth_head.*` their DPTHead) loads, matches their model within 1e-4 of the output's
scale at the trained size and at other multiples of 14, and exports; what it cannot read is refused in one line.

Their model is rebuilt below from DepthAnything/Depth-Anything-V2 (depth_anything_v2/dpt.py, dinov2.py,
dinov2_layers/, util/blocks.py; metric_depth/depth_anything_v2/dpt.py for the metric head) with the same module
names, so its `state_dict()` is a real checkpoint of that layout, and its forward the reference numbers: the
position embedding resampled at every call by scale factor (patches + 0.1) / grid, each read block normed and its
class token dropped, the fusion blocks from refinenet4 down, the head's bilinear resize with aligned corners to
patches × 14, the final ReLU (relative) or sigmoid × max_depth (metric). Their encoders' sizes are too large for
a test; the tiny ones keep what the loader reads from them: 12 blocks (so blocks 2, 5, 8, 11 as for vits and vitb)
and a width split into heads of 64 (their DINOv2 in every size).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from tests.helpers import assert_user_error, run_cli
from vit_edge.api import bench, export
from vit_edge.core.errors import ConfigError, UnsupportedModelError
from vit_edge.core.options import ExportOptions
from vit_edge.data.synthetic import smooth_images
from vit_edge.models.dense_heads import DenseModel
from vit_edge.reading.loaders import load_model
from vit_edge.runtime.artifact import Artifact

pytestmark = pytest.mark.slow

BLOCKS = {12: [2, 5, 8, 11], 24: [4, 11, 17, 23], 40: [9, 19, 29, 39]}  # their intermediate_layer_idx, by depth


# ---- their model, rebuilt (same names, same arithmetic) -------------------------------------------------------------

class PatchEmbed(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=14, stride=14)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = ((q * (c // self.heads) ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwiGLUFFNFused(nn.Module):
    """vitg's FFN: hidden (int(4·dim · 2/3) + 7) // 8 · 8, silu(first half) · second half."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        hidden = (int(hidden * 2 / 3) + 7) // 8 * 8
        self.w12, self.w3 = nn.Linear(dim, 2 * hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(x1) * x2)


class LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, swiglu: bool) -> None:
        super().__init__()
        self.norm1, self.attn, self.ls1 = nn.LayerNorm(dim, eps=1e-6), Attention(dim, heads), LayerScale(dim)
        self.norm2, self.ls2 = nn.LayerNorm(dim, eps=1e-6), LayerScale(dim)
        self.mlp = SwiGLUFFNFused(dim, 4 * dim) if swiglu else Mlp(dim, 4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoVisionTransformer(nn.Module):
    def __init__(self, dim: int, depth: int, img_size: int, swiglu: bool) -> None:
        super().__init__()
        self.patch_size, self.interpolate_offset = 14, 0.1
        self.patch_embed = PatchEmbed(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, (img_size // 14) ** 2 + 1, dim))
        self.blocks = nn.ModuleList(Block(dim, dim // 64, swiglu) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mask_token = nn.Parameter(torch.zeros(1, dim))

    def interpolate_pos_encoding(self, x: torch.Tensor, w: int, h: int) -> torch.Tensor:
        npatch, n = x.shape[1] - 1, self.pos_embed.shape[1] - 1
        if npatch == n and w == h:
            return self.pos_embed
        dim, side = x.shape[-1], math.sqrt(n)
        w0, h0 = w // 14 + self.interpolate_offset, h // 14 + self.interpolate_offset
        grid = self.pos_embed[:, 1:].float().reshape(1, int(side), int(side), dim).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, scale_factor=(w0 / side, h0 / side), mode="bicubic", antialias=False)
        assert (int(w0), int(h0)) == tuple(grid.shape[-2:])
        return torch.cat((self.pos_embed[:, :1], grid.permute(0, 2, 3, 1).view(1, -1, dim)), dim=1)

    def get_intermediate_layers(self, x: torch.Tensor, n: list[int]) -> list[torch.Tensor]:
        _, _, w, h = x.shape
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), self.patch_embed(x)), dim=1)
        x = x + self.interpolate_pos_encoding(x, w, h)
        outputs = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in n:
                outputs.append(x)
        return [self.norm(out)[:, 1:] for out in outputs]  # normed, class token dropped (use_clstoken=False)


class ResidualConvUnit(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(F.relu(x)))) + x


class FeatureFusionBlock(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1)
        self.resConfUnit1, self.resConfUnit2 = ResidualConvUnit(features), ResidualConvUnit(features)

    def forward(self, *xs: torch.Tensor, size: torch.Size | None = None) -> torch.Tensor:
        output = xs[0] if len(xs) == 1 else xs[0] + self.resConfUnit1(xs[1])
        output = self.resConfUnit2(output)
        modifier = {"scale_factor": 2} if size is None else {"size": size}
        return self.out_conv(F.interpolate(output, **modifier, mode="bilinear", align_corners=True))  # type: ignore


class DPTHead(nn.Module):
    def __init__(self, in_channels: int, features: int, out_channels: list[int], metric: bool) -> None:
        super().__init__()
        self.projects = nn.ModuleList(nn.Conv2d(in_channels, c, 1) for c in out_channels)
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(out_channels[0], out_channels[0], 4, stride=4),
            nn.ConvTranspose2d(out_channels[1], out_channels[1], 2, stride=2), nn.Identity(),
            nn.Conv2d(out_channels[3], out_channels[3], 3, stride=2, padding=1)])
        self.scratch = nn.Module()
        for index, channels in enumerate(out_channels, start=1):
            setattr(self.scratch, f"layer{index}_rn", nn.Conv2d(channels, features, 3, padding=1, bias=False))
            setattr(self.scratch, f"refinenet{index}", FeatureFusionBlock(features))
        self.scratch.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
        self.scratch.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, 32, 3, padding=1), nn.ReLU(True), nn.Conv2d(32, 1, 1),
            *((nn.Sigmoid(),) if metric else (nn.ReLU(True), nn.Identity())))

    def forward(self, features: list[torch.Tensor], patch_h: int, patch_w: int) -> torch.Tensor:
        out = []
        for index, x in enumerate(features):
            x = x.permute(0, 2, 1).reshape(x.shape[0], x.shape[-1], patch_h, patch_w)
            out.append(self.resize_layers[index](self.projects[index](x)))
        s = self.scratch
        rn = [getattr(s, f"layer{i}_rn")(layer) for i, layer in enumerate(out, start=1)]
        path = s.refinenet4(rn[3], size=rn[2].shape[2:])
        path = s.refinenet3(path, rn[2], size=rn[1].shape[2:])
        path = s.refinenet2(path, rn[1], size=rn[0].shape[2:])
        path = s.refinenet1(path, rn[0])
        out_map = F.interpolate(s.output_conv1(path), (patch_h * 14, patch_w * 14), mode="bilinear",
                                align_corners=True)
        return s.output_conv2(out_map)


class DepthAnythingV2(nn.Module):
    """Their top-level model: relative (ReLU) or, with `max_depth`, metric_depth's (sigmoid × max_depth)."""

    def __init__(self, dim: int, depth: int, features: int, out_channels: list[int], img_size: int = 518,
                 max_depth: float | None = None, swiglu: bool = False) -> None:
        super().__init__()
        self.max_depth, self.layers = max_depth, BLOCKS[depth]
        self.pretrained = DinoVisionTransformer(dim, depth, img_size, swiglu)
        self.depth_head = DPTHead(dim, features, out_channels, metric=max_depth is not None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patch_h, patch_w = x.shape[-2] // 14, x.shape[-1] // 14
        depth = self.depth_head(self.pretrained.get_intermediate_layers(x, self.layers), patch_h, patch_w)
        depth = F.relu(depth) if self.max_depth is None else depth * self.max_depth
        return depth.squeeze(1)


def their_model(max_depth: float | None = None, swiglu: bool = False, dim: int = 64, img_size: int = 70,
                features: int = 16, out_channels: tuple[int, ...] = (8, 16, 24, 32)) -> DepthAnythingV2:
    """A tiny randomly initialised one, moved off its init (LayerScale, norms and biases matter) with a last
    convolution large enough for a depth map that varies."""
    torch.manual_seed(1)
    model = DepthAnythingV2(dim, 12, features, list(out_channels), img_size, max_depth, swiglu).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
        model.pretrained.pos_embed.normal_(0, 0.5)
        model.depth_head.scratch.output_conv2[2].weight.mul_(30)
    return model


def relative_difference(got: np.ndarray | torch.Tensor, expected: torch.Tensor) -> float:
    expected_np = expected.numpy()
    return float(np.abs(np.asarray(got) - expected_np).max() / np.abs(expected_np).max())


def _theirs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


def _save(model: nn.Module, path: Path) -> Path:
    torch.save(model.state_dict(), path)
    return path


# ---- the tests ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["relative", "metric", "swiglu"])
def test_loads_and_matches_their_model(variant: str, tmp_path: Path) -> None:
    """At the trained size (no resampling) and at two others (their offset resampling, one of them not square)."""
    theirs = their_model(max_depth=20.0 if variant == "metric" else None, swiglu=variant == "swiglu")
    name = "depth_anything_v2_metric_hypersim_vits.pth" if variant == "metric" else "depth_anything_v2_vits.pth"
    path = _save(theirs, tmp_path / name)
    for size in (None, 56, (42, 84)):
        loaded = load_model(path, img_size=size, max_depth=20.0 if variant == "metric" else None)
        assert isinstance(loaded.model, DenseModel) and loaded.kind == "depth-anything-v2"
        height, width = (70, 70) if size is None else (size, size) if isinstance(size, int) else size
        x = torch.randn(2, 3, height, width)
        expected = _theirs(theirs, x)
        assert expected.shape == (2, height, width) and float(expected.std()) > 0.01 * float(expected.abs().max())
        with torch.no_grad():
            assert relative_difference(loaded.model(x), expected) < 1e-4, (variant, size)
        assert loaded.spec.height == height and loaded.spec.width == width
    checkpoint = loaded.source.v2_checkpoint
    assert checkpoint is not None and checkpoint.blocks_read == (2, 5, 8, 11)
    assert loaded.source.pos_embed_resampled_from == 70
    assert checkpoint.max_depth == (20.0 if variant == "metric" else None)
    assert loaded.model.cfg.encoder.num_heads == 1 and loaded.model.cfg.head.metric == (variant == "metric")


def test_their_vits_sizes_are_read_from_the_weights(tmp_path: Path) -> None:
    """Their vits exactly (384 wide, 6 heads, features 64, out_channels 48/96/192/384, 518 px pos_embed), at 98 px:
    nothing but the file is given."""
    theirs = their_model(dim=384, img_size=518, features=64, out_channels=(48, 96, 192, 384))
    path = _save(theirs, tmp_path / "depth_anything_v2_vits.pth")
    loaded = load_model(path, img_size=98)
    assert loaded.source.v2_checkpoint is not None and loaded.source.v2_checkpoint.encoder == "vits"
    assert loaded.model.cfg.encoder.num_heads == 6
    assert loaded.model.cfg.neck.channels == (48, 96, 192, 384) and loaded.model.cfg.neck.fusion_dim == 64
    x = torch.randn(1, 3, 98, 98)
    with torch.no_grad():
        assert relative_difference(loaded.model(x), _theirs(theirs, x)) < 1e-4
    assert load_model(path).spec.img_size == 518  # the trained size by default


def test_cli_exports_their_checkpoint_and_bench_rebuilds_it(tmp_path: Path) -> None:
    theirs = their_model(max_depth=80.0)
    path = _save(theirs, tmp_path / "depth_anything_v2_metric_vkitti_vits.pth")
    out = tmp_path / "onnx"
    result = run_cli("export", str(path), "--target", "onnx", "--max-depth", "80", "--img-size", "56", "--out",
                     str(out), "--parity-samples", "2")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parity"]["passed"] and manifest["source"]["kind"] == "depth-anything-v2"
    assert manifest["source"]["max_depth"] == 80.0 and manifest["parity"]["output"] == "depth"
    x = torch.randn(2, 3, 56, 56)
    assert relative_difference(Artifact.open(out).run(x.numpy()), _theirs(theirs, x)) < 1e-4
    assert Artifact.open(out).manifest.model_facts.metric_depth  # ground truth is compared in metres, unaligned
    (tmp_path / "images").mkdir()
    for index, image in enumerate(smooth_images(3, 56, 3)):
        Image.fromarray(image).save(tmp_path / "images" / f"{index}.png")
    record, = bench([out], data=str(tmp_path / "images"), reference="pytorch", runs=2, warmup=0, min_seconds=0.0)
    assert record.status == "ok" and record.extra["depth_abs_rel"] < 1e-4, record  # rebuilt with max_depth 80


# Once read, their checkpoint is the DenseModel Depth Anything V1 is (test_depth_anything.py exports that to every
# target, test_depth_head_int8.py quantizes it on every target): one more converter here, the strictest op set
@pytest.mark.parametrize("target", ["tflite"])
def test_other_targets_export_their_checkpoint(target: str, tmp_path: Path) -> None:
    theirs = their_model()
    artifact = export(_save(theirs, tmp_path / "depth_anything_v2_vits.pth"), target, tmp_path / target,
                      img_size=56, parity_samples=1)
    x = torch.randn(2, 3, 56, 56)
    assert relative_difference(artifact.run(x.numpy()), _theirs(theirs, x)) < 1e-4


def test_what_it_cannot_read_is_refused_in_one_line(tmp_path: Path) -> None:
    state = their_model().state_dict()
    metric = _save(their_model(max_depth=20.0), tmp_path / "depth_anything_v2_metric_hypersim_vits.pth")
    assert_user_error(run_cli("export", str(metric), "--target", "onnx", "--out", str(tmp_path / "a")),
                      "looks like a metric Depth Anything V2 checkpoint", "--max-depth")
    cases = {
        "readout": ({**state, "depth_head.readout_projects.0.0.weight": torch.zeros(64, 128)}, "use_clstoken=True"),
        "bn": ({**state, "depth_head.scratch.refinenet1.resConfUnit1.bn1.weight": torch.ones(16)}, "use_bn=True"),
        "depth": ({k: v for k, v in state.items() if not k.startswith("pretrained.blocks.11.")},
                  "64-wide encoder of 11 blocks is none of the encoders"),
        "extra": ({**state, "depth_head.scratch.stem.weight": torch.zeros(3)}, "have no place"),
        "partial": ({k: v for k, v in state.items() if "depth_head.projects.3." not in k}, "lacks depth_head tensors"),
    }
    for name, (hostile, words) in cases.items():
        torch.save(hostile, tmp_path / f"{name}.pth")
        assert_user_error(run_cli("export", str(tmp_path / f"{name}.pth"), "--target", "onnx", "--out",
                                  str(tmp_path / name)), words)
    v1 = _save(their_model(), tmp_path / "depth_anything_vits14.pth")  # V1's release: same names, other blocks
    with pytest.raises(UnsupportedModelError, match="Depth Anything V1 checkpoint"):
        load_model(v1)
    plain = _save(their_model(), tmp_path / "depth_anything_v2_vits.pth")
    with pytest.raises(ConfigError, match="multiple of the patch size 14"):
        load_model(plain, img_size=60)
    with pytest.raises(ConfigError, match="max_depth must be a positive number"):
        load_model(plain, max_depth=-1.0)
    with pytest.raises(ConfigError, match="--max-depth applies to Depth Anything V2 checkpoints"):
        load_model("vit_tiny_patch16", random_init=True, max_depth=20.0)
    with pytest.raises(ConfigError, match="max_depth must be a positive number of metres"):
        ExportOptions("onnx", max_depth="80")
    assert_user_error(run_cli("export", str(plain), "--target", "onnx", "--max-depth", "0", "--out",
                              str(tmp_path / "zero")), "--max-depth")
    with pytest.raises(ConfigError, match="--dynamic-size is not built for a Depth Anything V2 checkpoint"):
        load_model(plain, dynamic_size=True)  # their offset resampling is done once, at load
    assert_user_error(run_cli("export", str(plain), "--target", "onnx", "--dynamic-size", "--out",
                              str(tmp_path / "dynamic")), "--dynamic-size is not built for a Depth Anything V2")
    assert not (tmp_path / "zero").exists() and not (tmp_path / "dynamic").exists()
    with pytest.raises(UnsupportedModelError, match="not built yet for a dense model"):
        _ = load_model(plain).vit
