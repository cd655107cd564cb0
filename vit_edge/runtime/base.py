"""The Session extension point: run an artifact's model file in its real runtime (never torch here)."""
from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import os
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from vit_edge.core.errors import ConfigError, MissingDependencyError
from vit_edge.core.records import optional, renamed
from vit_edge.core.targets import resolve
from vit_edge.core.targets import runtime as runtime_declaration
from vit_edge.core.targets import target as target_declaration
from vit_edge.core.types import SessionInfo

__all__ = ["summarize_profile", "OpTime", "ProfileSummary", "MatmulTimes",
           "MATMUL_OPS", "Session", "SessionOptions", "default_runtime", "session_class",
           "package_version", "native_stderr_silenced", "require"]


@dataclass(frozen=True)
class SessionOptions:
    """How to run: the accelerator as the runtime spells it (OpenVINO's CPU/GPU/NPU/AUTO, an ORT execution provider),
    thread count, and a precision hint (OpenVINO). "Device" means the machine a bench runs on, never this."""

    accelerator: str = "CPU"
    threads: int | None = None
    precision_hint: str | None = "f32"  # OpenVINO defaults to bf16 on CPUs with AMX/AVX512-BF16
    batch: int | None = None  # compile for this batch size where static shapes run faster (OpenVINO)


class Session(ABC):
    """A loaded model file; `run` takes a float32 batch in the artifact's layout and returns logits."""

    name: str = ""  # its key in core.targets.RUNTIMES, where its package and extra are declared

    def __init__(self, model_file: Path, options: SessionOptions) -> None:
        self.model_file = Path(model_file)
        self.options = options

    @abstractmethod
    def run(self, batch: np.ndarray) -> np.ndarray: ...

    static_batch: int | None = None  # the batch size the runtime compiled for (OpenVINO with options.batch)

    def run_any(self, inputs: np.ndarray) -> np.ndarray:
        """`run` for any number of samples: on a session compiled for one batch size, in batches of it (the last
        padded), so the session that was timed also scores and checks (one session per configuration)."""
        size = self.static_batch
        if not size or len(inputs) == size:
            return self.run(inputs)
        outputs = []
        for start in range(0, len(inputs), size):
            chunk = inputs[start : start + size]
            padded = np.concatenate([chunk, np.repeat(chunk[-1:], size - len(chunk), axis=0)]) \
                if len(chunk) < size else chunk
            outputs.append(self.run(padded)[: len(chunk)])
        return np.concatenate(outputs)

    def info(self) -> SessionInfo:
        """Facts about what really ran (runtime version, device, precision, delegation)."""
        return SessionInfo(self.name, package_version(self.package), self.options.accelerator)

    @property
    def package(self) -> str:
        """The pip distribution that provides the runtime."""
        return runtime_declaration(self.name).package.distribution

    @property
    def extra(self) -> str:
        return runtime_declaration(self.name).extra

    def require(self, purpose: str) -> Any:
        """The runtime's Python module, or MissingDependencyError naming the extra that installs it."""
        return require_runtime(self.name, purpose)

    @classmethod
    def installation(cls) -> str:
        """What `vit-edge devices` says beside the version: devices, providers, delegates."""
        return ""

    can_profile: bool = False  # whether `profile` gives the runtime's own per-op timing
    no_profile_reason: str = "this runtime has no per-op profiler in Python"

    def profile(self, batch: np.ndarray, runs: int) -> list[OpTime]:
        """Per-op timing from the runtime's own profiler, averaged over `runs`."""
        raise ConfigError(f"--profile: {self.name}: {self.no_profile_reason}")


def package_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


MATMUL_OPS = ("MatMul", "Gemm", "MatMulInteger", "MatMulIntegerToFloat", "QLinearMatMul", "DynamicQuantizeMatMul",
              "FullyConnected", "QGemm", "FULLY_CONNECTED", "BATCH_MATMUL")


@dataclass(frozen=True)
class OpTime:
    """One op of a runtime's own profile: its name and type, the precision its kernel ran in, ms per run (and, in
    a summary's top ops, its share of the profile's total)."""

    name: str
    type: str
    precision: str
    ms: float
    share: float | None = optional()


@dataclass(frozen=True)
class MatmulTimes:
    """How many profiled matmuls ran INT8 kernels and how many float, and the INT8 ones' share of the time."""

    int8: int
    floating: int = renamed("float")
    int8_ms_share: float = 0.0


@dataclass(frozen=True)
class ProfileSummary:
    """The ops that take the time, and which matmuls really ran INT8 (a bench row's `profile`)."""

    total_ms: float
    top_ops: tuple[OpTime, ...]
    matmuls: MatmulTimes
    int8_matmul_names: tuple[str, ...]


def summarize_profile(ops: list[OpTime], top: int = 10) -> ProfileSummary:
    """The ops that take the time, and which matmuls really ran INT8 (names listed), from a per-op profile."""
    total = sum(op.ms for op in ops) or 1e-12
    ranked = sorted(ops, key=lambda op: -op.ms)
    matmuls = [op for op in ops if op.type in MATMUL_OPS]
    int8 = [op for op in matmuls if op.precision == "int8"]
    return ProfileSummary(
        total_ms=round(total, 4),
        top_ops=tuple(replace(op, ms=round(op.ms, 4), share=round(op.ms / total, 4)) for op in ranked[:top]),
        matmuls=MatmulTimes(len(int8), len(matmuls) - len(int8), round(sum(op.ms for op in int8) / total, 4)),
        int8_matmul_names=tuple(op.name for op in int8))


def default_runtime(target_name: str) -> str:
    """The runtime that runs a target's files unless told otherwise."""
    return target_declaration(target_name).runtime.name


def session_class(runtime_name: str) -> type[Session]:
    cls: type[Session] = resolve(runtime_declaration(runtime_name).session)
    return cls


def require_runtime(runtime_name: str, purpose: str) -> Any:
    """A declared runtime's module, or MissingDependencyError naming the extra that installs it."""
    declared = runtime_declaration(runtime_name)
    return require(declared.package.module, declared.package.distribution, declared.extra, purpose)


def require(module: str, package: str, extra: str, purpose: str) -> Any:
    """Import an optional runtime, or raise MissingDependencyError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(package, extra, purpose) from exc


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null: C++ runtimes log there past sys.stderr (e.g. LiteRT's INFO lines).

    Failures still arrive as Python exceptions, so nothing a user needs is lost.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
