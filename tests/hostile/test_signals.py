"""Ctrl-C, SIGTERM and SIGHUP during a conversion: one line, exit 128 + the signal, nothing half-written."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("target, signum, code, said", [
    ("onnx", signal.SIGINT, 130, "vit-edge: interrupted"),
    ("tflite", signal.SIGINT, 130, "vit-edge: interrupted"),
    ("onnx", signal.SIGTERM, 143, "vit-edge: stopped by SIGTERM"),
    ("onnx", signal.SIGHUP, 129, "vit-edge: stopped by SIGHUP"),
])
def test_a_signal_during_export(target: str, signum: int, code: int, said: str, tmp_path: Path) -> None:
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
        if "exporting to" in line:
            time.sleep(2)  # inside the converter
            process.send_signal(signum)
            break
    rest = process.stderr.read()
    assert process.wait(timeout=120) == code, "".join(seen) + rest
    assert rest.strip().splitlines()[-1] == said, rest
    assert "\x1b[" not in rest and "Traceback" not in rest
    assert list(tmp_path.iterdir()) == []  # no artifact, no partial folder, no lock
