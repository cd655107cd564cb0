"""LiteRT session (ai-edge-litert: runs any .tflite without TensorFlow) with XNNPACK and a thread count.

XNNPACK is applied by default (OpResolverType.AUTO); `tflite_op_names` lists the file's own ops without it.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from vit_edge.core.errors import ArtifactError
from vit_edge.core.targets import LITERT
from vit_edge.core.types import Delegated, SessionInfo
from vit_edge.runtime.base import Session, SessionOptions, native_stderr_silenced, require_runtime

__all__ = ["LiteRtSession", "tflite_op_names", "ops_by_activation_type", "undelegated_ops"]


def _interpreter(model_file: Path, threads: int | None, delegate: bool) -> Any:
    require_runtime(LITERT.name, "running .tflite files")
    import ai_edge_litert.interpreter as module
    resolver = (module.OpResolverType.AUTO if delegate
                else module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    try:
        with native_stderr_silenced():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." and the like
            interpreter = module.Interpreter(model_path=str(model_file), num_threads=threads or 1,
                                             experimental_op_resolver_type=resolver)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ArtifactError(f"LiteRT cannot load {model_file}: {str(exc).strip().splitlines()[0]}") from exc
    return interpreter


def tflite_op_names(model_file: Path) -> list[str]:
    """The model's own ops (before any delegate), e.g. to prove that no Flex (Select TF) op is present."""
    return [op["op_name"] for op in _interpreter(model_file, 1, delegate=False)._get_ops_details()]


def ops_by_activation_type(model_file: Path) -> dict[str, dict[str, int]]:
    """The model's ops grouped by the type of the value each writes ('int8', 'int16', 'float32', ...), counted
    per op type: which ops run int16, and which still compute in float."""
    interpreter = _interpreter(model_file, 1, delegate=False)
    dtypes = {int(t["index"]): np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
    grouped: dict[str, dict[str, int]] = {}
    for op in interpreter._get_ops_details():
        outputs = [int(t) for t in op["outputs"] if int(t) >= 0]
        kind = dtypes.get(outputs[0], "?") if outputs else "?"
        if op["op_name"] == "QUANTIZE" and op["inputs"].size and dtypes.get(int(op["inputs"][0])) == "float32":
            kind = "float32"  # a float → int conversion reads float: a CPU op on an integer-only accelerator
        counts = grouped.setdefault(kind, {})
        counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    return {kind: dict(sorted(counts.items())) for kind, counts in sorted(grouped.items())}


class LiteRtSession(Session):
    name = LITERT.name

    @classmethod
    def installation(cls) -> str:
        return "delegate: XNNPACK (CPU)"

    no_profile_reason = ("LiteRT's Python interpreter has no per-op profiler; profile a .tflite with "
                         "--device adb:SERIAL (benchmark_model's op profiling) or use the ONNX/OpenVINO artifact")

    def __init__(self, model_file: Path, options: SessionOptions) -> None:
        super().__init__(model_file, options)
        self._interp = _interpreter(self.model_file, options.threads, delegate=True)
        self._input = self._interp.get_input_details()[0]
        self._output = self._interp.get_output_details()[0]

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Runs the file's fixed batch size; a larger batch is fed in slices of that size."""
        step = int(self._input["shape"][0])
        outputs = []
        for start in range(0, batch.shape[0], step):
            chunk = np.ascontiguousarray(batch[start : start + step], dtype=np.float32)
            self._interp.set_tensor(self._input["index"], _to_tensor_type(chunk, self._input))
            self._interp.invoke()
            outputs.append(_to_float(self._interp.get_tensor(self._output["index"]), self._output))
        return np.concatenate(outputs, axis=0)

    def info(self) -> SessionInfo:
        ops = self._interp._get_ops_details()
        left = undelegated_ops(ops)
        delegated = Delegated("XNNPACK", self.options.threads or 1, not left, tuple(sorted(set(left))))
        return replace(super().info(), delegation=delegated, precision=self._matmul_precision(ops))

    def _matmul_precision(self, ops: list[dict[str, Any]]) -> str:
        """'int8' when the matmuls take int8 activations (full-integer), 'int16' when they take int16 (A16W8),
        'int8+int16' for both, else 'fp32' (FP16 weights are widened)."""
        dtypes = {int(t["index"]): t["dtype"] for t in self._interp.get_tensor_details()}
        matmuls = [op for op in ops if op["op_name"] in ("FULLY_CONNECTED", "BATCH_MATMUL")]
        widths = [name for name, dtype in (("int8", np.int8), ("int16", np.int16))
                  if any(dtypes.get(int(op["inputs"][0])) == dtype for op in matmuls)]
        return "+".join(widths) or "fp32"


def undelegated_ops(ops: list[dict[str, Any]]) -> list[str]:
    """Ops that run outside the delegate, from the interpreter's node list after delegation.

    The node list keeps the replaced nodes beside each DELEGATE node; walking back from a DELEGATE node's outputs
    to its inputs finds the nodes it took over, and whatever is left runs on the reference kernels.
    """
    producers = {int(t): op for op in ops if op["op_name"] != "DELEGATE" for t in op["outputs"]}
    covered: set[int] = set()
    for delegate in (op for op in ops if op["op_name"] == "DELEGATE"):
        stop = {int(t) for t in delegate["inputs"]}
        stack = [int(t) for t in delegate["outputs"]]
        while stack:
            tensor = stack.pop()
            node = producers.get(tensor)
            if tensor in stop or node is None or node["index"] in covered:
                continue
            covered.add(node["index"])
            stack.extend(int(t) for t in node["inputs"])
    return [op["op_name"] for op in ops if op["op_name"] != "DELEGATE" and op["index"] not in covered]


def _to_tensor_type(values: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """Float input as the file takes it: a full-integer file (an NPU's) reads int8, quantized with its own scale."""
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return values
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale) + zero_point, info.min, info.max).astype(dtype)


def _to_float(values: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """A full-integer file's output dequantized with its scale; a float output as it is (copied)."""
    if np.dtype(detail["dtype"]) == np.float32:
        return values.copy()
    scale, zero_point = detail["quantization"]
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)
