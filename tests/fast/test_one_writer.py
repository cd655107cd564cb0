"""One writer: every file vit-edge writes goes through `vit_edge/core/outputs.py`.

The scan below finds every call in the package that can create, change or remove a file (open for writing,
`np.save`, `torch.save`, `shutil`, `os.replace`, `Path.write_text`, `tempfile`, a converter's save …). Outside
core/outputs.py, the only ones allowed are those listed in WRITES_INTO_A_STAGED_FOLDER: converters and the artifact
writer filling the staging folder that `outputs.staged_folder` made and will move into place (or remove), and
the few that write into a scratch folder of `outputs.scratch_folder`. A new write anywhere else fails this test;
so does an entry that no longer writes.
"""
from __future__ import annotations

import ast

from tests.helpers import REPO

PACKAGE = REPO / "vit_edge"
THE_WRITER = "core/outputs.py"
WRITING_ATTRIBUTES = frozenset({
    "write_text", "write_bytes", "mkdir", "touch", "unlink", "rmdir", "rename", "symlink_to", "hardlink_to",
    "save", "savez", "savez_compressed", "tofile", "savefig", "save_model", "open_memmap", "mkdtemp", "mkstemp",
    "TemporaryDirectory", "NamedTemporaryFile", "TemporaryFile", "truncate"})
OS_WRITING = frozenset({"open", "replace", "rename", "remove", "unlink", "makedirs", "removedirs", "rmdir", "write",
                        "ftruncate", "truncate", "posix_fallocate", "link", "symlink", "mkdir", "mkfifo"})
WRITING_MODULES = frozenset({"shutil"})  # every function of these but the ones that only look
LOOKING = frozenset({"which", "disk_usage", "get_terminal_size"})

# (file under vit_edge/, function) → why it may write without going through core/outputs.py
WRITES_INTO_A_STAGED_FOLDER: dict[tuple[str, str], str] = {
    ("core/manifest.py", "Manifest.write"): "manifest.json into the artifact's staging folder",
    ("pipeline/writing.py", "_verify"): "numerics_check.npz into the staging folder",
    ("exporters/onnx.py", "OnnxExporter.write"): "the ONNX file (torch.onnx's program.save) into the staging folder",
    ("exporters/onnx.py", "_drop_initializer_value_info"): "the ONNX file (onnx.save) into the staging folder",
    ("exporters/ort_fusions.py", "fuse_for_onnxruntime"): "the fused ONNX file into the staging folder",
    ("exporters/openvino.py", "OpenVinoExporter.write"): "OpenVINO's IR (ov.save_model) into the staging folder",
    ("exporters/openvino.py", "OpenVinoExporter._write_int8"): "OpenVINO's IR into the staging folder",
    ("exporters/tflite.py", "TfliteExporter.write"): "the .tflite flatbuffer into the staging folder",
    ("exporters/tflite_islands.py", "make_float_islands"): "the rewritten flatbuffer into the staging folder",
    ("exporters/executorch.py", "ExecuTorchExporter.write"): "the .pte and delegation.json into the staging folder",
    ("reading/checkpoint.py", "save_torch"): "torch.save into the temporary name core/outputs.write_with gives",
    ("benchmarking/remote.py", "build_runner_zip"): "a zip into memory; the file is written by write_atomically",
    ("benchmarking/report.py", "_plot_png"): "the plot into memory; the file is written by write_atomically",
    ("runtime/base.py", "native_stderr_silenced"): "opens /dev/null to silence a converter's C++ output",
}


def _mode_writes(call: ast.Call) -> bool:
    """open(path, MODE): a mode with w, a, x or + writes; no mode (or a non-literal one) reads."""
    mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
    return isinstance(mode, ast.Constant) and isinstance(mode.value, str) and any(c in mode.value for c in "wax+")


def _is_write(call: ast.Call) -> str | None:
    """The name of the writing call, or None."""
    func = call.func
    if isinstance(func, ast.Name) and func.id == "open":
        return "open(…, write mode)" if _mode_writes(call) else None
    if not isinstance(func, ast.Attribute):
        return None
    owner = func.value.id if isinstance(func.value, ast.Name) else ""
    if owner in WRITING_MODULES and func.attr not in LOOKING:
        return f"{owner}.{func.attr}"
    if owner == "os":
        return f"os.{func.attr}" if func.attr in OS_WRITING else None
    if func.attr == "ZipFile" and _mode_writes(call):
        return "ZipFile(…, write mode)"
    if func.attr in WRITING_ATTRIBUTES:
        return f"{owner + '.' if owner else ''}{func.attr}"
    return None


class _Writes(ast.NodeVisitor):
    def __init__(self) -> None:
        self.scope: list[str] = []
        self.found: list[tuple[str, str, int]] = []  # (function, call, line)

    def _enter(self, node: ast.AST, name: str) -> None:
        self.scope.append(name)
        self.generic_visit(node)
        self.scope.pop()

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._enter(node, node.name)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._enter(node, node.name)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._enter(node, node.name)

    def visit_Call(self, node: ast.Call) -> None:
        name = _is_write(node)
        if name is not None:
            self.found.append((".".join(self.scope) or "<module>", name, node.lineno))
        self.generic_visit(node)


def writes_in(source: str) -> list[tuple[str, str, int]]:
    visitor = _Writes()
    visitor.visit(ast.parse(source))
    return visitor.found


def _package_writes() -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = str(path.relative_to(PACKAGE))
        if module == THE_WRITER:
            continue
        for function, call, line in writes_in(path.read_text(encoding="utf-8")):
            found.setdefault((module, function), []).append(f"{call} (line {line})")
    return found


def test_every_file_vit_edge_writes_goes_through_core_outputs() -> None:
    found = _package_writes()
    elsewhere = {where: calls for where, calls in found.items() if where not in WRITES_INTO_A_STAGED_FOLDER}
    assert elsewhere == {}, "write through vit_edge/core/outputs.py (or, for a converter filling a staged folder, " \
                            "list it in WRITES_INTO_A_STAGED_FOLDER with the reason)"


def test_every_listed_exception_still_writes() -> None:
    """A stale entry would let a later write in that function through unseen."""
    found = _package_writes()
    assert sorted(set(WRITES_INTO_A_STAGED_FOLDER) - set(found)) == []


def test_the_scan_finds_each_way_of_writing() -> None:
    """The scan can fail: each of these, pasted into a module, is found."""
    samples = {
        "open(p, 'w')": True, "open(p, mode='ab')": True, "open(p)": False, "open(p, 'rb')": False,
        "np.save(p, a)": True, "torch.save(x, p)": True, "shutil.copytree(a, b)": True, "shutil.which('x')": False,
        "os.replace(a, b)": True, "'a-b'.replace('-', '_')": False, "Path(p).write_text('x')": True,
        "p.mkdir(parents=True)": True, "tempfile.mkdtemp()": True, "fig.savefig(p)": True, "os.open(p, 1)": True,
        "zipfile.ZipFile(p, 'w')": True, "zipfile.ZipFile(p)": False, "ov.save_model(m, p)": True,
    }
    for code, writes in samples.items():
        assert bool(writes_in(f"def f():\n    {code}\n")) is writes, code
    assert writes_in("class Report:\n    def save(self):\n        open(self.p, 'w')\n") == [
        ("Report.save", "open(…, write mode)", 3)]
