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

__all__ = ["Package", "Target", "SubTarget", "Build", "Runtime", "TARGETS", "RUNTIMES", "DEFAULT_TARGET",
           "TARGET_OPTIONS", "ONNX", "OPENVINO", "TFLITE", "EXECUTORCH", "ETHOS_U", "NPU_CONFIGS", "ONNXRUNTIME",
           "OPENVINO_RUNTIME", "LITERT", "EXECUTORCH_RUNTIME", "PYTORCH", "target", "target_name", "runtime",
           "resolve", "tool_packages", "flag", "takers"]


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
    # the inference-precision hints tune measures: f32, and for OpenVINO also its default (None: bf16 where the CPU
    # has it, what users run)
    precision_hints: tuple[str | None, ...] = ("f32",)
    adb_binary: str = ""  # the Android binary that runs its files on a phone over adb ("" where there is none)


@dataclass(frozen=True)
class SubTarget:
    """A target's INT8 file built for an accelerator and compiled for one of its configurations (the Ethos-U NPU,
    by Vela). The parent's option `option` names the configuration (`--npu CONFIG`); what it changes (precisions,
    lowering, 16-bit activations, the compile step) is declared here, and each step reads it from `Build`."""

    name: str
    option: str  # the ExportOptions field, and CLI flag, that chooses it by naming a configuration
    configurations: tuple[str, ...]
    summary: str  # the flag's help: what the file becomes
    compiler: str  # "module:function" (model_file, staging, configuration, log) → the manifest's npu_estimate
    tool: Package  # what compiles (found, not imported, before anything is loaded)
    extra: str  # the vit-edge extra that installs the tool
    precisions: tuple[Precision, ...] = (Precision.INT8,)
    int8_lowering: str | None = None
    no_int16: str = ""  # as Target.no_int16
    no_dense: str = ""  # why a dense model (Depth Anything) cannot be built for it yet; "" where it can


@dataclass(frozen=True)
class Target:
    """One export target: what writes its file, what runs it, what each needs, the options only it takes."""

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
    # the ExportOptions fields only this target takes (a sub-target's option too); any other target refuses them
    options: tuple[str, ...] = ()
    sub_targets: tuple[SubTarget, ...] = ()

    @property
    def extra(self) -> str:
        """pip install 'vit-edge[extra]': the runtime's extra, which brings the converters with it."""
        return self.runtime.extra

    @property
    def packages(self) -> tuple[Package, ...]:
        """Every distribution the target needs to export and verify, in install order."""
        seen = {package.distribution: package for package in (*self.converters, self.runtime.package)}
        return tuple(seen.values())

    @property
    def accepts(self) -> tuple[str, ...]:
        """The target-specific options this target takes: its own and its sub-targets' choosers."""
        return (*self.options, *(sub.option for sub in self.sub_targets))


@dataclass(frozen=True)
class Build:
    """What one export builds: the target, or the sub-target the options chose, with its configuration. Each step
    (checks, lowering, exporter, writing) asks this, so a sub-target is never a flag tested in each of them."""

    target: Target
    sub_target: SubTarget | None = None
    configuration: str | None = None

    @property
    def precisions(self) -> tuple[Precision, ...]:
        return (self.sub_target or self.target).precisions

    @property
    def int8_lowering(self) -> str | None:
        return (self.sub_target or self.target).int8_lowering

    @property
    def no_int16(self) -> str:
        return (self.sub_target or self.target).no_int16

    @property
    def no_dense(self) -> str:
        return self.sub_target.no_dense if self.sub_target else ""

    @property
    def words(self) -> str:
        """How a message names it: '--target tflite', or '--target tflite --npu ethos-u85-256'."""
        chosen = f" --{flag(self.sub_target.option)} {self.configuration}" if self.sub_target else ""
        return f"--target {self.target.name}{chosen}"


def flag(option: str) -> str:
    """The CLI flag of an options field, without its dashes: each flag's dest is the field it fills."""
    return option.replace("_", "-")


ONNXRUNTIME = Runtime("onnxruntime", "vit_edge.runtime.onnxruntime:OnnxRuntimeSession",
                      Package("onnxruntime", "onnxruntime"), "onnx", "ONNX Runtime (CPU execution provider)")
OPENVINO_RUNTIME = Runtime("openvino", "vit_edge.runtime.openvino:OpenVinoSession", Package("openvino", "openvino"),
                           "openvino", "OpenVINO (CPU, Intel iGPU)", precision_hints=("f32", None))
LITERT = Runtime("litert", "vit_edge.runtime.litert:LiteRtSession", Package("ai-edge-litert", "ai_edge_litert"),
                 "tflite", "LiteRT with the XNNPACK delegate", adb_binary="benchmark_model")
# ExecuTorch's Python runtime exchanges torch tensors and links libtorch: this session needs torch, board included.
EXECUTORCH_RUNTIME = Runtime("executorch", "vit_edge.runtime.executorch:ExecuTorchSession",
                             Package("executorch", "executorch.runtime"), "executorch",
                             "ExecuTorch with the XNNPACK delegate", needs_torch=True)
# The reference: rebuilds the artifact's PyTorch model. It needs torch, so its session lives in reading/.
PYTORCH = Runtime("pytorch", "vit_edge.reading.torch_session:TorchSession", Package("torch", "torch"), "torch",
                  "PyTorch, the model the artifact came from (reference)")

# The Arm Ethos-U configurations Vela (ethos-u-vela 5.2) compiles for: the NPU and its MACs per cycle
NPU_CONFIGS = ("ethos-u55-32", "ethos-u55-64", "ethos-u55-128", "ethos-u55-256", "ethos-u65-256", "ethos-u65-512",
               "ethos-u85-128", "ethos-u85-256", "ethos-u85-512", "ethos-u85-1024", "ethos-u85-2048")
ETHOS_U = SubTarget(
    "ethos-u", "npu", NPU_CONFIGS,
    "compile the INT8 file for an Arm Ethos-U with Vela (the vela extra) and record Vela's placement and estimate",
    "vit_edge.exporters.vela:compile_for_npu", Package("ethos-u-vela", "ethosu.vela"), "vela",
    # every tensor integer, GELU and Softmax int8 ops: nothing left to the CPU (lowering.quantize_outputs_for_npu)
    int8_lowering="vit_edge.quantization.lowering:quantize_outputs_for_npu",
    no_dense="its integer graph covers ViT blocks only, not a dense model's head (Depth Anything): leave --npu out")

ONNX = Target("onnx", ".onnx", "ONNX (QDQ for INT8), run by ONNX Runtime", "vit_edge.exporters.onnx:OnnxExporter",
              ONNXRUNTIME, (Precision.FP32, Precision.INT8),
              (Package("onnx", "onnx"), Package("onnxscript", "onnxscript")),
              options=("opset", "ort_fusions", "dynamic_size"))
OPENVINO = Target("openvino", ".xml", "OpenVINO IR (+ .bin), run by OpenVINO",
                  "vit_edge.exporters.openvino:OpenVinoExporter", OPENVINO_RUNTIME,
                  (Precision.FP32, Precision.FP16, Precision.INT8), (),
                  options=("dynamic_size",),  # any input size (--dynamic-size): TFLite's and ExecuTorch's files
                  # are converted for one shape
                  no_int16="OpenVINO has no 16-bit activation kernels (its CPU and GPU plugins run INT8 or float): "
                           "use --target onnx, or --target tflite --npu CONFIG")
TFLITE = Target("tflite", ".tflite", "TFLite/LiteRT (builtin ops only), run by LiteRT + XNNPACK",
                "vit_edge.exporters.tflite:TfliteExporter", LITERT, (Precision.FP32, Precision.FP16, Precision.INT8),
                (Package("litert-torch", "litert_torch"),),
                int8_lowering="vit_edge.quantization.lowering:quantize_outputs_for_tflite",
                no_int16="LiteRT's XNNPACK has no 16x8 kernels (the full-integer NPU file takes them: add --npu "
                         "CONFIG)",
                sub_targets=(ETHOS_U,))
EXECUTORCH = Target("executorch", ".pte", "ExecuTorch program (.pte) with the XNNPACK delegate, run by ExecuTorch",
                    "vit_edge.exporters.executorch:ExecuTorchExporter", EXECUTORCH_RUNTIME,
                    (Precision.FP32, Precision.INT8), (Package("executorch", "executorch.exir"),),
                    int8_lowering="vit_edge.quantization.lowering:quantize_outputs_for_xnnpack",
                    no_int16="ExecuTorch's XNNPACK backend has no 16-bit activation kernels: use --target onnx, or "
                             "--target tflite --npu CONFIG")

TARGETS: dict[str, Target] = {t.name: t for t in (ONNX, OPENVINO, TFLITE, EXECUTORCH)}
DEFAULT_TARGET = ONNX.name  # the verbs' default: the most portable file

RUNTIMES: dict[str, Runtime] = {**{t.runtime.name: t.runtime for t in TARGETS.values()}, PYTORCH.name: PYTORCH}
# every option some target takes and the others refuse (ExportOptions checks them against the target's `accepts`)
TARGET_OPTIONS: tuple[str, ...] = tuple(dict.fromkeys(option for t in TARGETS.values() for option in t.accepts))


def takers(option: str) -> str:
    """The targets that take `option`, as a message and the CLI's help name them: '--target onnx'."""
    return " or ".join(f"--target {t.name}" for t in TARGETS.values() if option in t.accepts)


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
