"""Progress: the long phases report as they go (a bar on a terminal, a callback from Python), and say nothing
when stderr is not a terminal; the measuring process's own progress reaches the host as lines on its stderr that
never show up in an error message."""
from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from vit_edge.benchmarking.runner_process import progress_args, run_measuring
from vit_edge.benchmarking.sweep import _parse_result
from vit_edge.core.errors import ConfigError
from vit_edge.core.progress import MIN_ITEMS, reporting, steps, tracking
from vit_edge.runtime.accuracy import run_batched
from vit_edge.runtime.runner import PROGRESS_FLAG, PROGRESS_PREFIX, RESULT_PREFIX, progress_line, read_progress


def test_scoring_thousands_of_images_reports_its_progress() -> None:
    """quantize printed nothing for 97 s while it scored 10,000 evaluation images."""
    seen: list[tuple[str, int, int]] = []
    with reporting(lambda what, done, total: seen.append((what, done, total))):
        out = run_batched(lambda chunk: chunk * 2, np.arange(1000), batch_size=256, what="scoring INT8")
    assert np.array_equal(out, np.arange(1000) * 2)
    assert seen == [("scoring INT8", 256, 1000), ("scoring INT8", 512, 1000), ("scoring INT8", 768, 1000),
                    ("scoring INT8", 1000, 1000)]


def test_no_bar_when_stderr_is_not_a_terminal(capfd: pytest.CaptureFixture[str]) -> None:
    assert list(steps(range(3), lambda _: MIN_ITEMS, 3 * MIN_ITEMS, "x")) == [0, 1, 2]
    assert capfd.readouterr().err == ""


def test_a_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert list(steps(range(2), lambda _: MIN_ITEMS, 2 * MIN_ITEMS, "scoring")) == [0, 1]
    assert "scoring" in capfd.readouterr().err
    monkeypatch.setenv("VIT_EDGE_PROGRESS", "0")
    list(steps(range(2), lambda _: MIN_ITEMS, 2 * MIN_ITEMS, "scoring"))
    assert capfd.readouterr().err == ""


def test_a_phase_reports_each_step_to_the_caller_and_nothing_when_quiet() -> None:
    """QAT steps, bench configurations and tune candidates count one by one, under least=1 (a few items that each
    take long); a torchrun rank other than 0 reports nothing."""
    seen: list[tuple[str, int, int]] = []
    with reporting(lambda *event: seen.append(event)):
        with tracking("QAT epoch 1/2", 3, "step", least=1) as steps_done:
            assert steps_done.shown
            for _ in range(3):
                steps_done.advance(note="loss 0.5")
        with tracking("QAT epoch 2/2", 3, "step", least=1, quiet=True) as silent:
            silent.advance()
            assert not silent.shown
    assert seen == [("QAT epoch 1/2", 1, 3), ("QAT epoch 1/2", 2, 3), ("QAT epoch 1/2", 3, 3)]


def test_reporting_refuses_what_is_not_a_function() -> None:
    with pytest.raises(ConfigError, match="reporter must be a function"):
        reporting("print")  # type: ignore[arg-type]


def _child(code: str) -> list[str]:
    return [sys.executable, "-c", code]


PROGRESS = f"import sys\nP = {PROGRESS_PREFIX!r}\n"


def test_the_runners_progress_lines_become_progress_and_stay_out_of_its_stderr() -> None:
    """The measuring process's scoring reaches the host as progress; a damaged line is dropped, never an error."""
    code = PROGRESS + (
        "print(P + '{\"what\": \"scoring\", \"done\": 256, \"total\": 600}', file=sys.stderr, flush=True)\n"
        "print('a runtime warning', file=sys.stderr, flush=True)\n"
        "print(P + '{\"what\": \"scoring\", \"done\": ', file=sys.stderr, flush=True)\n"  # cut short
        "print(P + '{\"what\": \"scoring\", \"done\": true, \"total\": 600}', file=sys.stderr, flush=True)\n"
        "print(P + '{\"what\": \"scoring\", \"done\": 600, \"total\": 600}', file=sys.stderr, flush=True)\n"
        f"print({RESULT_PREFIX!r} + '{{\"status\": \"ok\"}}')\n")
    seen: list[tuple[str, int, int]] = []
    with reporting(lambda *event: seen.append(event)):
        proc = run_measuring(_child(code), timeout=60)
    assert seen == [("scoring", 256, 600), ("scoring", 600, 600)]
    assert proc.stderr == "a runtime warning\n" and proc.returncode == 0
    assert _parse_result(proc).status == "ok"


def test_a_runner_that_sends_no_progress_is_read_as_before() -> None:
    """An older runner (or one not asked) sends no PROGRESS line: the result and the error message are as before."""
    seen: list[tuple[str, int, int]] = []
    with reporting(lambda *event: seen.append(event)):
        crashed = run_measuring(_child("import sys\nprint('Segmentation fault', file=sys.stderr)\nsys.exit(3)"), 60)
        fine = run_measuring(_child(f"print({RESULT_PREFIX!r} + '{{\"status\": \"ok\", \"p50_ms\": 1.5}}')"), 60)
    assert seen == []
    assert (_parse_result(crashed).status, _parse_result(crashed).error) == ("crashed", "Segmentation fault")
    assert (_parse_result(fine).status, _parse_result(fine).latency.p50_ms) == ("ok", 1.5)


def test_a_runner_past_its_time_is_stopped() -> None:
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        run_measuring(_child(PROGRESS + "import time\nprint(P + 'x', file=sys.stderr, flush=True)\ntime.sleep(60)"),
                      timeout=1.0)
    assert time.monotonic() - started < 10


def test_the_runner_is_asked_for_progress_only_where_someone_sees_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """In a pipe or CI the measuring process runs exactly as before: no flag, so no PROGRESS line at all."""
    assert progress_args() == []
    with reporting(lambda *_: None):
        assert progress_args() == [PROGRESS_FLAG]
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert progress_args() == [PROGRESS_FLAG]
    monkeypatch.setenv("VIT_EDGE_PROGRESS", "0")
    assert progress_args() == []


@pytest.mark.parametrize("payload", ['{"what": "s", "done": -1, "total": 5}', '{"what": "s", "done": 6, "total": 5}',
                                     '{"what": 5, "done": 1, "total": 5}', '[1, 2]', '{"what": "s", "done": 1.5, '
                                     '"total": 5}', "not json"])
def test_a_damaged_progress_line_is_none(payload: str) -> None:
    assert read_progress(PROGRESS_PREFIX + payload) is None


def test_a_progress_line_round_trips_without_control_characters() -> None:
    assert read_progress(progress_line("scoring", 3, 9)) == ("scoring", 3, 9)
    assert read_progress(progress_line("sc\x1b[2Joring", 3, 9)) == ("sc[2Joring", 3, 9)
