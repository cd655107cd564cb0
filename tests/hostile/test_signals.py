"""Ctrl-C, SIGTERM and SIGHUP during a conversion: one line, exit 128 + the signal, nothing half-written."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("target, signum, code, said, phase, after_s", [
    ("onnx", signal.SIGINT, 130, "vit-edge: interrupted", "exporting to", 2.0),
    ("tflite", signal.SIGINT, 130, "vit-edge: interrupted", "exporting to", 2.0),
    # late: the flatbuffer is written and LiteRT runs the parity inputs (a Ctrl-C here was once swallowed)
    ("tflite", signal.SIGINT, 130, "vit-edge: interrupted", "checking parity", 0.3),
    ("onnx", signal.SIGTERM, 143, "vit-edge: stopped by SIGTERM", "exporting to", 2.0),
    ("onnx", signal.SIGHUP, 129, "vit-edge: stopped by SIGHUP", "exporting to", 2.0),
])
def test_a_signal_during_export(target: str, signum: int, code: int, said: str, phase: str, after_s: float,
                                tmp_path: Path) -> None:
    out = tmp_path / "art"
    # SIGINT back to Python's handler: a parent started in the background (`make test &`) passes it on ignored
    program = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
               "from vit_edge.cli import main; "
               f"sys.exit(main(['export', 'timm:vit_small_patch16_224', '--random-init', '--target', {target!r}, "
               f"'--out', {str(out)!r}]))")
    process = subprocess.Popen([sys.executable, "-c", program], cwd=REPO, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in process.stderr:
        seen.append(line)
        if phase in line:
            time.sleep(after_s)  # inside the converter, or the parity check
            process.send_signal(signum)
            break
    rest = process.stderr.read()
    assert process.wait(timeout=120) == code, "".join(seen) + rest
    assert rest.strip().splitlines()[-1] == said, rest
    assert "\x1b[" not in rest and "Traceback" not in rest
    assert list(tmp_path.iterdir()) == []  # no artifact, no partial folder, no lock
