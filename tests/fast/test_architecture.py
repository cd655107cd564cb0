"""The architecture holds: layers only point down, the board layers never reach torch, and a target is declared
once. The import contract is generated from vit_edge/core/package_layers.py and checked by import-linter, which counts
every import (inside functions too), so a lazy import that runs against the layers fails here."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from vit_edge.core.package_layers import (
    BOARD_LAYERS,
    FORBIDDEN_ON_BOARD,
    LAYERS,
    SESSIONS_ABOVE_RUNTIME,
    TORCH_FREE_LAYERS,
    TORCH_RUNTIME_SESSIONS,
)
from vit_edge.core.targets import RUNTIMES, TARGETS

ROOT = Path(__file__).resolve().parents[2]


def contract_ini() -> str:
    """The import-linter configuration that states core/package_layers.py."""
    layers = "\n".join("    " + " | ".join(layer) for layer in LAYERS)
    exceptions = "\n".join(f"    {module} -> torch" for module in TORCH_RUNTIME_SESSIONS)
    return f"""[importlinter]
root_package = vit_edge
include_external_packages = True

[importlinter:contract:layers]
name = layers only point down ({' > '.join(layer[0].split('.')[-1] for layer in LAYERS)})
type = layers
layers =
{layers}

[importlinter:contract:board]
name = what a board runs imports no torch and no converter
type = forbidden
source_modules =
{chr(10).join('    ' + m for m in BOARD_LAYERS)}
forbidden_modules =
{chr(10).join('    ' + m for m in FORBIDDEN_ON_BOARD)}
ignore_imports =
{exceptions}

[importlinter:contract:acyclic]
name = no import loop between the modules of any package (a loop hidden by function-local imports included)
type = acyclic_siblings
ancestors =
    vit_edge

[importlinter:contract:torch-free]
name = the host-side bench and everything below it never import torch
type = forbidden
source_modules =
{chr(10).join('    ' + m for m in TORCH_FREE_LAYERS)}
forbidden_modules =
    torch
    vit_edge.models
    vit_edge.exporters
    vit_edge.quantization
ignore_imports =
{exceptions}
"""


def _lint(config: Path) -> subprocess.CompletedProcess[str]:
    lint = Path(sys.executable).parent / "lint-imports"
    return subprocess.run([str(lint), "--config", str(config), "--no-cache"], capture_output=True, text=True,
                          cwd=ROOT)


def test_import_contract_holds(tmp_path: Path) -> None:
    config = tmp_path / "contract.ini"
    config.write_text(contract_ini())
    result = _lint(config)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "4 kept, 0 broken" in result.stdout, result.stdout[-2000:]


def test_import_contract_can_fail(tmp_path: Path) -> None:
    """The same contract with core placed above runtime must be broken: the check is not vacuous."""
    config = tmp_path / "inverted.ini"
    text = contract_ini()
    text = text.replace("    vit_edge.runtime\n    vit_edge.data\n    vit_edge.core",
                        "    vit_edge.core\n    vit_edge.runtime\n    vit_edge.data")
    config.write_text(text)
    result = _lint(config)
    assert result.returncode != 0 and "broken" in result.stdout


def _layer(module: str) -> int:
    """The index of a module's layer in LAYERS (0 is the top)."""
    return next(index for index, layer in enumerate(LAYERS) for package in layer
                if module == package or module.startswith(package + "."))


def declared_imports() -> list[tuple[str, str]]:
    """(resolver, module) for every "module:Class" string the target declarations name: imports the contract
    cannot see, since they happen through importlib when the string is resolved."""
    found = [("vit_edge.runtime.base", runtime.session) for runtime in RUNTIMES.values()]
    for target in TARGETS.values():
        found.append(("vit_edge.exporters.registry", target.exporter))
        if target.int8_lowering:
            found.append(("vit_edge.pipeline.checks", target.int8_lowering))
        for sub in target.sub_targets:  # an NPU: its own lowering, and the compiler the writing step calls
            found.append(("vit_edge.pipeline.writing", sub.compiler))
            if sub.int8_lowering:
                found.append(("vit_edge.pipeline.checks", sub.int8_lowering))
    return [(resolver, reference.split(":")[0]) for resolver, reference in found]


def test_modules_loaded_by_name_respect_the_layers() -> None:
    """A declared string counts as an import by its resolver: it points down the layers (or stays in one), except
    the sessions SESSIONS_ABOVE_RUNTIME names; an exception that no declaration needs any more is stale."""
    upward = set()
    for resolver, module in declared_imports():
        assert importlib.util.find_spec(module) is not None, f"{module} is declared but does not exist"
        if _layer(module) < _layer(resolver):
            upward.add(module)
    assert upward == set(SESSIONS_ABOVE_RUNTIME), f"loaded by name from a layer below: {sorted(upward)}"


def test_every_package_is_in_a_layer() -> None:
    """A new subpackage must be placed in a layer, or the contract would not look at it."""
    package = ROOT / "vit_edge"
    placed = {name.split(".")[1] for layer in LAYERS for name in layer}
    found = {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    found |= {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    assert found == placed, f"not in a layer: {found - placed}; gone: {placed - found}"


@pytest.mark.parametrize("layer", BOARD_LAYERS)
def test_runner_zip_is_the_board_layers(layer: str) -> None:
    from vit_edge.benchmarking.remote import runner_modules

    folder = ROOT / "vit_edge" / layer.split(".")[1]
    expected = {str(f.relative_to(ROOT / "vit_edge")) for f in folder.rglob("*.py")}
    assert expected <= set(runner_modules())
