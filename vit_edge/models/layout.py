"""Input layout wrappers: the artifact's layout is the model's input contract, so the wrapper is part of the model."""
from __future__ import annotations

import torch

from vit_edge.core.types import Layout

__all__ = ["NHWCInput", "module_to_convert"]


class NHWCInput(torch.nn.Module):
    """Takes NHWC images (as camera pipelines deliver them) and hands NCHW to the ViT."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.permute(0, 3, 1, 2))


def module_to_convert(model: torch.nn.Module, layout: Layout) -> torch.nn.Module:
    """What a converter gets: the model in eval mode, its input in `layout`, and a hybrid stem's standardized
    weights folded into constants (the same numbers, no per-run work)."""
    if getattr(getattr(model, "cfg", None), "hybrid", None) is not None:
        import copy

        from vit_edge.models.hybrid import fold_weight_standardization

        model = copy.deepcopy(model)
        fold_weight_standardization(model)
    module = NHWCInput(model) if layout is Layout.NHWC else model
    return module.eval()
