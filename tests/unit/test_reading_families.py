"""The family declarations (reading/families) are the one place a family is described: every config field, timm
family and transformers architecture is accounted for by one, and the refusals they drive name the feature."""
from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil

import pytest
import torch
from safetensors.torch import save_file

import vit_edge.reading.families as families_package
from vit_edge.core.errors import ConfigError, ModelLoadError, UnsupportedModelError
from vit_edge.models.config import EXPORT_CHOICES, SIZE_FIELDS, ExportChoices, ViTConfig
from vit_edge.models.vit import VisionTransformer
from vit_edge.reading.families import FAMILIES, Family, family, timm_family, weights_hint
from vit_edge.reading.hf_compat import SUPPORTED_ARCHITECTURES
from vit_edge.reading.loaders import load_model
from vit_edge.reading.registry import TIMM_FAMILIES, TIMM_REFUSED, TIMM_TABLE_FILE, timm_entry


def test_every_config_field_is_a_size_an_export_choice_or_a_family_s() -> None:
    claimed = {name for entry in FAMILIES for name in entry.fields}
    fields = {f.name for f in dataclasses.fields(ViTConfig)} - {"choices"}
    assert claimed <= fields, f"families name fields ViTConfig lacks: {sorted(claimed - fields)}"
    unowned = fields - claimed - set(SIZE_FIELDS)
    assert not unowned, f"config fields no family declares: {sorted(unowned)}"
    assert not set(EXPORT_CHOICES) & fields, "an export choice is not an architecture field"


def test_every_family_named_by_the_timm_table_and_transformers_is_declared_once() -> None:
    names = [entry.name for entry in FAMILIES]
    assert len(names) == len(set(names))
    for name in set(TIMM_FAMILIES) | {fam for fam, _ in TIMM_REFUSED.values()}:
        assert family(name).loads, name
    for arch_name, arch in SUPPORTED_ARCHITECTURES.items():
        assert arch.family.hf is not None and family(arch.family.name) is arch.family, arch_name
    with pytest.raises(ConfigError, match="unknown family 'dinov4'.*dinov"):
        family("dinov4")


def test_every_family_a_module_declares_is_found_and_every_transformers_class_once() -> None:
    """FAMILIES is discovered, not listed: a Family left out of its module's __all__ would silently not exist, and
    two families declaring one transformers class would silently overwrite each other's row."""
    for info in pkgutil.iter_modules(families_package.__path__):
        module = importlib.import_module(f"{families_package.__name__}.{info.name}")
        for name, value in vars(module).items():
            for entry in value if isinstance(value, tuple) else (value,):
                if isinstance(entry, Family):
                    assert entry in FAMILIES, f"{info.name}.{name} declares {entry.name} outside __all__"
    rows = [row.name for entry in FAMILIES if entry.hf is not None for row in entry.hf.classes]
    assert sorted(rows) == sorted(SUPPORTED_ARCHITECTURES), "a transformers class is declared twice"


def test_every_timm_table_name_reaches_its_family_and_no_tie_decides_it() -> None:
    """The table's families were written by timm_family; the declared search_order must still give each name the
    same family, with the first matching rule strictly ahead of any other that matches (never a tie by name)."""
    table = json.loads(TIMM_TABLE_FILE.read_text())["models"]
    for name, entry in table.items():
        assert timm_family(name).name == entry["family"], name
        orders = [candidate.search_order for candidate in FAMILIES if candidate.names_timm(name)]
        assert orders.count(min(orders, default=0)) <= 1, f"{name}: two rules of equal search_order match"
    assert FAMILIES[-1].name == "patch14"  # the broadest rule is tried last


def test_timm_names_reach_their_declared_family_first_match_wins() -> None:
    assert timm_family("vit_small_patch14_reg4_dinov2").name == "dinov2-reg"  # before plain dinov2
    assert timm_family("vit_base_patch16_dinov3").name == "dinov3"
    assert timm_family("swinv2_tiny_window8_256").name == "swinv2"
    assert timm_family("swin_tiny_patch4_window7_224").missing
    assert timm_family("vit_base_patch16_224").name == "vit"


def test_an_architecture_is_its_config_without_the_export_choices() -> None:
    plain = ViTConfig(img_size=32, patch_size=8, depth=2, embed_dim=48, num_heads=3, mlp_hidden_dim=96)
    cfg = plain.with_(merge=2, head_tokens_only=False, depth=3)
    assert cfg.choices == ExportChoices(merge=2, head_tokens_only=False) and cfg.depth == 3
    assert cfg.architecture == plain.with_(depth=3) != cfg
    assert ViTConfig.from_json(cfg.to_json()) == cfg  # manifests keep the flat JSON they always had
    assert cfg.to_json()["merge"] == 2 and "choices" not in cfg.to_json()
    with pytest.raises(ValueError, match="layers"):
        plain.with_(output="tokens", layers=(5,))  # a choice is checked against the architecture


def test_a_timm_name_of_an_unsupported_family_names_the_feature() -> None:
    with pytest.raises(UnsupportedModelError, match="class-attention layers.*nearest that loads: deit3_"):
        load_model("timm:cait_s24_224", random_init=True)


def test_rotary_weights_under_a_plain_name_point_to_their_family(tmp_path) -> None:
    state = VisionTransformer(timm_entry("vit_small_patch16_224").config.with_(depth=1)).state_dict()
    state["rope.freqs"] = torch.zeros(8)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "eva.safetensors"))
    with pytest.raises(ModelLoadError, match="eva02 family.*vit-edge models --family eva02") as info:
        load_model("timm:vit_small_patch16_224", weights=tmp_path / "eva.safetensors")
    assert "\n" not in str(info.value)
    assert weights_hint(["blocks.0.attn.relative_position_bias_table"]).startswith("; these weights need relative")
    assert weights_hint(["blocks.0.attn.qkv.weight"]) == ""
