"""The process run_cli forks each CLI run from: Python, torch and the CLI imported once per test worker.

A fresh interpreter spends about 2 s importing torch, onnx and vit-edge before the CLI reads its first argument,
and the suite runs the CLI a few hundred times. This process imports them once, computes nothing (no thread pool
exists yet, so fork is safe), and forks a child per run: the child is still a process of its own, with its own
exit code, its file descriptors 1 and 2 written to files (what C libraries print is captured too), the caller's
environment and working directory, its own signal handlers and atexit functions. Run as a script; it reads one
JSON request per line on stdin and answers with the child's pid, then its exit code (negative: killed by a
signal, as subprocess reports it).
"""
from __future__ import annotations

import atexit
import json
import os
import random
import sys
import traceback

import numpy as np

_THREADS_BEFORE_IMPORTS = len(os.listdir("/proc/self/task"))

import onnx  # noqa: E402, F401  (imported here so that no child imports it again)
import onnxscript.function_libs.torch_lib.ops  # noqa: E402, F401  (torch.onnx's exporter and its op table: 0.7 s)
import sympy.combinatorics  # noqa: E402, F401  (what torch.export's shape reasoning imports: 0.25 s)
import sympy.tensor.tensor  # noqa: E402, F401
import torch  # noqa: E402, F401
import torch.export._trace  # noqa: E402, F401  (the tracer and dynamo, which every conversion imports: 1.1 s)
import torch.onnx._internal.exporter._core  # noqa: E402, F401

import vit_edge.api  # noqa: E402, F401
import vit_edge.exporters.onnx  # noqa: E402, F401
import vit_edge.pipeline.building  # noqa: E402, F401
import vit_edge.reading.loaders  # noqa: E402, F401
from vit_edge.cli import main  # noqa: E402

# Not here: onnxruntime, litert-torch and ExecuTorch start threads on import (a forked child would inherit their
# locks, not the threads). Every import above is checked to start none.
if len(os.listdir("/proc/self/task")) != _THREADS_BEFORE_IMPORTS:
    sys.exit("cli_zygote: an import started a thread, and a forked child would copy its locks: import it in the "
             "child instead")


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None or isinstance(exc.code, int):
        return exc.code or 0
    print(exc.code, file=sys.stderr)  # sys.exit("text"): what the interpreter does
    return 1


def _child(request: dict[str, object]) -> None:
    """Become the run `request` asks for, and never return."""
    code = 1
    try:
        for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, request["stdout"], os.O_WRONLY),
                                (2, request["stderr"], os.O_WRONLY)):
            os.dup2(os.open(str(path), flags), fd)
        os.environ.clear()
        os.environ.update(request["env"])  # type: ignore[arg-type]
        if request["cwd"]:
            os.chdir(str(request["cwd"]))
        random.seed()
        np.random.seed()  # a fresh interpreter's unseeded generators differ run to run; a fork's would not
        code = _exit_code(SystemExit(main(list(request["args"]))))  # type: ignore[call-overload]
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException:  # noqa: BLE001  (what the interpreter would print: the traceback, exit 1)
        traceback.print_exc()
    finally:
        try:
            atexit._run_exitfuncs()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)


def _serve() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(request)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"code": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    _serve()
