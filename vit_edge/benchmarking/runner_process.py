"""Running the measuring process (here or over SSH) and hearing it as it goes.

What `subprocess.run(capture_output=True, timeout=…)` gives, except that the PROGRESS lines the runner writes to
stderr when asked (runtime/runner.py) become this process's progress (core/progress: a bar on a terminal, the
caller's reporter) as they arrive, and are left out of the stderr returned, so no error message or report ever
shows one. A runner that sends none (an older one, or an SSH client that holds its stderr) is measured the same.
"""
from __future__ import annotations

import contextlib
import queue
import subprocess
import threading
import time
from typing import IO, Any

from vit_edge.core import progress
from vit_edge.runtime.runner import PROGRESS_FLAG, PROGRESS_PREFIX, read_progress

__all__ = ["progress_args", "run_measuring"]

_Line = tuple[bool, str | None]  # (from stderr, the line; None once the stream has ended)


def progress_args() -> list[str]:
    """The runner's arguments after its config: ask for progress only where someone would see it, so a run in a
    pipe or CI is the same process as before."""
    return [PROGRESS_FLAG] if progress.wanted() else []


def run_measuring(args: list[str], timeout: float, env: dict[str, str] | None = None
                  ) -> subprocess.CompletedProcess[str]:
    """Run `args`; its stdout and its stderr without PROGRESS lines. subprocess.TimeoutExpired after `timeout`
    seconds, the process killed, as subprocess.run does."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                            env=env)
    lines: queue.Queue[_Line] = queue.Queue()
    pumps = [threading.Thread(target=_pump, args=(stream, is_err, lines), daemon=True)
             for stream, is_err in ((proc.stdout, False), (proc.stderr, True))]
    for pump in pumps:
        pump.start()
    deadline = time.monotonic() + timeout
    out: list[str] = []
    err: list[str] = []
    try:
        with _Shown() as shown:
            ended = 0
            while ended < 2:
                try:
                    is_err, line = lines.get(timeout=max(deadline - time.monotonic(), 0.0))
                except queue.Empty:
                    raise subprocess.TimeoutExpired(args, timeout) from None
                if line is None:
                    ended += 1
                elif not (is_err and shown.take(line)):
                    (err if is_err else out).append(line)
        returncode = proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
    finally:
        _stop(proc, pumps)
    return subprocess.CompletedProcess(args, returncode, "".join(out), "".join(err))


def _pump(stream: IO[str], is_err: bool, lines: queue.Queue[_Line]) -> None:
    """Each line of `stream` into `lines`, then None; never raises (a closed pipe ends it too)."""
    try:
        for line in stream:
            lines.put((is_err, line))
    except (OSError, ValueError):
        pass
    finally:
        lines.put((is_err, None))


def _stop(proc: subprocess.Popen[str], pumps: list[threading.Thread]) -> None:
    """Kill the process if it still runs (a timeout, Ctrl-C) and close its pipes."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for pump in pumps:
        pump.join(timeout=1.0)  # a grandchild holding a pipe open must not hold the bench
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


class _Shown:
    """The runner's progress as this process's own: one tracker per phase it names, all closed at the end."""

    def __init__(self) -> None:
        self._phases = contextlib.ExitStack()
        self._trackers: dict[str, progress.Tracker] = {}

    def __enter__(self) -> "_Shown":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._phases.close()

    def take(self, line: str) -> bool:
        """Show `line` if it is progress; True when it is one (a damaged one too: it is no error message)."""
        if not line.startswith(PROGRESS_PREFIX):
            return False
        found = read_progress(line.rstrip("\n"))
        if found is not None:
            what, done, total = found
            tracker = self._trackers.get(what)
            if tracker is None or tracker.total != total:
                tracker = self._phases.enter_context(progress.tracking(what, total, least=1))
                self._trackers[what] = tracker
            tracker.reach(done)
        return True
