"""`vit-edge` command line: the parser (cli.parser), one function per verb (cli.commands), what they print
(cli.printing). Each flag fills one field of one options object; the verbs themselves are in vit_edge.api.

User errors (VitEdgeError) print one line and exit 2; anything else is a bug and keeps its traceback. So does a
verb that needs PyTorch on a torch-free install (a board's: numpy and one runtime): one line naming the extra.
"""
from __future__ import annotations

import errno
import sys
from typing import Sequence

from vit_edge.cli.parser import build_parser
from vit_edge.core.errors import MissingDependencyError, VitEdgeError

__all__ = ["main", "build_parser"]


def main(argv: Sequence[str] | None = None) -> int:
    from vit_edge.cli import commands
    from vit_edge.core import signals

    args = build_parser().parse_args(argv)
    signals.install()
    try:
        code = commands.COMMANDS[args.command](args)
        signals.raise_if_stopped()  # a converter that swallowed the signal does not make it a success
        return code
    except VitEdgeError as exc:
        if signals.stop_signal() is None:
            print(f"vit-edge: error: {exc}", file=sys.stderr)
            return 2
        return _stopped(signals.stop_signal())  # the converter wrapped our signal in its own error
    except KeyboardInterrupt:
        return _stopped(2)
    except signals.Terminated as exc:
        return _stopped(exc.signum)
    except ModuleNotFoundError as exc:
        missing = _missing_torch(exc, args.command)
        if missing is None:
            raise  # torch is there and a module is not: a broken install or a bug, keep its traceback
        print(f"vit-edge: error: {missing} (or see docs/install.md for the CPU-only build)", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `vit-edge models | head`: the reader has gone, nothing is wrong
        sys.stderr.close()
        return 0
    except OSError as exc:
        if exc.errno not in ENVIRONMENT_ERRNOS:
            raise  # anything else is a bug in vit-edge: keep its traceback
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"vit-edge: error: {exc.strerror}{where}: {ENVIRONMENT_ERRNOS[exc.errno]}", file=sys.stderr)
        return 2


# faults of the machine, not of vit-edge: what the user can do about each
ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "free some space or write elsewhere (--out)", errno.EDQUOT: "free some space or write elsewhere",
    errno.EFBIG: "the file size limit (ulimit -f) is too small", errno.EROFS: "write elsewhere (--out)",
    errno.EACCES: "check the file's permissions", errno.EPERM: "check the file's permissions",
    errno.EIO: "the disk or network file system failed; check it and run again",
}


def _missing_torch(exc: ModuleNotFoundError, verb: str) -> MissingDependencyError | None:
    """The line for a verb that reached an `import torch` on an install without torch, or None for any other missing
    module. Caught here, once for every verb (and flag: bench --runtime pytorch), not checked beside each of them."""
    import importlib.util

    if exc.name is None or exc.name.partition(".")[0] != "torch" or importlib.util.find_spec("torch") is not None:
        return None
    return MissingDependencyError("torch", "torch", verb)


def _stopped(signum: int | None) -> int:
    """One line and 128 + the signal: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP."""
    import signal

    number = signum or signal.SIGINT
    print("vit-edge: interrupted" if number == signal.SIGINT else
          f"vit-edge: stopped by {signal.Signals(number).name}", file=sys.stderr)
    return 128 + number


if __name__ == "__main__":
    raise SystemExit(main())
