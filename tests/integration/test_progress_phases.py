"""Progress on every long phase (#36): QAT steps, calibration, bench configurations, the measuring process's
scoring and tune candidates reach a Python caller's `vit_edge.reporting` callback; a CLI in a pipe prints no bar
and no protocol line, and on a terminal the runner's scoring shows as the host's own bar."""
from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

import vit_edge
from tests.helpers import REPO, run_cli, small_vit
from vit_edge.quantization.qat import QatConfig, QatTraining

Events = list[tuple[str, int, int]]
FAST = {"runs": 3, "min_seconds": 0.0, "warmup": 0}


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = small_vit(in_chans=1, img_size=28, patch_size=4)  # Fashion-MNIST's images as they are
    return vit_edge.export(model, "onnx", tmp_path_factory.mktemp("progress") / "onnx", parity_samples=2).path


def _phases(events: Events) -> dict[str, list[tuple[int, int]]]:
    found: dict[str, list[tuple[int, int]]] = {}
    for what, done, total in events:
        found.setdefault(what, []).append((done, total))
    return found


def test_bench_reports_its_configurations_and_the_runners_scoring(artifact: Path) -> None:
    """bench said `[1/2] … then scoring 600 images` and nothing more until the runner's process ended."""
    events: Events = []
    with vit_edge.reporting(lambda *event: events.append(event)):
        records = vit_edge.bench([artifact], threads=(1, 2), data="fashion-mnist", eval_limit=600, **FAST)
    assert [r.status for r in records] == ["ok", "ok"] and records[0].eval_images == 600
    phases = _phases(events)
    assert phases["bench"] == [(1, 2), (2, 2)]
    assert phases["scoring"] == [(256, 600), (512, 600), (600, 600)]  # from inside the measuring process
    assert events.index(("scoring", 600, 600)) < events.index(("bench", 1, 2))  # as it happened, not afterwards


def test_qat_reports_its_steps_each_epoch_and_calibration(artifact: Path, tmp_path: Path) -> None:
    """QAT logged a line every 20 steps; now each epoch is a phase of its steps (a bar, or the caller's callback)."""
    events: Events = []
    lines: list[str] = []
    qat = QatTraining("fashion-mnist", QatConfig(epochs=2, batch_size=16, max_steps=3, warmup_steps=1),
                      checkpoint_dir=tmp_path / "ck")
    with vit_edge.reporting(lambda *event: events.append(event)):
        vit_edge.quantize(small_vit(in_chans=1, img_size=28, patch_size=4), "onnx", tmp_path / "qat",
                          calib="fashion-mnist", calib_size=32, eval_data="fashion-mnist", eval_limit=64, qat=qat,
                          parity_samples=2, log=lines.append)
    phases = _phases(events)
    assert phases["QAT epoch 1/2"] == [(1, 3), (2, 3), (3, 3)] and phases["QAT epoch 2/2"] == [(1, 3), (2, 3), (3, 3)]
    assert phases["calibrating"][-1] == (32, 32)
    assert [line for line in lines if " step " in line] == []  # the callback has the steps: no log line per step
    assert sum(line.startswith("epoch ") and "held-out top-1" in line for line in lines) == 2  # one per epoch


def test_tune_reports_its_candidates(tmp_path: Path) -> None:
    from vit_edge.tuning import TuneConfig, tune

    events: Events = []
    config = TuneConfig("onnx", calib="fashion-mnist", eval_data="fashion-mnist", max_drop=100.0, merges=(0, 2),
                        threads=(1,), precisions=("fp32",), eval_limit=64, calib_size=16, runs=3)
    with vit_edge.reporting(lambda *event: events.append(event)):
        tune(small_vit(in_chans=1, img_size=28, patch_size=4), config, tmp_path / "tune")
    phases = _phases(events)
    assert phases["tune"] == [(1, 2), (2, 2)]
    assert phases["bench"] == [(1, 1), (1, 1)]  # each candidate's measurement, inside the tune's phase


BENCH = ("--threads", "1", "--runs", "3", "--min-time", "0", "--warmup", "0", "--data", "fashion-mnist",
         "--eval-limit", "600")
PROGRESS_LIKE = ("VIT_EDGE_PROGRESS", "\r", "%|", "config/s", "img/s]", "\x1b[")


def test_a_piped_cli_prints_no_progress_and_a_terminal_shows_the_runners_scoring(artifact: Path,
                                                                                  tmp_path: Path) -> None:
    piped = run_cli("bench", str(artifact), *BENCH, "--out", str(tmp_path / "piped"))
    assert piped.returncode == 0, piped.stderr
    for text in (piped.stdout, piped.stderr):
        assert not [mark for mark in PROGRESS_LIKE if mark in text], text
    assert "[1/1] onnx: threads 1, batch 1, then scoring 600 images" in piped.stderr  # the log stays
    shown = _on_a_terminal("bench", str(artifact), *BENCH, "--out", str(tmp_path / "tty"))
    assert "bench:" in shown and "config" in shown  # the host's own bar
    assert "scoring:" in shown and "/600 [" in shown  # the measuring process's, as the host's bar
    assert "VIT_EDGE_PROGRESS" not in shown


def _on_a_terminal(*args: str) -> str:
    """The CLI with its stderr on a pseudo-terminal 100 columns wide (stdout piped); what the terminal got."""
    main, side = pty.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    code = f"import sys\nfrom vit_edge.cli import main\nsys.exit(main({list(args)!r}))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("VIT_EDGE_PROGRESS", None)
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=side, env=env)
    os.close(side)
    received = bytearray()
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the process closed its side
            break
        if not chunk:
            break
        received += chunk
    os.close(main)
    assert process.wait(timeout=300) == 0, received.decode(errors="replace")
    return received.decode(errors="replace")
