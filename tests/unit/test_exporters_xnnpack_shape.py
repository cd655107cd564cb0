"""The XNNPACK-shaped forward (ExecuTorch's exporter) computes what the model computes, for every option that
touches LayerNorm or attention, float and INT8; checked in PyTorch, no converter."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import small_vit
from vit_edge.exporters.xnnpack_shape import LinearMeanLayerNorm, xnnpack_shaped
from vit_edge.models.layers import Attention

CASES = {
    "plain": {},
    "qk_norm + SwiGLU": {"qk_norm": True, "mlp": "glu", "act": "silu"},
    "registers + average pool + fc_norm": {"reg_tokens": 2, "global_pool": "avg", "fc_norm": True},
    "MAP head": {"global_pool": "map", "class_token": False},
    "CLIP pre-norm, quick-GELU": {"pre_norm": True, "act": "quick_gelu"},
    "no head": {"num_classes": 0},
    "EVA-02 CLIP: attention-output norm, MLP norm, rotary": {"attn_out_norm": True, "mlp_norm": True, "rope": "eva",
                                                             "num_heads": 2, "rope_rotate_half": True},
    "DINOv3: rotary, registers, LayerScale": {"rope": "dinov3", "num_heads": 2, "reg_tokens": 2, "init_values": 0.1},
    "token merging (proportional attention)": {"merge": 2},
}


@pytest.mark.parametrize("case", list(CASES))
def test_rewritten_model_computes_the_same(case: str) -> None:
    model = small_vit(**CASES[case])
    with torch.no_grad():  # non-zero biases and norm shifts, so an option left out of one layout shows
        for param in model.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=torch.Generator().manual_seed(param.numel())))
    shaped = xnnpack_shaped(model)
    attentions = [m for m in shaped.modules() if isinstance(m, Attention)]
    assert attentions and all(m.heads_in_batch and m.qk.batched and m.av.batched for m in attentions)
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in shaped.modules())
    assert any(isinstance(m, LinearMeanLayerNorm) for m in shaped.modules())
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(shaped(x), model(x), atol=2e-5, rtol=1e-5)
    assert not any(m.heads_in_batch for m in model.modules() if isinstance(m, Attention)), \
        "the model itself is left as it was"


def test_int8_model_keeps_its_quantizers_and_numbers() -> None:
    from vit_edge.data.synthetic import smooth_images
    from vit_edge.quantization.ptq import quantize_model
    from vit_edge.quantization.recipe import Recipe

    model = small_vit()
    calibration = (smooth_images(16, 32, 3, seed=1).transpose(0, 3, 1, 2) / 127.5 - 1).astype(np.float32)
    quant = quantize_model(model, Recipe(), calibration)
    shaped = xnnpack_shaped(quant.model)
    from vit_edge.quantization.qmodules import ActQuant

    def enabled(module: torch.nn.Module) -> int:
        return sum(1 for m in module.modules() if isinstance(m, ActQuant) and m.enabled)

    assert enabled(shaped) == enabled(quant.model) > 0  # every quantizer still runs, with its scale
    x = torch.from_numpy(calibration[:4])
    with torch.no_grad():
        expected, got = quant.model(x), shaped(x)
    cosine = torch.nn.functional.cosine_similarity(got, expected, dim=1)
    assert cosine.min() > 0.9999 and (got.argmax(1) == expected.argmax(1)).all()
