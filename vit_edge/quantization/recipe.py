"""The quantization recipe: one dataclass that says what is quantized and how, JSON round-trip included."""
from __future__ import annotations

import fnmatch
import json
from dataclasses import asdict, dataclass
from typing import Any

from vit_edge.core.errors import ConfigError

__all__ = ["Recipe", "MATMUL_KINDS", "CALIBRATION_METHODS", "NONLINEAR_INPUTS"]

# Per block: the qkv projection, Q·Kᵀ, attn·V, the output projection, fc1 and fc2; optionally the patch
# embedding (a convolution) and the head.
MATMUL_KINDS = ("qkv", "qk", "av", "proj", "fc1", "fc2")
OPTIONAL_KINDS = ("patch_embed", "head")
CALIBRATION_METHODS = ("minmax", "percentile", "entropy", "mse")
# Inputs of the float ops that stay float by default; quantized on request (hardware without float units).
NONLINEAR_INPUTS = ("softmax", "gelu", "layernorm")


@dataclass(frozen=True)
class Recipe:
    """INT8 weights (symmetric; per output channel unless `per_tensor_weights`) and INT8 activations (per tensor).

    `nonlinear_inputs` ('softmax', 'gelu', 'layernorm') also quantizes the inputs of those float ops.
    `keep_attention_range`: attention logits and probabilities are calibrated by min/max whatever `calibration`
    says (clipping the largest changes what a head attends to); False applies `calibration` to every tensor, as
    TensorRT's entropy calibrator does.
    `skip` holds fnmatch patterns on module names (e.g. 'blocks.0.*', '*.attn.qk'): those stay float.
    `smoothquant`: 'auto' tries scale migration from each LayerNorm into the next linear and keeps it where it
    lowers the calibration error; 'off', or an alpha in (0, 1) to force it.
    """

    kinds: tuple[str, ...] = MATMUL_KINDS
    skip: tuple[str, ...] = ()
    calibration: str = "percentile"
    percentile: float = 99.99
    per_tensor_weights: bool = False
    smoothquant: str = "auto"
    max_drop: float | None = None
    nonlinear_inputs: tuple[str, ...] = ()
    keep_attention_range: bool = True
    int16: tuple[str, ...] = ()
    max_abs_rel: float | None = None  # a dense model's budget: AbsRel against FP32 in percent (quantization/dense.py)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(MATMUL_KINDS) - set(OPTIONAL_KINDS)
        if unknown:
            raise ConfigError(f"unknown matmul kind(s) {sorted(unknown)}; known: "
                              f"{', '.join(MATMUL_KINDS + OPTIONAL_KINDS)}")
        if set(self.nonlinear_inputs) - set(NONLINEAR_INPUTS):
            raise ConfigError(f"unknown op(s) {sorted(set(self.nonlinear_inputs) - set(NONLINEAR_INPUTS))} for "
                              f"quantized inputs; known: {', '.join(NONLINEAR_INPUTS)}")
        if self.calibration not in CALIBRATION_METHODS:
            raise ConfigError(f"unknown calibration '{self.calibration}'; known: {', '.join(CALIBRATION_METHODS)}")
        if not 50.0 < self.percentile <= 100.0:
            raise ConfigError(f"percentile {self.percentile} must be in (50, 100]")
        if self.smoothquant not in ("auto", "off"):
            try:
                alpha = float(self.smoothquant)
            except ValueError:
                raise ConfigError(f"smoothquant must be 'auto', 'off' or an alpha in (0, 1), not "
                                  f"'{self.smoothquant}'") from None
            if not 0.0 < alpha < 1.0:
                raise ConfigError(f"smoothquant alpha {alpha} must be in (0, 1)")
        if any(not isinstance(pattern, str) or not pattern.strip() for pattern in self.int16):
            raise ConfigError(f"--int16 takes module-name patterns such as 'blocks.0.*' or '*', not {list(self.int16)}")
        if self.max_drop is not None and self.max_drop < 0:
            raise ConfigError(f"--max-drop {self.max_drop} must be ≥ 0 (percentage points of top-1)")
        if self.max_abs_rel is not None and (isinstance(self.max_abs_rel, bool)
                                             or not isinstance(self.max_abs_rel, (int, float))
                                             or not 0 <= self.max_abs_rel < float("inf")):
            raise ConfigError(f"--max-abs-rel {self.max_abs_rel!r} must be a number ≥ 0 (AbsRel against FP32, in %)")

    def skips(self, name: str) -> bool:
        """Whether the skip list keeps the matmul `name` float."""
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.skip)

    def int16_for(self, name: str) -> bool:
        """Whether the op `name` (a module path) keeps its activations in INT16."""
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.int16)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["kinds"], data["skip"] = list(self.kinds), list(self.skip)
        data["nonlinear_inputs"], data["int16"] = list(self.nonlinear_inputs), list(self.int16)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Recipe":
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        for key in ("kinds", "skip", "nonlinear_inputs", "int16"):
            if key in fields:
                fields[key] = tuple(fields[key])
        return cls(**fields)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)
