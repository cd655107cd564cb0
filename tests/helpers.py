"""What the tests share, in one module: small real models built in-process, the real CLI run in a subprocess, and
the assertions every user-facing error must meet (one line, exit 2, nothing written). Fixtures stay in conftest.py;
test modules import helpers from here, never from each other."""
from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import torch

from vit_edge.core.summaries import Accuracy
from vit_edge.data.masks import MaskedImages
from vit_edge.models.vit import VisionTransformer, ViTConfig

__all__ = ["DEPTH_ANYTHING_CONFIGS", "FIXTURES", "REPO", "assert_nothing_written", "assert_one_xnnpack_partition",
           "assert_user_error", "as_patches", "copy_artifact", "cosine", "export_matching", "int8_against_fp32",
           "make_depth_anything", "DPT_CONFIGS", "make_dpt", "mask_accuracy_of_whole_logits", "moved_off_init",
           "run_cli", "small_vit", "timm_dinov3", "tmpfs"]

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"


def small_vit(distilled: bool = False, seed: int = 0, **changes: int) -> VisionTransformer:
    """A 2-block ViT on 32×32 inputs: converts in seconds yet has every op of a full-size one."""
    torch.manual_seed(seed)
    cfg = ViTConfig(img_size=32, patch_size=8, num_classes=10, embed_dim=48, depth=2, num_heads=3,
                    mlp_hidden_dim=96, distilled=distilled).with_(**changes)
    return VisionTransformer(cfg).eval()


def run_cli(*args: str, cwd: Path | None = None, prelude: str = "",
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run `vit-edge ARGS` as a user would, in a process of its own; `prelude` is Python run first in a fresh
    interpreter (e.g. to make a package unimportable); `timeout` guards against a hang, not a slow machine.

    Without a prelude the process is forked from tests/cli_zygote.py, which has imported torch and the CLI once
    (about 2 s a run saved, a few hundred runs a suite); VIT_EDGE_TEST_FRESH_CLI=1 starts a fresh interpreter
    for every run instead."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if prelude or os.environ.get("VIT_EDGE_TEST_FRESH_CLI") == "1":
        code = f"{prelude}\nimport sys\nfrom vit_edge.cli import main\nsys.exit(main({list(args)!r}))"
        return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout)
    return _ZYGOTE.run(list(args), cwd, env, timeout)


class _Zygote:
    """This worker's tests/cli_zygote.py process, started on first use and restarted if it died."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._pending = b""  # what the zygote wrote past the last line read

    def _started(self, env: dict[str, str]) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen([sys.executable, str(REPO / "tests" / "cli_zygote.py")], env=env,
                                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
            self._pending = b""
        return self._process

    def _reply(self, process: subprocess.Popen[bytes], timeout: float) -> dict[str, int]:
        """The zygote's next line, read straight from its pipe (a buffered reader would hide a line from select)."""
        assert process.stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise subprocess.TimeoutExpired("vit-edge", timeout)
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"the CLI zygote stopped (exit {process.wait()})")
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return json.loads(line)

    def run(self, args: list[str], cwd: Path | None, env: dict[str, str],
            timeout: float) -> subprocess.CompletedProcess[str]:
        process = self._started(env)
        assert process.stdin is not None
        with tempfile.TemporaryDirectory(prefix="vit-edge-cli-") as captured:
            out, err = Path(captured) / "stdout", Path(captured) / "stderr"
            out.touch(), err.touch()
            request = {"args": args, "cwd": str(cwd) if cwd else None, "env": env, "stdout": str(out),
                       "stderr": str(err)}
            process.stdin.write(json.dumps(request).encode() + b"\n")
            pid = self._reply(process, 60)["pid"]
            try:
                code = self._reply(process, timeout)["code"]
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                self._reply(process, 60)
                raise
            return subprocess.CompletedProcess(["vit-edge", *args], code, out.read_text(), err.read_text())

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()


_ZYGOTE = _Zygote()
atexit.register(_ZYGOTE.stop)


@contextlib.contextmanager
def tmpfs(mount: Path, options: str) -> Iterator[Path]:
    """A real tmpfs at `mount` ('size=1m,ro', 'size=160k'): root writes through file modes, not through a read-only
    or full mount. Skips where this machine does not allow mounting."""
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def copy_artifact(artifact: Path, out: Path) -> Path:
    """A copy of a shared artifact (conftest's session fixtures) that a test may change, break or write into."""
    shutil.copytree(artifact, out, symlinks=True)
    return out


def assert_one_xnnpack_partition(model_file: Path) -> None:
    """LiteRT + XNNPACK takes the whole graph: no op is left to the reference kernels."""
    from ai_edge_litert.interpreter import Interpreter

    from vit_edge.runtime.litert import undelegated_ops

    interpreter = Interpreter(model_path=str(model_file), num_threads=1)
    interpreter.allocate_tensors()
    assert undelegated_ops(interpreter._get_ops_details()) == []


def assert_user_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """The run failed as a user error must: exit 2, one 'vit-edge: error:' line last, no traceback, naming
    every fragment; returns the line."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in lines if line.startswith("vit-edge: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr  # progress lines may come before it
    message = errors[0]
    for fragment in fragments:
        assert fragment in message, message
    return message


def assert_nothing_written(folder: Path) -> None:
    """No output folder and no hidden partial or lock beside it."""
    assert not any(p.name.startswith(".") or p.name == "out" for p in folder.iterdir()), list(folder.iterdir())


# -- models and outputs shared by the family tests ---------------------------------------------------------
def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Each row's cosine between two (N, D) outputs."""
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def timm_dinov3(name: str, seed: int = 0, **kwargs: Any) -> torch.nn.Module:
    """A real timm DINOv3 with every tensor moved off its init (LayerScale 1e-5 → about 0.05: it matters)."""
    from tests.timm_import import import_timm

    timm = import_timm()
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False, **kwargs).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model


def moved_off_init(model: torch.nn.Module) -> torch.nn.Module:
    """`model` with every tensor moved off its init (a fresh model's symmetric weights hide layout mistakes)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model.eval()


def as_patches(x: torch.Tensor, patch: int) -> torch.Tensor:
    """What Siglip2ImageProcessor hands the model: (B, patches, patch·patch·C), patches row by row."""
    batch, channels, height, width = x.shape
    grid = x.reshape(batch, channels, height // patch, patch, width // patch, patch).permute(0, 2, 4, 3, 5, 1)
    return grid.reshape(batch, (height // patch) * (width // patch), patch * patch * channels)


def export_matching(model: torch.nn.Module, target: str, size: tuple[int, int], out: Path) -> Any:
    """The FP32 artifact of `model`, checked to give the library model's own output within 1e-4 on 3 inputs."""
    from vit_edge.api import export

    x = torch.randn(3, 3, *size)
    with torch.no_grad():
        expected = model(x).numpy()
    artifact = export(model, target, out, parity_samples=4)
    np.testing.assert_allclose(artifact.run(x.numpy()), expected, atol=1e-4, rtol=0)
    return artifact


def int8_against_fp32(model: torch.nn.Module, target: str, size: tuple[int, int], out: Path) -> tuple[Any, float]:
    """PTQ on 64 smooth images, then the artifact's worst cosine to the FP32 model on 16 others."""
    from vit_edge.api import QuantizeConfig, quantize
    from vit_edge.data.preprocess import preprocess_uint8
    from vit_edge.data.synthetic import smooth_images

    artifact = quantize(model, target, out, QuantizeConfig(smooth_images(64, size, 3, seed=1), calib_size=64),
                        parity_samples=8)
    batch = preprocess_uint8(smooth_images(16, size, 3, seed=7), artifact.manifest.input_spec)
    with torch.no_grad():
        reference = model(torch.from_numpy(batch)).numpy()
    worst = float(cosine(reference, artifact.run(batch)).min())
    print(f"{type(model).__name__} INT8 on {target}: min cosine to FP32 {worst:.5f}")
    return artifact, worst


# relative: 4 blocks all read, factors 4/2/1/0.5, 56 px; metric: the last block unread, 3 levels, sigmoid · 20, 70 px
DEPTH_ANYTHING_CONFIGS = {
    "relative": (dict(image_size=56, hidden_size=32, num_hidden_layers=4, num_attention_heads=2, mlp_ratio=2,
                      out_indices=[1, 2, 3, 4]),
                 dict(reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 24, 32], fusion_hidden_size=16,
                      head_hidden_size=8)),
    "metric": (dict(image_size=70, hidden_size=48, num_hidden_layers=4, num_attention_heads=3, mlp_ratio=2,
                    out_indices=[1, 2, 3]),
               dict(reassemble_hidden_size=48, neck_hidden_sizes=[8, 16, 32], reassemble_factors=[2, 1, 0.5],
                    fusion_hidden_size=16, head_hidden_size=8, depth_estimation_type="metric", max_depth=20)),
}


def make_depth_anything(kind: str) -> torch.nn.Module:
    """A tiny randomly initialised transformers Depth Anything (`kind`: relative | metric), moved off its init so
    LayerScale, biases and norms matter, and with PyTorch's own convolution init in the neck and head (transformers'
    std 0.02 leaves a constant map). transformers is imported here: the callers skip without it."""
    import transformers

    backbone, head = DEPTH_ANYTHING_CONFIGS[kind]

    config = transformers.DepthAnythingConfig(
        backbone_config=transformers.Dinov2Config(patch_size=14, reshape_hidden_states=False, **backbone),
        patch_size=14, **head)
    torch.manual_seed(0)
    model = transformers.DepthAnythingForDepthEstimation(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
        for module in [*model.neck.modules(), *model.head.modules()]:
            if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                module.reset_parameters()
        model.head.conv3.weight.mul_(30)  # a map that varies: sigmoid · max_depth away from a constant
    return model


# depth: readout "project", factors 4/2/1/0.5, patch 16 at 64 px (the map is the input's size); segmentation: the same
# encoder, BatchNorms in the fusion units (folded at reading), 6 classes; segmentation-add: readout "add", 3 levels,
# the first block unread, an auxiliary head (left out); depth-ignore: readout "ignore", the head reading level -2;
# depth-projection: the head's projection (transformers builds it 256 wide only)
_DPT_ENCODER = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, patch_size=16,
                    image_size=64, neck_hidden_sizes=[8, 16, 24, 32], fusion_hidden_size=16)
DPT_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "depth": ("DPTForDepthEstimation", dict(_DPT_ENCODER, backbone_out_indices=[0, 1, 2, 3])),
    "depth-ignore": ("DPTForDepthEstimation", dict(_DPT_ENCODER, backbone_out_indices=[0, 1, 2, 3],
                                                   readout_type="ignore", head_in_index=-2)),
    "depth-projection": ("DPTForDepthEstimation", dict(_DPT_ENCODER, backbone_out_indices=[0, 1, 2, 3],
                                                       fusion_hidden_size=256, add_projection=True)),
    "segmentation": ("DPTForSemanticSegmentation", dict(_DPT_ENCODER, backbone_out_indices=[3, 1, 2, 0], num_labels=6,
                                                        use_batch_norm_in_fusion_residual=True)),
    "segmentation-add": ("DPTForSemanticSegmentation", dict(
        _DPT_ENCODER, image_size=48, backbone_out_indices=[1, 2, 3], neck_hidden_sizes=[8, 16, 32],
        reassemble_factors=[2, 1, 0.5], readout_type="add", num_labels=5)),
}


def make_dpt(kind: str) -> torch.nn.Module:
    """A tiny randomly initialised transformers DPT (`kind` in DPT_CONFIGS), moved off its init, with PyTorch's own
    init for every linear and for the neck's and heads' convolutions (so the blocks change the tokens and INT8 of
    their matmuls shows), BatchNorm statistics away from (0, 1), so the folding matters; the depth head's last
    convolution scaled so the map varies. transformers is imported here: callers skip without it."""
    import transformers

    architecture, options = DPT_CONFIGS[kind]
    torch.manual_seed(0)
    model = getattr(transformers, architecture)(transformers.DPTConfig(**options)).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
        for name, module in model.named_modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and not name.startswith("dpt."):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")  # the image, not the biases, counts
                if module.bias is not None:
                    module.bias.normal_(0, 0.05)
            if isinstance(module, torch.nn.Linear):  # blocks that change the tokens (transformers' std 0.02 barely)
                module.reset_parameters()
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
        if architecture == "DPTForDepthEstimation":
            model.head.head[4].weight.mul_(30)
            model.head.head[4].bias.fill_(0.3)
    return model


def mask_accuracy_of_whole_logits(reference: np.ndarray, candidate: np.ndarray, masks: MaskedImages) -> Accuracy:
    """quantize --eval's record for a segmentation model as it was computed before it streamed (#37): from both
    models' whole logits (N, C, H, W) and `masks`, by compare_logits, mask_scores and
    segmentation_against_fp32: what quantization/dense.mask_accuracy must equal."""
    from vit_edge.core.output_kinds import OUTPUTS
    from vit_edge.core.parity import compare_logits
    from vit_edge.core.segmentation_metrics import mask_scores, segmentation_against_fp32

    compared = compare_logits(reference, candidate, OUTPUTS["segmentation"])
    fp32, int8 = mask_scores(reference, masks.masks), mask_scores(candidate, masks.masks)
    return Accuracy(images=int(len(reference)), cosine=compared.mean_cosine, min_cosine=compared.min_cosine,
                    segmentation=segmentation_against_fp32(candidate, reference),
                    fp32_miou=fp32.miou, fp32_pixel_accuracy=fp32.pixel_accuracy,
                    fp32_classes_present=fp32.classes_present, fp32_pixels=fp32.pixels,
                    int8_miou=int8.miou, int8_pixel_accuracy=int8.pixel_accuracy,
                    int8_classes_present=int8.classes_present, int8_pixels=int8.pixels, eval_data=masks.describe())
