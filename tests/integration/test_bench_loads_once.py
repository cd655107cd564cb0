"""Work done once: a bench of one artifact over 2 threads × 2 batches reads its manifest once on the host (the
files hashed once there, once more by the runner on its own copy) and builds one runtime session per
configuration, the session that was timed also checking the numbers and scoring the images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import vit_edge
from vit_edge.benchmarking import sweep
from vit_edge.runtime import measure as measuring

FAST = {"runs": 2, "min_seconds": 0.0, "warmup": 0}


@pytest.fixture
def artifact(shipped_onnx: Path) -> Path:
    return shipped_onnx  # conftest's, read only


def test_the_host_reads_each_manifest_once(artifact: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It parsed each manifest 2-3 times and every runner hashed every file (1 + threads × batches times)."""
    reads: list[str] = []
    real_read = sweep.read_manifest
    monkeypatch.setattr(sweep, "read_manifest", lambda path, *a, **k: reads.append(str(path)) or real_read(path))
    configs: list[measuring.MeasureConfig] = []
    real_run = sweep._LocalExecutor.run
    monkeypatch.setattr(sweep._LocalExecutor, "run",
                        lambda self, measure, tag: configs.append(measure) or real_run(self, measure, tag))
    records = vit_edge.bench([artifact], threads=(1, 2), batches=(1, 2), data="fashion-mnist", eval_limit=64, **FAST)
    assert [r.status for r in records] == ["ok"] * 4
    assert reads == [str(artifact)]
    assert [c.verify_files for c in configs] == [True, False, False, False]


def test_one_session_per_configuration(artifact: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """runtime/measure.py built the session three times: timing, numerics gate and accuracy."""
    built: list[object] = []
    real_class = measuring.session_class

    def counting(runtime: str) -> type:
        cls = real_class(runtime)
        return type("Counted", (cls,), {"__init__": lambda self, *a, **k: built.append(self) or cls.__init__(
            self, *a, **k)})

    monkeypatch.setattr(measuring, "session_class", counting)
    images = tmp_path / "images.npy"
    np.save(images, np.random.default_rng(0).integers(0, 255, (32, 28, 28, 1), dtype=np.uint8))
    result = measuring.measure(measuring.MeasureConfig(artifact=str(artifact), threads=1, batch=2,
                                                       check_numerics=True, data_images=str(images), **FAST))
    assert len(built) == 1
    assert result.numerics_check is not None and result.numerics_check.passed
    assert result.scores is not None and result.scores.eval_images == 32


def test_a_session_compiled_for_one_batch_size_runs_any_number() -> None:
    """OpenVINO's timed session is compiled for its batch (static shapes); it also checks and scores, in batches of
    that size, the last one padded."""
    from vit_edge.runtime.base import Session, SessionOptions

    class Static(Session):
        static_batch = 4

        def run(self, batch: np.ndarray) -> np.ndarray:
            assert len(batch) == 4
            return batch * 2

    session = Static(Path("m"), SessionOptions())
    inputs = np.arange(6, dtype=np.float32)[:, None]
    assert np.array_equal(session.run_any(inputs), inputs * 2)
    assert np.array_equal(session.run_any(inputs[:1]), inputs[:1] * 2)
