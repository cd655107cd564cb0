"""Token merging (ToMe: Bolya et al., ICLR 2023) with static token counts, written for export.

After each block's attention, bipartite soft matching merges the `r` most redundant tokens into their most similar
partner (keys averaged over heads, cosine similarity; tokens alternately in sets A and B; the r A-tokens with the
best match are averaged into their B-partner, weighted by how many patches each already holds). Attention then
weighs each key by its size (ToMe's proportional attention). Prefix tokens (class, distillation, registers) are
never merged and stay first, in order.

ToMe's reference code gathers and scatters with data-dependent indices; here the same selection becomes one-hot
matrices built from comparisons and applied by matmuls, so every count is static and the graph uses ops that ONNX,
OpenVINO, LiteRT and XNNPACK know (top-k, argmax, cumsum, equal, batch matmul). The positions are integers, so a
runtime that computes in bf16 or fp16 still builds exact one-hot matrices.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["TokenMerge", "merge_schedule", "max_merge"]

NOT_A_MATCH = -10.0  # below any cosine similarity: prefix tokens neither merge nor receive merges


def max_merge(tokens: int, num_prefix: int) -> int:
    """The most tokens one block can merge: half of the tokens that are not prefix tokens (ToMe's bound)."""
    return max((tokens - num_prefix) // 2, 0)


def merge_schedule(r: int, tokens: int, num_prefix: int, depth: int) -> list[int]:
    """Tokens merged by each block: `r`, capped as the tokens run out (ToMe's constant schedule)."""
    schedule = []
    for _ in range(depth):
        merged = min(r, max_merge(tokens, num_prefix))
        schedule.append(merged)
        tokens -= merged
    return schedule


class TokenMerge(nn.Module):
    """Merge `r` of `tokens` tokens (the first `num_prefix` protected): (x, size, keys) → (x, size) with r fewer."""

    score_mask: torch.Tensor
    a_index: torch.Tensor
    b_index: torch.Tensor
    kept_index: torch.Tensor

    def __init__(self, r: int, tokens: int, num_prefix: int) -> None:
        super().__init__()
        if not 0 < r <= max_merge(tokens, num_prefix):
            raise ValueError(f"cannot merge {r} of {tokens} tokens ({num_prefix} protected)")
        self.r, self.tokens, self.num_prefix = r, tokens, num_prefix
        a_count, b_count = (tokens + 1) // 2, tokens // 2
        mask = torch.zeros(a_count, b_count)
        mask[: (num_prefix + 1) // 2, :] = NOT_A_MATCH  # A's prefix tokens (even positions) never merge
        mask[:, : num_prefix // 2] = NOT_A_MATCH  # B's prefix tokens (odd positions) receive nothing
        # buffers, not state: a checkpoint loads the same with or without merging
        self.register_buffer("score_mask", mask, persistent=False)
        self.register_buffer("a_index", torch.arange(a_count).reshape(a_count, 1), persistent=False)
        self.register_buffer("b_index", torch.arange(b_count).reshape(b_count, 1), persistent=False)
        self.register_buffer("kept_index", torch.arange(a_count - r).reshape(a_count - r, 1), persistent=False)

    def forward(self, x: torch.Tensor, size: torch.Tensor | None, keys: torch.Tensor) -> tuple[torch.Tensor,
                                                                                                torch.Tensor]:
        merged_rows, kept_rows = self._matching(keys)
        if size is None:
            size = torch.ones_like(x[..., :1])
        weighted = torch.cat([x * size, size], dim=-1)  # one pair of matmuls moves both
        a, b = weighted[:, ::2], weighted[:, 1::2]
        kept = torch.matmul(kept_rows, a)
        merged = b + torch.matmul(merged_rows, a)
        parts = [kept[:, i // 2 : i // 2 + 1] if i % 2 == 0 else merged[:, i // 2 : i // 2 + 1]
                 for i in range(self.num_prefix)]  # prefix tokens first, in their order
        parts += [kept[:, (self.num_prefix + 1) // 2 :], merged[:, self.num_prefix // 2 :]]
        out = torch.cat(parts, dim=1)
        new_size = out[..., -1:]
        return out[..., :-1] / new_size, new_size

    def _matching(self, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One-hot matrices: (B, |B|, |A|) sends each merged A-token to its partner; (B, |A|-r, |A|) keeps the rest
        in their order."""
        metric = keys / keys.norm(dim=-1, keepdim=True)
        scores = torch.matmul(metric[:, ::2], metric[:, 1::2].transpose(1, 2)) + self.score_mask
        best, partner = scores.max(dim=-1)  # (B, |A|)
        chosen = best.topk(self.r, dim=-1).indices  # (B, r)
        is_merged = (chosen.unsqueeze(1) == self.a_index).to(torch.int32).sum(dim=-1)  # (B, |A|): 0 or 1
        is_kept = 1 - is_merged
        position = torch.cumsum(is_kept, dim=-1) - 1  # where each kept A-token lands
        dtype = keys.dtype
        kept_rows = ((position.unsqueeze(1) == self.kept_index) & (is_kept.unsqueeze(1) > 0)).to(dtype)
        merged_rows = ((partner.unsqueeze(1) == self.b_index) & (is_merged.unsqueeze(1) > 0)).to(dtype)
        return merged_rows, kept_rows
