"""The package's layers, top to bottom: a module may import from its own layer and the ones below, never above.

This tuple is the one statement of the architecture. The import contract in the tests is generated from it
(import-linter, every import counted, inside functions too), and the zip that runs on a board is the board
layers' files, so what a board gets is exactly what the contract proves needs no torch.
"""
from __future__ import annotations

__all__ = ["LAYERS", "BOARD_LAYERS", "TORCH_FREE_LAYERS", "FORBIDDEN_ON_BOARD", "TORCH_RUNTIME_SESSIONS",
           "SESSIONS_ABOVE_RUNTIME"]

LAYERS: tuple[tuple[str, ...], ...] = (
    ("vit_edge.cli",),
    ("vit_edge.tuning",),  # tune: builds with the verbs below, measures with bench
    ("vit_edge.api",),
    ("vit_edge.pipeline",),  # the verbs' steps: checks before loading, load, convert, verify, write
    ("vit_edge.benchmarking",),  # host side: the sweep, devices, fleets, reports
    ("vit_edge.exporters", "vit_edge.quantization"),  # torch side, independent of each other
    ("vit_edge.training",),  # torch side: training a model from scratch (QAT builds on it)
    ("vit_edge.reading",),  # torch side: timm/HF/TransReID/checkpoint readers, families, names, the PyTorch session
    ("vit_edge.models",),  # torch side: the network (config, layers, the reference ViT and its variants)
    ("vit_edge.runtime",),  # what a board runs: sessions, the measurement, the runner
    ("vit_edge.data",),  # datasets and preprocessing (numpy, Pillow)
    ("vit_edge.core",),  # errors, types, target declarations, the manifest, parity arithmetic
)

# What the measuring process imports on a board (zipped by benchmarking/remote.py), bottom-up.
BOARD_LAYERS: tuple[str, ...] = ("vit_edge.core", "vit_edge.data", "vit_edge.runtime")
# Layers whose code must run where torch is not installed (the CLI's help, `vit-edge devices`, a board).
TORCH_FREE_LAYERS: tuple[str, ...] = ("vit_edge.core", "vit_edge.data", "vit_edge.runtime", "vit_edge.benchmarking")
# Packages the board layers must never import, at module level or inside a function.
FORBIDDEN_ON_BOARD: tuple[str, ...] = ("torch", "safetensors", "onnx", "onnxscript", "litert_torch", "nncf",
                                       "timm", "transformers")
# The exceptions, each a runtime whose own Python API exchanges torch tensors (the board then needs torch too).
TORCH_RUNTIME_SESSIONS: tuple[str, ...] = ("vit_edge.runtime.executorch",)
# Modules a declaration in core/targets.py names as a "module:Class" string are imported by whoever resolves it
# (runtime/base.py a session, exporters/registry.py an exporter, pipeline/checks.py a lowering): the contract test
# counts each as that import. The exceptions, each a session in a layer above runtime/, resolved only on a host that
# has that layer and torch: the pytorch runtime's session, which rebuilds the artifact's PyTorch model.
SESSIONS_ABOVE_RUNTIME: tuple[str, ...] = ("vit_edge.reading.torch_session",)
