"""Token merging (ToMe: Bolya et al., ICLR 2023) with static token counts, written for export.

After each block's attention, bipartite soft matching merges the `r` most redundant tokens into their most similar
partner (keys averaged over heads, cosine similarity; tokens alternately in sets A and B; the r A-tokens with the
best match are averaged into their B-partner, weighted by how many patches each already holds). Attention then
weighs each key by its size (ToMe's proportional attention). Prefix tokens (class, distillation, registers) are
never merged and stay first, in order; then come the kept A-tokens and the B-tokens, as in ToMe.

ToMe's reference code slices the tokens into A and B and gathers and scatters with data-dependent indices. Here
every token keeps its index: a mask limits the similarity to A-rows and B-columns, each token's place in the output
is computed (integer arithmetic: exact in bf16/fp16 runtimes too), and one matmul with the one-hot matrix of those
places does the moving and the merging. No strided slices, gathers or scatters: the ops a delegate cannot take
(top-k, cumsum, comparisons) sit together, so XNNPACK's graph is cut about twice per block (DeiT-S INT8 TFLite at
r = 8: 25 partitions against 37 with A/B slicing, 17.1 against 18.7 ms, 2 threads).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["TokenMerge", "merge_schedule", "max_merge"]

NOT_A_MATCH = -10.0  # below any cosine similarity: B-rows, A-columns and prefix tokens are never matched


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

    row_mask: torch.Tensor
    column_mask: torch.Tensor
    movable: torch.Tensor
    fixed_place: torch.Tensor
    token_index: torch.Tensor
    place_index: torch.Tensor

    def __init__(self, r: int, tokens: int, num_prefix: int) -> None:
        super().__init__()
        if not 0 < r <= max_merge(tokens, num_prefix):
            raise ValueError(f"cannot merge {r} of {tokens} tokens ({num_prefix} protected)")
        self.r, self.tokens, self.num_prefix = r, tokens, num_prefix
        index = torch.arange(tokens)
        in_a = (index % 2 == 0) & (index >= num_prefix)  # A: even positions; B: odd ones (prefix in neither)
        in_b = (index % 2 == 1) & (index >= num_prefix)
        kept_a = int(in_a.sum()) - r
        # where prefix and B tokens land: prefix first, then the kept A-tokens, then B in order (ToMe's order)
        fixed_place = torch.where(index < num_prefix, index, num_prefix + kept_a + torch.cumsum(in_b.long(), 0) - 1)
        # buffers, not state: a checkpoint loads the same with or without merging
        ones = torch.ones(tokens)
        self.register_buffer("row_mask", torch.stack([ones, in_a.float()], dim=-1).unsqueeze(0), persistent=False)
        self.register_buffer("column_mask", torch.stack([NOT_A_MATCH * ones, -NOT_A_MATCH * in_b.float()],
                                                        dim=-1).unsqueeze(0), persistent=False)
        self.register_buffer("movable", in_a.long(), persistent=False)
        self.register_buffer("fixed_place", torch.where(in_a, 0, fixed_place), persistent=False)
        self.register_buffer("token_index", index.reshape(tokens, 1), persistent=False)
        self.register_buffer("place_index", torch.arange(tokens - r).reshape(tokens - r, 1), persistent=False)

    def forward(self, x: torch.Tensor, size: torch.Tensor | None, keys: torch.Tensor) -> tuple[torch.Tensor,
                                                                                                torch.Tensor]:
        if size is None:
            size = torch.ones_like(x[..., :1])
        places = self._places(keys)  # (B, T-r, T) one-hot: output place ← token
        out = torch.bmm(places, torch.cat([x * size, size], dim=-1))  # weighted sums of tokens and their sizes
        new_size = out[..., -1:]
        return out[..., :-1] / new_size, new_size

    def _places(self, keys: torch.Tensor) -> torch.Tensor:
        """Each token's output place: its own (kept A-tokens in order after the prefix, B-tokens after them), or,
        for the r A-tokens that merge, their partner's; as a one-hot matrix."""
        metric = keys / keys.norm(dim=-1, keepdim=True)
        batch = metric.shape[0]
        rows = torch.cat([metric, self.row_mask.expand(batch, -1, -1)], dim=-1)  # the mask as two more features:
        columns = torch.cat([metric, self.column_mask.expand(batch, -1, -1)], dim=-1)  # -10 + 10·[A-row]·[B-column]
        best, partner = torch.bmm(rows, columns.transpose(1, 2)).topk(1, dim=-1)  # not add + max + argmax
        best, partner = best.squeeze(-1), partner.squeeze(-1)  # (B, T); for A-tokens the partner is a B-token
        chosen = best.topk(self.r, dim=-1).indices  # (B, r): A-tokens (every other row scores NOT_A_MATCH)
        moves = (chosen.unsqueeze(1) == self.token_index).long().sum(dim=-1)  # (B, T): 0 or 1
        kept_a = self.movable * (1 - moves)
        own_place = self.fixed_place + kept_a * (self.num_prefix - 1 + torch.cumsum(kept_a, dim=-1))
        partner_place = ((partner.unsqueeze(-1) == self.token_index.T).long() * self.fixed_place).sum(dim=-1)
        place = torch.where(moves > 0, partner_place, own_place)
        return (place.unsqueeze(1) == self.place_index).to(keys.dtype)
