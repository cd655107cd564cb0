"""Arm's Vela compiler on an INT8 TFLite: the file an Ethos-U NPU runs, and Vela's estimate of it.

Vela (`ethos-u-vela`, the `vela` extra) maps the operators an Ethos-U supports onto the NPU and leaves the rest
to the CPU, then estimates cycles, inference time and memory traffic for the configuration, with no hardware.
Those are estimates: vit-edge records them as Vela's, with the configuration and the command that reproduces
them, and never as a measurement. The compiled file (`model_vela.tflite`) holds an `ethos-u` custom operator
that only a device with the NPU runs; the artifact's model stays the plain INT8 file, checked in LiteRT.
"""
from __future__ import annotations

import csv
import importlib.metadata
import importlib.util
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Callable

from vit_edge.core.errors import ExportError, MissingDependencyError
from vit_edge.core.outputs import replace_file, scratch_folder
from vit_edge.core.summaries import NpuEstimate
from vit_edge.core.targets import ETHOS_U

__all__ = ["VELA_FILE", "check_vela", "compile_for_npu", "vela_command"]

VELA_FILE = "model_vela.tflite"
_TIMEOUT_S = 1800


def check_vela() -> None:
    """One line naming the extra when Vela is not installed (the pipeline checks it before the model is loaded,
    from the sub-target's declaration; this is for a direct call)."""
    if importlib.util.find_spec("ethosu") is None or importlib.util.find_spec(ETHOS_U.tool.module) is None:
        raise MissingDependencyError(ETHOS_U.tool.distribution, ETHOS_U.extra,
                                     f"--{ETHOS_U.option} (Arm's Vela compiler for the Ethos-U)")


def vela_command(model_file: str, config: str, output_dir: str = "vela-out") -> list[str]:
    """The command that compiles and estimates (defaults for system and memory configuration); the per-layer CSV
    that says where each operator runs needs --verbose-performance."""
    return ["vela", model_file, "--accelerator-config", config, "--output-dir", output_dir, "--verbose-performance"]


def compile_for_npu(model_file: Path, staging: Path, config: str, log: Callable[[str], None]) -> NpuEstimate:
    """Compile `model_file` for `config` into `staging/model_vela.tflite`; Vela's placement and estimate."""
    check_vela()
    log(f"compiling for {config} with Vela …")
    with scratch_folder(".vela-", near=staging) as out:
        args = [sys.executable, "-m", "ethosu.vela", *vela_command(str(model_file), config, str(out))[1:]]
        try:
            proc = subprocess.run(args, capture_output=True, text=True, timeout=_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise ExportError(f"Vela did not finish compiling for {config} in {_TIMEOUT_S} s") from exc
        compiled = Path(out) / f"{model_file.stem}_vela.tflite"
        if proc.returncode != 0 or not compiled.is_file():
            last = (proc.stderr.strip() or proc.stdout.strip() or f"exit code {proc.returncode}").splitlines()[-1]
            raise ExportError(f"Vela could not compile {model_file.name} for {config}: {last}")
        estimate = _read_estimate(Path(out), model_file, config)
        replace_file(compiled, staging / VELA_FILE)
    from vit_edge.runtime.litert import ops_by_activation_type

    return replace(estimate, ops_by_activation=ops_by_activation_type(model_file))


def _read_estimate(out: Path, model_file: Path, config: str) -> NpuEstimate:
    """Vela's summary CSV (configuration, time, traffic) and per-layer CSV (where each operator runs), with the
    configuration and the command that reproduce them."""
    stem = model_file.stem
    summaries = sorted(out.glob(f"{stem}_summary_*.csv"))
    layers = out / f"{stem}_per-layer.csv"
    if not summaries or not layers.is_file():
        raise ExportError(f"Vela wrote no estimate for {stem} (its summary or per-layer CSV is missing)")
    with open(summaries[0], newline="") as handle:
        summary = next(csv.DictReader(handle))
    with open(layers, newline="") as handle:
        placed = [(row["Original Operator"], row["Target"]) for row in csv.DictReader(handle)]
    on_cpu = Counter(op for op, target in placed if target != "NPU")
    npu_ops = sum(1 for _, target in placed if target == "NPU")
    return NpuEstimate(
        system_config=summary["system_config"], memory_mode=summary["memory_mode"],
        clock_mhz=float(summary["core_clock"]) / 1e6,
        npu_ops=npu_ops, cpu_ops=len(placed) - npu_ops, npu_share=npu_ops / len(placed) if placed else 0.0,
        cpu_op_types=dict(sorted(on_cpu.items(), key=lambda item: (-item[1], item[0]))),
        inference_ms=float(summary["inference_time"]) * 1e3,
        inferences_per_second=float(summary["inferences_per_second"]),
        sram_used_kib=float(summary["sram_memory_used"]), dram_used_kib=float(summary["dram_memory_used"]),
        sram_traffic_mb=float(summary["sram_total_bytes"]) / 1e6,
        dram_traffic_mb=float(summary["dram_total_bytes"]) / 1e6,
        macs=int(float(summary["nn_macs"])), accelerator=config, compiled_file=VELA_FILE,
        tool=f"ethos-u-vela {_vela_version()}", command=" ".join(vela_command(model_file.name, config)))


def _vela_version() -> str:
    try:
        return importlib.metadata.version("ethos-u-vela")
    except importlib.metadata.PackageNotFoundError:
        return "?"
