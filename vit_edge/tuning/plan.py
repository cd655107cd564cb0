"""What tune tries: its config, the candidates (precision × token-merging r) and the rows measured for them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from vit_edge.core.options import check_count, check_counts, check_number
from vit_edge.core.pareto import pareto_front as front_of
from vit_edge.core.targets import target_name
from vit_edge.data.sources import DataOptions

__all__ = ["TuneConfig", "Candidate", "TuneRow", "PRECISIONS", "candidates", "default_merges", "pareto_front"]

# the candidates' precisions and the matmuls each makes INT8 (None: none, an FP32 export)
PRECISIONS: dict[str, tuple[str, ...] | None] = {
    "fp32": None,
    "int8": ("qkv", "qk", "av", "proj", "fc1", "fc2"),  # every matmul
    "int8-linear": ("qkv", "proj", "fc1", "fc2"),  # the linear layers; Q·Kᵀ and attn·V stay float
}


@dataclass(frozen=True)
class TuneConfig:
    """What to try and where: the candidates' axes, the budget, the device and the measurement's length."""

    target: str
    calib: str
    eval_data: str
    max_drop: float
    merges: tuple[int, ...] | None = None  # None: 0 and the r that merge about a quarter and half of the patches
    threads: tuple[int, ...] = (1, 2)
    precisions: tuple[str, ...] = tuple(PRECISIONS)
    device: str = "local"
    eval_limit: int | None = 1000
    calib_size: int = 128
    runs: int = 30
    ssh_options: tuple[str, ...] = ()
    remote_python: str = "python3"
    data_options: DataOptions = DataOptions()

    def __post_init__(self) -> None:
        if isinstance(self.target, str):  # `--target ONNX` is onnx, as for export and quantize
            object.__setattr__(self, "target", target_name(self.target))
        check_counts("threads", self.threads)
        check_counts("merges", self.merges if self.merges is not None else (0,), least=0)
        check_count("eval_limit", self.eval_limit, optional=True)
        check_count("calib_size", self.calib_size)
        check_count("runs", self.runs)
        check_number("max_drop", self.max_drop)


@dataclass(frozen=True)
class Candidate:
    """One artifact to build: its precision (a key of PRECISIONS) and token-merging r."""

    precision: str
    merge: int

    @property
    def name(self) -> str:
        return f"{self.precision}-merge{self.merge}"


@dataclass
class TuneRow:
    """One measured configuration: the candidate, its run-time settings and what the device measured."""

    candidate: str
    precision: str
    merge: int
    threads: int | None
    hint: str | None
    status: str
    p50_ms: float | None = None
    top1: float | None = None
    drop: float | None = None
    artifact: str = ""
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def default_merges(num_patches: int, depth: int) -> tuple[int, ...]:
    """0, and the r that merge about a quarter and about half of the patches over the blocks."""
    return tuple(sorted({0, max(1, round(num_patches / (4 * depth))), max(1, round(num_patches / (2 * depth)))}))


def candidates(config: TuneConfig, merges: Sequence[int]) -> list[Candidate]:
    """The unmerged FP32 candidate first (the accuracy baseline, measured even when `precisions` leaves FP32 out),
    then every precision × r."""
    ordered = [Candidate("fp32", 0)]
    ordered += [Candidate(p, r) for r in merges for p in config.precisions if Candidate(p, r) not in ordered]
    return ordered


def pareto_front(rows: list[TuneRow]) -> list[TuneRow]:
    """The measured rows no other row beats on both latency and top-1, fastest first."""
    return front_of(rows, cost=lambda r: r.p50_ms if r.status == "ok" else None, score=lambda r: r.top1)
