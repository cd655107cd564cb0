"""The reference ViT: named matmuls, position-embedding resampling, timm parity (golden files from real timm)."""
from __future__ import annotations

import gzip
import json

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import FIXTURES, small_vit
from vit_edge.models.vit import MatMul, VisionTransformer, ViTConfig, resample_pos_embed
from vit_edge.reading.checkpoint import load_strict
from vit_edge.reading.registry import TIMM_NAMES, reference_config, timm_entry
from vit_edge.reading.timm_compat import eva_state_to_reference, is_eva_state_dict


def test_attention_matmuls_are_named_modules(tiny_vit: VisionTransformer) -> None:
    names = {name for name, module in tiny_vit.named_modules() if isinstance(module, MatMul)}
    assert names == {"blocks.0.attn.qk", "blocks.0.attn.av", "blocks.1.attn.qk", "blocks.1.attn.av"}
    linears = {name.rsplit(".", 1)[-1] for name, m in tiny_vit.named_modules() if isinstance(m, torch.nn.Linear)}
    assert linears == {"qkv", "proj", "fc1", "fc2", "head"}


def test_explicit_attention_equals_fused_attention(tiny_vit: VisionTransformer) -> None:
    """Our Q·Kᵀ / softmax / attn·V must compute what PyTorch's fused attention computes."""
    attn = tiny_vit.blocks[0].attn
    x = torch.randn(2, 17, 48)
    qkv = attn.qkv(x).reshape(2, 17, 3, 3, 16).permute(2, 0, 3, 1, 4)
    fused = torch.nn.functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
    expected = attn.proj(fused.transpose(1, 2).reshape(2, 17, 48))
    torch.testing.assert_close(attn(x), expected, atol=1e-5, rtol=1e-5)


def test_resample_to_same_grid_is_identity() -> None:
    pos = torch.randn(1, 1 + 16, 8)
    torch.testing.assert_close(resample_pos_embed(pos, 1, 4, 4), pos, atol=1e-5, rtol=0)


def test_with_img_size_keeps_prefix_tokens_and_runs() -> None:
    model = small_vit(distilled=True)
    bigger = model.with_img_size(48)
    assert bigger.pos_embed.shape == (1, 2 + 36, 48)
    torch.testing.assert_close(bigger.pos_embed[:, :2], model.pos_embed[:, :2])
    assert bigger(torch.randn(1, 3, 48, 48)).shape == (1, 10)
    floored = VisionTransformer(model.cfg.with_(img_size=30))  # timm floors: 384 px at patch 14 is a 27×27 grid
    assert floored.cfg.grid == (3, 3) and floored(torch.randn(1, 3, 30, 30)).shape == (1, 10)
    with pytest.raises(ValueError, match="smaller than patch_size"):
        ViTConfig(img_size=4, patch_size=8)


@pytest.mark.parametrize("variant", ["vit", "deit_distilled"])
def test_timm_checkpoint_gives_timm_logits(variant: str) -> None:
    """State dicts written by real timm load by name and reproduce timm's logits (fixture made by timm 1.0.31)."""
    golden = json.loads((FIXTURES / "timm_golden.json").read_text())
    io = load_file(str(FIXTURES / "timm_golden_io.safetensors"))
    small = golden["config"]
    cfg = ViTConfig(img_size=small["img_size"], patch_size=small["patch_size"], num_classes=small["num_classes"],
                    embed_dim=small["embed_dim"], depth=small["depth"], num_heads=small["num_heads"],
                    mlp_hidden_dim=4 * small["embed_dim"], distilled=variant == "deit_distilled")
    model = VisionTransformer(cfg).eval()
    load_strict(model, load_file(str(FIXTURES / f"timm_{variant}.safetensors")), variant)
    with torch.no_grad():
        torch.testing.assert_close(model(io["inputs"]), io[f"{variant}.logits"], atol=2e-5, rtol=1e-5)


def test_timm_name_table_matches_real_timm() -> None:
    """Every timm name we accept builds exactly timm's tensors and uses timm's preprocessing."""
    with gzip.open(FIXTURES / "timm_golden_names.json.gz", "rt") as handle:
        golden = json.load(handle)["names"]
    assert len(TIMM_NAMES) >= 140 and set(TIMM_NAMES) <= set(golden)
    for name in TIMM_NAMES:
        entry, ref = timm_entry(name), golden[name]
        with torch.device("meta"):
            shapes = {k: list(v.shape) for k, v in VisionTransformer(entry.config).state_dict().items()}
            timm_state = {k: torch.empty(shape) for k, shape in ref["state_dict"].items()}
        if is_eva_state_dict(timm_state):  # Eva's names (gamma_1, q_bias/v_bias, fc1_g/fc1_x) as loading maps them
            timm_state = eva_state_to_reference(timm_state)
        assert shapes == {k: list(v.shape) for k, v in timm_state.items()}, name
        assert list(entry.spec.mean) == ref["mean"] and list(entry.spec.std) == ref["std"], name
        assert entry.spec.crop_pct == ref["crop_pct"] and entry.spec.interpolation == ref["interpolation"], name
        assert [3, entry.spec.height, entry.spec.width] == ref["input_size"], name


def test_reference_variants_have_paper_sizes() -> None:
    cfg = reference_config("vit_base_patch16", img_size=384, num_classes=21843)
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.mlp_hidden_dim) == (768, 12, 12, 3072)
    assert cfg.grid == (24, 24) and cfg.num_classes == 21843


HEAD_TOKEN_CASES = {
    "class token": {},
    "distilled (two head tokens)": {"distilled": True},
    "registers": {"reg_tokens": 2},
    "token merging": {"merge": 2},
    "qk-norm + LayerScale + SwiGLU": {"qk_norm": True, "init_values": 0.1, "mlp": "glu", "act": "silu"},
    "no head": {"num_classes": 0},
}


@pytest.mark.parametrize("case", list(HEAD_TOKEN_CASES))
def test_last_block_computes_only_the_head_tokens_and_gives_the_same_output(case: str) -> None:
    """Class-token pooling reads one token (two when distilled): the last block keeps every token as key and value
    but computes only those; the output equals the plain graph's, in PyTorch and in the XNNPACK-shaped rewrite."""
    from vit_edge.exporters.xnnpack_shape import xnnpack_shaped

    model = small_vit(**HEAD_TOKEN_CASES[case])
    with torch.no_grad():  # non-zero biases and LayerNorm shifts, so nothing cancels by accident
        for param in model.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=torch.Generator().manual_seed(param.numel())))
    plain = model.reconfigured(head_tokens_only=False)
    heads = 2 if model.cfg.distilled else 1
    assert model.output_tokens() == heads and plain.output_tokens() is None
    seen: list[int] = []
    model.blocks[-1].mlp.fc1.register_forward_hook(lambda _m, args, _o: seen.append(args[0].shape[1]))
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = plain(x)
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(xnnpack_shaped(model)(x), expected, atol=2e-5, rtol=1e-5)
        assert model.forward_features(x).shape == plain.forward_features(x).shape  # features keep every token
    assert seen[0] == heads, "the last block's MLP must see the head tokens only"


@pytest.mark.parametrize("pool", ["avg", "token_avg", "map"])
def test_pooling_over_patches_keeps_the_last_block_whole(pool: str) -> None:
    model = small_vit(global_pool=pool, class_token=pool != "map")
    assert model.output_tokens() is None
