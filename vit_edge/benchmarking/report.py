"""Bench reports: JSON Lines (one record per run), a Markdown table, and latency-vs-accuracy as PNG and HTML.

The plot marks the Pareto front: the configurations that no other one beats on both latency and accuracy.
"""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any, Callable

from vit_edge.benchmarking.record import BenchRecord
from vit_edge.core.outputs import append_whole, make_folder, write_atomically
from vit_edge.core.pareto import pareto_front as front_of
from vit_edge.core.recognise import BENCH_MARK

__all__ = ["append_records", "device_label", "npu_estimate_lines", "npu_markdown", "profile_markdown", "markdown_table",
           "pareto_front", "write_reports", "accuracy_of"]

COLUMNS: list[tuple[str, Callable[[BenchRecord], str]]] = [
    ("device", lambda r: device_label(r)),
    ("artifact", lambda r: r.artifact_id or "?"),
    ("runtime", lambda r: r.runtime or "-"),
    ("precision", lambda r: r.precision or "-"),
    ("ran as", lambda r: str(r.session.get("precision", r.precision or "-"))),
    ("delegated", lambda r: _delegation(r.session)),
    ("threads", lambda r: str(r.threads or "-")),
    ("batch", lambda r: str(r.batch)),
    ("p50 ms", lambda r: _num(r.p50_ms)),
    ("p90 ms", lambda r: _num(r.p90_ms)),
    ("p99 ms", lambda r: _num(r.p99_ms)),
    ("std ms", lambda r: _num(r.std_ms)),
    ("img/s", lambda r: _num(r.throughput_ips, 1)),
    ("load ms", lambda r: _num(r.load_ms, 0)),
    ("peak MB", lambda r: _num(r.peak_rss_mb, 0)),
    ("size MB", lambda r: _num(r.size_mb)),
    ("top-1 %", lambda r: _num(r.top1)),
    ("agree %", lambda r: _num(r.agreement_top1)),
    ("status", lambda r: r.status if r.ok else f"{r.status}: {r.error}"),
]


def device_label(record: BenchRecord) -> str:
    """Where the row ran, as the device itself reported it (machine and CPU), else the address asked for."""
    found = record.device_fingerprint
    where = record.device_name or record.device or "local"
    if not found:
        return where
    return f"{where} ({found.get('machine', '?')}, {found.get('cpu') or '?'})"


def _delegation(session: dict[str, Any]) -> str:
    if "fully_delegated" not in session:
        return "-"
    return "all" if session["fully_delegated"] else "not " + "/".join(session.get("undelegated_ops", []))


def _num(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _by_device(records: list[BenchRecord]) -> list[BenchRecord]:
    """Records grouped by the device they ran on, devices in the order they first appear (a stable sort)."""
    order = {label: index for index, label in enumerate(dict.fromkeys(device_label(r) for r in records))}
    return sorted(records, key=lambda r: order[device_label(r)])


def markdown_table(records: list[BenchRecord]) -> str:
    """One row per record, grouped by the device it ran on (in the order devices first appear)."""
    records = _by_device(records)
    header = [name for name, _ in COLUMNS]
    rows = [[str(get(record)).replace("|", "/") for _, get in COLUMNS] for record in records]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n" + _data_notes(records)


def _data_notes(records: list[BenchRecord]) -> str:
    """Under the table: which images each artifact was scored on and how their labels were matched."""
    notes = []
    for record in records:
        labels = record.extra.get("eval_labels")
        if labels is None or record.eval_images is None:
            continue
        skipped = record.extra.get("eval_skipped") or 0
        note = (f"- {record.artifact_id}: {record.eval_images} images, labels {labels}"
                + (f"; {skipped} unreadable files skipped" if skipped else ""))
        if note not in notes:
            notes.append(note)
    return ("\nevaluation data:\n" + "\n".join(notes) + "\n") if notes else ""


def npu_estimate_lines(estimate: dict[str, Any]) -> list[str]:
    """Vela's estimate in words, labelled as Vela's (shared by bench.md and `vit-edge info`)."""
    cpu = ", ".join(f"{op} {count}" for op, count in estimate.get("cpu_op_types", {}).items()) or "none"
    return [f"Vela's estimate (not a measurement) for {estimate['accelerator']} ({estimate['system_config']}, "
            f"{estimate['memory_mode']}, {estimate['clock_mhz']:g} MHz): {estimate['inference_ms']:.3f} ms per "
            f"inference; {estimate['npu_ops']} operators on the NPU, {estimate['cpu_ops']} on the CPU "
            f"({100 * estimate['npu_share']:.1f} % on the NPU); SRAM {estimate['sram_traffic_mb']:.2f} MB and DRAM "
            f"{estimate['dram_traffic_mb']:.2f} MB of traffic per inference",
            f"falls back to the CPU: {cpu}",
            *_activation_lines(estimate.get("ops_by_activation")),
            f"reproduce: {estimate['command']} ({estimate['tool']})"]


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
        if not profile:
            continue
        matmuls = profile["matmuls"]
        parts.append(f"\n### {device_label(record)} · {record.artifact_id} · {record.runtime}\n\n"
                     f"matmuls: {matmuls['int8']} INT8, {matmuls['float']} float "
                     f"({100 * matmuls['int8_ms_share']:.0f} % of the time in INT8 matmuls)\n\n"
                     "| op | type | precision | ms | share |\n|---|---|---|---|---|\n")
        parts.extend(f"| {op['name']} | {op['type']} | {op['precision']} | {op['ms']:.3f} | "
                     f"{100 * op['share']:.1f} % |\n" for op in profile["top_ops"])
    return "".join(parts)


def accuracy_of(record: BenchRecord) -> float | None:
    """Top-1 on labelled data if measured, else top-1 agreement with the reference."""
    return record.top1 if record.top1 is not None else record.agreement_top1


def pareto_front(records: list[BenchRecord]) -> list[BenchRecord]:
    """The measured rows that no other row beats on both latency (p50) and accuracy, fastest first."""
    return front_of(records, cost=lambda r: r.p50_ms if r.ok and r.p50_ms else None, score=accuracy_of)


def _plot_png(records: list[BenchRecord], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    front = pareto_front(records)
    points = [(r.p50_ms, accuracy, r) for r in records
              if r.ok and r.p50_ms is not None and (accuracy := accuracy_of(r)) is not None]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for index, (latency, accuracy, r) in enumerate(sorted(points, key=lambda point: point[0])):
        ax.scatter(latency, accuracy, s=36, zorder=3)
        label = f"{r.target or r.artifact_id} {r.precision or ''} t{r.threads} b{r.batch}"
        ax.annotate(label, (latency, accuracy), fontsize=7, textcoords="offset points",
                    xytext=(5, 6 + 9 * (index % 3)))
    xs = [r.p50_ms or 0.0 for r in front]
    ys = [accuracy_of(r) or 0.0 for r in front]  # every row of the front has both
    ax.step(xs, ys, "r--", lw=1, where="post")
    ax.scatter(xs, ys, s=160, facecolors="none", edgecolors="red", zorder=4, label="Pareto front")
    ax.set_xlabel("p50 latency (ms, lower is better)")
    ax.set_ylabel("top-1 % (or agreement with reference)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png", metadata={"Software": BENCH_MARK})  # how --force knows the file is ours
    plt.close(fig)
    write_atomically(path, image.getvalue())
    return path


def _html(records: list[BenchRecord], png: Path | None) -> str:
    head = "".join(f"<th>{html.escape(name)}</th>" for name, _ in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(get(r)))}</td>" for _, get in COLUMNS) + "</tr>"
                   for r in _by_device(records))
    encoded = base64.b64encode(png.read_bytes()).decode() if png else ""
    image = (f'<img alt="latency vs accuracy" src="data:image/png;base64,{encoded}">'
             if png else "<p>(plot needs matplotlib: pip install 'vit-edge[report]')</p>")
    return (f"<!doctype html><meta charset='utf-8'><meta name='generator' content='{BENCH_MARK}'>"
            "<title>vit-edge bench</title>"
            "<style>body{font-family:sans-serif}td,th{padding:2px 8px;border-bottom:1px solid #ddd}</style>"
            f"<h1>vit-edge bench</h1>{image}<table><tr>{head}</tr>{body}</table>")


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
    table = markdown_table(records) + npu_markdown(records) + profile_markdown(records)
    write_atomically(paths["markdown"], f"<!-- {BENCH_MARK} -->\n" + table)
    png = _plot_png(records, out_dir / "bench.png")
    if png:
        paths["png"] = png
    write_atomically(paths["html"], _html(records, png))
    return paths
