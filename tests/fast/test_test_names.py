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


def test_the_longest_first_list_names_test_files_that_exist() -> None:
    """conftest's schedule names files by path: a renamed one would silently start last again."""
    from tests.conftest import _LONGEST_FIRST

    missing = [path for path in _LONGEST_FIRST if not (REPO / path).is_file()]
    assert len(_LONGEST_FIRST) >= 10 and missing == [], missing
