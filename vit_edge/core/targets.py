"""Every export target, declared once: the registries, the CLI, the inventory and the board zip read this table.

A target is an exporter (torch side, `vit_edge/exporters/`), a runtime session that runs its file (torch-free,
`vit_edge/runtime/`), the precisions it takes, and the packages each side needs. Modules are named as strings so
this file imports nothing heavy: a board reads it without torch, and `vit-edge --help` stays fast.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from vit_edge.core.errors import ConfigError, did_you_mean
from vit_edge.core.types import Precision

__all__ = ["Package", "Target", "Runtime", "TARGETS", "RUNTIMES", "target", "target_name", "runtime", "resolve",
           "tool_packages"]


@dataclass(frozen=True)
class Package:
    """A pip distribution and the module it is imported as."""

    distribution: str
    module: str


@dataclass(frozen=True)
class Runtime:
    """Something that runs a model file: its session class and the package that provides it."""

    name: str
    session: str  # "module:Class", imported only when the runtime is asked for
    package: Package
    extra: str  # the vit-edge extra that installs it
    summary: str
    needs_torch: bool = False  # whether running a file needs torch too (a board must then install it)


@dataclass(frozen=True)
class Target:
    """One export target: what writes its file, what runs it, what each needs."""

    name: str
    suffix: str
    summary: str  # the CLI's help line
    exporter: str  # "module:Class" (torch side)
    runtime: Runtime  # the runtime that verifies and, by default, benchmarks it
    precisions: tuple[Precision, ...]
    converters: tuple[Package, ...]  # what exporting needs besides torch (and the runtime, for parity)
    int8_lowering: str | None = None  # "module:function": the target's rewrite of a QuantizedViT (same scales)
    # 16-bit activations with 8-bit weights (A16W8, --int16): "" where the target's file and runtime take them,
    # else why not, said in one line when they are asked for
    no_int16: str = ""
    int16_with_npu: bool = False  # the NPU's full-integer file (--npu) takes them where the plain file cannot

    @property
    def extra(self) -> str:
        """pip install 'vit-edge[extra]': the runtime's extra, which brings the converters with it."""
        return self.runtime.extra

    @property
    def packages(self) -> tuple[Package, ...]:
        """Every distribution the target needs to export and verify, in install order."""
        seen = {package.distribution: package for package in (*self.converters, self.runtime.package)}
        return tuple(seen.values())


ONNXRUNTIME = Runtime("onnxruntime", "vit_edge.runtime.onnxruntime:OnnxRuntimeSession",
                      Package("onnxruntime", "onnxruntime"), "onnx", "ONNX Runtime (CPU execution provider)")
OPENVINO = Runtime("openvino", "vit_edge.runtime.openvino:OpenVinoSession", Package("openvino", "openvino"),
                   "openvino", "OpenVINO (CPU, Intel iGPU)")
LITERT = Runtime("litert", "vit_edge.runtime.litert:LiteRtSession", Package("ai-edge-litert", "ai_edge_litert"),
                 "tflite", "LiteRT with the XNNPACK delegate")
# ExecuTorch's Python runtime exchanges torch tensors and links libtorch: this session needs torch, board included.
EXECUTORCH = Runtime("executorch", "vit_edge.runtime.executorch:ExecuTorchSession",
                     Package("executorch", "executorch.runtime"), "executorch", "ExecuTorch with the XNNPACK delegate",
                     needs_torch=True)
# The reference: rebuilds the artifact's PyTorch model. It needs torch, so its session lives in reading/.
PYTORCH = Runtime("pytorch", "vit_edge.reading.torch_session:TorchSession", Package("torch", "torch"), "torch",
                  "PyTorch, the model the artifact came from (reference)")

TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("onnx", ".onnx", "ONNX (QDQ for INT8), run by ONNX Runtime", "vit_edge.exporters.onnx:OnnxExporter",
           ONNXRUNTIME, (Precision.FP32, Precision.INT8),
           (Package("onnx", "onnx"), Package("onnxscript", "onnxscript"))),
    Target("openvino", ".xml", "OpenVINO IR (+ .bin), run by OpenVINO", "vit_edge.exporters.openvino:OpenVinoExporter",
           OPENVINO, (Precision.FP32, Precision.FP16, Precision.INT8), (),
           no_int16="OpenVINO has no 16-bit activation kernels (its CPU and GPU plugins run INT8 or float): use "
                    "--target onnx, or --target tflite --npu CONFIG"),
    Target("tflite", ".tflite", "TFLite/LiteRT (builtin ops only), run by LiteRT + XNNPACK",
           "vit_edge.exporters.tflite:TfliteExporter", LITERT, (Precision.FP32, Precision.FP16, Precision.INT8),
           (Package("litert-torch", "litert_torch"),),
           int8_lowering="vit_edge.quantization.lowering:quantize_outputs_for_tflite",
           no_int16="LiteRT's XNNPACK has no 16x8 kernels (the full-integer NPU file takes them: add --npu CONFIG)",
           int16_with_npu=True),
    Target("executorch", ".pte", "ExecuTorch program (.pte) with the XNNPACK delegate, run by ExecuTorch",
           "vit_edge.exporters.executorch:ExecuTorchExporter", EXECUTORCH, (Precision.FP32, Precision.INT8),
           (Package("executorch", "executorch.exir"),),
           int8_lowering="vit_edge.quantization.lowering:quantize_outputs_for_xnnpack",
           no_int16="ExecuTorch's XNNPACK backend has no 16-bit activation kernels: use --target onnx, or --target "
                    "tflite --npu CONFIG"),
)}

RUNTIMES: dict[str, Runtime] = {**{t.runtime.name: t.runtime for t in TARGETS.values()}, PYTORCH.name: PYTORCH}


def target_name(name: str) -> str:
    """A target name as declared, whatever its case (`--target ONNX` is onnx); an unknown name is left as given,
    for `target` to refuse with its suggestions."""
    folded = name.strip().lower()
    return folded if folded in TARGETS else name


def target(name: str) -> Target:
    """The declaration of target `name` (in any case), or a ConfigError that lists the known ones."""
    declared = TARGETS.get(target_name(name))
    if declared is None:
        raise ConfigError(f"unknown target '{name}'{did_you_mean(name.strip().lower(), TARGETS)}; known: "
                          f"{', '.join(TARGETS)}")
    return declared


def runtime(name: str) -> Runtime:
    if name not in RUNTIMES:
        raise ConfigError(f"unknown runtime '{name}'{did_you_mean(name, RUNTIMES)}; known: {', '.join(RUNTIMES)}")
    return RUNTIMES[name]


def resolve(reference: str) -> Any:
    """The object a "module:attribute" string names, imported now."""
    module_name, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def tool_packages() -> tuple[str, ...]:
    """The distributions whose versions a manifest records: ours, torch, numpy, then each target's packages."""
    names = ["vit-edge", "torch", "numpy"]
    for declared in TARGETS.values():
        names += [package.distribution for package in declared.packages if package.distribution not in names]
    return tuple(names)
