"""OUT/tune.json, rewritten after every candidate, and the choice: the fastest row within the budget."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from vit_edge.core.errors import ConfigError, DeviceError
from vit_edge.core.outputs import copy_folder, write_atomically
from vit_edge.tuning.plan import TuneConfig, TuneRow, pareto_front

__all__ = ["RESULTS_FILE", "CHOSEN_DIR", "TuneResult", "write_results", "choose"]

RESULTS_FILE, CHOSEN_DIR = "tune.json", "chosen"  # OUT/tune.json: rows, front, choice; OUT/chosen: its artifact


@dataclass(frozen=True)
class TuneResult:
    """What a tune found (OUT/tune.json holds it with the config): every row measured, the Pareto front, the row
    chosen (None until one is), and the FP32 baseline's top-1 that every drop is measured from."""

    baseline_top1: float | None
    rows: tuple[TuneRow, ...]
    pareto_front: tuple[TuneRow, ...]
    chosen: TuneRow | None


def write_results(out: Path, config: TuneConfig, rows: list[TuneRow], chosen: TuneRow | None = None) -> TuneResult:
    """OUT/tune.json, replaced atomically after every candidate (a stopped tune keeps its rows)."""
    baseline = _baseline(rows)
    for row in rows:
        row.drop = None if baseline is None or row.top1 is None else round(baseline - row.top1, 4)
    result = TuneResult(baseline, tuple(rows), tuple(pareto_front(rows)), chosen)
    document = {"config": {**asdict(config), "device": config.device}, "baseline_top1": baseline,
                "rows": [asdict(r) for r in result.rows], "pareto_front": [asdict(r) for r in result.pareto_front],
                "chosen": asdict(chosen) if chosen is not None else None}
    write_atomically(out / RESULTS_FILE, json.dumps(document, indent=2) + "\n")
    return result


def _baseline(rows: list[TuneRow]) -> float | None:
    """Top-1 of the unmerged FP32 artifact on the device: what the drop of every candidate is measured from."""
    scores = [r.top1 for r in rows if r.candidate == "fp32-merge0" and r.status == "ok" and r.top1 is not None]
    return max(scores) if scores else None


def choose(out: Path, config: TuneConfig, rows: list[TuneRow], log: Callable[[str], None]) -> TuneResult:
    """The fastest row within the budget, its artifact copied to OUT/chosen; ConfigError when none is."""
    if _baseline(rows) is None:
        raise DeviceError(f"the FP32 baseline did not run on {config.device}; see {out / RESULTS_FILE}")
    write_results(out, config, rows)
    eligible = [r for r in rows if r.precision in config.precisions]  # the FP32 baseline only if asked for
    within = [r for r in pareto_front(eligible) if r.drop is not None and r.drop <= config.max_drop]
    if not within:
        best = min((r for r in eligible if r.drop is not None), key=lambda r: r.drop or 0.0, default=None)
        closest = f"the smallest drop was {best.drop:.2f} pt ({best.candidate})" if best else "none was measured"
        raise ConfigError(f"no candidate meets --max-drop {config.max_drop}: {closest}; every row is in "
                          f"{out / RESULTS_FILE}")
    chosen = within[0]
    copy_folder(Path(chosen.artifact), out / CHOSEN_DIR)  # the artifact as verified; its run settings are in tune.json
    result = write_results(out, config, rows, chosen)
    log(f"chosen: {chosen.candidate} ({chosen.threads} threads, hint {chosen.hint}): {chosen.p50_ms:.2f} ms, "
        f"top-1 {chosen.top1:.2f}% (drop {chosen.drop:.2f} pt)")
    return result
