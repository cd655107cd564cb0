"""ExecuTorch session: the pip wheel's Python runtime with the XNNPACK delegate.

Its Python API exchanges torch tensors and its extension links libtorch, so this one session needs torch, on a
board too (the import contract allows this module, and only it, to import torch). A runtime without torch is
ExecuTorch's C++ runtime built with the XNNPACK backend; the wheel ships no library for that.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from vit_edge.core.errors import ArtifactError
from vit_edge.core.manifest import DELEGATION_FILE, DelegationReport
from vit_edge.core.records import from_json
from vit_edge.core.targets import EXECUTORCH_RUNTIME
from vit_edge.core.types import Delegated, SessionInfo
from vit_edge.runtime.base import Session, SessionOptions, native_stderr_silenced

__all__ = ["ExecuTorchSession"]


class ExecuTorchSession(Session):
    name = EXECUTORCH_RUNTIME.name
    no_profile_reason = ("the executorch wheel is built without event tracing (ETDump), so it records no per-op "
                         "time; profile the ONNX or OpenVINO artifact, or a source build of ExecuTorch")

    @classmethod
    def installation(cls) -> str:
        return "delegate: XNNPACK (CPU)"

    def __init__(self, model_file: Path, options: SessionOptions) -> None:
        super().__init__(model_file, options)
        with native_stderr_silenced():  # torchao and cpuinfo log on import
            self.require("running .pte programs")
            import executorch.kernels.quantized  # noqa: F401  q/dq kernels for ops outside XNNPACK
            from executorch.extension.pybindings import portable_lib
            from executorch.runtime import Runtime

            if options.threads:  # XNNPACK's pool is process-wide; set before the program loads
                portable_lib._unsafe_reset_threadpool(options.threads)
            try:
                program = Runtime.get().load_program(Path(model_file))
                self._method = program.load_method("forward")
            except (RuntimeError, ValueError) as exc:
                raise ArtifactError(f"ExecuTorch cannot load {model_file}: {str(exc).splitlines()[0]}") from exc

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The program has a static batch of 1: a larger batch is fed one image at a time."""
        import torch

        outputs = []
        for index in range(batch.shape[0]):
            image = torch.from_numpy(np.ascontiguousarray(batch[index : index + 1], dtype=np.float32))
            outputs.append(self._method.execute([image])[0].numpy().copy())
        return np.concatenate(outputs, axis=0)

    def info(self) -> SessionInfo:
        report = _read_delegation(self.model_file.parent / DELEGATION_FILE)
        undelegated = tuple(sorted(report.undelegated_ops)) if report else ()
        delegated = Delegated("XNNPACK", self.options.threads, not undelegated, undelegated)
        return replace(super().info(), delegation=delegated, precision=report.precision if report else "fp32",
                       delegates=report.delegates if report else None)


def _read_delegation(path: Path) -> DelegationReport | None:
    """The exporter's delegation.json beside the program; None where it is missing or unreadable."""
    try:
        return from_json(DelegationReport, json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None

