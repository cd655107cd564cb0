"""One message, two audiences: the CLI's user reads `--force`, the Python API's user `force=True`.

Errors are written once, in the CLI's words (every flag a message names exists: tests/hostile/test_words.py).
The public verbs carry `@python_words`: an error leaving them by a Python call has each `--flag` rewritten to
the keyword that does the same there; the CLI runs its verbs inside `flag_words()` and keeps the flags.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import re
from typing import Any, Callable, Iterator, TypeVar

from vit_edge.core.errors import VitEdgeError

__all__ = ["flag_words", "python_words", "in_python_words"]

_FROM_CLI: contextvars.ContextVar[bool] = contextvars.ContextVar("vit_edge_from_cli", default=False)
# '--flag', and the value after it where it is one: a placeholder (DIR), a number, or a quoted word
FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)(?:[ =]([A-Z][A-Z_]*\b|-?[0-9][\w.,-]*|'[^']*'))?")
# a flag whose keyword is not its name with '-' as '_', or that is a switch (True/False) in Python
SWITCHES = {"force": "force=True", "resume": "resume=True", "random-init": "random_init=True",
            "no-verify": "verify=False", "a16w8": "int16=('*',)", "skip-unreadable":
            "data_options=DataOptions(skip_unreadable=True)", "ort-fusions": "ort_fusions=True",
            "dynamic-size": "dynamic_size=True"}
RENAMED = {"eval": "eval_data", "eval-limit": "eval_limit", "checkpoint-dir": "QatTraining(checkpoint_dir=…)",
           "device": "devices", "min-time": "min_seconds", "timeout": "timeout_s",
           "precisions": "precisions", "class-names": "class_names"}
# a flag and value that Python says otherwise: quantize's method is whether its config holds a QatTraining
PHRASES = {"--method qat": "qat=QatTraining(…)", "--method ptq": "qat=None"}
F = TypeVar("F", bound=Callable[..., Any])


def in_python_words(message: str) -> str:
    """`message` with each '--flag [VALUE]' as the Python keyword: '--force' → 'force=True', '--eval DIR' →
    'eval_data=DIR', '--max-drop is a budget' → 'max_drop is a budget'."""
    def keyword(match: re.Match[str]) -> str:
        flag, value = match.group(1), match.group(2)
        if flag in SWITCHES:
            return SWITCHES[flag] + (f" {value}" if value else "")
        name = RENAMED.get(flag, flag.replace("-", "_"))
        return f"{name}={value}" if value else name

    for phrase, words in PHRASES.items():
        message = message.replace(phrase, words)
    return FLAG.sub(keyword, message)


def python_words(function: F) -> F:
    """A public verb whose errors, raised to a Python caller, name keywords instead of flags."""
    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except VitEdgeError as exc:
            if not _FROM_CLI.get() and exc.args and isinstance(exc.args[0], str):
                exc.args = (in_python_words(exc.args[0]), *exc.args[1:])
            raise

    return call  # type: ignore[return-value]


@contextlib.contextmanager
def flag_words() -> Iterator[None]:
    """Inside: errors keep the CLI's flags (the CLI runs each verb here)."""
    token = _FROM_CLI.set(True)
    try:
        yield
    finally:
        _FROM_CLI.reset(token)
