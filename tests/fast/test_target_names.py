"""No target name is written outside its declaration (#38): `core/targets.py` declares every target, runtime and
sub-target, and the rest of the package reads them from there (`if target == "openvino"` in tune, "tflite" in the
adb executor, "--target onnx" in a message were each a second place to change). The scan reads the package's
string literals, f-strings' parts included, docstrings aside; a test plants a hard-coded name to show it can fail."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.helpers import REPO
from vit_edge.core.targets import RUNTIMES, TARGETS

DECLARATIONS = {"vit_edge/core/targets.py"}  # where the names are written, once
# tuples of Python package names, one of which ('onnx') is also a target's: the package, not the target
PACKAGE_LISTS = {"FORBIDDEN_ON_BOARD"}
NAMES = {*TARGETS, *RUNTIMES, *(sub.name for t in TARGETS.values() for sub in t.sub_targets)}
# a name as a flag's value in a message or help: '--target onnx', '--runtime pytorch', '--reference pytorch'
IN_WORDS = re.compile(rf"--(?:target|runtime|reference)[ =]({'|'.join(map(re.escape, sorted(NAMES)))})\b")


def _not_names(tree: ast.AST) -> set[int]:
    """The ids of the constants that are no target's name: docstrings (documentation, not a place the code decides
    by a name) and the package-name lists."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
        if isinstance(node, ast.AnnAssign | ast.Assign) and node.value is not None:
            assigned = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(name, ast.Name) and name.id in PACKAGE_LISTS for name in assigned):
                found.update(id(part) for part in ast.walk(node.value))
    return found


def hard_coded_names(source: str, where: str) -> list[str]:
    """Each string literal in `source` that is a declared name, or names one as a flag's value."""
    tree = ast.parse(source)
    skip = _not_names(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            if node.value in NAMES or IN_WORDS.search(node.value):
                found.append(f"{where}:{node.lineno}: {node.value[:60]!r}")
    return found


def test_no_target_name_is_written_outside_its_declaration() -> None:
    found = []
    for path in sorted((REPO / "vit_edge").rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        if relative not in DECLARATIONS:
            found += hard_coded_names(path.read_text(), relative)
    assert found == [], "target names outside core/targets.py (read them from the declarations):\n" + "\n".join(found)


def test_the_scan_finds_a_planted_name(tmp_path: Path) -> None:
    """The scan can fail: a comparison with a name, a message naming one, and an f-string's part are found; a
    docstring and a name read from the declaration are not."""
    planted = '''"""Exports to --target onnx (a docstring: documentation)."""
from vit_edge.core.targets import TFLITE


def lowering(options):
    """For --target tflite only."""
    if options.target == "openvino":
        return None
    if options.target == TFLITE.name:
        raise ValueError(f"use --target onnx, not {options.target}")
    return {"reference": "pytorch", "npu": "ethos-u"}
'''
    found = hard_coded_names(planted, "planted.py")
    assert sorted(line.split(":")[1] for line in found) == ["10", "11", "11", "7"], found
    assert hard_coded_names('"""Mentions onnx and --target tflite."""\nX = 1\n', "doc.py") == []
    assert hard_coded_names('FORBIDDEN_ON_BOARD = ("torch", "onnx")\nTARGET = "onnx"\n', "p.py") == ["p.py:2: 'onnx'"]


def test_the_scan_reads_every_declared_name() -> None:
    """The names come from the declarations, the NPU sub-target's included."""
    assert {"onnx", "openvino", "tflite", "executorch", "pytorch", "onnxruntime", "litert", "ethos-u"} <= NAMES
