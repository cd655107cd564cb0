"""Input layout wrappers: the artifact's layout is the model's input contract, so the wrapper is part of the model."""
from __future__ import annotations

import torch

__all__ = ["NHWCInput"]


class NHWCInput(torch.nn.Module):
    """Takes NHWC images (as camera pipelines deliver them) and hands NCHW to the ViT."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.permute(0, 3, 1, 2))
