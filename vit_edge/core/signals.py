"""Ctrl-C, SIGTERM and SIGHUP, honoured even where a converter catches what they raise.

The handlers record the signal before raising, so a converter that wraps the exception in its own error (torch's
exporters do) or swallows it cannot turn a stop into a finished artifact: `raise_if_stopped` at the commit point
(before an artifact is renamed into place) and the CLI's exit code both read the record.
"""
from __future__ import annotations

import signal
from typing import Any

__all__ = ["Terminated", "install", "raise_if_stopped", "stop_signal"]

_received: list[int] = []


class Terminated(BaseException):
    """SIGTERM or SIGHUP, raised where the process is, so every `finally` (staging folders, locks) runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_interrupt(signum: int, _frame: Any) -> None:
    _received.append(signum)
    raise KeyboardInterrupt


def _on_terminate(signum: int, _frame: Any) -> None:
    _received.append(signum)
    raise Terminated(signum)


def install() -> None:
    """Our handlers for SIGTERM and SIGHUP, and for SIGINT unless the parent chose to ignore it."""
    _received.clear()
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_interrupt)
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _on_terminate)


def stop_signal() -> int | None:
    """The first stop signal this process received, or None."""
    return _received[0] if _received else None


def raise_if_stopped() -> None:
    """Raise what the first stop signal raised, even if a converter caught it on its way up."""
    signum = stop_signal()
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    if signum is not None:
        raise Terminated(signum)
