"""PyTorch as a reference runtime: rebuilds an artifact's model from its manifest source and checks the weights.

It lives in models/ because it needs torch; runtime/ stays torch-free and reaches it only through the registry.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vit_edge.core.errors import ConfigError
from vit_edge.core.manifest import Manifest, read_manifest
from vit_edge.core.options import OUTPUTS
from vit_edge.core.targets import PYTORCH
from vit_edge.core.types import SessionInfo
from vit_edge.models.layout import module_to_convert
from vit_edge.models.vit import VisionTransformer
from vit_edge.reading.loaders import ReIDSelection, load_model
from vit_edge.runtime.base import Session, SessionOptions

__all__ = ["TorchSession", "model_from_manifest", "torch_runner"]


def torch_runner(module: torch.nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    """`module` as a batch → outputs function on float32 arrays, as a runtime session's `run` is (eval, no grad)."""
    module.eval()

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))).numpy()

    return run


def model_from_manifest(manifest: Manifest) -> torch.nn.Module:
    """The exact PyTorch model an artifact was exported from (same weights sha256, same merge, pruning, input
    size or any size, layout, dense output and layers, and TransReID selection), in eval mode."""
    ref = manifest.model_ref
    name = ref.load_name()
    weights = None if ref.kind == "transreid" else ref.weights_file  # a TransReID checkpoint is the model path
    reid = ReIDSelection(camera=ref.camera, view=ref.view, neck_feat=ref.neck_feat)
    own = ref.output not in OUTPUTS  # a dense model's own output (depth): what it returns as loaded
    loaded = load_model(name, weights=weights, img_size=ref.img_size, reid=reid, merge=ref.merge,
                        output="pooled" if own else ref.output, layers=tuple(ref.layers),
                        dynamic_size=ref.dynamic_size, max_depth=ref.max_depth)
    if loaded.weights_sha256 != ref.weights_sha256:
        raise ConfigError(f"the weights of {ref.ident} changed since the artifact was exported (sha256 differs)")
    model = loaded.model
    if isinstance(model, VisionTransformer) and model.cfg.choices.head_tokens_only != ref.head_tokens_only:
        model = model.reconfigured(head_tokens_only=ref.head_tokens_only)
    return module_to_convert(model, manifest.input_spec.layout)  # what the converter got, in the artifact's layout


class TorchSession(Session):
    """Runs the artifact's source model in PyTorch (eager, float32) for reference numbers."""

    name = PYTORCH.name

    def __init__(self, model_file: Path, options: SessionOptions) -> None:
        super().__init__(model_file, options)
        if options.threads:
            torch.set_num_threads(options.threads)
        self._run = torch_runner(model_from_manifest(read_manifest(Path(model_file).parent)))

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._run(batch)

    def info(self) -> SessionInfo:
        return replace(super().info(), precision="fp32")
