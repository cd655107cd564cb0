"""Unit modules are named after the vit_edge package they test (tests/README.md, "Names within a tier"), so a
module's tests are found from its path and a new file cannot drift back to a name of its own."""
from __future__ import annotations

from pathlib import Path

from tests.helpers import REPO

PACKAGES = sorted(path.name for path in (REPO / "vit_edge").iterdir()
                  if path.is_dir() and (path / "__init__.py").is_file())


def _unnamed(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.glob("test_*.py")
                  if not any(path.stem.startswith(f"test_{package}_") for package in PACKAGES))


def test_every_unit_module_names_the_package_it_tests() -> None:
    assert len(PACKAGES) >= 8, PACKAGES  # benchmarking, core, data, exporters, models, quantization, reading, …
    assert _unnamed(REPO / "tests" / "unit") == [], f"name them test_<package>_<module>.py, package one of {PACKAGES}"


def test_the_rule_catches_a_module_named_otherwise(tmp_path: Path) -> None:
    for name in ("test_core_parity.py", "test_parity.py", "test_corex.py"):
        (tmp_path / name).write_text("")
    assert _unnamed(tmp_path) == ["test_corex.py", "test_parity.py"]
