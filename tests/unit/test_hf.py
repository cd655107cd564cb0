"""Hugging Face ViT/DeiT directories load into the reference ViT and give transformers' own logits."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

from vit_edge.errors import UnsupportedModelError  # noqa: E402
from vit_edge.models.loaders import load_model  # noqa: E402

SMALL = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=96, image_size=32,
             patch_size=8, num_labels=5)


def make_hf(kind: str, path: Path) -> torch.nn.Module:
    """A randomly initialised transformers model of `kind`, saved with save_pretrained (safetensors)."""
    torch.manual_seed(0)
    if kind == "vit":
        model = transformers.ViTForImageClassification(transformers.ViTConfig(**SMALL))
    elif kind == "deit":
        model = transformers.DeiTForImageClassification(transformers.DeiTConfig(**SMALL))
    else:
        model = transformers.DeiTForImageClassificationWithTeacher(transformers.DeiTConfig(**SMALL))
    with torch.no_grad():  # move off the init so biases and LayerNorms matter
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    model.eval().save_pretrained(path)
    return model


@pytest.mark.parametrize("kind", ["vit", "deit", "deit_teacher"])
def test_hf_directory_matches_transformers(kind: str, tmp_path: Path) -> None:
    hf = make_hf(kind, tmp_path)
    loaded = load_model(tmp_path)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), hf(pixel_values=x).logits, atol=2e-5, rtol=1e-5)
    assert loaded.source["kind"] == "huggingface" and loaded.spec.img_size == 32
    assert len(loaded.spec.class_names) == 5


def test_transformers_4_key_names_load_too(tmp_path: Path) -> None:
    """Checkpoints on disk from transformers 4.x use encoder.layer.N.attention.attention.query etc."""
    from safetensors.torch import load_file, save_file

    hf = make_hf("vit", tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    old = {}
    for key, value in state.items():
        key = re.sub(r"vit\.layers\.(\d+)\.attention\.([qkv])_proj",
                     lambda m: f"vit.encoder.layer.{m.group(1)}.attention.attention."
                               + {"q": "query", "k": "key", "v": "value"}[m.group(2)], key)
        key = re.sub(r"vit\.layers\.(\d+)\.attention\.o_proj", r"vit.encoder.layer.\1.attention.output.dense", key)
        key = re.sub(r"vit\.layers\.(\d+)\.mlp\.fc1", r"vit.encoder.layer.\1.intermediate.dense", key)
        key = re.sub(r"vit\.layers\.(\d+)\.mlp\.fc2", r"vit.encoder.layer.\1.output.dense", key)
        key = re.sub(r"vit\.layers\.", "vit.encoder.layer.", key)
        old[key] = value
    assert any("attention.attention.query" in k for k in old)
    save_file(old, str(tmp_path / "model.safetensors"))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(load_model(tmp_path).model(x), hf(pixel_values=x).logits, atol=2e-5, rtol=1e-5)


def test_non_vit_hf_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"architectures": ["ResNetForImageClassification"]}')
    with pytest.raises(UnsupportedModelError, match="ResNetForImageClassification"):
        load_model(tmp_path)
