"""Hostile inputs, bounds class: every count and size a user or a file sets is checked where it is read, so a typo
(1e9 registers, 100000000 parity inputs) is one `vit-edge: error:` line, not gigabytes allocated until the process
is killed; NaN or infinite weights are named, with their tensor, when they are loaded."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.helpers import assert_user_error, run_cli, small_vit
from vit_edge import load_model
from vit_edge.core.errors import ConfigError, ModelLoadError
from vit_edge.core.options import ExportOptions
from vit_edge.core.types import InputSpec
from vit_edge.models.config import ViTConfig
from vit_edge.reading.checkpoint import save_checkpoint

# Without the bounds these cases allocate until killed: the subprocess gets 6 GiB of address space, so the code
# before them fails fast (an allocation error, not the one line) instead of taking the machine down.
LIMITED = "import resource; resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))"


def test_parity_samples_are_bounded_in_the_api() -> None:
    """ExportOptions(parity_samples=100000000) was accepted: every input is made and run at once."""
    with pytest.raises(ConfigError, match="parity_samples must be at most 10,000"):
        ExportOptions(target="onnx", parity_samples=100_000_000)
    assert ExportOptions(target="onnx", parity_samples=10_000).parity_samples == 10_000


def test_parity_samples_are_bounded_on_the_cli(tmp_path: Path) -> None:
    """--parity-samples 100000000 grew past 2 GB until killed; now argparse refuses it, before any model is read."""
    result = run_cli("export", str(tmp_path / "missing.pt"), "--target", "onnx", "--parity-samples", "100000000",
                     "--out", str(tmp_path / "out"))
    assert_user_error(result, "--parity-samples: expected an integer ≥ 1 and ≤ 10000")


@pytest.mark.parametrize("field, value", [
    ("reg_tokens", 1e9), ("depth", 100_000), ("in_chans", 1_000_000), ("embed_dim", 3_000_000),
    ("mlp_hidden_dim", 10_000_000), ("sie_embeds", 10_000_000), ("hybrid_width", 1_000_000),
])
def test_model_config_sizes_are_bounded(field: str, value: Any) -> None:
    """Every config (config.json, a checkpoint's, timm's, TransReID's) passes ViTConfig: its sizes are bounded there,
    before any tensor exists."""
    data = {**small_vit().cfg.to_json(), field: value}
    with pytest.raises(ValueError, match=f"{field} {value} is over"):
        ViTConfig.from_json(data)


def test_the_parameter_count_includes_the_patch_embedding_and_head() -> None:
    """A 1024-channel, 8192-pixel patch embedding is 3e12 weights, though each size is within its own bound."""
    data = {**small_vit().cfg.to_json(), "img_size": 8192, "patch_size": 8192, "in_chans": 1024, "embed_dim": 384,
            "num_heads": 6}
    with pytest.raises(ValueError, match="1024 channels"):
        ViTConfig.from_json(data)


def _checkpoint(tmp_path: Path, **config: Any) -> Path:
    """A vit-edge checkpoint of the small ViT whose stored config says `config`."""
    path = save_checkpoint(tmp_path / "small.pt", small_vit(), InputSpec(img_size=32))
    payload = torch.load(path, weights_only=True)
    payload["config"].update(config)
    torch.save(payload, path)
    return path


def test_a_checkpoint_asking_for_a_billion_registers_is_one_line(tmp_path: Path) -> None:
    """num_register_tokens: 1e9 allocated 128 GB before anything said why."""
    result = run_cli("export", str(_checkpoint(tmp_path, reg_tokens=1e9)), "--target", "onnx", "--out",
                     str(tmp_path / "out"), prelude=LIMITED)
    assert_user_error(result, "damaged vit-edge checkpoint: reg_tokens 1000000000.0 is over 1024")


def test_a_hugging_face_config_asking_for_a_billion_registers_is_one_line(tmp_path: Path) -> None:
    """The config is refused before the weights are read (here there are none)."""
    pytest.importorskip("safetensors")
    from safetensors.torch import save_file

    folder = tmp_path / "dinov2-reg"
    folder.mkdir()
    config = {"architectures": ["Dinov2WithRegistersModel"], "hidden_size": 48, "num_hidden_layers": 2,
              "num_attention_heads": 3, "image_size": 28, "patch_size": 14, "mlp_ratio": 2,
              "num_register_tokens": 1e9}
    (folder / "config.json").write_text(json.dumps(config))
    save_file({}, str(folder / "model.safetensors"))
    result = run_cli("export", str(folder), "--target", "onnx", "--out", str(tmp_path / "out"), prelude=LIMITED)
    assert_user_error(result, "Hugging Face config: reg_tokens 1000000000 is over 1024")


def test_a_transreid_checkpoint_with_too_many_blocks_is_a_load_error(tmp_path: Path) -> None:
    """TransReID's depth is read from the weights' block names: a bound there is a ModelLoadError, not a ValueError."""
    from tests.unit.test_reading_transreid import GEOMETRY, transreid_state
    from vit_edge.reading.transreid import load_transreid

    state = transreid_state()
    qkv = state["base.blocks.0.attn.qkv.weight"]
    state.update({f"base.blocks.{index}.attn.qkv.weight": qkv for index in range(600)})
    with pytest.raises(ModelLoadError, match="impossible TransReID ViT: depth 600 is over 512"):
        load_transreid(tmp_path / "reid.pth", state=state, **GEOMETRY)


def test_layers_are_refused_out_of_order_not_reordered() -> None:
    """--layers 3,0 returned blocks 0 and 3 stacked as 0,3; a head reading them as 3,0 read the wrong ones."""
    model = small_vit(depth=4)
    with pytest.raises(ConfigError, match=r"layers=3,0: .* in order of depth.* increasing: 0,3"):
        load_model(model, output="tokens", layers=(3, 0))
    with pytest.raises(ConfigError, match=r"layers=-1,3: blocks 3, 3 of 4 are not each named once"):
        load_model(model, output="tokens", layers=(-1, 3))
    assert load_model(model, output="tokens", layers=(0, -1)).model.cfg.choices.layers == (0, 3)


@pytest.mark.parametrize("img_size, said", [(-32, "img_size must be a positive integer"),
                                            (8, "img_size 8 for vit_tiny_patch16: img_size 8 is smaller than "
                                                "patch_size 16")])
def test_load_model_img_size_is_a_config_error(img_size: int, said: str) -> None:
    """load_model(img_size=-32) raised a bare ValueError from the architecture."""
    with pytest.raises(ConfigError, match=said):
        load_model("vit_tiny_patch16", random_init=True, img_size=img_size)


def _poisoned(value: float) -> torch.nn.Module:
    model = small_vit()
    with torch.no_grad():
        model.blocks[0].attn.qkv.weight.view(-1)[:5] = value
    return model


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_named_at_load(tmp_path: Path, value: float) -> None:
    """NaN weights failed as 'cannot convert float NaN to integer' or as a parity failure offering --no-verify."""
    said = "blocks.0.attn.qkv.weight in .* has 5 non-finite values"
    path = save_checkpoint(tmp_path / "nan.pt", _poisoned(value), InputSpec(img_size=32))
    with pytest.raises(ModelLoadError, match=said):
        load_model(path)
    with pytest.raises(ModelLoadError, match=said.replace(" in .*", " in VisionTransformer")):
        load_model(_poisoned(value))


def test_non_finite_weights_stop_an_export_in_one_line(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "nan.pt", _poisoned(float("nan")), InputSpec(img_size=32))
    out = tmp_path / "out"
    message = assert_user_error(run_cli("export", str(path), "--target", "onnx", "--out", str(out)),
                                "blocks.0.attn.qkv.weight", "5 non-finite values (NaN or infinite) of 6912")
    assert "--no-verify" not in message and not out.exists()
