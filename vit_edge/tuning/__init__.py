"""`vit-edge tune`: measure candidate recipes on the device that will run them, keep the latency–accuracy Pareto
front, and pick the fastest artifact within an accuracy budget.

A candidate is an artifact (FP32, INT8 of every matmul, or INT8 of the projections only with Q·Kᵀ and attn·V in
float; each with a token-merging r) times its run-time settings (threads; OpenVINO's precision hint). Accuracy is
top-1 on the labelled `--eval` data computed by the runtime on the device, and the drop is measured from the
unmerged FP32 artifact on the same device. Every row reaches OUT/tune.json as soon as it is measured, so a tune
that stops half-way keeps what it found.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from vit_edge.core.errors import ConfigError, DeviceError
from vit_edge.core.options import check_count, check_counts, check_number
from vit_edge.core.outputs import write_atomically
from vit_edge.data.sources import DataOptions

__all__ = ["TuneConfig", "Candidate", "tune", "candidates", "pareto_front", "default_merges"]

ATTENTION_FLOAT_KINDS = ("qkv", "proj", "fc1", "fc2")  # INT8 projections, float Q·Kᵀ and attn·V
RESULTS_FILE, CHOSEN_DIR = "tune.json", "chosen"  # OUT/tune.json: rows, front, choice; OUT/chosen: its artifact


@dataclass(frozen=True)
class TuneConfig:
    """What to try and where: the candidates' axes, the budget, the device and the measurement's length."""

    target: str
    calib: str
    eval_data: str
    max_drop: float
    merges: tuple[int, ...] | None = None  # None: 0 and the r that merge about a quarter and half of the patches
    threads: tuple[int, ...] = (1, 2)
    precisions: tuple[str, ...] = ("fp32", "int8", "int8-mlp")
    device: str = "local"
    eval_limit: int | None = 1000
    calib_size: int = 128
    runs: int = 30
    ssh_options: tuple[str, ...] = ()
    remote_python: str = "python3"
    data_options: DataOptions = DataOptions()

    def __post_init__(self) -> None:
        check_counts("threads", self.threads)
        check_counts("merges", self.merges if self.merges is not None else (0,), least=0)
        check_count("eval_limit", self.eval_limit, optional=True)
        check_count("calib_size", self.calib_size)
        check_count("runs", self.runs)
        check_number("max_drop", self.max_drop)


@dataclass(frozen=True)
class Candidate:
    """One artifact to build: its precision ('fp32', 'int8', 'int8-mlp') and token-merging r."""

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
    measured = sorted((r for r in rows if r.status == "ok" and r.p50_ms is not None and r.top1 is not None),
                      key=lambda r: (r.p50_ms, -(r.top1 or 0.0)))
    front: list[TuneRow] = []
    for row in measured:
        if not front or (row.top1 or 0.0) > (front[-1].top1 or 0.0):
            front.append(row)
    return front


def _check_request(config: TuneConfig, out: Path, force: bool, model: Any) -> None:
    from vit_edge.core.targets import target as declaration
    from vit_edge.core.types import Precision

    if config.max_drop < 0:
        raise ConfigError(f"--max-drop {config.max_drop} must be ≥ 0 (top-1 points)")
    unknown = set(config.precisions) - {"fp32", "int8", "int8-mlp"}
    if unknown:
        raise ConfigError(f"unknown precision(s) {sorted(unknown)} for tune; known: fp32, int8, int8-mlp")
    if any(p.startswith("int8") for p in config.precisions) and Precision.INT8 not in declaration(
            config.target).precisions:
        raise ConfigError(f"{config.target} has no INT8 path; tune it with --precisions fp32")
    if not config.threads or min(config.threads) < 1:
        raise ConfigError("--threads needs counts ≥ 1")
    from vit_edge.core.artifact import check_writable
    from vit_edge.core.outputs import OutputKind, check_output

    check_output(out, OutputKind.TUNE, force, [("the model", model), ("the calibration data", config.calib),
                                               ("the evaluation data", config.eval_data)])
    check_writable(Path(out).parent)


def _hints(target: str) -> tuple[str | None, ...]:
    """OpenVINO: both its default hint (bf16 where the CPU has it, what users run) and f32; others: one."""
    return ("f32", None) if target == "openvino" else ("f32",)


def _build(candidate: Candidate, model: Any, config: TuneConfig, folder: Path, load: dict[str, Any],
           log: Callable[[str], None]) -> Path:
    from vit_edge.api import export, quantize
    from vit_edge.quantization.recipe import MATMUL_KINDS, Recipe

    out = folder / candidate.name
    common = dict(merge=candidate.merge, parity_samples=4, force=True, data_options=config.data_options, **load)
    if candidate.precision == "fp32":
        export(model, config.target, out, data=config.eval_data, **common)
    else:
        kinds = MATMUL_KINDS if candidate.precision == "int8" else ATTENTION_FLOAT_KINDS
        quantize(model, config.target, out, calib=config.calib, calib_size=config.calib_size,
                 recipe=Recipe(kinds=kinds), **common)
    log(f"built {candidate.name}")
    return out


def _check_model(model: Any, config: TuneConfig, load: dict[str, Any]) -> tuple[int, ...]:
    """The r values to try, checked against the model's tokens, and the evaluation data checked as labelled."""
    from vit_edge.data.datasets import labels_for
    from vit_edge.data.sources import open_images
    from vit_edge.models.loaders import load_model
    from vit_edge.models.merging import max_merge

    loaded = load_model(model, **load)
    cfg = loaded.model.cfg
    merges = config.merges if config.merges is not None else default_merges(cfg.num_patches, cfg.depth)
    most = max_merge(cfg.num_tokens, cfg.num_prefix_tokens)
    too_many = [r for r in merges if not 0 <= r <= most]
    if too_many:
        raise ConfigError(f"--merge {','.join(map(str, too_many))}: the model has {cfg.num_patches} patch tokens "
                          f"and a block merges at most half of them; use values from 0 to {most}")
    evaluation = open_images(config.eval_data, config.data_options).take(config.eval_limit)
    labels_for(evaluation, loaded.spec, cfg.num_classes, config.data_options)  # unlabelled or unmatched: stop here
    return tuple(merges)


def _measure(path: Path, candidate: Candidate, hint: str | None, config: TuneConfig) -> list[TuneRow]:
    from vit_edge.api import bench
    from vit_edge.benchmarking.sweep import BenchConfig

    bench_config = BenchConfig(threads=config.threads, runs=config.runs, min_seconds=0.5, precision_hint=hint,
                               data=config.eval_data, eval_limit=config.eval_limit, ssh_options=config.ssh_options,
                               remote_python=config.remote_python, data_options=config.data_options)
    records = bench([str(path)], bench_config, devices=[config.device])
    return [TuneRow(candidate.name, candidate.precision, candidate.merge, r.threads, hint or "default", r.status,
                    r.p50_ms, r.top1, artifact=str(path), error=r.error) for r in records]


def _lost_device(rows: list[TuneRow]) -> bool:
    return any(row.status != "ok" and "DeviceError" in (row.status + (row.error or "")) for row in rows)


def _write_results(out: Path, config: TuneConfig, rows: list[TuneRow], chosen: TuneRow | None = None) -> None:
    """OUT/tune.json, replaced atomically after every candidate (a stopped tune keeps its rows)."""
    baseline = _baseline(rows)
    for row in rows:
        row.drop = None if baseline is None or row.top1 is None else round(baseline - row.top1, 4)
    document = {"config": {**asdict(config), "device": config.device}, "baseline_top1": baseline,
                "rows": [asdict(r) for r in rows], "pareto_front": [asdict(r) for r in pareto_front(rows)],
                "chosen": asdict(chosen) if chosen is not None else None}
    write_atomically(out / RESULTS_FILE, json.dumps(document, indent=2) + "\n")


def _baseline(rows: list[TuneRow]) -> float | None:
    """Top-1 of the unmerged FP32 artifact on the device: what the drop of every candidate is measured from."""
    scores = [r.top1 for r in rows if r.candidate == "fp32-merge0" and r.status == "ok" and r.top1 is not None]
    return max(scores) if scores else None


def tune(model: Any, config: TuneConfig, out: str | Path, *, weights: str | Path | None = None,
         random_init: bool = False, force: bool = False, log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Build and measure every candidate on `config.device`; write OUT/tune.json (rows, Pareto front, choice) and
    OUT/chosen (the fastest artifact within `config.max_drop`). Returns the document written."""
    from vit_edge.benchmarking.remote import check_reachable

    out = Path(out)
    _check_request(config, out, force, model)
    load = {"weights": weights, "random_init": random_init}
    merges = _check_model(model, config, load)
    check_reachable(config.device, config.ssh_options, config.remote_python)
    if out.exists():
        shutil.rmtree(out)
    (out / "candidates").mkdir(parents=True)
    rows: list[TuneRow] = []
    plan = candidates(config, merges)
    for index, candidate in enumerate(plan, 1):
        log(f"[{index}/{len(plan)}] {candidate.name}")
        path = _build(candidate, model, config, out / "candidates", load, log)
        for hint in _hints(config.target):
            rows += _measure_or_keep(path, candidate, hint, config, out, rows)
        _write_results(out, config, rows)
    return _choose(out, config, rows, log)


def _measure_or_keep(path: Path, candidate: Candidate, hint: str | None, config: TuneConfig, out: Path,
                     rows: list[TuneRow]) -> list[TuneRow]:
    """The candidate's rows; when the device stops answering, what was measured is written before the error."""
    try:
        found = _measure(path, candidate, hint, config)
    except DeviceError as exc:
        _write_results(out, config, rows)
        raise DeviceError(f"{exc}; the {len(rows)} rows measured before are in {out / RESULTS_FILE}") from exc
    if _lost_device(found):
        _write_results(out, config, rows + found)
        reason = next(r.error for r in found if r.status != "ok")
        raise DeviceError(f"{config.device} stopped answering ({reason}); the {len(rows)} rows measured before are "
                          f"in {out / RESULTS_FILE}")
    return found


def _choose(out: Path, config: TuneConfig, rows: list[TuneRow], log: Callable[[str], None]) -> dict[str, Any]:
    """The fastest row within the budget, its artifact copied to OUT/chosen; ConfigError when none is."""
    if _baseline(rows) is None:
        raise DeviceError(f"the FP32 baseline did not run on {config.device}; see {out / RESULTS_FILE}")
    _write_results(out, config, rows)
    eligible = [r for r in rows if r.precision in config.precisions]  # the FP32 baseline only if asked for
    within = [r for r in pareto_front(eligible) if r.drop is not None and r.drop <= config.max_drop]
    if not within:
        best = min((r for r in eligible if r.drop is not None), key=lambda r: r.drop or 0.0, default=None)
        closest = f"the smallest drop was {best.drop:.2f} pt ({best.candidate})" if best else "none was measured"
        raise ConfigError(f"no candidate meets --max-drop {config.max_drop}: {closest}; every row is in "
                          f"{out / RESULTS_FILE}")
    chosen = within[0]
    shutil.copytree(chosen.artifact, out / CHOSEN_DIR)  # the artifact as verified; its run settings are in tune.json
    _write_results(out, config, rows, chosen)
    log(f"chosen: {chosen.candidate} ({chosen.threads} threads, hint {chosen.hint}): {chosen.p50_ms:.2f} ms, "
        f"top-1 {chosen.top1:.2f}% (drop {chosen.drop:.2f} pt)")
    document: dict[str, Any] = json.loads((out / RESULTS_FILE).read_text())
    return document
