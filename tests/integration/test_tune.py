"""`vit-edge tune`: candidates built and measured in the real runtime, the Pareto front, the choice, bad input."""
from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import assert_user_error, run_cli
from vit_edge.core.manifest import read_manifest
from vit_edge.tuning import TuneRow, pareto_front

QUICK = ("--calib", "fashion-mnist", "--eval", "fashion-mnist", "--eval-limit", "300", "--threads", "1",
         "--runs", "5", "--calib-size", "32")


def test_tune_writes_the_front_and_the_fastest_artifact_within_budget(tmp_path: Path) -> None:
    out = tmp_path / "tune"
    result = run_cli("tune", "fmnist-vit-tiny", "--target", "onnx", "--precisions", "fp32,int8", "--merge", "0,4",
                     "--max-drop", "1.0", "--out", str(out), *QUICK)
    assert result.returncode == 0, result.stderr
    document = json.loads((out / "tune.json").read_text())
    names = {row["candidate"] for row in document["rows"]}
    assert names == {"fp32-merge0", "int8-merge0", "fp32-merge4", "int8-merge4"}
    assert all(row["status"] == "ok" and row["top1"] > 80 for row in document["rows"])
    front, chosen = document["pareto_front"], document["chosen"]
    assert [r["p50_ms"] for r in front] == sorted(r["p50_ms"] for r in front)
    assert [r["top1"] for r in front] == sorted(r["top1"] for r in front)  # slower only when more accurate
    assert chosen["drop"] <= 1.0 and chosen == min((r for r in front if r["drop"] <= 1.0), key=lambda r: r["p50_ms"])
    manifest = read_manifest(out / "chosen")  # the chosen artifact, files verified
    assert manifest.source.architecture["merge"] == chosen["merge"]


def test_unmeetable_budget_keeps_the_rows(tmp_path: Path) -> None:
    """INT8 with r=20 (of at most 24) loses points: no INT8 candidate meets a zero budget."""
    out = tmp_path / "tune"
    result = run_cli("tune", "fmnist-vit-tiny", "--target", "onnx", "--precisions", "int8", "--merge", "20",
                     "--max-drop", "0", "--out", str(out), *QUICK)
    assert_user_error(result, "no candidate meets --max-drop 0.0", "int8-merge20")
    rows = json.loads((out / "tune.json").read_text())["rows"]
    assert {row["candidate"] for row in rows} == {"fp32-merge0", "int8-merge20"}


def test_bad_tune_requests_are_one_line(tmp_path: Path) -> None:
    out = tmp_path / "tune"
    cases = [
        (["--merge", "0,30"], "--merge 30", "from 0 to 24"),
        (["--device", "ssh://nobody@127.0.0.1:9"], "cannot reach"),
        (["--precisions", "int4"], "unknown precision"),
    ]
    for args, *fragments in cases:
        result = run_cli("tune", "fmnist-vit-tiny", "--target", "onnx", "--max-drop", "0.5", "--out", str(out),
                         *QUICK, *args)
        assert_user_error(result, *fragments)
        assert not out.exists()


def test_pareto_front_drops_dominated_rows() -> None:
    def row(name: str, ms: float, top1: float) -> TuneRow:
        return TuneRow(name, "int8", 0, 1, "f32", "ok", p50_ms=ms, top1=top1)

    rows = [row("a", 1.0, 80.0), row("b", 2.0, 79.0), row("c", 3.0, 85.0), row("d", 0.5, 70.0),
            TuneRow("e", "int8", 0, 1, "f32", "crashed", p50_ms=None, top1=None)]
    assert [r.candidate for r in pareto_front(rows)] == ["d", "a", "c"]
