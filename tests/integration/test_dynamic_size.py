"""Input size at run time (#37, item 5): ONNX and OpenVINO artifacts of Depth Anything (and of a ViT's patch
features) take any height and width that are multiples of the patch, the position table resampled inside the graph
as transformers does (bicubic, no antialiasing: ONNX Resize cubic, a = -0.75, half_pixel); they match
transformers' DepthAnythingForDepthEstimation within 1e-4 of the output's scale at three sizes, photos are resized
as its processor resizes them (aspect ratio kept, sides multiples of 14), and what cannot be is refused in one line.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.helpers import assert_nothing_written, assert_user_error, make_depth_anything, run_cli, small_vit
from vit_edge.api import bench, export, preprocess, quantize
from vit_edge.core.errors import ConfigError, DataError
from vit_edge.data.synthetic import smooth_images
from vit_edge.reading.loaders import load_model
from vit_edge.runtime.artifact import Artifact

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.slow

SIZES = [(56, 56), (70, 98), (112, 84)]  # the config's size, wider, taller: each a multiple of the patch (14)
# what the Hub's Depth Anything (V1 and V2) folders carry: DPTImageProcessor keeping the aspect ratio
PROCESSOR = {"do_normalize": True, "do_pad": False, "do_rescale": True, "do_resize": True, "ensure_multiple_of": 14,
             "image_mean": [0.485, 0.456, 0.406], "image_processor_type": "DPTImageProcessor",
             "image_std": [0.229, 0.224, 0.225], "keep_aspect_ratio": True, "resample": 3,
             "rescale_factor": 1 / 255, "size": {"height": 518, "width": 518}}


def relative_difference(got: np.ndarray, expected: np.ndarray) -> float:
    """Max abs difference over the output's max abs value (the issue's 1e-4 yardstick)."""
    return float(np.abs(np.asarray(got) - expected).max() / np.abs(expected).max())


def _depth(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(pixel_values=torch.from_numpy(x)).predicted_depth.numpy()


@pytest.fixture(scope="module")
def depth(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    """The tiny Depth Anything saved as a Hub folder is: weights, config, the processor's config."""
    model = make_depth_anything("relative")
    folder = tmp_path_factory.mktemp("depth_anything")
    model.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(PROCESSOR))
    return model, folder


@pytest.fixture(scope="module")
def artifacts(depth: tuple[torch.nn.Module, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Artifact]:
    _, folder = depth
    root = tmp_path_factory.mktemp("dynamic")
    return {target: export(folder, target, root / target, dynamic_size=True, parity_samples=2)
            for target in ("onnx", "openvino")}


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_matches_transformers_at_three_sizes(depth: tuple[torch.nn.Module, Path], artifacts: dict[str, Artifact],
                                             target: str) -> None:
    hf, folder = depth
    artifact = artifacts[target]
    reference = load_model(folder, dynamic_size=True).model  # vit-edge's PyTorch model, as exported
    for height, width in SIZES:
        x = np.random.default_rng(height + width).standard_normal((2, 3, height, width)).astype(np.float32)
        expected = _depth(hf, x)
        got = artifact.run(x)
        assert got.shape == (2, height, width)
        assert relative_difference(got, expected) < 1e-4, (target, height, width)
        with torch.no_grad():
            assert relative_difference(reference(torch.from_numpy(x)).numpy(), expected) < 1e-4


def test_the_manifest_says_any_size_and_parity_ran_at_three(artifacts: dict[str, Artifact]) -> None:
    for target, artifact in artifacts.items():
        manifest = artifact.manifest
        spec = manifest.input_spec
        assert spec.size_multiple == 14 and spec.img_size == 518 and spec.keeps_aspect, target
        architecture, parity = manifest.source.architecture, manifest.parity
        assert architecture is not None and architecture["dynamic_size"] and manifest.model_ref.dynamic_size
        assert "dynamic_size" in manifest.export_options and manifest.source.output_shape == (518, 518)
        others = parity.other_sizes if parity is not None else None
        assert others is not None and [entry.size for entry in others] == [(546, 504), (504, 560)]
        assert all(entry.passed for entry in others)
        assert parity is not None and parity.passed and parity.samples == 2
    info = run_cli("info", str(artifacts["onnx"].path))
    assert info.returncode == 0, info.stderr
    assert "any height and width that are multiples of 14 (28 at least), (1, 3, 518, 518) by default" in info.stdout
    assert "and at 546x504, 504x560" in info.stdout, info.stdout


def test_a_size_off_the_patch_is_one_line(artifacts: dict[str, Artifact]) -> None:
    artifact = artifacts["onnx"]
    for shape in [(1, 3, 50, 56), (1, 3, 14, 56)]:  # off the patch; one patch high (two at least)
        with pytest.raises(DataError, match="multiples of 14 .the patch., 28 at least") as caught:
            artifact.run(np.zeros(shape, np.float32))
        assert "\n" not in str(caught.value) and f"{shape[2]}x{shape[3]}" in str(caught.value)
    with pytest.raises(DataError, match=r"NCHW \(N, 3, H, W\), H and W multiples of 14.*looks like NHWC"):
        artifact.run(np.zeros((1, 518, 518, 3), np.float32))


def _photos(folder: Path) -> list[Path]:
    """Photo-sized files as users have them: a landscape RGB JPEG, a portrait grey JPEG, a wide RGBA PNG (random
    alpha: dropped, as transformers' load_image and torchvision's loader drop it)."""
    from PIL import Image

    folder.mkdir(exist_ok=True)
    paths = []
    for (width, height), mode, suffix in [((640, 480), "RGB", "jpg"), ((480, 640), "L", "jpg"),
                                          ((1000, 333), "RGBA", "png")]:
        pixels = smooth_images(1, (height, width), 4, seed=width)[0]
        pixels[..., 3] = np.random.default_rng(width).integers(0, 256, (height, width))
        image = Image.fromarray({"RGB": pixels[..., :3], "L": pixels[..., 0], "RGBA": pixels}[mode], mode)
        paths.append(folder / f"{width}x{height}_{mode}.{suffix}")
        image.save(paths[-1])
    return paths


def _processor(**changes: Any) -> Any:
    """transformers' DPT processor (its PIL backend: torchvision is not installed) with the folder's config."""
    fields = {k: v for k, v in PROCESSOR.items() if k not in ("image_processor_type", "do_pad")}
    return transformers.DPTImageProcessorPil(**{**fields, **changes})


def test_photos_are_resized_as_the_processor_does(depth: tuple[torch.nn.Module, Path],
                                                 artifacts: dict[str, Artifact], tmp_path: Path) -> None:
    from transformers.image_utils import load_image

    hf, _ = depth
    artifact = artifacts["openvino"]
    processor = _processor()
    for path, shape in zip(_photos(tmp_path), [(518, 686), (686, 518), (168, 518)]):
        expected = processor(images=load_image(str(path)), return_tensors="np")["pixel_values"]
        batch = preprocess([path], artifact)
        assert batch.shape == expected.shape == (1, 3, *shape), path.name
        np.testing.assert_allclose(batch, expected, atol=1e-6, rtol=0)
        assert relative_difference(artifact.run([path]), _depth(hf, expected)) < 1e-4, path.name
    with pytest.raises(DataError, match="become inputs of 3 sizes .168x518, 518x686, 686x518.*one at a time"):
        preprocess(_photos(tmp_path), artifact)


def test_keep_aspect_sizes_are_transformers_own() -> None:
    """The arithmetic against transformers' get_resize_output_image_size on many photo shapes (Python's round: a
    tie goes to the even multiple); the one deviation is the two-patch floor of a thin panorama."""
    from transformers.models.dpt.image_processing_pil_dpt import get_resize_output_image_size

    from vit_edge.core.types import InputSpec
    from vit_edge.data.preprocess import keep_aspect_size

    spec = InputSpec(img_size=518, size_multiple=14, keep_aspect_ratio=True, ensure_multiple_of=14)
    shapes = [(w, h) for w in range(97, 4000, 89) for h in range(101, 3000, 97)]
    for width, height in shapes:
        expected = get_resize_output_image_size(np.zeros((3, height, width)), (518, 518), True, 14)
        floor = [max(side, 28) for side in (expected.width, expected.height)]
        assert keep_aspect_size(width, height, spec) == tuple(floor), (width, height)
    assert keep_aspect_size(3000, 100, spec) == (518, 28)  # transformers: 14 rows, one patch


def test_the_default_folder_names_it() -> None:
    from vit_edge.core.options import ExportOptions
    from vit_edge.pipeline.checks import default_output_dir

    options = ExportOptions(target="onnx", dynamic_size=True)
    assert default_output_dir("path/to/depth-anything", options).name == "depth-anything-onnx-fp32-dynamic"


def test_fixed_size_models_squash_photos_as_before(depth: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    """Without --dynamic-size the processor's keep-aspect resize cannot be honoured (every input is 518x518): photos
    are squashed to the size, as transformers' processor does with keep_aspect_ratio off."""
    from transformers.image_utils import load_image

    from vit_edge.data.batch import as_batch

    _, folder = depth
    fixed = load_model(folder).spec
    assert fixed.keep_aspect_ratio and not fixed.size_multiple and not fixed.keeps_aspect
    squash = _processor(keep_aspect_ratio=False)
    path = _photos(tmp_path)[0]
    expected = squash(images=load_image(str(path)), return_tensors="np")["pixel_values"]
    np.testing.assert_allclose(as_batch([path], fixed), expected, atol=1e-6, rtol=0)


def test_bench_runs_at_the_default_size_against_pytorch(depth: tuple[torch.nn.Module, Path],
                                                       artifacts: dict[str, Artifact], tmp_path: Path) -> None:
    _photos(tmp_path / "photos")
    record, = bench([artifacts["onnx"].path], data=str(tmp_path / "photos"), reference="pytorch", runs=2, warmup=0,
                    min_seconds=0.0)
    assert record.status == "ok", record
    assert record.extra["depth_abs_rel"] < 1e-4, record.extra  # the same model, rebuilt any-size in PyTorch


def test_int8_keeps_any_size(depth: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    """INT8 (the encoder's matmuls, static scales) holds the position table's resampling in float: the artifact
    matches its PyTorch simulation at every size (checked at export) and stays near FP32."""
    hf, folder = depth
    calib = smooth_images(8, 56, 3, seed=1)
    artifact = quantize(folder, "onnx", tmp_path / "int8", calib=calib, calib_size=8, dynamic_size=True,
                        img_size=56, parity_samples=1)  # the default size 56 (the processor's 518 is slow here)
    parity = artifact.manifest.parity
    assert parity is not None and [entry.passed for entry in parity.other_sizes or ()] == [True, True]
    assert artifact.manifest.input_spec.img_size == 56 and artifact.manifest.quantization is not None
    for height, width in SIZES[1:]:
        x = np.random.default_rng(height).standard_normal((1, 3, height, width)).astype(np.float32)
        assert relative_difference(artifact.run(x), _depth(hf, x)) < 0.05


def test_vit_patch_features_take_any_size(tmp_path: Path) -> None:
    """It comes for free to a ViT's dense output: transformers' DINOv2 patch tokens (after its final norm) at three
    sizes from one ONNX file taking NHWC images; the default is the checkpoint's own 28 px."""
    torch.manual_seed(0)
    hf = transformers.Dinov2Model(transformers.Dinov2Config(hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
                                                            mlp_ratio=2, image_size=28, patch_size=14)).eval()
    with torch.no_grad():
        for param in hf.parameters():
            param.add_(0.05 * torch.randn_like(param))
    artifact = export(hf, "onnx", tmp_path / "features", output="features", dynamic_size=True, layout="nhwc",
                      parity_samples=2)
    assert artifact.manifest.source.output_shape == (48, 2, 2)
    for height, width in SIZES:
        x = np.random.default_rng(height).standard_normal((2, 3, height, width)).astype(np.float32)
        with torch.no_grad():
            tokens = hf(pixel_values=torch.from_numpy(x)).last_hidden_state[:, 1:]
        expected = tokens.transpose(1, 2).reshape(2, 48, height // 14, width // 14).numpy()
        assert relative_difference(artifact.run(x.transpose(0, 2, 3, 1)), expected) < 1e-4, (height, width)


def test_what_keeps_one_size_is_refused_in_one_line(depth: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    _, folder = depth
    for target in ("tflite", "executorch"):
        out = tmp_path / target
        assert_user_error(run_cli("export", str(folder), "--target", target, "--dynamic-size", "--out", str(out)),
                          "--dynamic-size applies to --target onnx or --target openvino only")
    assert_nothing_written(tmp_path)
    assert_user_error(run_cli("export", str(folder), "--target", "onnx", "--dynamic-size", "--img-size", "14",
                              "--out", str(tmp_path / "small")), "default input size 14x14", "28 at least")
    with pytest.raises(ConfigError, match="dynamic.size: .*token merging fixes the token count"):
        load_model("vit_tiny_patch16", random_init=True, merge=2, dynamic_size=True)
    with pytest.raises(ConfigError, match="dynamic.size.*rotary tables are built for one patch grid"):
        export("timm:vit_small_patch16_dinov3", "onnx", tmp_path / "rope", random_init=True, dynamic_size=True)
    with pytest.raises(ConfigError, match="through ONNX, and OpenVINO's ONNX reader resizes this model's position"):
        quantize(small_vit(), "openvino", tmp_path / "ov-int8", calib=smooth_images(8, 32, 3), calib_size=8,
                 dynamic_size=True)  # timm's antialiased resampling (the float IR is converted from PyTorch)
    assert not (tmp_path / "ov-int8").exists()
