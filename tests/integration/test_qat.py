"""QAT: the same modules as PTQ, trained; exact resume after a kill; DDP with 2 real processes; bad inputs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import REPO, run_cli
from vit_edge.core.errors import ArtifactError, ConfigError
from vit_edge.core.manifest import read_manifest
from vit_edge.core.summaries import QuantSummary
from vit_edge.data.datasets import load_fashion_mnist
from vit_edge.data.preprocess import preprocess_uint8
from vit_edge.quantization.checkpoints import QatCheckpoints, QatState
from vit_edge.quantization.ptq import quantize_model
from vit_edge.quantization.qat import finish_qat, start_qat
from vit_edge.quantization.recipe import Recipe
from vit_edge.reading.loaders import load_model

# small and quick: 12 steps of 32 images per epoch, 200 held-out images, ONNX as the target
QUICK = ["--method", "qat", "--data", "fashion-mnist-train", "--eval", "fashion-mnist", "--eval-limit", "200",
         "--calib", "fashion-mnist-train", "--calib-size", "64", "--batch-size", "32", "--max-steps", "12",
         "--epochs", "2", "--checkpoint-every", "4", "--lsq", "--distill", "--parity-samples", "4"]


@pytest.fixture(scope="module")
def shipped():
    return load_model("fmnist-vit-tiny")


@pytest.mark.parametrize("lsq", [False, True])
def test_untrained_qat_model_freezes_back_to_the_ptq_model(lsq: bool, shipped) -> None:
    """QAT starts from PTQ: with no step taken, freezing gives PTQ's INT8 weights, scales and logits again."""
    calib = preprocess_uint8(load_fashion_mnist("test").images[:64], shipped.spec)
    quant = quantize_model(shipped.model, Recipe(per_tensor_weights=lsq), calib)
    trainable = start_qat(quant, lsq)
    assert any(p.requires_grad for n, p in trainable.named_parameters() if n.endswith("train_scale")) == lsq
    frozen = finish_qat(quant, trainable)
    assert frozen.scales_sha256 == quant.scales_sha256
    x = torch.from_numpy(calib[:16])
    with torch.no_grad():
        np.testing.assert_allclose(frozen.model(x).numpy(), quant.model(x).numpy(), atol=1e-5)
        fake = trainable.eval()(x).numpy()  # the training forward (fused fake-quant kernels) computes the same
    np.testing.assert_allclose(fake, quant.model(x).numpy(), atol=0.05)


def _qat_run(tmp_path: Path, name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli("quantize", "fmnist-vit-tiny", "--target", "onnx", "--out", str(tmp_path / name),
                   "--checkpoint-dir", str(tmp_path / "ck"), *QUICK, *extra)


def _qat_summary(artifact: Path) -> QuantSummary:
    summary = read_manifest(artifact).quantization
    assert summary is not None and summary.qat is not None
    return summary


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(tmp_path: Path) -> None:
    whole = run_cli("quantize", "fmnist-vit-tiny", "--target", "onnx", "--out", str(tmp_path / "whole"),
                    "--checkpoint-dir", str(tmp_path / "ck-whole"), *QUICK)
    assert whole.returncode == 0, whole.stderr
    code = "import sys\nfrom vit_edge.cli import main\nsys.exit(main(sys.argv[1:]))"
    args = ["quantize", "fmnist-vit-tiny", "--target", "onnx", "--out", str(tmp_path / "killed"),
            "--checkpoint-dir", str(tmp_path / "ck"), *QUICK]
    process = subprocess.Popen([sys.executable, "-c", code, *args], env={**os.environ, "PYTHONPATH": str(REPO)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (tmp_path / "ck" / "last.pt").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before its first checkpoint: nothing was interrupted"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "killed").exists()  # no half-written artifact
    resumed = _qat_run(tmp_path, "killed", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at epoch 1, step 4" in resumed.stderr or "resuming at epoch 1, step 8" in resumed.stderr \
        or "resuming at epoch 2" in resumed.stderr, resumed.stderr
    a, b = _qat_summary(tmp_path / "whole"), _qat_summary(tmp_path / "killed")
    assert a.qat.history == b.qat.history and a.scales_sha256 == b.scales_sha256
    assert a.accuracy == b.accuracy and a.method == "qat"
    assert a.qat.train_fingerprint and a.qat.best.epoch in (1, 2)


@pytest.mark.slow
def test_two_process_ddp_run(tmp_path: Path) -> None:
    """The same command under torchrun: 2 processes, gloo, gradients averaged by DDP; rank 0 writes."""
    args = ["quantize", "fmnist-vit-tiny", "--target", "onnx", "--out", str(tmp_path / "ddp"),
            "--checkpoint-dir", str(tmp_path / "ck"), *QUICK, "--epochs", "1"]
    code = "import sys\nfrom vit_edge.cli import main\nsys.exit(main(sys.argv[1:]))"
    script = tmp_path / "entry.py"
    script.write_text(code)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             str(script), *args], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    written = [line for line in result.stdout.splitlines() if "onnx int8:" in line]
    assert len(written) == 1, result.stdout  # rank 0 alone writes the artifact and reports it
    summary = _qat_summary(tmp_path / "ddp")
    assert summary.qat.world_size == 2 and summary.method == "qat"
    assert len(summary.qat.history) == 1 and summary.accuracy.int8_top1 > 50


def test_bad_qat_inputs(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    from PIL import Image

    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(flat / "a.png")
    unlabelled = tmp_path / "images.npy"
    np.save(unlabelled, np.zeros((4, 28, 28), dtype=np.uint8))
    for name, count in (("few/Bag", 3), ("few/Sneaker", 3), ("one/Bag", 80)):  # a batch it cannot fill, a single class
        (tmp_path / name).mkdir(parents=True)
        for index in range(count):
            Image.fromarray(np.full((28, 28), index, dtype=np.uint8)).save(tmp_path / name / f"{index}.png")
    base = ["quantize", "fmnist-vit-tiny", "--target", "onnx", "--method", "qat", "--calib", "fashion-mnist",
            "--calib-size", "8"]
    cases = [
        (["--eval", "fashion-mnist"], "pass --data"),
        (["--data", "fashion-mnist-train"], "pass --eval"),
        (["--data", str(flat), "--eval", "fashion-mnist"], "has no labels (flat folder)"),
        (["--data", str(unlabelled), "--eval", "fashion-mnist"], "has no labels (arrays)"),
        (["--data", "fashion-mnist-train", "--eval", "fashion-mnist", "--max-drop", "0.5"], "PTQ's budget"),
        (["--data", "fashion-mnist-train", "--eval", "fashion-mnist", "--resume", "--checkpoint-dir",
          str(tmp_path / "none")], "nothing to resume"),
        (["--data", str(tmp_path / "few"), "--eval", "fashion-mnist"], "fewer than one batch of 64"),
        (["--data", str(tmp_path / "one"), "--eval", "fashion-mnist"], "one class only"),
    ]
    for extra, message in cases:
        result = run_cli(*base, "--out", str(tmp_path / "out"), *extra)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert message in result.stderr.strip().splitlines()[-1], (message, result.stderr)
        assert not (tmp_path / "out").exists()


def test_checkpoint_of_another_run_is_refused_and_an_interrupted_write_loses_nothing(tmp_path: Path,
                                                                                       shipped) -> None:
    calib = preprocess_uint8(load_fashion_mnist("test").images[:32], shipped.spec)
    quant = quantize_model(shipped.model, Recipe(), calib)
    model = start_qat(quant, lsq=False)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    ours = QatCheckpoints(tmp_path, {"weights_sha256": "a", "recipe": {"x": 1}})
    ours.save_last(model, optimizer, scheduler, QatState(epoch=1))
    saved = {k: v.clone() for k, v in model.state_dict().items()}

    with pytest.raises(ConfigError, match="belongs to another run \\(different recipe\\)"):
        QatCheckpoints(tmp_path, {"weights_sha256": "a", "recipe": {"x": 2}}).load_last(model, optimizer, scheduler)
    with pytest.raises(ArtifactError, match="exists already; pass --resume to continue the run it holds"):
        ours.start_fresh(force=False)

    # a write that dies half-way (disk full, kill): the previous last.pt must survive intact
    with torch.no_grad():
        next(p for p in model.parameters() if p.requires_grad).add_(1.0)
    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"PK\x03\x04 half a checkpoint")
        raise OSError("No space left on device")

    torch.save = dying_save
    try:
        with pytest.raises(OSError):
            ours.save_last(model, optimizer, scheduler, QatState(epoch=2))
    finally:
        torch.save = real_save
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind
    state = ours.load_last(model, optimizer, scheduler)
    assert state.epoch == 1
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key]), key
