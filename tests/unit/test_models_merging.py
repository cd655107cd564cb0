"""Token merging (ToMe) as matmuls against ToMe's own gather/scatter formulation, and its limits."""
from __future__ import annotations

import math

import pytest
import torch

from vit_edge.models.merging import TokenMerge, max_merge, merge_schedule
from vit_edge.models.vit import VisionTransformer, ViTConfig

SMALL = dict(img_size=32, patch_size=4, embed_dim=64, depth=4, num_heads=4, mlp_hidden_dim=128, num_classes=10)


def tome_gather_scatter(x: torch.Tensor, size: torch.Tensor, keys: torch.Tensor, r: int,
                        num_prefix: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bipartite soft matching as ToMe's reference code computes it (argsort, gather, scatter_reduce), with the
    prefix tokens protected and kept first."""
    metric = keys / keys.norm(dim=-1, keepdim=True)
    scores = metric[:, ::2] @ metric[:, 1::2].transpose(1, 2)
    scores[:, : (num_prefix + 1) // 2, :] = -math.inf
    scores[:, :, : num_prefix // 2] = -math.inf
    node_max, node_idx = scores.max(dim=-1)
    order = node_max.argsort(dim=-1, descending=True)
    src_idx, unm_idx = order[:, :r], order[:, r:].sort(dim=-1).values
    dst_idx = node_idx.gather(1, src_idx)
    weighted = torch.cat([x * size, size], dim=-1)
    a, b = weighted[:, ::2], weighted[:, 1::2]
    channels = weighted.shape[-1]
    unmerged = a.gather(1, unm_idx[..., None].expand(-1, -1, channels))
    src = a.gather(1, src_idx[..., None].expand(-1, -1, channels))
    b = b.scatter_reduce(1, dst_idx[..., None].expand(-1, -1, channels), src, reduce="sum")
    prefix = [unmerged[:, i // 2 : i // 2 + 1] if i % 2 == 0 else b[:, i // 2 : i // 2 + 1] for i in range(num_prefix)]
    out = torch.cat(prefix + [unmerged[:, (num_prefix + 1) // 2 :], b[:, num_prefix // 2 :]], dim=1)
    return out[..., :-1] / out[..., -1:], out[..., -1:]


def reference_forward(model: VisionTransformer, images: torch.Tensor) -> torch.Tensor:
    """The model's forward with each merge done by `tome_gather_scatter`."""
    tokens, size = model._embed(images), None
    for block in model.blocks:
        attended, keys = block.attn.forward_merging(block.norm1(tokens), size)
        tokens = tokens + block.ls1(attended)
        if block.token_merge is not None:
            size = torch.ones_like(tokens[..., :1]) if size is None else size
            tokens, size = tome_gather_scatter(tokens, size, keys, block.token_merge.r, model.cfg.num_prefix_tokens)
        tokens = tokens + block.ls2(block.mlp(block.norm2(tokens)))
    tokens = model.norm(tokens)
    logits = model.head(model.fc_norm(model._pool(tokens)))
    if model.head_dist is not None:
        logits = (logits + model.head_dist(tokens[:, 1])) / 2
    return logits


@pytest.mark.parametrize("family", [{}, {"distilled": True}, {"reg_tokens": 4, "init_values": 0.5}])
def test_merging_computes_what_tome_computes(family: dict[str, object]) -> None:
    torch.manual_seed(0)
    model = VisionTransformer(ViTConfig(**SMALL, **family).with_(merge=9)).eval()  # type: ignore[arg-type]
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        merged, reference = model(images), reference_forward(model, images)
        unmerged = model.with_merge(0)(images)
    assert torch.allclose(merged, reference, atol=1e-5)
    assert not torch.allclose(merged, unmerged, atol=1e-3)  # merging changed the computation


def test_merged_tokens_keep_the_prefix_first_and_sizes_add_up() -> None:
    torch.manual_seed(1)
    merge = TokenMerge(r=5, tokens=21, num_prefix=3)
    x, keys = torch.randn(2, 21, 8), torch.randn(2, 21, 8)
    out, size = merge(x, None, keys)
    assert out.shape == (2, 16, 8) and size.shape == (2, 16, 1)
    assert torch.equal(out[:, :3], x[:, :3]) and torch.equal(size[:, :3], torch.ones(2, 3, 1))
    assert torch.all(size.sum(dim=1) == 21)  # every patch is in exactly one token


def test_zero_merge_is_the_model_itself() -> None:
    torch.manual_seed(2)
    model = VisionTransformer(ViTConfig(**SMALL)).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(images), model.with_merge(0)(images))
    assert model.with_merge(3).state_dict().keys() == model.state_dict().keys()  # no new state: checkpoints load


def test_the_schedule_caps_r_as_tokens_run_out() -> None:
    assert merge_schedule(20, tokens=65, num_prefix=1, depth=4) == [20, 20, 12, 6]
    assert max_merge(197, 1) == 98
    with pytest.raises(ValueError, match="at most half"):
        ViTConfig(**SMALL).with_(merge=33)  # type: ignore[arg-type]
    assert ViTConfig(**SMALL).with_(merge=32).merge_schedule == [32, 16, 8, 4]  # type: ignore[arg-type]
