"""The Session extension point: run an artifact's model file in its real runtime (never torch here)."""
from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import os
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from vit_edge.core.errors import ConfigError, MissingDependencyError
from vit_edge.core.targets import resolve
from vit_edge.core.targets import runtime as runtime_declaration
from vit_edge.core.targets import target as target_declaration

__all__ = ["summarize_profile", "MATMUL_OPS", "Session", "SessionOptions", "default_runtime", "session_class",
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

    def info(self) -> dict[str, Any]:
        """Facts about what really ran (runtime version, device, precision, delegation)."""
        return {"runtime": self.name, "version": package_version(self.package), "accelerator": self.options.accelerator}

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

    def profile(self, batch: np.ndarray, runs: int) -> list[dict[str, Any]]:
        """Per-op timing from the runtime's own profiler: [{name, type, precision, ms}] averaged over `runs`."""
        raise ConfigError(f"--profile: {self.name}: {self.no_profile_reason}")


def package_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


MATMUL_OPS = ("MatMul", "Gemm", "MatMulInteger", "MatMulIntegerToFloat", "QLinearMatMul", "DynamicQuantizeMatMul",
              "FullyConnected", "QGemm", "FULLY_CONNECTED", "BATCH_MATMUL")


def summarize_profile(ops: list[dict[str, Any]], top: int = 10) -> dict[str, Any]:
    """The ops that take the time, and which matmuls really ran INT8 (names listed), from a per-op profile."""
    total = sum(op["ms"] for op in ops) or 1e-12
    ranked = sorted(ops, key=lambda op: -op["ms"])
    matmuls = [op for op in ops if op["type"] in MATMUL_OPS]
    int8 = [op for op in matmuls if op["precision"] == "int8"]
    return {
        "total_ms": round(total, 4),
        "top_ops": [{**op, "ms": round(op["ms"], 4), "share": round(op["ms"] / total, 4)} for op in ranked[:top]],
        "matmuls": {"int8": len(int8), "float": len(matmuls) - len(int8),
                    "int8_ms_share": round(sum(op["ms"] for op in int8) / total, 4)},
        "int8_matmul_names": [op["name"] for op in int8],
    }


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
