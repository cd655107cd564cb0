"""Bench reports: JSON Lines (one record per run), a Markdown table, and latency-vs-accuracy as PNG and HTML.

The plot marks the Pareto front: the configurations that no other one beats on both latency and accuracy.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

__all__ = ["append_records", "device_label", "profile_markdown", "markdown_table", "pareto_front", "write_reports",
           "accuracy_of"]

COLUMNS = [
    ("device", lambda r: device_label(r)),
    ("artifact", lambda r: r.get("artifact_id", "?")),
    ("runtime", lambda r: r.get("runtime", "-")),
    ("precision", lambda r: r.get("precision", "-")),
    ("ran as", lambda r: (r.get("session") or {}).get("precision", r.get("precision", "-"))),
    ("delegated", lambda r: _delegation(r.get("session") or {})),
    ("threads", lambda r: str(r.get("threads") or "-")),
    ("batch", lambda r: str(r.get("batch", "-"))),
    ("p50 ms", lambda r: _num(r.get("p50_ms"))),
    ("p90 ms", lambda r: _num(r.get("p90_ms"))),
    ("p99 ms", lambda r: _num(r.get("p99_ms"))),
    ("std ms", lambda r: _num(r.get("std_ms"))),
    ("img/s", lambda r: _num(r.get("throughput_ips"), 1)),
    ("load ms", lambda r: _num(r.get("load_ms"), 0)),
    ("peak MB", lambda r: _num(r.get("peak_rss_mb"), 0)),
    ("size MB", lambda r: _num(r.get("size_mb"))),
    ("top-1 %", lambda r: _num(r.get("top1"))),
    ("agree %", lambda r: _num(r.get("agreement_top1"))),
    ("status", lambda r: r.get("status", "?") if r.get("status") == "ok" else f"{r.get('status')}: {r.get('error')}"),
]


def device_label(record: dict[str, Any]) -> str:
    """Where the row ran, as the device itself reported it (machine and CPU), else the address asked for."""
    found = record.get("device_fingerprint") or {}
    where = record.get("device_name") or record.get("device") or "local"
    if not found:
        return where
    return f"{where} ({found.get('machine', '?')}, {found.get('cpu') or '?'})"


def _delegation(session: dict[str, Any]) -> str:
    if "fully_delegated" not in session:
        return "-"
    return "all" if session["fully_delegated"] else "not " + "/".join(session.get("undelegated_ops", []))


def _num(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _by_device(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records grouped by the device they ran on, devices in the order they first appear (a stable sort)."""
    order = {label: index for index, label in enumerate(dict.fromkeys(device_label(r) for r in records))}
    return sorted(records, key=lambda r: order[device_label(r)])


def markdown_table(records: list[dict[str, Any]]) -> str:
    """One row per record, grouped by the device it ran on (in the order devices first appear)."""
    records = _by_device(records)
    header = [name for name, _ in COLUMNS]
    rows = [[str(get(record)).replace("|", "/") for _, get in COLUMNS] for record in records]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def profile_markdown(records: list[dict[str, Any]]) -> str:
    """Per profiled row: the ops that take the time and how many matmuls ran INT8 (empty without --profile)."""
    parts = []
    for record in records:
        profile = record.get("profile")
        if not profile:
            continue
        matmuls = profile["matmuls"]
        parts.append(f"\n### {device_label(record)} · {record.get('artifact_id')} · {record.get('runtime')}\n\n"
                     f"matmuls: {matmuls['int8']} INT8, {matmuls['float']} float "
                     f"({100 * matmuls['int8_ms_share']:.0f} % of the time in INT8 matmuls)\n\n"
                     "| op | type | precision | ms | share |\n|---|---|---|---|---|\n")
        parts.extend(f"| {op['name']} | {op['type']} | {op['precision']} | {op['ms']:.3f} | "
                     f"{100 * op['share']:.1f} % |\n" for op in profile["top_ops"])
    return "".join(parts)


def accuracy_of(record: dict[str, Any]) -> float | None:
    """Top-1 on labelled data if measured, else top-1 agreement with the reference."""
    return record.get("top1", record.get("agreement_top1"))


def pareto_front(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    points = [r for r in records if r.get("status") == "ok" and accuracy_of(r) is not None and r.get("p50_ms")]
    front = []
    for r in points:
        dominated = any(
            o["p50_ms"] <= r["p50_ms"] and accuracy_of(o) >= accuracy_of(r)  # type: ignore[operator]
            and (o["p50_ms"] < r["p50_ms"] or accuracy_of(o) > accuracy_of(r))  # type: ignore[operator]
            for o in points
        )
        if not dominated:
            front.append(r)
    return sorted(front, key=lambda r: r["p50_ms"])


def _plot_png(records: list[dict[str, Any]], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    points = [r for r in records if r.get("status") == "ok" and accuracy_of(r) is not None]
    accuracy = {id(r): float(accuracy_of(r) or 0.0) for r in points}  # every point has one (filtered above)
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for index, r in enumerate(sorted(points, key=lambda r: r["p50_ms"])):
        ax.scatter(r["p50_ms"], accuracy[id(r)], s=36, zorder=3)
        label = f"{r.get('target', r['artifact_id'])} {r.get('precision', '')} t{r.get('threads')} b{r.get('batch')}"
        ax.annotate(label, (r["p50_ms"], accuracy[id(r)]), fontsize=7, textcoords="offset points",
                    xytext=(5, 6 + 9 * (index % 3)))
    front = pareto_front(points)
    ax.step([r["p50_ms"] for r in front], [accuracy[id(r)] for r in front], "r--", lw=1, where="post")
    ax.scatter([r["p50_ms"] for r in front], [accuracy[id(r)] for r in front], s=160, facecolors="none",
               edgecolors="red", zorder=4, label="Pareto front")
    ax.set_xlabel("p50 latency (ms, lower is better)")
    ax.set_ylabel("top-1 % (or agreement with reference)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _html(records: list[dict[str, Any]], png: Path | None) -> str:
    head = "".join(f"<th>{html.escape(name)}</th>" for name, _ in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(get(r)))}</td>" for _, get in COLUMNS) + "</tr>"
                   for r in _by_device(records))
    encoded = base64.b64encode(png.read_bytes()).decode() if png else ""
    image = (f'<img alt="latency vs accuracy" src="data:image/png;base64,{encoded}">'
             if png else "<p>(plot needs matplotlib: pip install 'vit-edge[report]')</p>")
    return ("<!doctype html><meta charset='utf-8'><title>vit-edge bench</title>"
            "<style>body{font-family:sans-serif}td,th{padding:2px 8px;border-bottom:1px solid #ddd}</style>"
            f"<h1>vit-edge bench</h1>{image}<table><tr>{head}</tr>{body}</table>")


def append_records(records: list[dict[str, Any]], out_dir: Path) -> Path:
    """Append records to bench.jsonl at once (flushed), so what was measured survives a later failure."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "bench.jsonl"
    with open(path, "a") as handle:
        for record in records:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
    return path


def write_reports(records: list[dict[str, Any]], out_dir: Path, append_jsonl: bool = True) -> dict[str, Path]:
    """Append the records to bench.jsonl (unless done as they came); write bench.md, bench.png, bench.html."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"jsonl": out_dir / "bench.jsonl", "markdown": out_dir / "bench.md", "html": out_dir / "bench.html"}
    if append_jsonl:
        append_records(records, out_dir)
    paths["markdown"].write_text(markdown_table(records) + profile_markdown(records))
    png = _plot_png(records, out_dir / "bench.png")
    if png:
        paths["png"] = png
    paths["html"].write_text(_html(records, png))
    return paths
