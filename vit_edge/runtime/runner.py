"""The measuring process: `python -m vit_edge.runtime.runner CONFIG.json` prints one RESULT line of JSON.

The same file runs here (one subprocess per configuration) and on a board, zipped with the torch-free part of
vit_edge (see `remote.py`). A user error is reported as a status, never as a traceback. Asked with `--progress`
(after the config; a runner that predates it ignores it), it also writes its progress (the scoring) to stderr as
PROGRESS lines of JSON, which the host shows as its own (benchmarking/runner_process.py) and keeps out of errors.
"""
from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

if TYPE_CHECKING:
    from vit_edge.core.errors import MissingDependencyError

__all__ = ["PROGRESS_FLAG", "PROGRESS_PREFIX", "RESULT_PREFIX", "main", "progress_line", "read_progress"]

RESULT_PREFIX = "VIT_EDGE_RESULT "
PROGRESS_PREFIX = "VIT_EDGE_PROGRESS "
PROGRESS_FLAG = "--progress"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    from vit_edge.core.errors import MissingDependencyError, VitEdgeError
    from vit_edge.core.progress import reporting
    from vit_edge.core.records import as_json
    from vit_edge.runtime.measure import config_from_json, measure

    asked = reporting(_send_progress) if PROGRESS_FLAG in args[1:] else contextlib.nullcontext()
    try:
        cfg = config_from_json(json.loads(Path(args[0]).read_text()))
        with asked:
            result = as_json(measure(cfg))
    except MissingDependencyError as exc:
        result = {"status": type(exc).__name__, "error": _where_to_install(exc)}
    except VitEdgeError as exc:
        result = {"status": type(exc).__name__, "error": str(exc)}
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


def progress_line(what: str, done: int, total: int) -> str:
    return PROGRESS_PREFIX + json.dumps({"what": what, "done": done, "total": total})


def _send_progress(what: str, done: int, total: int) -> None:
    """Progress is never worth a measurement: a stderr that cannot be written loses the line, not the result."""
    try:
        print(progress_line(what, done, total), file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def read_progress(line: str) -> tuple[str, int, int] | None:
    """(what, done, total) from a PROGRESS line; None for anything else, a damaged line included (the host shows
    what it understands and never fails on the rest)."""
    if not line.startswith(PROGRESS_PREFIX):
        return None
    try:
        found: Any = json.loads(line[len(PROGRESS_PREFIX):])
    except ValueError:
        return None
    if not isinstance(found, dict):
        return None
    what, done, total = found.get("what"), found.get("done"), found.get("total")
    if not (isinstance(what, str) and _count(done) and _count(total) and done <= total):
        return None
    return "".join(c for c in what if c.isprintable())[:60], done, total


def _count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _where_to_install(exc: MissingDependencyError) -> str:
    """On a board (the zipped runner) the fix is the runtime and numpy there, not vit-edge's extra (it pulls torch
    even where the runtime does not need it)."""
    if ".pyz" not in __file__:
        return str(exc)
    from vit_edge.core.targets import RUNTIMES

    needs_torch = any(r.needs_torch for r in RUNTIMES.values() if r.package.distribution == exc.package)
    torch_note = ("its Python runtime needs torch too; on ARM install the CPU build first: pip install torch "
                  "--index-url https://download.pytorch.org/whl/cpu" if needs_torch
                  else "torch is not needed on the device")
    return (f"the runtime package '{exc.package}' is not installed on the device: install it there with  "
            f"python3 -m pip install numpy {exc.package}  ({torch_note})")


if __name__ == "__main__":
    raise SystemExit(main())
