"""vit-edge: take a trained Vision Transformer from PyTorch to an edge device, verified and measured.

The verbs are functions: `export`, `quantize`, `bench`, `info`, `train`, `load_model`. Packages are nouns:
`core` (torch-free facts), `data`, `runtime` (what a board runs), `bench` (host-side measuring), `models`,
`exporters` and `quantization` (torch side). `import vit_edge` stays light: torch, the converters and the
runtimes are imported only by the verbs that need them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vit_edge.core.version import __version__

__all__ = ["__version__", "export", "quantize", "bench", "bench_table", "info", "preprocess", "train", "load_model",
           "Artifact", "ExportOptions", "ReIDOptions", "QuantizeConfig"]

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
