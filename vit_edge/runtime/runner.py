"""The measuring process: `python -m vit_edge.runtime.runner CONFIG.json` prints one RESULT line of JSON.

The same file runs here (one subprocess per configuration) and on a board, zipped with the torch-free part of
vit_edge (see `remote.py`). A user error is reported as a status, never as a traceback.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vit_edge.core.errors import MissingDependencyError

RESULT_PREFIX = "VIT_EDGE_RESULT "


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    from vit_edge.core.errors import MissingDependencyError, VitEdgeError
    from vit_edge.core.records import as_json
    from vit_edge.runtime.measure import config_from_json, measure

    try:
        cfg = config_from_json(json.loads(Path(args[0]).read_text()))
        result = as_json(measure(cfg))
    except MissingDependencyError as exc:
        result = {"status": type(exc).__name__, "error": _where_to_install(exc)}
    except VitEdgeError as exc:
        result = {"status": type(exc).__name__, "error": str(exc)}
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


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
