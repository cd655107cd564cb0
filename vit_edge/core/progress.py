"""Progress on the phases that take more than a few seconds (scoring thousands of images, calibrating), through
tqdm: a bar on a terminal, nothing when stderr is a file or a pipe (logs and CI stay clean), and nothing with
VIT_EDGE_PROGRESS=0. The Python API's callers can route it elsewhere with `reporting(callback)`.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import sys
from typing import Callable, Iterable, Iterator, TypeVar

__all__ = ["MIN_ITEMS", "reporting", "steps"]

MIN_ITEMS = 1000  # fewer items than this pass in seconds: no bar
Reporter = Callable[[str, int, int], None]  # (what, done, total)
_REPORTER: contextvars.ContextVar[Reporter | None] = contextvars.ContextVar("vit_edge_progress", default=None)
T = TypeVar("T")


@contextlib.contextmanager
def reporting(reporter: Reporter) -> Iterator[None]:
    """Inside the block, progress goes to `reporter(what, done, total)` instead of a bar (a GUI, a log)."""
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


def steps(chunks: Iterable[T], sizes: Callable[[T], int], total: int, what: str, unit: str = "img") -> Iterator[T]:
    """`chunks` as they are, with `sizes(chunk)` items of `total` reported done after each one."""
    reporter = _REPORTER.get()
    if reporter is None and (total < MIN_ITEMS or not _bar_wanted()):
        yield from chunks
        return
    if reporter is not None:
        done = 0
        for chunk in chunks:
            yield chunk
            done += sizes(chunk)
            reporter(what, done, total)
        return
    yield from _with_bar(chunks, sizes, total, what, unit)


def _with_bar(chunks: Iterable[T], sizes: Callable[[T], int], total: int, what: str, unit: str) -> Iterator[T]:
    try:
        from tqdm import tqdm
    except ImportError:  # the core needs no bar to work
        yield from chunks
        return
    with tqdm(total=total, desc=what, unit=unit, leave=False, file=sys.stderr, mininterval=0.5,
              dynamic_ncols=True) as bar:
        for chunk in chunks:
            yield chunk
            bar.update(sizes(chunk))
