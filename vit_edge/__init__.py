"""vit-edge: take a trained Vision Transformer from PyTorch to an edge device, verified and measured.

The verbs are functions (`export`, `quantize`, `bench`, `info`, `train`, `preprocess`, `load_model`, in api.py,
each a short list of steps from `pipeline`); `reporting(fn)` sends their progress (scoring, calibration, QAT
steps, bench configurations, tune candidates) to `fn(what, done, total)`. Packages are nouns, in layers
(core/package_layers.py): `core` (torch-free facts and mechanisms), `data`, `runtime` (what a board runs), then
the torch side: `models` (the network), `reading` (timm, transformers and checkpoints into it; the families),
`training`, `exporters` and `quantization`; above them `benchmarking` (host-side measuring), `tuning` and `cli`.
`import vit_edge` stays light: torch, the converters and the runtimes are imported only by the verbs that need
them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vit_edge.core.version import __version__

__all__ = ["__version__", "export", "quantize", "bench", "bench_table", "info", "preprocess", "train", "load_model",
           "reporting", "Artifact", "ExportOptions", "ReIDOptions", "QuantizeConfig"]

from vit_edge.api import (
    Artifact,
    ExportOptions,
    QuantizeConfig,
    ReIDOptions,
    bench,
    bench_table,
    export,
    info,
    preprocess,
    quantize,
    reporting,
    train,
)
from vit_edge.core.words import python_words

if TYPE_CHECKING:
    from vit_edge.reading.loaders import LoadedModel


@python_words
def load_model(model: Any, **kwargs: Any) -> "LoadedModel":
    """The reference ViT for `model` (a name, timm:NAME, a Hugging Face folder, a checkpoint, a module)."""
    from vit_edge.reading.loaders import load_model as _load_model

    return _load_model(model, **kwargs)
