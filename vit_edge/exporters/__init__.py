"""Torch-side exporters: one module per target, each an `Exporter` named by its declaration in `core/targets.py`."""
