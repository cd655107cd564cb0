"""Activation statistics and the four ways to turn them into an INT8 range.

One pass over the calibration data: each observer keeps the exact min/max and a bounded random sample of values,
which is enough for percentiles and for the MSE and KL (entropy) searches over clipping ranges.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["HistogramObserver", "choose_range", "quantization_mse"]

SAMPLES_PER_CALL = 65536


class HistogramObserver:
    def __init__(self, seed: int = 0) -> None:
        self.low, self.high = float("inf"), float("-inf")
        self.samples: list[np.ndarray] = []
        self.generator = torch.Generator().manual_seed(seed)

    def observe(self, x: torch.Tensor) -> None:
        flat = x.detach().reshape(-1).float()
        self.low = min(self.low, float(flat.min()))
        self.high = max(self.high, float(flat.max()))
        if flat.numel() > SAMPLES_PER_CALL:
            index = torch.randint(0, flat.numel(), (SAMPLES_PER_CALL,), generator=self.generator)
            flat = flat[index]
        self.samples.append(flat.numpy().copy())

    @property
    def seen(self) -> bool:
        return bool(self.samples)

    def values(self) -> np.ndarray:
        return np.concatenate(self.samples) if self.samples else np.zeros(1, dtype=np.float32)


def _fake_quant(values: np.ndarray, low: float, high: float) -> np.ndarray:
    low, high = min(low, 0.0), max(high, 0.0)
    scale = max((high - low) / 255.0, 1e-12)
    zero_point = np.round(-128 - low / scale)
    q = np.clip(np.round(values / scale) + zero_point, -128, 127)
    return (q - zero_point) * scale


def quantization_mse(values: np.ndarray, low: float, high: float) -> float:
    return float(np.mean((values - _fake_quant(values, low, high)) ** 2))


def _candidates(low: float, high: float) -> list[tuple[float, float]]:
    return [(low * f, high * f) for f in np.linspace(0.2, 1.0, 41)]


def _entropy_threshold(values: np.ndarray, bins: int = 2048, levels: int = 128) -> float:
    """TensorRT's KL calibration on |x|: the threshold whose 128-level quantized histogram loses least information."""
    magnitudes = np.abs(values)
    hist, edges = np.histogram(magnitudes, bins=bins, range=(0.0, float(magnitudes.max()) or 1.0))
    hist = hist.astype(np.float64)
    best_kl, best_index = np.inf, bins
    for index in range(levels, bins + 1, 16):
        p = hist[:index].copy()
        p[-1] += hist[index:].sum()  # outliers are clipped into the last bin
        chunks = np.array_split(hist[:index], levels)
        q = np.concatenate([np.where(c > 0, c.sum() / max((c > 0).sum(), 1), 0.0) for c in chunks])
        mask = p > 0
        p_n, q_n = p / p.sum(), q / max(q.sum(), 1e-30)
        kl = float(np.sum(p_n[mask] * np.log(p_n[mask] / np.maximum(q_n[mask], 1e-12))))
        if kl < best_kl:
            best_kl, best_index = kl, index
    return float(edges[best_index])


def choose_range(observer: HistogramObserver, method: str, percentile: float = 99.99) -> tuple[float, float]:
    """(low, high) for an activation: the observed extremes, a percentile, or the range minimising MSE or KL."""
    low, high = observer.low, observer.high
    if method == "minmax" or high <= low:
        return low, high
    values = observer.values()
    if method == "percentile":
        lo, hi = np.percentile(values, [100.0 - percentile, percentile])
        return max(float(lo), low), min(float(hi), high)
    if method == "mse":
        subset = values[:: max(1, len(values) // 200_000)]
        return min(_candidates(low, high), key=lambda r: quantization_mse(subset, *r))
    if method == "entropy":
        threshold = _entropy_threshold(values)
        return max(low, -threshold), min(high, threshold)
    raise ValueError(f"unknown calibration method {method}")
