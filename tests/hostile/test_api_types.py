"""Hostile inputs, API types: every public function refuses a wrong-typed argument with a VitEdgeError before it
reads a model, an image or an artifact (`export(out=5)` was a TypeError from pathlib once the model had loaded, and
`train(epochs="1")` one from a comparison); `vit-edge devices` lists every runtime, a broken one included."""
from __future__ import annotations

import inspect
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

import pytest

import vit_edge
from tests.helpers import run_cli
from vit_edge.core.errors import VitEdgeError
from vit_edge.core.targets import RUNTIMES
from vit_edge.reading.loaders import load_model


class Reached(AssertionError):
    """The call got past its checks to real work: a wrong argument was not refused at the boundary."""


def _reached(*_args: Any, **_kwargs: Any) -> None:
    raise Reached("a wrong-typed argument got past the API's checks to the loaders, the training or the sweep")


@pytest.fixture(autouse=True)
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every call below must stop at its checks: the work behind them raises Reached."""
    import vit_edge.api
    import vit_edge.benchmarking.fleet
    import vit_edge.benchmarking.sweep
    import vit_edge.reading.loaders
    import vit_edge.training

    monkeypatch.setattr(vit_edge.api, "load", _reached)
    for name in ("_load_named", "_load_path", "_load_module"):
        monkeypatch.setattr(vit_edge.reading.loaders, name, _reached)
    monkeypatch.setattr(vit_edge.training, "train_small_vit", _reached)
    monkeypatch.setattr(vit_edge.benchmarking.sweep, "bench", _reached)
    monkeypatch.setattr(vit_edge.benchmarking.fleet, "bench_fleet", _reached)
    monkeypatch.setattr(vit_edge.benchmarking.sweep, "check_some_artifact", lambda _paths: None)


PATH = [object(), 5, 1.5, [1], b"bytes"]
REQUIRED_PATH = [*PATH, None, ""]
MODEL = [object(), 5, None, [1], ""]
FLAG = [None, "yes", 1, object()]
FUNCTION = [None, 5, "print", object()]
COUNT = ["1", 1.5, True, object(), -1]
IMAGES = [object(), 5, [1], {"images": 1}]

# each public function: its arguments that are right, and for each parameter the values that are wrong
CALLS: dict[str, tuple[Callable[..., Any], dict[str, Any], dict[str, list[Any]]]] = {
    "export": (vit_edge.export, {"model": "fmnist-vit-tiny", "target": "onnx"}, {
        "model": MODEL, "target": [None, 5, object()], "out": PATH, "options": [object(), "onnx", 5],
        "weights": PATH, "random_init": FLAG, "data": IMAGES, "max_drop": ["1", -1, object(), float("nan")],
        "data_options": [object(), 5], "log": FUNCTION}),
    "quantize": (vit_edge.quantize, {"model": "fmnist-vit-tiny", "target": "onnx", "calib": "fashion-mnist"}, {
        "model": MODEL, "target": [None, 5], "out": PATH, "config": [object(), 5, "x", {"calib": "fashion-mnist"}],
        "options": [object(), 5], "log": FUNCTION}),
    "bench": (vit_edge.bench, {"artifacts": ["a"]}, {
        "artifacts": [object(), 5, None, [5], [None], ["a", object()]], "config": [object(), 5, "x"],
        "devices": [object(), 5, None], "progress": FUNCTION, "on_records": FUNCTION}),
    "info": (vit_edge.info, {"artifact": "a"}, {"artifact": [object(), 5, None], "verify_files": FLAG}),
    "train": (vit_edge.train, {"out": "t.pt"}, {
        "out": REQUIRED_PATH, "data": REQUIRED_PATH, "eval_data": REQUIRED_PATH, "epochs": COUNT,
        "batch_size": COUNT, "lr": ["0.1", object(), -1, 0, float("nan"), float("inf")], "seed": ["1", 1.5, -1, 2**64],
        "img_size": ["32", 1.5, 0, (32, 32)], "force": FLAG, "log": FUNCTION}),
    "load_model": (vit_edge.load_model, {"model": "fmnist-vit-tiny"}, {
        "model": MODEL, "weights": PATH, "random_init": FLAG, "num_classes": ["10", -1, 1.5],
        "img_size": ["32", -32, 1.5, (1, 2, 3), object()], "reid": [object(), 5, None], "merge": ["1", -1, 1.5],
        "output": [5, None, "logits"], "layers": [5, "0,1", [0.5], None], "dynamic_size": FLAG,
        "max_depth": ["80", -1, 0, float("nan"), float("inf"), object(), True]}),
    "Artifact.open": (vit_edge.Artifact.open, {}, {"path": REQUIRED_PATH}),
    "preprocess": (vit_edge.preprocess, {"images": "photo.jpg", "artifact": "a"}, {
        "images": [object(), 5, None, [1], {"images": 1}, True], "artifact": REQUIRED_PATH}),
    "bench_table": (vit_edge.bench_table, {"records": []}, {"records": [object(), 5, None, [5], ["a"]]}),
    "reporting": (vit_edge.reporting, {"reporter": print}, {"reporter": FUNCTION}),
}


# quantize's config: each QuantizeConfig field's wrong values, refused when the config is built and when the field
# is a keyword of quantize (`calib=None` is a config without data yet, which quantize refuses)
CONFIG_FIELDS: dict[str, list[Any]] = {
    "calib": IMAGES, "recipe": [object(), "x", 5, None, {"kinds": ("qkv",)}], "calib_size": COUNT,
    "eval_data": IMAGES, "eval_limit": COUNT, "qat": [object(), "qat", 5], "data_options": [object(), 5],
    "weights": PATH, "random_init": FLAG}


def _cases() -> list[tuple[str, str, Any]]:
    return [(name, parameter, value) for name, (_, _, wrong) in CALLS.items()
            for parameter, values in wrong.items() for value in values]


def _config_cases() -> list[tuple[str, Any]]:
    return [(name, value) for name, values in CONFIG_FIELDS.items() for value in values]


def test_every_public_function_and_parameter_is_covered() -> None:
    """A new function in vit_edge.__all__, or a new parameter, joins the table below or this fails."""
    callables = {name for name in vit_edge.__all__ if inspect.isfunction(getattr(vit_edge, name))}
    assert callables <= set(CALLS), callables - set(CALLS)
    for name, (function, _, wrong) in CALLS.items():
        signed = load_model if name == "load_model" else function  # vit_edge.load_model passes its keywords on
        parameters = {p.name for p in inspect.signature(signed).parameters.values()
                      if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        assert parameters == set(wrong), (name, parameters ^ set(wrong))


@pytest.mark.parametrize("name, parameter, value", _cases(), ids=lambda v: type(v).__name__ if v else repr(v))
def test_wrong_types_are_refused_before_any_work(tmp_path: Path, name: str, parameter: str, value: Any) -> None:
    function, right, _ = CALLS[name]
    arguments = {**right, parameter: value}
    if name in ("export", "quantize") and parameter != "out":
        arguments["out"] = tmp_path / "out"
    if name == "train" and parameter != "out":
        arguments["out"] = tmp_path / "t.pt"
    if name == "Artifact.open":
        with pytest.raises(VitEdgeError):
            function(value)
        return
    with pytest.raises(VitEdgeError):
        function(**arguments)


def test_every_config_field_is_covered() -> None:
    """A new QuantizeConfig field joins CONFIG_FIELDS, or this fails; quantize keeps at most 8 parameters (#38:
    it took 16), the rest being the config's."""
    assert set(CONFIG_FIELDS) == {f.name for f in fields(vit_edge.QuantizeConfig)}
    assert len(inspect.signature(vit_edge.quantize).parameters) <= 8


@pytest.mark.parametrize("field, value", _config_cases(), ids=lambda v: type(v).__name__ if v else repr(v))
def test_wrong_config_fields_are_refused_before_any_work(tmp_path: Path, field: str, value: Any) -> None:
    with pytest.raises(VitEdgeError):
        vit_edge.QuantizeConfig(**{"calib": "fashion-mnist", field: value})
    with pytest.raises(VitEdgeError):  # the same field as quantize's keyword
        vit_edge.quantize("fmnist-vit-tiny", "onnx", tmp_path / "out", **{"calib": "fashion-mnist", field: value})


def test_a_config_without_calibration_images_is_refused_by_quantize(tmp_path: Path) -> None:
    with pytest.raises(VitEdgeError, match="quantize calibrates on images: pass calib"):
        vit_edge.quantize("fmnist-vit-tiny", "onnx", tmp_path / "out", vit_edge.QuantizeConfig())


def test_quantize_refuses_a_keyword_no_record_has(tmp_path: Path) -> None:
    with pytest.raises(VitEdgeError, match="unknown export option.*calibration"):
        vit_edge.quantize("fmnist-vit-tiny", "onnx", tmp_path / "out", calib="fashion-mnist", calibration="mse")


def _field_cases() -> list[tuple[str, str]]:
    from vit_edge.benchmarking.sweep import BenchConfig

    return ([("ExportOptions", f.name) for f in fields(vit_edge.ExportOptions)]
            + [("ReIDOptions", f.name) for f in fields(vit_edge.ReIDOptions)]
            + [("bench", f.name) for f in fields(BenchConfig)])


@pytest.mark.parametrize("owner, field", _field_cases())
def test_wrong_option_fields_are_refused(tmp_path: Path, owner: str, field: str) -> None:
    """Each ExportOptions field (TransReID's record's too), and each bench option (`bench(reference=3)` was a
    TypeError once measuring)."""
    with pytest.raises(VitEdgeError):
        if owner == "ExportOptions":
            vit_edge.ExportOptions(**{"target": "onnx", field: object()})
        elif owner == "ReIDOptions":
            vit_edge.ReIDOptions(**{field: object()})
        else:
            vit_edge.bench([str(tmp_path / "a")], **{field: object()})
    if owner == "bench" and field in ("runtime", "accelerator", "precision_hint", "device", "data", "reference",
                                      "remote_python", "adb_benchmark"):  # the names and paths: 3 is none
        with pytest.raises(VitEdgeError):
            vit_edge.bench([str(tmp_path / "a")], **{field: 3})


@pytest.mark.parametrize("raised", ["ImportError('libonnxruntime.so: cannot open shared object file')",
                                    "RuntimeError('broken build')"])
def test_devices_lists_every_runtime_when_one_is_broken(tmp_path: Path, raised: str) -> None:
    """An onnxruntime that raised on import turned `vit-edge devices` into a traceback, hiding the other runtimes."""
    package = tmp_path / "broken" / "onnxruntime"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f"raise {raised}\n")
    result = run_cli("devices", prelude=f"import sys; sys.path.insert(0, {str(tmp_path / 'broken')!r})")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(RUNTIMES), result.stdout
    broken = next(line for line in lines if line.startswith("onnxruntime"))
    assert "cannot be imported" in broken and raised.split("(")[0] in broken, broken
