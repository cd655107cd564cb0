"""Ctrl-C, SIGTERM and SIGHUP, honoured even where a converter catches what they raise.

The handlers record the signal before raising, so a converter that wraps the exception in its own error (torch's
exporters do) or swallows it cannot turn a stop into a finished artifact: `raise_if_stopped` at the commit point
(before an artifact is renamed into place) and the CLI's exit code both read the record.

They act in the process that installed them only: a process forked from it (OpenVINO's telemetry sender, which
multiprocessing terminates at exit) dies of the signal as it would have without us, instead of printing a
Terminated traceback onto the user's terminal.
"""
from __future__ import annotations

import os
import signal
from typing import Any

__all__ = ["Terminated", "install", "raise_if_stopped", "stop_signal"]

_received: list[int] = []
_owner: list[int] = []  # the pid that installed the handlers


class Terminated(BaseException):
    """SIGTERM or SIGHUP, raised where the process is, so every `finally` (staging folders, locks) runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_interrupt(signum: int, _frame: Any) -> None:
    _received.append(signum)
    raise KeyboardInterrupt


def _on_terminate(signum: int, _frame: Any) -> None:
    if _owner and os.getpid() != _owner[0]:  # a forked child: the default action, as if we were not here
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _received.append(signum)
    raise Terminated(signum)


def install() -> None:
    """Our handlers for SIGTERM and SIGHUP, and for SIGINT unless the parent chose to ignore it."""
    _received.clear()
    _owner[:] = [os.getpid()]
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
