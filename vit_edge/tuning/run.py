"""`tune` itself: check the request, load the model once, build and measure each candidate on the device."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from vit_edge.core.errors import ConfigError, DeviceError
from vit_edge.core.output_kinds import Measure
from vit_edge.core.outputs import OutputKind, clear_output, make_folder
from vit_edge.core.progress import tracking
from vit_edge.tuning.plan import PRECISIONS, Candidate, TuneConfig, TuneRow, candidates, default_merges
from vit_edge.tuning.results import RESULTS_FILE, TuneResult, choose, write_results

if TYPE_CHECKING:
    from vit_edge.reading.loaders import LoadedModel

__all__ = ["tune"]


def _check_request(config: TuneConfig, out: Path, force: bool, model: Any) -> None:
    from vit_edge.core.targets import target as declaration
    from vit_edge.core.types import Precision

    if config.max_drop < 0:
        raise ConfigError(f"--max-drop {config.max_drop} must be ≥ 0 (top-1 points)")
    unknown = set(config.precisions) - set(PRECISIONS)
    if unknown:
        raise ConfigError(f"unknown precision(s) {sorted(unknown)} for tune; known: {', '.join(PRECISIONS)}")
    if any(p.startswith("int8") for p in config.precisions) and Precision.INT8 not in declaration(
            config.target).precisions:
        raise ConfigError(f"{config.target} has no INT8 path; tune it with --precisions fp32")
    if not config.threads or min(config.threads) < 1:
        raise ConfigError("--threads needs counts ≥ 1")
    from vit_edge.core.outputs import check_output, check_writable

    check_output(out, OutputKind.TUNE, force, [("the model", model), ("the calibration data", config.calib),
                                               ("the evaluation data", config.eval_data)])
    check_writable(Path(out).parent)


def _hints(target: str) -> tuple[str | None, ...]:
    """The precision hints its runtime declares (OpenVINO: its default, bf16 where the CPU has it, and f32)."""
    from vit_edge.core.targets import target as declaration

    return declaration(target).runtime.precision_hints


def _build(candidate: Candidate, base: LoadedModel, model: Any, config: TuneConfig, folder: Path,
           log: Callable[[str], None]) -> Path:
    """The candidate's artifact, from the one loaded model: merged (a copy) if it merges, exported or quantized."""
    from vit_edge.core.options import ExportOptions
    from vit_edge.core.types import Precision
    from vit_edge.pipeline.building import Destination, QuantizeConfig, export_loaded, quantize_loaded
    from vit_edge.pipeline.checks import checked_exporter
    from vit_edge.quantization.recipe import Recipe
    from vit_edge.reading.loaders import with_merge

    kinds = PRECISIONS[candidate.precision]
    options = ExportOptions(config.target, precision=Precision.FP32 if kinds is None else Precision.INT8,
                            merge=candidate.merge, parity_samples=4, force=True)
    exporter, out = checked_exporter(model, options, folder / candidate.name)
    to = Destination(exporter, out, options, config.data_options)
    loaded = with_merge(base, candidate.merge)
    if kinds is None:
        export_loaded(loaded, to, config.eval_data, None, log=lambda _: None)
    else:
        recipe = QuantizeConfig(config.calib, Recipe(kinds=kinds), config.calib_size)
        quantize_loaded(loaded, to, recipe, log=lambda _: None)
    log(f"built {candidate.name}")
    return out


def _check_model(model: Any, config: TuneConfig, load: dict[str, Any]) -> tuple[LoadedModel, tuple[int, ...]]:
    """The model, loaded once for every candidate; the r values to try, checked against its tokens; and the
    evaluation data, checked as labelled."""
    from vit_edge.data.datasets import labels_for
    from vit_edge.data.sources import open_images
    from vit_edge.models.merging import max_merge
    from vit_edge.reading.loaders import load_model

    loaded = load_model(model, **load)
    loaded.model.cfg.model_output.require(Measure.TOP1, "tune, which chooses by top-1 within --max-drop,",
                                          "export or quantize it, and compare the artifacts with vit-edge bench")
    cfg = loaded.vit.cfg
    merges = config.merges if config.merges is not None else default_merges(cfg.num_patches, cfg.depth)
    most = max_merge(cfg.num_tokens, cfg.num_prefix_tokens)
    too_many = [r for r in merges if not 0 <= r <= most]
    if too_many:
        raise ConfigError(f"--merge {','.join(map(str, too_many))}: the model has {cfg.num_patches} patch tokens "
                          f"and a block merges at most half of them; use values from 0 to {most}")
    evaluation = open_images(config.eval_data, config.data_options).take(config.eval_limit)
    labels_for(evaluation, loaded.spec, cfg.num_classes, config.data_options)  # unlabelled or unmatched: stop here
    return loaded, tuple(merges)


def _measure(path: Path, candidate: Candidate, hint: str | None, config: TuneConfig,
             log: Callable[[str], None]) -> list[TuneRow]:
    from vit_edge.api import bench
    from vit_edge.benchmarking.sanity import warnings_for
    from vit_edge.benchmarking.sweep import BenchConfig

    bench_config = BenchConfig(threads=config.threads, runs=config.runs, min_seconds=0.5, precision_hint=hint,
                               data=config.eval_data, eval_limit=config.eval_limit, ssh_options=config.ssh_options,
                               remote_python=config.remote_python, data_options=config.data_options)
    records = bench([str(path)], bench_config, devices=[config.device])
    for line in warnings_for(records):  # a candidate at chance level or timed in noise is said, not just ranked
        log(f"warning: {line}")
    return [TuneRow(candidate.name, candidate.precision, candidate.merge, r.threads, hint or "default", r.status,
                    r.p50_ms, r.top1, artifact=str(path), error=r.error) for r in records]


def _lost_device(rows: list[TuneRow]) -> bool:
    return any(row.status != "ok" and "DeviceError" in (row.status + (row.error or "")) for row in rows)


def tune(model: Any, config: TuneConfig, out: str | Path, *, weights: str | Path | None = None,
         random_init: bool = False, force: bool = False, log: Callable[[str], None] = lambda _: None) -> TuneResult:
    """Build and measure every candidate on `config.device`; write OUT/tune.json (rows, Pareto front, choice) and
    OUT/chosen (the fastest artifact within `config.max_drop`). Returns what OUT/tune.json holds."""
    from vit_edge.benchmarking.remote import check_reachable

    out = Path(out)
    _check_request(config, out, force, model)
    load = {"weights": weights, "random_init": random_init}
    loaded, merges = _check_model(model, config, load)
    check_reachable(config.device, config.ssh_options, config.remote_python)
    clear_output(out, OutputKind.TUNE, force)  # checked again: only a tune folder vit-edge wrote is emptied
    make_folder(out / "candidates")
    rows: list[TuneRow] = []
    plan = candidates(config, merges)
    with tracking("tune", len(plan), "candidate", least=1) as built:
        for index, candidate in enumerate(plan, 1):
            log(f"[{index}/{len(plan)}] {candidate.name}")
            path = _build(candidate, loaded, model, config, out / "candidates", log)
            for hint in _hints(config.target):
                rows += _measure_or_keep(path, candidate, hint, config, out, rows, log)
            write_results(out, config, rows)
            built.advance()
    return choose(out, config, rows, log)


def _measure_or_keep(path: Path, candidate: Candidate, hint: str | None, config: TuneConfig, out: Path,
                     rows: list[TuneRow], log: Callable[[str], None]) -> list[TuneRow]:
    """The candidate's rows; when the device stops answering, what was measured is written before the error."""
    try:
        found = _measure(path, candidate, hint, config, log)
    except DeviceError as exc:
        write_results(out, config, rows)
        raise DeviceError(f"{exc}; the {len(rows)} rows measured before are in {out / RESULTS_FILE}") from exc
    if _lost_device(found):
        write_results(out, config, rows + found)
        reason = next(r.error for r in found if r.status != "ok")
        raise DeviceError(f"{config.device} stopped answering ({reason}); the {len(rows)} rows measured before are "
                          f"in {out / RESULTS_FILE}")
    return found


