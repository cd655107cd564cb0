"""Hostile inputs, words class: each message says what is wrong and what to do with options that exist; input that
was misread (a BOM, a flag that does nothing here, random bytes called a pickle) is read right or refused."""
from __future__ import annotations

import argparse
import ast
import json
import re
from pathlib import Path

import pytest
import torch

from tests.helpers import REPO, assert_user_error, run_cli, small_vit
from vit_edge.core.errors import ConfigError
from vit_edge.core.types import InputSpec
from vit_edge.reading.checkpoint import save_checkpoint

FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _cli_flags() -> set[str]:
    from vit_edge.cli import build_parser

    flags: set[str] = set()
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                flags.update(option for a in sub._actions for option in a.option_strings)
    return flags


def test_every_flag_an_error_names_exists() -> None:
    """'pass num_heads', 'pass img_size and stride': messages once asked for options the CLI did not have."""
    known, named = _cli_flags(), {}
    for path in (REPO / "vit_edge").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                for part in ast.walk(node.exc):
                    if isinstance(part, ast.Constant) and isinstance(part.value, str):
                        named.update({flag: f"{path.name}:{node.lineno}" for flag in FLAG.findall(part.value)})
    assert len(named) > 20  # the scan sees the messages
    assert {flag: where for flag, where in named.items() if flag not in known} == {}


def test_api_counts_of_zero_are_refused() -> None:
    """threads=(0,) reached ONNX Runtime as 'all cores' and was reported as one thread."""
    from vit_edge.api import bench
    from vit_edge.tuning import TuneConfig

    for fields, said in [({"threads": (0,)}, "each of threads must be an integer ≥ 1, not 0"),
                         ({"runs": "5"}, "runs must be an integer ≥ 1, not '5'"),
                         ({"min_seconds": float("nan")}, "min_seconds must be a number ≥ 0.0")]:
        with pytest.raises(ConfigError, match=re.escape(said)):
            bench(["unused"], **fields)
    with pytest.raises(ConfigError, match="each of threads"):
        TuneConfig(target="onnx", calib="c", eval_data="e", max_drop=1.0, threads=(1, 0))




@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "small.pt", small_vit(), InputSpec(img_size=32))


@pytest.mark.slow
@pytest.mark.parametrize("flag", [("--camera", "2"), ("--stride", "4"), ("--neck-feat", "before")])
def test_reid_flags_on_a_plain_vit_are_refused(checkpoint: Path, tmp_path: Path, flag: tuple[str, str]) -> None:
    """--camera 3 on a plain ViT was silently ignored: the user believed the artifact was specialised."""
    assert_user_error(run_cli("export", str(checkpoint), "--target", "onnx", "--out", str(tmp_path / "o"), *flag),
                      "apply to re-identification checkpoints (TransReID) only")


@pytest.mark.slow
def test_an_ambiguous_transreid_geometry_is_settled_with_the_flags_it_names(tmp_path: Path) -> None:
    from tests.unit.test_reading_transreid import GEOMETRY, transreid_state

    weights = tmp_path / "transreid.pth"
    torch.save(transreid_state(), weights)
    out = tmp_path / "art"
    message = assert_user_error(run_cli("export", str(weights), "--target", "onnx", "--out", str(out),
                                        "--num-heads", str(GEOMETRY["num_heads"])), "--img-size HxW --stride S")
    flags = FLAG.findall(message)
    assert flags and set(flags) <= _cli_flags(), message
    height, width = GEOMETRY["img_size"]
    result = run_cli("export", str(weights), "--target", "onnx", "--out", str(out), "--img-size",
                     f"{height}x{width}", "--stride", str(GEOMETRY["stride"]), "--num-heads",
                     str(GEOMETRY["num_heads"]), "--parity-samples", "2")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["input_spec"]["img_size"] == [height, width]


@pytest.mark.slow
@pytest.mark.parametrize("content, said", [
    (None, "is a folder; give the weights file inside it"),
    (bytes(range(256)) * 20, "is not a PyTorch checkpoint (neither torch.save's zip nor a pickle)"),
])
def test_weights_that_are_not_a_weights_file(tmp_path: Path, content: bytes | None, said: str) -> None:
    """A folder was called 'does not exist'; random bytes were called an unsafe pickle."""
    weights = tmp_path / "w.pth"
    if content is None:
        weights.mkdir()
    else:
        weights.write_bytes(content)
    message = assert_user_error(run_cli("export", "timm:vit_tiny_patch16_224", "--weights", str(weights),
                                        "--target", "onnx", "--out", str(tmp_path / "o")), said)
    assert "unsafe" not in message and "does not exist" not in message


@pytest.fixture
def exported(shipped_onnx: Path) -> Path:
    return shipped_onnx  # conftest's, read only


@pytest.mark.slow
def test_a_devices_file_with_a_bom_is_read(exported: Path, tmp_path: Path) -> None:
    """Notepad saves UTF-8 with a byte-order mark; 'local' became '\\ufefflocal', an unknown device."""
    devices = tmp_path / "devices.txt"
    devices.write_bytes("\ufefflocal name=here\n".encode())
    result = run_cli("bench", str(exported), "--devices", str(devices), "--runs", "3", "--warmup", "0",
                     "--min-time", "0", "--out", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "r" / "bench.jsonl").read_text())["status"] == "ok"


@pytest.mark.slow
def test_a_damaged_reference_is_refused_before_measuring(exported: Path, tmp_path: Path) -> None:
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(exported, damaged)
    with open(damaged / "model.onnx", "ab") as handle:
        handle.write(b"xx")
    result = run_cli("bench", str(exported), "--reference", str(damaged), "--data", "fashion-mnist",
                     "--eval-limit", "8", "--out", str(tmp_path / "r"))
    assert_user_error(result, "--reference:", "does not match its sha256")
    assert "threads 1" not in result.stderr  # nothing was measured first


@pytest.mark.slow
def test_a_negative_size_in_a_rehashed_manifest_is_refused(exported: Path, tmp_path: Path) -> None:
    import shutil

    from tests.hostile.test_integrity import edit_manifest

    copy = tmp_path / "copy"
    shutil.copytree(exported, copy)
    spec = json.loads((copy / "manifest.json").read_text())["input_spec"]
    edit_manifest(copy, input_spec={**spec, "img_size": -32})
    assert_user_error(run_cli("info", str(copy)), "is damaged", "must be positive")


# -- #36 item 9: a flag that did nothing, a name in capitals, a number named for what it measured ------------------
@pytest.mark.slow
def test_a_reference_without_data_is_refused(exported: Path, tmp_path: Path) -> None:
    """`bench ART --reference pytorch` without --data measured the artifact and compared nothing, without a word."""
    from vit_edge.api import bench

    result = run_cli("bench", str(exported), "--reference", "pytorch", "--runs", "2", "--warmup", "0",
                     "--min-time", "0", "--out", str(tmp_path / "r"))
    assert_user_error(result, "--reference pytorch compares outputs on images", "pass --data")
    assert not (tmp_path / "r").exists()
    with pytest.raises(ConfigError, match="compares outputs on images"):
        bench([str(exported)], reference=str(exported))


def test_target_names_are_read_in_any_case() -> None:
    """`--target ONNX` was 'unknown target'; every place a target name is read takes it in any case."""
    from vit_edge.core.options import ExportOptions
    from vit_edge.core.targets import target
    from vit_edge.tuning import TuneConfig

    assert ExportOptions("ONNX").target == "onnx" and ExportOptions(target="TFLite").target == "tflite"
    assert TuneConfig(target="OpenVINO", calib="c", eval_data="e", max_drop=1.0).target == "openvino"
    assert target("ExecuTorch").name == "executorch"
    with pytest.raises(ConfigError, match=r"unknown target 'ONNXX' \(did you mean 'onnx'"):
        target("ONNXX")


@pytest.mark.slow
def test_a_target_in_capitals_exports(tmp_path: Path) -> None:
    result = run_cli("export", "fmnist-vit-tiny", "--target", "ONNX", "--parity-samples", "2",
                     "--out", str(tmp_path / "a"))
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["target"] == "onnx"


@pytest.mark.slow
def test_quantize_without_eval_says_disagreement_on_the_calibration_images(tmp_path: Path) -> None:
    """Without labels the number is disagreement with fp32 on the calibration images, never a top-1 drop; the
    manifest stored it as 'drop' and the summary did not say what it was measured on."""
    from vit_edge.core.manifest import read_manifest

    result = run_cli("quantize", "fmnist-vit-tiny", "--target", "onnx", "--calib", "fashion-mnist", "--calib-size",
                     "32", "--parity-samples", "2", "--out", str(tmp_path / "q"))
    assert result.returncode == 0, result.stderr
    assert "disagreement with fp32 on the 32 calibration images" in result.stdout, result.stdout
    assert "top-1 drop" not in result.stdout and not re.search(r"(?<!dis)agreement with fp32", result.stdout)
    summary = read_manifest(tmp_path / "q").quantization
    assert summary is not None
    accuracy = summary.accuracy
    assert accuracy.drop is None and accuracy.disagreement == pytest.approx(100 - (accuracy.agreement_top1 or 0))
    assert (accuracy.measured_on or "").startswith("32 calibration images of fashion-mnist")


def _verb_flags(*names: str) -> dict[str, dict[str, argparse.Action]]:
    from vit_edge.cli import build_parser

    return {name: {o: a for a in parser._actions for o in a.option_strings}
            for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction)
            for name, parser in action.choices.items() if name in names}


def test_export_and_quantize_share_their_artifact_flags() -> None:
    """quantize re-declared export's flags by hand: --layout and --opset were missing (vit_edge.quantize took them)
    and six had lost their help; --npu was quantize's alone. Every flag export and quantize both have is one
    declaration, and every option field (ExportOptions, TransReID's ReIDOptions, each target's own options and
    sub-targets from core/targets.py) has its flag on both."""
    from vit_edge.core.options import ExportOptions, ReIDOptions
    from vit_edge.core.targets import TARGET_OPTIONS, flag

    verbs = _verb_flags("export", "quantize")
    fields = {*ExportOptions.__dataclass_fields__, *ReIDOptions.__dataclass_fields__} - {"target", "reid"}
    assert set(TARGET_OPTIONS) <= fields and {"npu", "ort_fusions", "opset", "camera"} <= fields
    fields -= {"precision"}  # quantize's precision is INT8 by definition
    for verb, flags in verbs.items():
        assert fields <= {action.dest for action in flags.values()}, (verb, fields - {a.dest for a in flags.values()})
        assert {f"--{flag(option)}" for option in TARGET_OPTIONS} <= set(flags), verb  # each flag is its field's
    for name in set(verbs["export"]) & set(verbs["quantize"]) - {"--data", "--max-drop", "-h", "--help", "--target"}:
        ours, theirs = verbs["export"][name], verbs["quantize"][name]
        same_help = name == "--out" or ours.help == theirs.help  # --out names each verb's default folder
        assert (ours.dest, ours.default, ours.type) == (theirs.dest, theirs.default, theirs.type) and same_help, name


def test_a_target_option_is_refused_for_another_target_in_one_line(tmp_path: Path) -> None:
    """Each target declares the options it takes (core/targets.py); ExportOptions refuses another target's, for the
    API as for the CLI, naming the targets that take it from the same declarations."""
    from vit_edge.core.options import ExportOptions
    from vit_edge.core.targets import TARGET_OPTIONS, TARGETS, takers

    wrong = {"opset": 18, "ort_fusions": True, "npu": "ethos-u85-256", "dynamic_size": True}
    assert set(wrong) == set(TARGET_OPTIONS)
    for declared in TARGETS.values():
        for option, value in wrong.items():
            if option in declared.accepts:
                ExportOptions(declared.name, **{option: value})
                continue
            with pytest.raises(ConfigError, match=f"^--{option.replace('_', '-')} applies to --target .* only$"):
                ExportOptions(declared.name, **{option: value})
    assert takers("ort_fusions") == "--target onnx" and takers("npu") == "--target tflite"
    for verb in (("export", "--target", "tflite"), ("quantize", "--target", "openvino", "--calib", "fashion-mnist")):
        assert_user_error(run_cli(*verb, "fmnist-vit-tiny", "--ort-fusions", "--out", str(tmp_path / "out")),
                          "--ort-fusions applies to --target onnx only")
        assert not (tmp_path / "out").exists()


def test_python_words_for_the_npu_and_the_method() -> None:
    """`--npu CONFIG` read 'npu=True CONFIG' to a Python caller (npu takes a configuration's name), and
    `--method qat` names a keyword quantize no longer has: QAT is a QatTraining in its config."""
    from vit_edge.core.words import in_python_words

    assert in_python_words("add --npu CONFIG") == "add npu=CONFIG"
    assert in_python_words("QAT (--method qat) needs labels: use --method ptq") == (
        "QAT (qat=QatTraining(…)) needs labels: use qat=None")
