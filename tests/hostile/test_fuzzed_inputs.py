"""Property-based: whatever a manifest, a Hugging Face config.json or a CLI number holds, the answer is a
VitEdgeError (one line) or a valid result, never another exception."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vit_edge.cli import build_parser
from vit_edge.cli.values import cpu_list, img_size, non_negative, positive, positive_float
from vit_edge.core.errors import VitEdgeError
from vit_edge.core.manifest import MANIFEST_NAME, read_manifest
from vit_edge.reading.hf_compat import hf_config_to_vit

JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=True)
                    | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                max_size=4),
                    max_leaves=12)
VALID_MANIFEST: dict[str, Any] = {
    "schema_version": 1, "target": "onnx", "precision": "fp32", "model_file": "model.onnx",
    "input_spec": {"img_size": 32, "channels": 3, "mean": [0.5] * 3, "std": [0.5] * 3},
    "source": {"kind": "module"}, "files": {"model.onnx": "0" * 64},
}
VALID_HF: dict[str, Any] = {"architectures": ["ViTModel"], "hidden_size": 48, "num_hidden_layers": 2,
                            "num_attention_heads": 3, "intermediate_size": 96, "image_size": 32, "patch_size": 8}
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _read(tmp_path: Path, data: Any) -> None:
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(data))
    try:
        read_manifest(tmp_path, verify_files=False)
    except VitEdgeError as exc:
        assert "\n" not in str(exc)


@SETTINGS
@given(data=JSON)
def test_manifest_reader_on_any_json(tmp_path: Path, data: Any) -> None:
    _read(tmp_path, data)


@SETTINGS
@given(key=st.sampled_from(sorted(VALID_MANIFEST) + ["input_spec.img_size", "input_spec.mean", "files.x"]),
       value=JSON)
def test_manifest_reader_on_one_bad_field(tmp_path: Path, key: str, value: Any) -> None:
    data = json.loads(json.dumps(VALID_MANIFEST))
    outer, _, inner = key.partition(".")
    if inner:
        data[outer][inner] = value
    else:
        data[outer] = value
    _read(tmp_path, data)


@SETTINGS
@given(key=st.sampled_from(sorted(VALID_HF) + ["id2label", "layer_norm_eps", "hidden_act", "num_channels",
                                                "qkv_bias", "layerscale_value", "num_register_tokens"]),
       value=JSON, architecture=st.sampled_from(["ViTModel", "Dinov2Model", "CLIPVisionModel", "SiglipVisionModel",
                                                 "ViTForImageClassification", "Dinov2WithRegistersModel"]))
def test_hf_config_reader(key: str, value: Any, architecture: str) -> None:
    config = {**VALID_HF, "architectures": [architecture], key: value}
    try:
        hf_config_to_vit(config)
    except VitEdgeError as exc:
        assert "\n" not in str(exc)


@SETTINGS
@given(config=st.dictionaries(st.text(max_size=20), JSON, max_size=6))
def test_hf_config_reader_on_any_object(config: dict[str, Any]) -> None:
    try:
        hf_config_to_vit(config)
    except VitEdgeError:
        pass


@SETTINGS
@given(text=st.text(max_size=12))
def test_number_parsers(text: str) -> None:
    for parse in (img_size, non_negative, positive, positive_float, cpu_list):
        try:
            parse(text)
        except argparse.ArgumentTypeError as exc:
            assert "\n" not in str(exc)


@SETTINGS
@given(option=st.sampled_from(["--parity-samples", "--opset", "--img-size", "--camera"]), text=st.text(max_size=8))
def test_export_options_parse_or_exit_2(option: str, text: str) -> None:
    try:
        build_parser().parse_args(["export", "m", "--target", "onnx", option, text])
    except SystemExit as exc:
        assert exc.code == 2


@pytest.mark.parametrize("text, expected", [("224", 224), ("256x128", (256, 128)), ("64X64", 64)])
def test_img_size_forms(text: str, expected: Any) -> None:
    assert img_size(text) == expected



# -- API types: a wrong type is a VitEdgeError in one line, never a TypeError from deep inside ------------------
def _calls() -> dict[str, Any]:
    from vit_edge.api import export, info, quantize
    from vit_edge.core.types import InputSpec
    from vit_edge.quantization.calibration import load_calibration

    return {
        "info(None)": lambda: info(None),  # type: ignore[arg-type]
        "img_size '32'": lambda: export("fmnist-vit-tiny", "onnx", img_size="32"),
        "parity_samples '4'": lambda: export("fmnist-vit-tiny", "onnx", parity_samples="4"),
        "force 'yes'": lambda: export("fmnist-vit-tiny", "onnx", force="yes"),
        "a dict as recipe": lambda: quantize("fmnist-vit-tiny", "onnx", calib="fashion-mnist", recipe={"kinds": 1}),
        "a string count": lambda: quantize("fmnist-vit-tiny", "onnx", calib="fashion-mnist", calib_size="8"),
        "a list as calibration": lambda: load_calibration([1, 2, 3], InputSpec(img_size=28), 8),  # type: ignore
    }


@pytest.mark.parametrize("case", sorted(_calls()))
def test_api_calls_with_wrong_types_raise_vit_edge_errors(case: str, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may be written; were it, not into the project
    with pytest.raises(VitEdgeError) as caught:
        _calls()[case]()
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "artifacts").exists()
