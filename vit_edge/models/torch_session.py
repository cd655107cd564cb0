"""PyTorch as a reference runtime: rebuilds an artifact's model from its manifest source and checks the weights.

It lives in models/ because it needs torch; runtime/ stays torch-free and reaches it only through the registry.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vit_edge.core.artifact import Manifest, read_manifest
from vit_edge.core.errors import ConfigError
from vit_edge.core.types import Layout
from vit_edge.models.layout import NHWCInput
from vit_edge.models.loaders import ReIDSelection, load_model
from vit_edge.runtime.base import Session, SessionOptions

__all__ = ["TorchSession", "model_from_manifest"]


def model_from_manifest(manifest: Manifest) -> torch.nn.Module:
    """The exact PyTorch model an artifact was exported from (same weights sha256), in eval mode."""
    source = manifest.source
    kind, ident = source.get("kind"), source.get("id")
    if source.get("random_init"):
        raise ConfigError(f"the model behind this artifact ({ident}) was randomly initialised; it cannot be rebuilt")
    weights = source.get("weights_file")
    if kind == "timm":
        ident = f"timm:{ident}"
    if kind not in ("shipped", "checkpoint", "huggingface", "timm", "reference", "transreid"):
        raise ConfigError(f"an artifact exported from a '{kind}' source cannot be rebuilt in PyTorch")
    if kind == "transreid":
        weights = None  # the checkpoint is the model path; camera, view and output come from the manifest
    reid = ReIDSelection(camera=int(source.get("camera", 0)), view=int(source.get("view", 0)),
                         neck_feat=str(source.get("neck_feat", "after")))
    if not isinstance(ident, str) or not ident:
        raise ConfigError("the artifact's manifest does not name the model it came from (source.id)")
    loaded = load_model(ident, weights=weights, img_size=manifest.input_spec.img_size, reid=reid)
    if loaded.source["weights_sha256"] != source.get("weights_sha256"):
        raise ConfigError(f"the weights of {ident} changed since the artifact was exported (sha256 differs)")
    model = loaded.model
    return (NHWCInput(model) if manifest.input_spec.layout is Layout.NHWC else model).eval()


class TorchSession(Session):
    """Runs the artifact's source model in PyTorch (eager, float32) for reference numbers."""

    name = "pytorch"

    def __init__(self, model_file: Path, options: SessionOptions) -> None:
        super().__init__(model_file, options)
        if options.threads:
            torch.set_num_threads(options.threads)
        self._model = model_from_manifest(read_manifest(Path(model_file).parent))

    def run(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self._model(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))).numpy()

    def info(self) -> dict[str, Any]:
        return {**super().info(), "precision": "fp32"}
