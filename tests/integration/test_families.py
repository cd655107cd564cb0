"""Every family end to end: export verified in the runtime, the ONNX output against the real library's output,
INT8 agreeing with FP32, and bad input refused in one line.

No cross product: every family goes through ONNX (the golden check), a few through all three targets, and INT8
takes one target per family in turn (TFLite where the XNNPACK whole-graph property is checked). The rotary
families (DINOv3, EVA-02, PE) and AIMv2, SigLIP 2 and MetaCLIP 2 then go through every target against real timm's
and transformers' outputs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import (
    FIXTURES,
    as_patches,
    assert_nothing_written,
    assert_one_xnnpack_partition,
    assert_user_error,
    cosine,
    export_matching,
    int8_against_fp32,
    moved_off_init,
    run_cli,
    timm_dinov3,
)
from tests.unit.test_models_hybrid import small_hybrid_model
from tests.unit.test_reading_timm import FAMILIES, family_model
from tests.unit.test_reading_transreid import transreid_state
from vit_edge.api import Artifact, QuantizeConfig, export, quantize
from vit_edge.core.targets import TARGETS
from vit_edge.data.synthetic import smooth_images

pytestmark = pytest.mark.slow
INT8_TARGET = {"hybrid": "tflite", "deit3": "tflite", "dinov2": "openvino", "dinov2_reg": "tflite", "clip": "onnx",
               "siglip": "tflite", "reg_gap": "openvino", "qknorm_swiglu": "onnx", "nonsquare": "tflite"}


def any_family(family: str) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """The timm-made model of `family` and its golden inputs and outputs (the hybrid has its own fixture)."""
    if family != "hybrid":
        return family_model(family)
    from safetensors.torch import load_file

    io = load_file(str(FIXTURES / "timm_hybrid_io.safetensors"))
    return small_hybrid_model(), {"inputs": io["inputs"].float(), "output": io["logits"]}





@pytest.mark.parametrize("family", sorted(FAMILIES) + ["hybrid"])
def test_onnx_matches_timm(family: str, tmp_path: Path) -> None:
    model, io = any_family(family)
    artifact = export(model, "onnx", tmp_path / "a", parity_samples=4)
    assert artifact.manifest.parity.passed
    np.testing.assert_allclose(artifact.run(io["inputs"].numpy()), io["output"].numpy(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("family", ["siglip", "dinov2_reg", "nonsquare", "hybrid"])
@pytest.mark.parametrize("target", ["openvino", "tflite"])
def test_other_targets_pass_parity(family: str, target: str, tmp_path: Path) -> None:
    model, io = any_family(family)
    artifact = export(model, target, tmp_path / "a", parity_samples=4)
    assert artifact.manifest.parity.passed and artifact.manifest.source.architecture["global_pool"]
    np.testing.assert_allclose(artifact.run(io["inputs"].numpy()), io["output"].numpy(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("family", sorted(INT8_TARGET))
def test_int8_agrees_with_fp32(family: str, tmp_path: Path) -> None:
    model, io = any_family(family)
    target = INT8_TARGET[family]
    calib = smooth_images(64, model.cfg.image_hw, 3, seed=1)
    artifact = quantize(model, target, tmp_path / "q", QuantizeConfig(calib, calib_size=64), parity_samples=8)
    summary = artifact.manifest.quantization
    assert len(summary.int8_matmuls) >= 6 * model.cfg.depth
    if family == "siglip":  # the MAP head quantizes like a block
        assert {"attn_pool.q", "attn_pool.kv", "attn_pool.qk", "attn_pool.av", "attn_pool.mlp.fc1"} <= set(
            summary.int8_matmuls)
    images = smooth_images(16, model.cfg.image_hw, 3, seed=7)
    from vit_edge.data.preprocess import preprocess_uint8

    batch = preprocess_uint8(images, artifact.manifest.input_spec)
    with torch.no_grad():
        reference = model(torch.from_numpy(batch)).numpy()
    assert cosine(reference, artifact.run(batch)).min() > 0.995
    if target == "tflite":
        assert_one_xnnpack_partition(artifact.path / "model.tflite")


def test_hf_encoders_export_and_match_transformers(tmp_path: Path) -> None:
    """In-memory transformers modules (CLIP with projection, SigLIP): ONNX output = transformers' own."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    small = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=96, image_size=32,
                 patch_size=8)
    modules = {"clip": transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(**small,
                                                                                                 projection_dim=16)),
               "siglip": transformers.SiglipVisionModel(transformers.SiglipVisionConfig(**small))}
    x = torch.randn(3, 3, 32, 32)
    for name, module in modules.items():
        module.eval()
        with torch.no_grad():
            out = module(pixel_values=x)
        expected = out.image_embeds if name == "clip" else out.pooler_output
        artifact = export(module, "onnx", tmp_path / name, parity_samples=4)
        np.testing.assert_allclose(artifact.run(x.numpy()), expected.numpy(), atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def transreid_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TransReID-shaped checkpoint at its real geometry (256×128, stride 12), small width and depth."""
    path = tmp_path_factory.mktemp("reid") / "transformer_120.pth"
    torch.save(transreid_state(dim=128, depth=2, sie_rows=6, img=(256, 128), stride=12), path)
    return path


@pytest.mark.parametrize("target", ["onnx", "openvino", "tflite"])
def test_transreid_end_to_end(transreid_file: Path, target: str, tmp_path: Path) -> None:
    from vit_edge.api import info
    from vit_edge.reading.loaders import ReIDSelection, load_model

    out = tmp_path / "reid"
    result = run_cli("export", str(transreid_file), "--target", target, "--out", str(out), "--camera", "4",
                     "--parity-samples", "4")
    assert result.returncode == 0, result.stderr
    manifest = info(out)
    assert manifest.input_spec.shape(1) == (1, 3, 256, 128)
    assert manifest.source.reid.camera == 4 and manifest.source.family == "transreid"
    model = load_model(transreid_file, reid=ReIDSelection(camera=4)).model
    images = torch.randn(2, 3, 256, 128)
    with torch.no_grad():
        expected = model(images).numpy()
    np.testing.assert_allclose(Artifact.open(out).run(images.numpy()), expected, atol=1e-4, rtol=0)
    assert expected.shape == (2, 128)  # the BNNeck feature, no classifier


def test_unsupported_feature_is_refused_in_one_line(tmp_path: Path) -> None:
    result = run_cli("export", "timm:beit3_base_patch16_224", "--random-init", "--target", "onnx",
                     "--out", str(tmp_path / "out"))
    assert_user_error(result, "a norm inside attention", "nearest that loads")
    assert_nothing_written(tmp_path)


def test_keys_of_no_family_are_refused(tmp_path: Path) -> None:
    torch.save({"backbone.layer1.0.conv1.weight": torch.zeros(8, 3, 3, 3)}, tmp_path / "resnet.pth")
    result = run_cli("export", str(tmp_path / "resnet.pth"), "--target", "onnx", "--out", str(tmp_path / "out"))
    assert_user_error(result, "not a vit-edge checkpoint")
    result = run_cli("export", "timm:deit3_small_patch16_224", "--weights", str(tmp_path / "resnet.pth"),
                     "--target", "onnx", "--out", str(tmp_path / "out"))
    assert_user_error(result, "do not fit the architecture")
    assert_nothing_written(tmp_path)


def test_impossible_sizes_are_refused(tmp_path: Path, transreid_file: Path) -> None:
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text('{"architectures": ["Dinov2Model"], "hidden_size": 50, "num_hidden_layers": 2, '
                                    '"num_attention_heads": 3, "image_size": 28, "patch_size": 14}')
    result = run_cli("export", str(hf), "--target", "onnx", "--out", str(tmp_path / "out"))
    assert_user_error(result, "divisible")
    result = run_cli("export", str(transreid_file), "--camera", "9", "--target", "onnx",
                     "--out", str(tmp_path / "out"))
    assert_user_error(result, "camera 9")
    result = run_cli("export", "timm:vit_small_patch14_dinov2", "--random-init", "--img-size", "100x50",
                     "--target", "onnx", "--out", str(tmp_path / "out"))
    assert_user_error(result, "multiple of the patch size 14")
    assert_nothing_written(tmp_path)


def test_sizes_beyond_any_vit_are_refused_before_allocating(tmp_path: Path) -> None:
    """A config asking for a million-pixel image would allocate hundreds of GB: one line instead."""
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text('{"architectures": ["ViTModel"], "hidden_size": 768, "num_hidden_layers": 12, '
                                    '"num_attention_heads": 12, "intermediate_size": 3072, "image_size": 1000000}')
    torch.save({}, hf / "pytorch_model.bin")
    assert_user_error(run_cli("export", str(hf), "--target", "onnx", "--out", str(tmp_path / "out")),
                      "over 8192 px per side")
    assert_user_error(run_cli("export", "timm:vit_small_patch16_224", "--random-init", "--img-size", "16384",
                              "--target", "onnx", "--out", str(tmp_path / "out")), "over 8192 px")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]  # no output, no partial folder beside it


def test_hybrid_stem_at_the_released_width_is_one_xnnpack_partition(tmp_path: Path) -> None:
    """GroupNorm over groups of several channels (width 64, as every released hybrid): torch's group_norm lowered
    to BROADCAST_TO ops that XNNPACK left to the CPU; the written-out GroupNorm keeps the graph whole."""
    from ai_edge_litert.interpreter import Interpreter

    from vit_edge.models.vit import VisionTransformer, ViTConfig
    from vit_edge.runtime.litert import undelegated_ops

    torch.manual_seed(0)
    cfg = ViTConfig(img_size=64, patch_size=1, embed_dim=48, depth=1, num_heads=3, mlp_hidden_dim=96, num_classes=10,
                    hybrid=(1,), hybrid_width=64)
    artifact = export(VisionTransformer(cfg).eval(), "tflite", tmp_path / "t", parity_samples=2)
    interpreter = Interpreter(model_path=str(artifact.path / "model.tflite"), num_threads=1)
    interpreter.allocate_tensors()
    assert undelegated_ops(interpreter._get_ops_details()) == []


# --- DINOv3, EVA-02, PE on every target (was test_rope_targets.py): the rotation is constant tables and elementwise
# multiply-adds, so each runtime computes real timm's output (FP32 within 1e-4) and INT8 agrees with FP32; TFLite
# stays one XNNPACK partition ---

@pytest.fixture(scope="module")
def dinov3() -> torch.nn.Module:
    """DINOv3-S/16's layout (4 registers, rotary only, LayerScale), 2 blocks, on a non-square 48×64 input."""
    return timm_dinov3("vit_small_patch16_dinov3_qkvb", depth=2, img_size=(48, 64), num_classes=0,
                       global_pool="token")


@pytest.mark.parametrize("target", list(TARGETS))
def test_dinov3_fp32_matches_timm_in_each_runtime(dinov3: torch.nn.Module, target: str, tmp_path: Path) -> None:
    artifact = export(dinov3, target, tmp_path / "a", parity_samples=4)
    assert artifact.manifest.parity.passed and artifact.manifest.source.architecture["rope"] == "dinov3"
    x = torch.randn(3, 3, 48, 64)
    with torch.no_grad():
        expected = dinov3(x).numpy()
    np.testing.assert_allclose(artifact.run(x.numpy()), expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("target", list(TARGETS))
def test_dinov3_int8_agrees_with_fp32(dinov3: torch.nn.Module, target: str, tmp_path: Path) -> None:
    artifact, worst = int8_against_fp32(dinov3, target, (48, 64), tmp_path / "q")
    assert len(artifact.manifest.quantization.int8_matmuls) >= 6 * 2 and worst > 0.99
    if target == "tflite":
        assert_one_xnnpack_partition(artifact.path / "model.tflite")


def test_cli_exports_a_dinov3_name_with_its_weights(tmp_path: Path) -> None:
    """What a user types: `vit-edge export timm:vit_small_patch16_dinov3 --weights W` (full size, 256 px)."""
    from tests.helpers import run_cli
    from vit_edge.api import Artifact

    reference = timm_dinov3("vit_small_patch16_dinov3", num_classes=0)
    torch.save(reference.state_dict(), tmp_path / "w.pth")
    out = tmp_path / "art"
    result = run_cli("export", "timm:vit_small_patch16_dinov3", "--weights", str(tmp_path / "w.pth"), "--target",
                     "onnx", "--out", str(out), "--parity-samples", "2")
    assert result.returncode == 0, result.stderr
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        expected = reference(x).numpy()
    np.testing.assert_allclose(Artifact.open(out).run(x.numpy()), expected, atol=1e-4, rtol=0)
    info = run_cli("info", str(out))
    assert info.returncode == 0 and "dinov3" in info.stdout, info.stdout


@pytest.fixture(scope="module")
def eva02() -> torch.nn.Module:
    """EVA-02-B's layout (absolute + interleaved rotary embeddings, unfused q/k/v, SwiGLU with its inner norm)."""
    return timm_dinov3("eva02_base_patch14_224", depth=2, img_size=42, ref_feat_shape=(16, 16), num_classes=6)


@pytest.mark.parametrize("target", list(TARGETS))
def test_eva02_fp32_matches_timm_and_int8_agrees(eva02: torch.nn.Module, target: str, tmp_path: Path) -> None:
    export_matching(eva02, target, (42, 42), tmp_path / "a")
    if target != "tflite":
        return
    quantized, worst = int8_against_fp32(eva02, target, (42, 42), tmp_path / "q")
    assert worst > 0.99
    assert_one_xnnpack_partition(quantized.path / "model.tflite")


@pytest.fixture(scope="module")
def perception_encoder() -> torch.nn.Module:
    """PE-core-T's layout: class token, offset-1 xy rotation rescaled to its 24×24 pretraining grid, an 8-head
    MAP head over every token and the image projection, at 64 px and 2 blocks."""
    return timm_dinov3("vit_pe_core_tiny_patch16_384", depth=2, img_size=64)


@pytest.mark.parametrize("target", list(TARGETS))
def test_perception_encoder_fp32_matches_timm(perception_encoder: torch.nn.Module, target: str,
                                              tmp_path: Path) -> None:
    artifact = export_matching(perception_encoder, target, (64, 64), tmp_path / "a")
    assert artifact.manifest.source.family == "pe"


@pytest.mark.parametrize("target", ["tflite", "openvino"])
def test_perception_encoder_int8_agrees_with_fp32(perception_encoder: torch.nn.Module, target: str,
                                                  tmp_path: Path) -> None:
    """The pool head's matmuls quantize like a block's; TFLite stays one XNNPACK partition."""
    artifact, worst = int8_against_fp32(perception_encoder, target, (64, 64), tmp_path / "q")
    assert worst > 0.99 and any(name.startswith("attn_pool.") for name in artifact.manifest.quantization.int8_matmuls)
    if target == "tflite":
        assert_one_xnnpack_partition(artifact.path / "model.tflite")


# --- AIMv2 (RMSNorm), SigLIP 2 and MetaCLIP 2 on the targets (was test_recent_targets.py): the runtimes compute what
# timm and transformers compute, INT8 agrees with FP32, TFLite stays one XNNPACK partition (RMSNorm is elementwise
# ops and a mean) ---

@pytest.fixture(scope="module")
def aimv2() -> torch.nn.Module:
    """AIMv2-L's layout (RMSNorm everywhere, SwiGLU and attention without biases), 2 blocks of width 64."""
    return timm_dinov3("aimv2_large_patch14_224", depth=2, img_size=56, embed_dim=64, num_heads=4, num_classes=0)


@pytest.mark.parametrize("target", list(TARGETS))
def test_aimv2_fp32_matches_timm(aimv2: torch.nn.Module, target: str, tmp_path: Path) -> None:
    artifact = export_matching(aimv2, target, (56, 56), tmp_path / "a")
    assert artifact.manifest.source.family == "aimv2"


@pytest.mark.parametrize("target", ["tflite", "executorch"])
def test_aimv2_int8_agrees_with_fp32(aimv2: torch.nn.Module, target: str, tmp_path: Path) -> None:
    artifact, worst = int8_against_fp32(aimv2, target, (56, 56), tmp_path / "q")
    assert worst > 0.99
    if target == "tflite":
        assert_one_xnnpack_partition(artifact.path / "model.tflite")


def test_cli_exports_a_siglip2_folder_at_another_grid(tmp_path: Path) -> None:
    """`vit-edge export FOLDER --img-size 24x48 --target tflite` for a Siglip2VisionModel: transformers' output
    for that grid."""
    transformers = pytest.importorskip("transformers")
    config = transformers.Siglip2VisionConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                              intermediate_size=96, patch_size=8, num_patches=16)
    reference = moved_off_init(transformers.Siglip2VisionModel(config))
    reference.save_pretrained(tmp_path / "siglip2")
    out = tmp_path / "art"
    result = run_cli("export", str(tmp_path / "siglip2"), "--img-size", "24x48", "--target", "tflite", "--out",
                     str(out), "--parity-samples", "2")
    assert result.returncode == 0, result.stderr
    x = torch.randn(2, 3, 24, 48)
    with torch.no_grad():
        expected = reference(pixel_values=as_patches(x, 8), spatial_shapes=torch.tensor([[3, 6], [3, 6]]),
                             pixel_attention_mask=torch.ones(2, 18, dtype=torch.long)).pooler_output.numpy()
    np.testing.assert_allclose(Artifact.open(out).run(x.numpy()), expected, atol=1e-4, rtol=0)


def test_siglip2_on_executorch_keeps_the_tanh_gelu(tmp_path: Path) -> None:
    """SigLIP's gelu_pytorch_tanh: ExecuTorch lowers aten.gelu to XNNPACK's exact GELU whatever `approximate`
    says (6e-4 off before the rewrite); written out, the artifact gives transformers' numbers, tanh delegated."""
    import json

    transformers = pytest.importorskip("transformers")
    config = transformers.Siglip2VisionConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                              intermediate_size=96, patch_size=8, num_patches=16)
    reference = moved_off_init(transformers.Siglip2VisionModel(config))
    reference.save_pretrained(tmp_path / "siglip2")
    artifact = export(str(tmp_path / "siglip2"), "executorch", tmp_path / "art", parity_samples=2)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = reference(pixel_values=as_patches(x, 8), spatial_shapes=torch.tensor([[4, 4], [4, 4]]),
                             pixel_attention_mask=torch.ones(2, 16, dtype=torch.long)).pooler_output.numpy()
    np.testing.assert_allclose(artifact.run(x.numpy()), expected, atol=1e-4, rtol=0)
    delegation = json.loads((artifact.path / "delegation.json").read_text())
    assert "tanh" not in " ".join(delegation["undelegated_ops"]), delegation


@pytest.mark.parametrize("kind, target", [("aimv2", "openvino"), ("metaclip2", "onnx")])
def test_hf_folders_export_with_transformers_numbers(kind: str, target: str, tmp_path: Path) -> None:
    """An Aimv2VisionModel and a MetaClip2VisionModelWithProjection folder, exported as a user would."""
    transformers = pytest.importorskip("transformers")
    if kind == "aimv2":
        model = transformers.Aimv2VisionModel(transformers.Aimv2VisionConfig(
            hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96, image_size=56,
            patch_size=14))
    else:
        model = transformers.MetaClip2VisionModelWithProjection(transformers.MetaClip2VisionConfig(
            hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96, patch_size=8,
            image_size=32, projection_dim=24))
    reference = moved_off_init(model)
    reference.save_pretrained(tmp_path / kind)
    artifact = export(str(tmp_path / kind), target, tmp_path / "art", parity_samples=2)
    side = 56 if kind == "aimv2" else 32
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        out = reference(pixel_values=x)
    expected = (out.pooler_output if kind == "aimv2" else out.image_embeds).numpy()
    np.testing.assert_allclose(artifact.run(x.numpy()), expected, atol=1e-4, rtol=0)
    assert artifact.manifest.source.family == kind
