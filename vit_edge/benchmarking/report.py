"""Bench reports: JSON Lines (one record per run), a Markdown table, and latency-vs-accuracy as PNG and HTML.

They are read by a person on a laptop screen: a header with the run's date, versions and baseline; the sanity
warnings; rows grouped under one caption per device (its CPU, cores, Python and runtime versions); short column
names, each explained under the table; a long error or op list as a numbered note instead of a wide cell. The
plot has a panel per device, colour per runtime and marker per precision with a legend, each point labelled with
its row number (placed where it covers no other label or point), and a y-range wide enough that noise stays flat.
It marks the Pareto front: the configurations that no other one beats on both latency and accuracy.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from vit_edge.benchmarking.record import BenchRecord
from vit_edge.core.outputs import append_whole, make_folder, write_atomically
from vit_edge.core.pareto import pareto_front as front_of
from vit_edge.core.recognise import BENCH_MARK
from vit_edge.core.summaries import NpuEstimate
from vit_edge.core.targets import PYTORCH
from vit_edge.core.version import __version__

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.backend_bases import RendererBase
    from matplotlib.figure import Figure
    from matplotlib.legend import Legend
    from matplotlib.text import Annotation
    from matplotlib.transforms import Bbox

__all__ = ["append_records", "device_label", "npu_estimate_lines", "npu_markdown", "profile_markdown", "markdown_table",
           "pareto_front", "write_reports", "accuracy_of"]

BASELINE_MARK = "◆"
MIN_Y_SPAN = 5.0  # percentage points: a narrower y-axis turns 0.1 point of noise into a cliff


@dataclass
class _Rows:
    """The rows as the report shows them: grouped by device and numbered (the plot labels its points with these
    numbers), the baseline rows known, and the numbered notes their cells point to."""

    records: list[BenchRecord]
    baseline: str  # in words, for the header
    is_baseline: Callable[[BenchRecord], bool]
    notes: list[str] = field(default_factory=list)
    scores: dict[tuple[str, str], tuple[float | None, float | None]] = field(default_factory=dict)

    def number(self, record: BenchRecord) -> int:
        return next(index for index, row in enumerate(self.records, 1) if row is record)

    def top(self, record: BenchRecord, k: int) -> float | None:
        """Top-1 (k=1) or top-5 of the row, or of its artifact on the same device: the sweep scores the images
        once per artifact, in its first configuration, as the score does not depend on threads or batch."""
        own = record.top1 if k == 1 else record.top5
        if own is not None or not record.ok:
            return own
        return self.scores.get((record.artifact, _device_key(record)), (None, None))[0 if k == 1 else 1]

    def accuracy(self, record: BenchRecord) -> float | None:
        """What the plot's y-axis shows: top-1 where any row was scored on labels, else agreement."""
        labelled = any(score[0] is not None for score in self.scores.values())
        return self.top(record, 1) if labelled else record.agreement_top1

    def note(self, text: str) -> int:
        """The note's number, the same for the same text (a device that failed says so once, not per row)."""
        if text not in self.notes:
            self.notes.append(text)
        return self.notes.index(text) + 1


@dataclass(frozen=True)
class _Column:
    name: str  # short, so the table fits a laptop screen
    legend: str  # what it means, under the table
    cell: Callable[[BenchRecord, _Rows], str]
    shown: Callable[[list[BenchRecord]], bool] = lambda records: True


def _row_number(record: BenchRecord, rows: _Rows) -> str:
    return f"{rows.number(record)}" + (f" {BASELINE_MARK}" if rows.is_baseline(record) else "")


def _delegation(record: BenchRecord, rows: _Rows) -> str:
    delegated = record.session.delegation if record.session else None
    if delegated is None:
        return "-"
    if delegated.fully_delegated:
        return "all"
    left = ", ".join(delegated.undelegated_ops) or "ops not named"
    return f"part [{rows.note(f'{record.artifact_id}: the delegate left {left} to the CPU')}]"


def _status(record: BenchRecord, rows: _Rows) -> str:
    if record.ok or not record.error:
        return record.status
    return f"{record.status} [{rows.note(f'{record.status}: {record.error}')}]"


def _per_p50(record: BenchRecord, rows: _Rows) -> str:
    return _num(record.batch * 1000.0 / record.p50_ms, 1) if record.p50_ms else "-"


def _ran_as(record: BenchRecord) -> str | None:
    """The precision the runtime says it computed in, where it said."""
    return record.session.precision if record.session else None


def _any(get: Callable[[BenchRecord], Any]) -> Callable[[list[BenchRecord]], bool]:
    return lambda records: any(get(r) is not None for r in records)


_COLUMNS: list[_Column] = [
    _Column("#", f"row number; the plot labels each point with it. {BASELINE_MARK}: a baseline row (see Baseline)",
            _row_number),
    _Column("artifact", "the artifact folder that was measured", lambda r, _: r.artifact_id or "?"),
    _Column("runtime", "the runtime that ran it (its version is in the device's caption)",
            lambda r, _: r.runtime or "-"),
    _Column("prec", "precision the artifact was exported or quantized in", lambda r, _: r.precision or "-"),
    _Column("ran as", "precision the runtime says it computed in (OpenVINO's inference precision: f32 unless "
            "--precision-hint default; LiteRT/ExecuTorch: the matmuls' precision)",
            lambda r, _: str(_ran_as(r) or r.precision or "-"), _any(_ran_as)),
    _Column("delegate", "LiteRT/ExecuTorch: 'all' when the delegate (XNNPACK) took the whole graph, 'part' when it "
            "left ops to the CPU (the note names them)", _delegation,
            _any(lambda r: r.session.delegation if r.session else None)),
    _Column("thr", "threads the runtime was given", lambda r, _: str(r.threads or "-")),
    _Column("batch", "images per inference", lambda r, _: str(r.batch)),
    _Column("p50 ms", "median time of one inference (one batch) over the timed runs", lambda r, _: _num(r.p50_ms)),
    _Column("p90 ms", "90th percentile of the same runs: 9 in 10 were faster", lambda r, _: _num(r.p90_ms)),
    _Column("p99 ms", "99th percentile: the slow tail", lambda r, _: _num(r.p99_ms)),
    _Column("std ms", "standard deviation of the timed runs (spread; large means a noisy machine)",
            lambda r, _: _num(r.std_ms)),
    _Column("img/s", "images per second at the median: batch × 1000 / p50 ms", _per_p50),
    _Column("load ms", "time to load (and compile) the model before the first inference",
            lambda r, _: _num(r.load_ms, 0)),
    _Column("peak MB", "peak resident memory of the measuring process after inference (its own high-water mark, "
            "VmHWM on Linux): runtime, model and buffers", lambda r, _: _num(r.peak_rss_mb, 0)),
    _Column("size MB", "the artifact's files on disk", lambda r, _: _num(r.size_mb)),
    _Column("top-1 %", "labelled images whose highest-scoring class is the label (which images: evaluation data); "
            "scored once per artifact and device, in its first configuration: it does not depend on threads or "
            "batch", lambda r, rows: _num(rows.top(r, 1)), _any(lambda r: r.top1)),
    _Column("top-5 %", "labelled images whose label is among the five highest-scoring classes (scored as top-1)",
            lambda r, rows: _num(rows.top(r, 5)), _any(lambda r: r.top5)),
    _Column("agree %", "images whose top-1 class equals the reference's (--reference, see Baseline); no labels needed",
            lambda r, _: _num(r.agreement_top1), _any(lambda r: r.agreement_top1)),
    _Column("status", "ok; mismatch: numbers outside the precision's tolerance of PyTorch; otherwise what failed. "
            "[n]: the message is note n under the table", _status),
]


def device_label(record: BenchRecord) -> str:
    """Where the row ran, as the device itself reported it (machine and CPU), else the address asked for."""
    found = record.device_fingerprint
    where = record.device_name or record.device or "local"
    if found is None:
        return where
    return f"{where} ({found.machine or '?'}, {found.cpu or '?'})"


def _device_key(record: BenchRecord) -> str:
    """The device a row belongs to, by the address asked for: a row that failed before the device said what it is
    stays in its device's group."""
    return record.device_name or record.device or "local"


def _groups(records: list[BenchRecord]) -> list[list[BenchRecord]]:
    """Records grouped by the device they ran on, devices in the order they first appear."""
    groups: dict[str, list[BenchRecord]] = {}
    for record in records:
        groups.setdefault(_device_key(record), []).append(record)
    return list(groups.values())


def _by_device(records: list[BenchRecord]) -> list[BenchRecord]:
    return [record for group in _groups(records) for record in group]


def _device_caption(group: list[BenchRecord]) -> str:
    """A device said once: what it reported (machine, CPU, cores, Python) and the runtime versions that ran there."""
    found = next((r for r in group if r.device_fingerprint), group[0])
    facts = found.device_fingerprint
    parts = [device_label(found)]
    if facts is not None and facts.cores:
        parts.append(f"{facts.cores} cores")
    if facts is not None and facts.python:
        parts.append(f"Python {facts.python}")
    versions = dict.fromkeys(f"{r.session.runtime} {r.session.version or '?'}"
                             for r in group if r.session and r.session.runtime)
    if versions:
        parts.append(", ".join(versions))
    return " · ".join(parts)


def _num(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _baseline(records: list[BenchRecord]) -> tuple[str, Callable[[BenchRecord], bool]]:
    """What the others are compared with: the reference the agreement is measured against, and the FP32 rows (or
    the reference artifact's rows) for top-1 and latency, marked in the table."""
    references = sorted({r.reference for r in records if r.reference})
    words = []
    if PYTORCH.name in references:
        words.append(f"PyTorch for agree % (--reference {PYTORCH.name}: the model as it was exported, run in PyTorch "
                     "on the same images)")
    artifacts = [ref for ref in references if ref != PYTORCH.name]
    if artifacts:
        named = {str(Path(ref)) for ref in artifacts}
        words.append(f"{', '.join(Path(ref).name for ref in artifacts)} (--reference) for agree %, "
                     f"its rows marked {BASELINE_MARK}")
        return "; ".join(words), lambda r: str(Path(r.artifact)) in named
    if any(r.precision == "fp32" for r in records):
        words.append(f"the FP32 rows ({BASELINE_MARK}) for top-1 and latency: compare each row with the FP32 row of "
                     "the same runtime, device, threads and batch")
        return "; ".join(words), lambda r: r.precision == "fp32"
    return "; ".join(words) or "none (no FP32 row, no --reference)", lambda r: False


def _rows(records: list[BenchRecord]) -> _Rows:
    ordered = _by_device(records)
    words, is_baseline = _baseline(ordered)
    scores: dict[tuple[str, str], tuple[float | None, float | None]] = {}
    for record in ordered:
        if record.ok and record.top1 is not None:
            scores.setdefault((record.artifact, _device_key(record)), (record.top1, record.top5))
    return _Rows(ordered, words, is_baseline, scores=scores)


def _columns(records: list[BenchRecord]) -> list[_Column]:
    """The columns that have something to say in this run (no top-5 column when nothing was labelled)."""
    return [column for column in _COLUMNS if column.shown(records)]


def _table_cells(rows: _Rows, columns: list[_Column]) -> list[tuple[str, list[list[str]]]]:
    """Per device, its caption and its rows' cells (notes numbered in the order the rows are read)."""
    return [(_device_caption(group), [[column.cell(r, rows) for column in columns] for r in group])
            for group in _groups(rows.records)]


def _md(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")


def markdown_table(records: list[BenchRecord]) -> str:
    """One row per record under a caption row per device (in the order devices first appear), then what each
    column means, the numbered notes and the evaluation data."""
    rows, columns = _rows(records), _columns(records)
    lines = ["| " + " | ".join(column.name for column in columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for caption, cells in _table_cells(rows, columns):
        lines.append(f"| **device** | {_md(caption)} |")
        lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in cells]
    legend = ["", "Columns:", *(f"- `{column.name}`: {column.legend}" for column in columns)]
    notes = ["", "Notes:", *(f"{index}. {_md(note)}" for index, note in enumerate(rows.notes, 1))] if rows.notes else []
    return "\n".join(lines + legend + notes) + "\n" + _data_notes(rows.records)


def _data_notes(records: list[BenchRecord]) -> str:
    """Under the table: which images each artifact was scored on and how their labels were matched."""
    notes = _data_note_lines(records)
    return ("\nevaluation data:\n" + "\n".join(f"- {note}" for note in notes) + "\n") if notes else ""


def _data_note_lines(records: list[BenchRecord]) -> list[str]:
    notes: list[str] = []
    for record in records:
        labels = record.eval_labels
        if labels is None or record.eval_images is None:
            continue
        skipped = record.eval_skipped or 0
        note = (f"{record.artifact_id}: {record.eval_images} images, labels {labels}"
                + (f"; {skipped} unreadable files skipped" if skipped else ""))
        if note not in notes:
            notes.append(note)
    return notes


def _dates(records: list[BenchRecord]) -> str:
    """When the run was measured, first to last row, in UTC."""
    times = []
    for record in records:
        try:
            times.append(_dt.datetime.fromisoformat(record.created_at).astimezone(_dt.timezone.utc))
        except (TypeError, ValueError):
            continue
    if not times:
        return "date not recorded"
    first, last = min(times), max(times)
    end = last.strftime("%H:%M" if last.date() == first.date() else "%Y-%m-%d %H:%M")
    return f"{first:%Y-%m-%d %H:%M}–{end} UTC"


def _run_lines(rows: _Rows) -> list[str]:
    """The header: when, with which vit-edge, from which machine, how many rows measured, against what."""
    records = rows.records
    failed = sum(not r.ok for r in records)
    host = next((r.host for r in records if r.host), None)
    controller = f" · run from {host.hostname or '?'} (Python {host.python or '?'})" if host else ""
    return [f"Run {_dates(records)} · vit-edge {__version__}{controller} · {len(records)} configurations, "
            f"{len(records) - failed} measured" + (f", {failed} failed (status column)" if failed else ""),
            f"Baseline: {rows.baseline}"]


def _warnings(records: list[BenchRecord]) -> list[str]:
    """The sanity rules' findings (chance-level top-1, noisy timings, threads above cores, INT8 slower than FP32);
    none where benchmarking/sanity.py is not installed."""
    try:
        from vit_edge.benchmarking.sanity import warnings_for
    except ImportError:
        return []
    return list(warnings_for(records))


def npu_estimate_lines(estimate: NpuEstimate) -> list[str]:
    """Vela's estimate in words, labelled as Vela's (shared by bench.md and `vit-edge info`)."""
    cpu = ", ".join(f"{op} {count}" for op, count in estimate.cpu_op_types.items()) or "none"
    return [f"Vela's estimate (not a measurement) for {estimate.accelerator} ({estimate.system_config}, "
            f"{estimate.memory_mode}, {estimate.clock_mhz:g} MHz): {estimate.inference_ms:.3f} ms per "
            f"inference; {estimate.npu_ops} operators on the NPU, {estimate.cpu_ops} on the CPU "
            f"({100 * estimate.npu_share:.1f} % on the NPU); SRAM {estimate.sram_traffic_mb:.2f} MB and DRAM "
            f"{estimate.dram_traffic_mb:.2f} MB of traffic per inference",
            f"falls back to the CPU: {cpu}",
            *_activation_lines(estimate.ops_by_activation),
            f"reproduce: {estimate.command} ({estimate.tool})"]


def _activation_lines(grouped: dict[str, dict[str, int]] | None) -> list[str]:
    """Which ops compute in int8, int16 and float in the file Vela read (older manifests lack it: no line)."""
    if grouped is None:
        return []
    def named(kind: str) -> str:
        ops = grouped.get(kind, {})
        return ", ".join(f"{op} {n}" for op, n in ops.items()) if ops else "none"
    int8 = sum(grouped.get("int8", {}).values())
    return [f"activations: int8 {int8} operators; int16: {named('int16')}; float: {named('float32')}"]


def npu_markdown(records: list[BenchRecord]) -> str:
    """Per artifact compiled for an Ethos-U: Vela's estimate, under its own heading (never in the measured table)."""
    parts, seen = [], set()
    for record in records:
        if record.npu_estimate and record.artifact_id not in seen:
            seen.add(record.artifact_id)
            parts.append(f"\n### {record.artifact_id}: NPU estimate\n\n" +
                         "\n".join(f"- {line}" for line in npu_estimate_lines(record.npu_estimate)) + "\n")
    return "".join(parts)


def profile_markdown(records: list[BenchRecord]) -> str:
    """Per profiled row: the ops that take the time and how many matmuls ran INT8 (empty without --profile)."""
    parts = []
    for record in records:
        profile = record.profile
        if profile is None:
            continue
        matmuls = profile.matmuls
        parts.append(f"\n### {device_label(record)} · {record.artifact_id} · {record.runtime}\n\n"
                     f"matmuls: {matmuls.int8} INT8, {matmuls.floating} float "
                     f"({100 * matmuls.int8_ms_share:.0f} % of the time in INT8 matmuls)\n\n"
                     "| op | type | precision | ms | share |\n|---|---|---|---|---|\n")
        parts.extend(f"| {op.name} | {op.type} | {op.precision} | {op.ms:.3f} | "
                     f"{100 * (op.share or 0.0):.1f} % |\n" for op in profile.top_ops)
    return "".join(parts)


def accuracy_of(record: BenchRecord) -> float | None:
    """Top-1 on labelled data if measured, else top-1 agreement with the reference."""
    return record.top1 if record.top1 is not None else record.agreement_top1


def pareto_front(records: list[BenchRecord]) -> list[BenchRecord]:
    """The measured rows that no other row beats on both latency (p50) and accuracy, fastest first."""
    return front_of(records, cost=lambda r: r.p50_ms if r.ok and r.p50_ms else None, score=accuracy_of)


# ---- the plot ----

_MARKERS = {"fp32": "o", "fp16": "s", "int8": "^", "int16": "v", "a16w8": "v"}
_POINT_SIZE = 42.0  # scatter's s (points²)
_RING_SIZE = 150.0  # the Pareto front's open circles
# label offsets in points, nearest first: eight directions, then on the far rings (with a leader line) sixteen,
# so a line can pass between the labels of a crowded point
_OFFSETS = [(r * math.cos(math.radians(a)), r * math.sin(math.radians(a)))
            for r in (8, 12, 17, 24, 33, 45, 60, 80)
            for a in (45, 0, 90, 135, 315, 180, 270, 225) + ((22.5, 67.5, 112.5, 157.5, 202.5, 247.5, 292.5, 337.5)
                                                             if r >= 17 else ())]
_LEADER_FROM = 17  # labels at least this far from their point get a thin line to it
_X_LABEL = "p50 latency of one inference, ms (lower is better)"


@dataclass(frozen=True)
class _Point:
    number: int
    latency: float
    accuracy: float
    record: BenchRecord


def _y_label(rows: _Rows) -> str:
    if any(score[0] is not None for score in rows.scores.values()):
        return "top-1 % on the labelled images"
    reference = next((r.reference for r in rows.records if r.reference), "reference")
    return f"top-1 agreement with {'PyTorch' if reference == PYTORCH.name else Path(reference).name}, %"


def _y_range(values: list[float]) -> tuple[float, float]:
    """At least MIN_Y_SPAN points wide and within 0–100, with a margin so a label fits beside an edge point."""
    low, high = min(values), max(values)
    span = min(100.0, max(MIN_Y_SPAN, (high - low) * 1.3))
    bottom = max(0.0, min((low + high - span) / 2, 100.0 - span))
    margin = span * 0.06
    return (bottom - margin if bottom > 0 else bottom), bottom + span + margin


def _figure(records: list[BenchRecord]) -> Figure | None:
    """Latency against accuracy, a panel per device, points numbered as the table's rows; None without matplotlib
    or without a row that has both numbers."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    rows = _rows(records)
    panels = [(_device_caption(group), points) for group in _groups(rows.records) if (points := _points(group, rows))]
    if not panels:
        return None
    every = [point for _, points in panels for point in points]
    colours = _colours(sorted({p.record.runtime or "?" for p in every}))
    fig = Figure(figsize=(9.0, 0.9 + 3.4 * len(panels)), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (caption, points) in zip(axes, panels):
        _panel(ax, caption, points, colours, _y_range([p.accuracy for p in every]))
        ax.set_ylabel(_y_label(rows), fontsize=8.5)
    _label_panels(fig, list(zip(axes, (points for _, points in panels))),
                  _legend(fig, colours, [p.record.precision or "?" for p in every]))
    return fig


def _label_panels(fig: Figure, panels: list[tuple[Axes, list[_Point]]], legend: Legend) -> None:
    """Lay the figure out, then label every point; the numbers that found no room are listed under their panel,
    and the layout is redone for that line and the labels placed again (until the list holds still)."""
    missing: list[list[int]] = [[] for _ in panels]
    for _ in range(3):
        for (ax, _points), numbers in zip(panels, missing):
            for text in list(ax.texts):
                text.remove()
            ax.set_xlabel(_X_LABEL + ("\n" + textwrap.fill(f"not labelled (no room beside their point): "
                                                           f"{_ranges(numbers)}", 110) if numbers else ""))
        _lay_out(fig, legend)
        renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
        found = [_label_points(ax, points, renderer, fig.dpi) for ax, points in panels]
        if found == missing:
            return
        missing = found


def _ranges(numbers: list[int]) -> str:
    """3, 4, 5, 9 as '3–5, 9'."""
    spans: list[list[int]] = []
    for number in sorted(numbers):
        if spans and number == spans[-1][-1] + 1:
            spans[-1].append(number)
        else:
            spans.append([number])
    return ", ".join(f"{span[0]}–{span[-1]}" if len(span) > 2 else ", ".join(map(str, span)) for span in spans)


def _points(group: list[BenchRecord], rows: _Rows) -> list[_Point]:
    return [_Point(rows.number(r), r.p50_ms, accuracy, r) for r in group
            if r.ok and r.p50_ms is not None and (accuracy := rows.accuracy(r)) is not None]


def _front(points: list[_Point]) -> list[_Point]:
    return front_of(points, cost=lambda p: p.latency, score=lambda p: p.accuracy)


def _colours(runtimes: list[str]) -> dict[str, tuple[float, float, float, float]]:
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return {runtime: palette(index % 10) for index, runtime in enumerate(runtimes)}


def _panel(ax: Axes, caption: str, points: list[_Point], colours: dict[str, tuple[float, float, float, float]],
           y_range: tuple[float, float]) -> None:
    """One device: its points, its own Pareto front, axes that hold every point with room for the labels."""
    for point in points:
        ax.scatter(point.latency, point.accuracy, s=_POINT_SIZE, c=[colours[point.record.runtime or "?"]],
                   marker=_MARKERS.get(point.record.precision or "", "D"), edgecolors="black", linewidths=0.4,
                   zorder=3)
    front = _front(points)
    xs, ys = [p.latency for p in front], [p.accuracy for p in front]
    ax.step(xs, ys, color="0.35", ls="--", lw=1, where="post", zorder=2)
    ax.scatter(xs, ys, s=_RING_SIZE, facecolors="none", edgecolors="0.35", linewidths=0.8, zorder=2)
    ax.set_xlim(0.0, max(p.latency for p in points) * 1.18)
    ax.set_ylim(*y_range)
    ax.set_title(textwrap.fill(caption, 110), fontsize=8.5, loc="left")
    ax.xaxis.label.set_fontsize(8.5)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)


def _legend(fig: Figure, colours: dict[str, Any], precisions: list[str]) -> Legend:
    """Colour: runtime; shape: precision; the front's line and rings."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker="s", markersize=8, color=colour, label=runtime)
               for runtime, colour in colours.items()]
    handles += [Line2D([], [], ls="", marker=_MARKERS.get(precision, "D"), markersize=7, color="0.6",
                       markeredgecolor="black", markeredgewidth=0.4, label=precision)
                for precision in dict.fromkeys(precisions)]
    handles.append(Line2D([], [], ls="--", color="0.35", marker="o", markersize=10, markerfacecolor="none",
                          label="Pareto front: nothing else is both faster and more accurate"))
    return fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), fontsize=8, frameon=False,
                      title="colour: runtime · shape: precision · number: the table's # column", title_fontsize=8)


def _lay_out(fig: Figure, legend: Legend) -> None:
    """The panels above the legend, nothing cut at the edges."""
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    height = legend.get_window_extent(renderer).height / fig.bbox.height
    fig.tight_layout(rect=(0.0, min(height + 0.01, 0.5), 1.0, 1.0), h_pad=1.5)


def _obstacles(ax: Axes, points: list[_Point], dpi: float) -> list[Bbox]:
    """The markers (and the front's rings) as boxes in display units: a label covers none of them."""
    from matplotlib.transforms import Bbox

    scale = dpi / 72.0  # pixels per point
    front = {p.number for p in _front(points)}
    boxes = []
    for point in points:
        x, y = ax.transData.transform((point.latency, point.accuracy))
        radius = scale * math.sqrt(_RING_SIZE if point.number in front else _POINT_SIZE) / 2
        boxes.append(Bbox.from_extents(x - radius, y - radius, x + radius, y + radius))
    return boxes


def _label_points(ax: Axes, points: list[_Point], renderer: RendererBase, dpi: float) -> list[int]:
    """Each point's row number at the nearest offset where it covers no other label or marker and stays inside
    the axes; returns the numbers that found no such place (said under the plot instead)."""
    markers = _obstacles(ax, points, dpi)
    labels: list[Bbox] = []
    unlabelled = []
    for point in sorted(points, key=lambda p: (p.latency, -p.accuracy)):
        offset = _free_offset(ax, point, renderer, dpi, (markers, labels))
        if offset is None:
            unlabelled.append(point.number)
            continue
        label = _annotate(ax, point, offset)
        label.get_window_extent(renderer)  # places the text where it will be drawn
        labels.append(_text_box(label, renderer).expanded(1.15, 1.15))
    return unlabelled


def _annotate(ax: Axes, point: _Point, offset: tuple[float, float]) -> Annotation:
    far = math.hypot(*offset) >= _LEADER_FROM
    return ax.annotate(str(point.number), (point.latency, point.accuracy), xytext=offset, textcoords="offset points",
                       ha="center", va="center", fontsize=7.5, zorder=5,
                       arrowprops={"arrowstyle": "-", "color": "0.55", "lw": 0.6, "shrinkA": 0, "shrinkB": 4}
                       if far else None)


def _text_box(label: Annotation, renderer: RendererBase) -> Bbox:
    """The label's text alone, without its leader line."""
    from matplotlib.text import Text

    return Text.get_window_extent(label, renderer)


def _free_offset(ax: Axes, point: _Point, renderer: RendererBase, dpi: float,
                 taken: tuple[list[Bbox], list[Bbox]]) -> tuple[float, float] | None:
    """The first offset where the label stays on the axes, covers no marker or label, and its leader line (if far)
    crosses no label. The label's box is measured once and moved arithmetically, so a crowded point stays cheap."""
    from matplotlib.path import Path as Line

    markers, labels = taken
    inside = ax.get_window_extent(renderer)
    anchor = ax.transData.transform((point.latency, point.accuracy))
    probe = _annotate(ax, point, (0.0, 0.0))
    probe.get_window_extent(renderer)
    shape = _text_box(probe, renderer).translated(-anchor[0], -anchor[1])  # the box around its own centre
    probe.remove()
    for dx, dy in _OFFSETS:
        box = shape.translated(anchor[0] + dx * dpi / 72.0, anchor[1] + dy * dpi / 72.0)
        far = math.hypot(dx, dy) >= _LEADER_FROM
        leader = Line(np.array([anchor, [box.x0 + box.width / 2, box.y0 + box.height / 2]]))
        if (inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1)
                and not any(box.overlaps(other) for other in markers + labels)
                and not (far and any(leader.intersects_bbox(other) for other in labels))):
            return dx, dy
    return None


def _plot_png(records: list[BenchRecord], path: Path) -> Path | None:
    fig = _figure(records)
    if fig is None:
        return None
    image = io.BytesIO()
    fig.savefig(image, format="png", metadata={"Software": BENCH_MARK})  # how --force knows the file is ours
    write_atomically(path, image.getvalue())
    return path


# ---- HTML ----

_CSS = (
    "body{font:14px/1.4 system-ui,'DejaVu Sans',sans-serif;margin:16px;max-width:1400px;color:#222}"
    "h1{font-size:20px;margin:0 0 6px}h2{font-size:16px;margin:14px 0 4px}p.run{margin:2px 0}"
    ".warnings{background:#fff6df;border-left:4px solid #d9a400;padding:4px 12px;margin:10px 0}"
    "img{max-width:100%;height:auto}"
    "table{border-collapse:collapse;table-layout:auto;max-width:100%;font-size:13px;font-variant-numeric:tabular-nums}"
    "th,td{padding:2px 5px;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap;vertical-align:top}"
    "thead th{white-space:normal;vertical-align:bottom;border-bottom:2px solid #888}"
    ".text{text-align:left}td.wrap{white-space:normal;overflow-wrap:anywhere;max-width:16em}"
    "tr.device th{text-align:left;white-space:normal;background:#eef2f7;padding:5px;font-weight:600}"
    "dl.legend{display:grid;grid-template-columns:max-content 1fr;gap:0 12px;font-size:13px}"
    "dl.legend dt{font-weight:600}dl.legend dd{margin:0}"
    "ol.notes{font-size:13px;overflow-wrap:anywhere}"
)
_WORDS = frozenset({"artifact", "runtime", "prec", "ran as", "delegate", "status"})  # left-aligned
_WRAPPED = frozenset({"artifact", "status"})  # may wrap (at a hyphen, or anywhere); numbers never do


def _html_table(rows: _Rows, columns: list[_Column]) -> str:
    head = "".join(f'<th scope="col"{_class(c.name, cell=False)} title="{html.escape(c.legend)}">'
                   f"{html.escape(c.name)}</th>" for c in columns)
    groups = []
    for caption, cells in _table_cells(rows, columns):
        body = "".join("<tr>" + "".join(f"<td{_class(c.name)}>{html.escape(cell)}</td>"
                                        for c, cell in zip(columns, row)) + "</tr>" for row in cells)
        groups.append(f'<tbody><tr class="device"><th colspan="{len(columns)}" scope="rowgroup">'
                      f"{html.escape(caption)}</th></tr>{body}</tbody>")
    return f"<table><thead><tr>{head}</tr></thead>{''.join(groups)}</table>"


def _class(name: str, cell: bool = True) -> str:
    kinds = ["text"] * (name in _WORDS) + ["wrap"] * (cell and name in _WRAPPED)
    return f' class="{" ".join(kinds)}"' if kinds else ""


def _html_after_table(rows: _Rows, columns: list[_Column]) -> str:
    legend = "".join(f"<dt>{html.escape(c.name)}</dt><dd>{html.escape(c.legend)}</dd>" for c in columns)
    parts = [f'<h2>Columns</h2><dl class="legend">{legend}</dl>']
    if rows.notes:
        parts.append('<h2>Notes</h2><ol class="notes">'
                     + "".join(f"<li>{html.escape(note)}</li>" for note in rows.notes) + "</ol>")
    data = _data_note_lines(rows.records)
    if data:
        parts.append("<h2>Evaluation data</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in data) + "</ul>")
    return "".join(parts)


def _html(records: list[BenchRecord], png: Path | None, warnings: list[str]) -> str:
    rows, columns = _rows(records), _columns(records)
    table = _html_table(rows, columns)  # numbers the notes the text after it lists
    run = "".join(f'<p class="run">{html.escape(line)}</p>' for line in _run_lines(rows))
    warned = ('<section class="warnings"><h2>Warnings</h2><ul>'
              + "".join(f"<li>{html.escape(line)}</li>" for line in warnings) + "</ul></section>") if warnings else ""
    encoded = base64.b64encode(png.read_bytes()).decode() if png else ""
    image = (f'<img alt="p50 latency against accuracy, a panel per device" src="data:image/png;base64,{encoded}">'
             if png else "<p>(plot needs matplotlib: pip install 'vit-edge[report]')</p>")
    return (f"<!doctype html><meta charset='utf-8'><meta name='generator' content='{BENCH_MARK}'>"
            '<meta name="viewport" content="width=device-width"><title>vit-edge bench</title>'
            f"<style>{_CSS}</style><h1>vit-edge bench</h1>{run}{warned}{table}"
            f"{_html_after_table(rows, columns)}<h2>Latency against accuracy</h2>{image}")


def _markdown(records: list[BenchRecord], warnings: list[str]) -> str:
    """bench.md: the mark, the header, the warnings, the table with its legend and notes, NPU and profile parts."""
    lines = [f"<!-- {BENCH_MARK} -->", "# vit-edge bench", "", *(f"{line}  " for line in _run_lines(_rows(records)))]
    if warnings:
        lines += ["", "## Warnings", "", *(f"- {_md(line)}" for line in warnings)]
    return "\n".join(lines) + "\n\n" + markdown_table(records) + npu_markdown(records) + profile_markdown(records)


def append_records(records: list[BenchRecord], out_dir: Path) -> Path:
    """Append records to bench.jsonl at once (flushed), so what was measured survives a later failure."""
    make_folder(out_dir)
    path = out_dir / "bench.jsonl"
    append_whole(path, "".join(json.dumps(record.to_json(), sort_keys=True) + "\n" for record in records))
    return path


def write_reports(records: list[BenchRecord], out_dir: Path, append_jsonl: bool = True) -> dict[str, Path]:
    """Append the records to bench.jsonl (unless done as they came); write bench.md, bench.png, bench.html."""
    make_folder(out_dir)
    paths = {"jsonl": out_dir / "bench.jsonl", "markdown": out_dir / "bench.md", "html": out_dir / "bench.html"}
    if append_jsonl:
        append_records(records, out_dir)
    warnings = _warnings(records)
    write_atomically(paths["markdown"], _markdown(records, warnings))
    png = _plot_png(records, out_dir / "bench.png")
    if png:
        paths["png"] = png
    write_atomically(paths["html"], _html(records, png, warnings))
    return paths
