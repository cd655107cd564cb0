"""Runtime conformance: one template, subclassed per registered runtime; real artifacts in real runtimes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import copy_artifact, run_cli, small_vit
from vit_edge.api import export, parity_inputs
from vit_edge.benchmarking.sweep import BenchConfig, bench
from vit_edge.core.manifest import manifest_digest, sha256_file
from vit_edge.core.targets import RUNTIMES
from vit_edge.core.types import InputSpec
from vit_edge.reading.checkpoint import save_checkpoint
from vit_edge.runtime import SessionOptions, open_session
from vit_edge.runtime.measure import MeasureConfig, measure


@pytest.fixture(scope="module")
def artifacts_by_target() -> dict[str, Path]:
    """The checkpoint's artifact for each target, exported once: two runtimes (onnxruntime, pytorch) run one file."""
    return {}


class RuntimeConformance:
    runtime: str = ""
    target: str = ""  # the export target this runtime runs

    @pytest.fixture(scope="class")
    def artifact(self, tmp_path_factory: pytest.TempPathFactory, artifacts_by_target: dict[str, Path]) -> Path:
        if self.target not in artifacts_by_target:  # the tests only read it
            root = tmp_path_factory.mktemp(self.target)
            model = small_vit(in_chans=1, img_size=28, patch_size=4)
            checkpoint = save_checkpoint(root / "model.pt", model, InputSpec(img_size=28, channels=1, mean=(0.286,),
                                                                             std=(0.353,)))
            # a checkpoint PyTorch can rebuild
            artifacts_by_target[self.target] = export(str(checkpoint), self.target, root / "artifact").path
        return artifacts_by_target[self.target]

    def test_session_computes_the_model(self, artifact: Path) -> None:
        session = open_session(artifact, runtime=self.runtime, options=SessionOptions(threads=1))
        inputs = parity_inputs(InputSpec(img_size=28, channels=1, mean=(0.286,), std=(0.353,)), 3)
        with torch.no_grad():
            expected = small_vit(in_chans=1, img_size=28, patch_size=4)(torch.from_numpy(inputs)).numpy()
        np.testing.assert_allclose(session.run(inputs), expected, atol=1e-4)
        info = session.info()
        assert info.runtime == self.runtime and info.precision == "fp32" and info.version[0].isdigit()

    def test_statistics_come_from_real_timings(self, artifact: Path) -> None:
        found = measure(MeasureConfig(artifact=str(artifact), runtime=self.runtime, threads=1, warmup=3, runs=30,
                                      min_seconds=0.0))
        result = found.latency
        assert result.runs == 30 and found.load_ms > 0 and found.first_ms > 0
        assert 0 < result.min_ms <= result.p50_ms <= result.p90_ms <= result.p99_ms
        # images per second between the slowest and the fastest run's rate (not restating the formula)
        assert result.std_ms >= 0 and 1000 / result.p99_ms <= found.throughput_ips <= 1000 / result.min_ms
        assert found.peak_rss_mb >= found.peak_rss_load_mb > 0

    def test_accuracy_on_labelled_images(self, artifact: Path, tmp_path: Path) -> None:
        from vit_edge.data.datasets import load_fashion_mnist
        from vit_edge.data.preprocess import preprocess_uint8

        data = load_fashion_mnist("test").take(100)
        np.save(tmp_path / "images.npy", data.images[..., None])  # prepared: (N, H, W, C) at the input size
        np.save(tmp_path / "labels.npy", data.labels)
        result = measure(MeasureConfig(artifact=str(artifact), runtime=self.runtime, runs=1, warmup=0,
                                       min_seconds=0.0, data_images=str(tmp_path / "images.npy"),
                                       data_labels=str(tmp_path / "labels.npy")))
        spec = InputSpec(img_size=28, channels=1, mean=(0.286,), std=(0.353,))
        with torch.no_grad():
            logits = small_vit(in_chans=1, img_size=28, patch_size=4)(
                torch.from_numpy(preprocess_uint8(data.images, spec))).numpy()
        scores = result.scores
        assert scores is not None and scores.top1 == pytest.approx(100 * np.mean(logits.argmax(1) == data.labels))
        assert scores.top5 >= scores.top1 and scores.eval_images == 100


class TestOnnxRuntime(RuntimeConformance):
    runtime, target = "onnxruntime", "onnx"


class TestOpenVino(RuntimeConformance):
    runtime, target = "openvino", "openvino"

    def test_reports_the_precision_that_really_ran(self, artifact: Path) -> None:
        f32 = open_session(artifact, options=SessionOptions(precision_hint="f32")).info().precision
        default = open_session(artifact, options=SessionOptions(precision_hint=None)).info().precision
        assert f32 == "fp32" and default in ("fp32", "bf16", "fp16")


class TestLiteRt(RuntimeConformance):
    runtime, target = "litert", "tflite"

    def test_vit_is_fully_delegated_to_xnnpack(self, artifact: Path) -> None:
        delegated = open_session(artifact).info().delegation
        assert delegated is not None and delegated.fully_delegated is True and delegated.undelegated_ops == ()

    def test_ops_xnnpack_cannot_run_are_named(self, tmp_path: Path) -> None:
        import litert_torch

        from vit_edge.runtime.litert import LiteRtSession

        class WithCumsum(torch.nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return torch.cumsum(torch.nn.functional.linear(x, torch.ones(8, 8)), 1) + 1

        litert_torch.convert(WithCumsum().eval(), (torch.randn(1, 8),)).export(str(tmp_path / "m.tflite"))
        delegated = LiteRtSession(tmp_path / "m.tflite", SessionOptions()).info().delegation
        assert delegated is not None and delegated.fully_delegated is False and delegated.undelegated_ops == ("CUMSUM",)


class TestExecuTorch(RuntimeConformance):
    runtime, target = "executorch", "executorch"

    def test_profile_is_refused_with_the_reason(self, artifact: Path) -> None:
        from vit_edge.core.errors import ConfigError

        session = open_session(artifact)
        assert session.can_profile is False
        with pytest.raises(ConfigError, match="ETDump"):
            session.profile(np.zeros((1, 1, 28, 28), dtype=np.float32), runs=1)


class TestPyTorchReference(RuntimeConformance):
    runtime, target = "pytorch", "onnx"


def test_every_registered_runtime_has_a_conformance_subclass() -> None:
    covered = {cls.runtime for cls in RuntimeConformance.__subclasses__()}
    assert covered == set(RUNTIMES), f"runtimes without conformance tests: {set(RUNTIMES) - covered}"


def test_corrupt_model_file_is_a_status_row_and_the_sweep_goes_on(small_onnx: Path, tmp_path: Path) -> None:
    good = small_onnx  # conftest's, read only
    bad = copy_artifact(small_onnx, tmp_path / "bad")
    (bad / "model.onnx").write_bytes(b"\x08garbage")
    records = bench([str(bad), str(good)], BenchConfig(runs=5, min_seconds=0.0))
    assert records[0].status == "ArtifactError" and "does not match its sha256" in records[0].error
    assert records[1].status == "ok" and records[1].p50_ms > 0
    manifest = json.loads((bad / "manifest.json").read_text())  # the garbage re-hashed: the runtime refuses it
    manifest["files"]["model.onnx"] = sha256_file(bad / "model.onnx")
    manifest["manifest_sha256"] = manifest_digest(manifest)
    (bad / "manifest.json").write_text(json.dumps(manifest))
    (record,) = bench([str(bad)], BenchConfig(runs=5, min_seconds=0.0))
    assert record.status == "ArtifactError" and "cannot load" in record.error


def test_bench_cli_bad_inputs(small_onnx: Path, tmp_path: Path) -> None:
    good = copy_artifact(small_onnx, tmp_path / "good")  # the report names it by its folder
    bad_device = run_cli("bench", str(good), "--device", "telnet://board")
    assert bad_device.returncode == 2 and bad_device.stderr.strip().splitlines() == [
        "vit-edge: error: cannot parse device 'telnet://board': use local, ssh://user@host[:port] or adb:SERIAL"]
    missing = run_cli("bench", str(tmp_path / "nope"), str(good), "--runs", "3", "--min-time", "0",
                      "--out", str(tmp_path / "r"))
    assert missing.returncode == 2 and "| good |" in missing.stdout and "not an artifact directory" in missing.stdout
    absent = run_cli("bench", str(good), "--runtime", "tensorrt", "--out", str(tmp_path / "r3"))
    assert absent.returncode == 2 and "unknown runtime 'tensorrt'" in absent.stderr.strip().splitlines()[-1]


def test_runtime_not_installed_is_a_status_row(small_onnx: Path, tmp_path: Path) -> None:
    """A package that raises ImportError on import is what Python shows when it is absent; the measuring
    subprocesses inherit PYTHONPATH, so they see onnxruntime as not installed."""
    import os
    import subprocess
    import sys

    from tests.helpers import REPO

    hidden = tmp_path / "hide" / "onnxruntime"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError(\"No module named 'onnxruntime'\")\n")
    onnx_art = small_onnx  # conftest's, read only
    ov_art = export(small_vit(), "openvino", tmp_path / "ov").path
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'hide'}{os.pathsep}{REPO}"}
    result = subprocess.run([sys.executable, "-m", "vit_edge.cli", "bench", str(onnx_art), str(ov_art), "--runs", "3",
                             "--min-time", "0", "--out", str(tmp_path / "r")], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "pip install 'vit-edge[onnx]'" in result.stdout
    rows = [line for line in result.stdout.splitlines() if "| ov |" in line]
    assert rows and rows[0].rstrip().endswith("| ok |")
