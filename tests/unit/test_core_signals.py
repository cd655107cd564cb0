"""The stop handlers act in the process that installed them only."""
from __future__ import annotations

import multiprocessing
import signal
import time

from vit_edge.core import signals


def _sleep() -> None:
    time.sleep(30)


def test_a_forked_child_dies_of_sigterm_without_a_traceback(capfd) -> None:  # type: ignore[no-untyped-def]
    """OpenVINO's telemetry sender is such a child: multiprocessing terminates it when the CLI exits, and with our
    handler inherited it printed 'vit_edge.core.signals.Terminated: 15' under the user's one-line error."""
    previous = {name: signal.getsignal(getattr(signal, name)) for name in ("SIGINT", "SIGTERM", "SIGHUP")}
    try:
        signals.install()
        child = multiprocessing.get_context("fork").Process(target=_sleep)
        child.start()
        time.sleep(0.5)
        child.terminate()
        child.join(10)
        assert child.exitcode == -signal.SIGTERM
        assert "Terminated" not in capfd.readouterr().err
        assert signals.stop_signal() is None  # the parent received nothing
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)
