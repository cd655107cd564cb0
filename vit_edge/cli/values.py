"""Argument types: each turns a flag's text into a value or one line saying what was expected (argparse exits 2)."""
from __future__ import annotations

import argparse
from typing import Any

from vit_edge.core.options import MAX_PARITY_SAMPLES

__all__ = ["img_size", "positive", "parity_samples", "positive_float", "non_negative_float", "non_negative",
           "int_list", "count_list", "cpu_list", "layer_list", "names", "precision_hint"]


def img_size(text: str) -> int | tuple[int, int]:
    """'224' or '256x128' (height × width)."""
    try:
        parts = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or HxW (e.g. 224 or 256x128), got {text!r}") from None
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected N or HxW with positive sizes, got {text!r}")
    return parts[0] if len(parts) == 1 or parts[0] == parts[1] else (parts[0], parts[1])


def number(kind: type, minimum: float, what: str, most: float = float("inf")) -> Any:
    """An argparse type: a `kind` number from `minimum` to `most`, or one line saying what was expected."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value != value or value < minimum or value in (float("inf"),) or value > most:  # NaN, out of range
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


positive = number(int, 1, "an integer ≥ 1")


# every parity input runs through both models at once: 100000000 grew past 2 GB until the process was killed
parity_samples = number(int, 1, f"an integer ≥ 1 and ≤ {MAX_PARITY_SAMPLES}", most=MAX_PARITY_SAMPLES)


positive_float = number(float, 1e-12, "a positive number")


non_negative_float = number(float, 0.0, "a number ≥ 0")


def non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 0, got {text!r}")
    return value


def int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def count_list(text: str) -> tuple[int, ...]:
    """'0,4,8': integers ≥ 0 (token-merging r values)."""
    values = tuple(non_negative(v) for v in text.split(",") if v.strip())
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers ≥ 0, got {text!r}")
    return values


def cpu_list(text: str) -> tuple[int, ...]:
    """'0,1': CPUs this machine has (checked here, before any measurement starts)."""
    import os

    try:
        cpus = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated CPU numbers, got {text!r}") from None
    available = (sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                 else list(range(os.cpu_count() or 1)))
    missing = [cpu for cpu in cpus if cpu not in available]
    if not cpus or missing:
        raise argparse.ArgumentTypeError(f"CPU(s) {missing or repr(text)} not available here; this process may use "
                                         f"{','.join(map(str, available))}")
    return cpus


def layer_list(text: str) -> tuple[int, ...]:
    try:
        layers = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of block indices (e.g. 2,5,8,11)")
    if len(set(layers)) != len(layers):
        raise argparse.ArgumentTypeError(f"'{text}' names a block twice")
    return layers


def precision_hint(text: str) -> str | None:
    """OpenVINO's inference precision by name; 'default' is the plugin's own choice (None)."""
    return None if text == "default" else text


def names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())
