"""Progress on the phases that take more than a few seconds (scoring thousands of images, calibrating, QAT
epochs, bench configurations, tune candidates), through tqdm: a bar on a terminal, nothing when stderr is a file
or a pipe (logs and CI stay clean), and nothing with VIT_EDGE_PROGRESS=0. The Python API's callers route it
elsewhere with `reporting(callback)`; a measuring process sends its own to the host as lines (runtime/runner.py).
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import sys
from typing import Any, Callable, ContextManager, Iterable, Iterator, TypeVar

from vit_edge.core.options import check_callable

__all__ = ["MIN_ITEMS", "Reporter", "Tracker", "reporting", "steps", "tracking", "wanted", "write"]

MIN_ITEMS = 1000  # fewer images than this pass in seconds: no bar
Reporter = Callable[[str, int, int], None]  # (what, done, total)
_REPORTER: contextvars.ContextVar[Reporter | None] = contextvars.ContextVar("vit_edge_progress", default=None)
T = TypeVar("T")


def reporting(reporter: Reporter) -> ContextManager[None]:
    """Inside the block, progress goes to `reporter(what, done, total)` instead of a bar (a GUI, a log): every
    phase, the measuring processes' scoring included. `with vit_edge.reporting(fn): vit_edge.quantize(...)`."""
    check_callable("reporter", reporter)  # refused at the call, not at the first step of a long run
    return _reporting(reporter)


@contextlib.contextmanager
def _reporting(reporter: Reporter) -> Iterator[None]:
    token = _REPORTER.set(reporter)
    try:
        yield
    finally:
        _REPORTER.reset(token)


def _bar_wanted() -> bool:
    if os.environ.get("VIT_EDGE_PROGRESS", "1") == "0":
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def wanted() -> bool:
    """Whether anyone would see progress here (a reporter, or a bar on a terminal): a measuring process is asked
    for its own only then."""
    return _REPORTER.get() is not None or _bar_wanted()


class Tracker:
    """One phase's progress as it goes: `advance()` after each piece of work (a step, a configuration). The
    reporter hears it, or a bar shows it, or nobody does (`shown` is False: a log line may say it instead)."""

    def __init__(self, what: str, total: int, reporter: Reporter | None = None, bar: Any = None) -> None:
        self.what, self.total, self.done = what, total, 0
        self._reporter, self._bar = reporter, bar

    @property
    def shown(self) -> bool:
        return self._reporter is not None or self._bar is not None

    def advance(self, count: int = 1, note: str | None = None) -> None:
        self.reach(self.done + count, note)

    def reach(self, done: int, note: str | None = None) -> None:
        """`done` of `total` finished; `note` (a loss) is shown beside the bar."""
        step, self.done = done - self.done, done
        if self._reporter is not None:
            self._reporter(self.what, done, self.total)
        elif self._bar is not None:
            if note is not None:
                self._bar.set_postfix_str(note, refresh=False)
            self._bar.update(step)


@contextlib.contextmanager
def tracking(what: str, total: int, unit: str = "img", least: int = MIN_ITEMS, quiet: bool = False
             ) -> Iterator[Tracker]:
    """A Tracker for a phase of `total` items. Fewer than `least` pass in seconds and show no bar (a reporter
    hears them all); `quiet`: nobody hears (a torchrun rank other than 0, whose log is silent too)."""
    reporter = None if quiet else _REPORTER.get()
    if quiet or reporter is not None or total < least or not _bar_wanted():
        yield Tracker(what, total, reporter)
        return
    bar = _new_bar(what, total, unit)
    try:
        yield Tracker(what, total, bar=bar)
    finally:
        if bar is not None:
            bar.close()


def _new_bar(what: str, total: int, unit: str) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # the core needs no bar to work
        return None
    return tqdm(total=total, desc=what, unit=unit, leave=False, file=sys.stderr, mininterval=0.5, dynamic_ncols=True)


def steps(chunks: Iterable[T], sizes: Callable[[T], int], total: int, what: str, unit: str = "img",
          least: int = MIN_ITEMS) -> Iterator[T]:
    """`chunks` as they are, with `sizes(chunk)` items of `total` reported done after each one."""
    with tracking(what, total, unit, least) as tracker:
        for chunk in chunks:
            yield chunk
            tracker.advance(sizes(chunk))


def write(line: str) -> None:
    """A log line on stderr; on a terminal through tqdm, so a bar in progress is redrawn below it, not torn."""
    if _bar_wanted():
        try:
            from tqdm import tqdm

            tqdm.write(line, file=sys.stderr)
            return
        except ImportError:
            pass
    print(line, file=sys.stderr, flush=True)
