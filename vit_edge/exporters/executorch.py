"""ExecuTorch: torch.export → to_edge_transform_and_lower with the XNNPACK partitioner → a .pte program.

The model is first written in the shapes the partitioner takes (`xnnpack_shape.py`: LayerNorm and attention).
What XNNPACK still cannot take stays on ExecuTorch's portable kernels, and each such op cuts the graph into another
delegate: `delegation.json` beside the program names those ops (the bench report's "delegated" column reads it).
The program has a static batch of 1, as the TFLite file does; the session feeds larger batches in slices.
"""
from __future__ import annotations

import collections
import contextlib
import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any, Iterator

import torch

from vit_edge.core.errors import ExportError
from vit_edge.core.manifest import DELEGATION_FILE, DelegationReport
from vit_edge.core.records import as_json
from vit_edge.core.types import InputSpec
from vit_edge.exporters.base import Exporter, ExportOptions, conversion_error

__all__ = ["ExecuTorchExporter", "delegation_report"]

_STRUCTURAL = ("executorch_call_delegate", "getitem")


class ExecuTorchExporter(Exporter):
    def write(self, model: torch.nn.Module, spec: InputSpec, out_dir: Path, options: ExportOptions) -> str:
        path = out_dir / "model.pte"
        # a standard-strided example: a 1-channel batch from numpy looks channels-last to torch, and the program
        # would then expect that dim order and fail in XNNPACK at run time
        example = self.example_input(spec, 1).contiguous()
        try:
            with _quiet():
                import executorch.kernels.quantized  # noqa: F401  out-variants of q/dq ops left outside XNNPACK
                from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
                from executorch.exir import to_edge_transform_and_lower

                from vit_edge.exporters.xnnpack_shape import xnnpack_shaped

                program = torch.export.export(xnnpack_shaped(model).eval(), (example,))
                edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
                delegation = delegation_report(edge.exported_program().graph_module)  # before to_executorch
                path.write_bytes(edge.to_executorch().buffer)
        except ExportError:
            raise
        except Exception as exc:  # torch.export, the partitioner and the emitter raise many types
            raise conversion_error("ExecuTorch conversion", exc) from exc
        (out_dir / DELEGATION_FILE).write_text(json.dumps(as_json(delegation), indent=2, sort_keys=True) + "\n")
        return path.name


def delegation_report(graph_module: Any) -> DelegationReport:
    """How many XNNPACK delegates the program has and which ops run outside them (portable kernels), by count."""
    outside: collections.Counter[str] = collections.Counter()
    kernels: collections.Counter[str] = collections.Counter()
    delegates = 0
    for node in graph_module.graph.nodes:
        if node.op == "get_attr" and node.name.startswith("lowered_module_"):
            kernels.update(_gemm_kinds(getattr(graph_module, node.name).original_module.graph.nodes))
        if node.op != "call_function":
            continue
        name = _op_name(node)
        if name == "executorch_call_delegate":
            delegates += 1
        elif name not in _STRUCTURAL:
            outside[name] += 1
    precision = "int8" if any(kind.startswith("int8") for kind in kernels) else "fp32"
    return DelegationReport("XNNPACK", delegates, not outside, dict(sorted(outside.items())),
                            dict(sorted(kernels.items())), precision)


_GEMMS = ("linear", "addmm", "mm", "bmm", "convolution")


def _gemm_kinds(nodes: Any) -> collections.Counter[str]:
    """Each matmul XNNPACK took, as 'int8 linear' (its input and weight come through dequantize: an int8 kernel)
    or 'float bmm' (what runs in float)."""
    kinds: collections.Counter[str] = collections.Counter()
    for node in nodes:
        if node.op != "call_function" or _op_name(node) not in _GEMMS:
            continue
        name = _op_name(node)
        inputs = [arg for arg in node.args[:2] if hasattr(arg, "op")]
        # XNNPACK 1.4 runs bmm (two runtime tensors) in float only: dequantized inputs make it float on INT8-rounded
        # values, not an int8 kernel
        quantized = name != "bmm" and inputs and all("dequantize" in _op_name(arg) for arg in inputs)
        kinds[f"{'int8' if quantized else 'float'} {name}"] += 1
    return kinds


def _op_name(node: Any) -> str:
    """'native_layer_norm' for aten.native_layer_norm.default: the name a user can look up."""
    name = str(getattr(node.target, "__name__", node.target))
    return name.removeprefix("aten.").removeprefix("quantized_decomposed.").split(".")[0]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ExecuTorch and torchao log and warn on import and while lowering (fd 2 included); converter errors still
    arrive as exceptions."""
    from vit_edge.runtime.base import native_stderr_silenced

    logging.getLogger("torchao").setLevel(logging.ERROR)
    with native_stderr_silenced(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield
