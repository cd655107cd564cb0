"""Reproduce the shipped checkpoint vit_edge/reading/weights/fmnist_vit_tiny.pt.

Needs Debian's dataset-fashion-mnist (training split). About 10 epochs on 2 CPU cores.
Usage:  .venv/bin/python scripts/train_default_model.py [--epochs 10] [--out PATH]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from vit_edge.data.datasets import load_fashion_mnist
from vit_edge.models.vit import VisionTransformer
from vit_edge.reading.registry import FMNIST_SPEC, FMNIST_TINY_CONFIG
from vit_edge.training import TrainConfig, train_classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("vit_edge/reading/weights/fmnist_vit_tiny.pt"))
    args = parser.parse_args()
    torch.manual_seed(0)
    model = VisionTransformer(FMNIST_TINY_CONFIG)
    metrics = train_classifier(
        model, FMNIST_SPEC, load_fashion_mnist("train"), load_fashion_mnist("test"),
        TrainConfig(epochs=args.epochs), args.out,
    )
    print(f"saved {args.out}: {metrics}")


if __name__ == "__main__":
    main()
