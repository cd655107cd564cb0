"""Every `vit-edge` command the README and docs/ show runs, in a fresh folder, in the page's order.

- A command whose files are all there (the shipped model, Fashion-MNIST, an artifact an earlier command of the
  page wrote) exits 0.
- A command that names a user's own file or board (a checkpoint, a folder of photos, ssh://pi@...) exits 2 with one
  line that names that placeholder, no traceback, and leaves the folder as it was.
The commands that train for minutes (train --epochs 10, QAT, tune) run with VIT_EDGE_DOCS_FULL=1 (`make docs-check`).
A command line that is word for word one an earlier page ran (the README repeats a few of docs/; spacing aside) runs
once: the later page gets a copy of what it wrote, so the page's next commands find the files they read.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

import pytest

from tests.fast.test_docs_commands import COMMANDS
from vit_edge.cli import main

PATH_LIKE = re.compile(r"/|\.(pt|pth|safetensors|txt)$|^ssh://|^adb:|^model-|^ART$")
OUTPUTS = ("--out", "--checkpoint-dir")  # what the command writes is not a file the user must have
SLOW = re.compile(r"^vit-edge (train|tune) |--method qat")
FULL = os.environ.get("VIT_EDGE_DOCS_FULL") == "1"


def _placeholders(command: str, folder: Path) -> list[str]:
    """The command's paths and device addresses that this folder does not have: a user's own files."""
    args = shlex.split(command)[1:]
    words = [w for i, w in enumerate(args) if not w.startswith("-") and (i == 0 or args[i - 1] not in OUTPUTS)]
    return [w for w in words if PATH_LIKE.search(w) and (w.startswith(("ssh://", "adb:")) or not (folder / w).exists())]


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One folder per page, shared by its commands in order (the README's `info` reads what its `export` wrote)."""
    return {page: tmp_path_factory.mktemp(page.replace(".", "_")) for page in {p for p, _ in COMMANDS}}


@pytest.fixture(scope="module")
def succeeded() -> dict[str, tuple[Path, set[str]]]:
    """Each command line that exited 0, with its page's folder and the paths it wrote there."""
    return {}


def _words(command: str) -> str:
    """The command as the shell splits it: two pages that space one command differently run the same thing."""
    return " ".join(shlex.split(command))


def _copy_written(command: str, succeeded: dict[str, tuple[Path, set[str]]], folder: Path) -> bool:
    """Give `folder` what the word-identical `command` wrote on an earlier page; False when it never ran or
    something it wrote is in this folder's way already (then it runs here)."""
    if command not in succeeded or succeeded[command][1] & _listing(folder):
        return False
    source, written = succeeded[command]
    for name in sorted(written):
        if (source / name).is_dir():
            (folder / name).mkdir(parents=True, exist_ok=True)
        else:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, folder / name)
    return True


@pytest.mark.parametrize(("page", "command"), COMMANDS, ids=[f"{p}:{c[:40]}" for p, c in COMMANDS])
def test_a_documented_command_runs(page: str, command: str, folders: dict[str, Path],
                                   succeeded: dict[str, tuple[Path, set[str]]],
                                   monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    folder = folders[page]
    monkeypatch.chdir(folder)
    missing = _placeholders(command, folder)
    if not missing and SLOW.search(command) and not FULL:
        pytest.skip("trains for minutes: make docs-check runs it")
    if not missing and _copy_written(_words(command), succeeded, folder):
        return  # the same line ran and exited 0 on an earlier page
    before = _listing(folder)
    code = main(shlex.split(command)[1:])
    err = capsys.readouterr().err.strip().splitlines()
    if not missing:
        assert code == 0, f"{page}: `{command}` exited {code}: {err[-3:]}"
        succeeded[_words(command)] = (folder, _listing(folder) - before)
        return
    assert code == 2 and err and err[-1].startswith("vit-edge: error: "), f"{page}: `{command}`: {err[-3:]}"
    assert any(word in err[-1] or word.split("://")[-1].split("@")[-1] in err[-1] for word in missing), \
        f"{page}: `{command}` should name one of {missing}, said: {err[-1]}"
    assert _listing(folder) == before, f"{page}: refused `{command}` left {_listing(folder) - before}"
