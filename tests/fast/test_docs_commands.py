"""Every `vit-edge` command the README and docs/ show parses with today's flags (a renamed or removed flag, or a
value its type refuses, fails here instead of in a newcomer's shell)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from vit_edge.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _commands(page: Path) -> list[str]:
    """The `vit-edge …` lines inside the page's code blocks, continuations joined, comments dropped."""
    found, inside, pending = [], False, ""
    for line in page.read_text().splitlines():
        if line.strip().startswith("```"):
            inside = not inside
            continue
        if not inside:
            continue
        text = pending + line.strip() if pending else line.strip()
        pending = ""
        if text.endswith("\\"):
            pending = text[:-1] + " "
            continue
        if text.startswith("vit-edge ") and "..." not in text:
            found.append(re.sub(r"\s+#.*$", "", text))
    return found


COMMANDS = [(page.name, command) for page in PAGES for command in _commands(page)]


def test_the_docs_show_commands() -> None:
    assert len(COMMANDS) >= 20, COMMANDS  # the extraction itself finds what the pages show


@pytest.mark.parametrize(("page", "command"), COMMANDS, ids=[f"{p}:{c[:40]}" for p, c in COMMANDS])
def test_a_documented_command_parses(page: str, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        build_parser().parse_args(shlex.split(command)[1:])
    except SystemExit as exc:
        pytest.fail(f"{page}: `{command}` does not parse (exit {exc.code}): {capsys.readouterr().err.strip()}")
