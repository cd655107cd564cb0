"""`vit-edge bench --device ssh://…` against a real OpenSSH server that the test starts on loopback.

The 'board' is this machine reached over SSH with a throw-away key; its Python is the test's own interpreter,
which has numpy and the runtimes, as a prepared board would.
"""
from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import run_cli, small_vit
from vit_edge.api import Artifact, export
from vit_edge.benchmarking.sweep import BenchConfig, bench

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
pytestmark = pytest.mark.skipif(not os.path.exists(SSHD) or shutil.which("ssh") is None,
                                reason="needs Debian's openssh-server and openssh-client (make installs them)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _running_sshd(root: Path, sftp: bool = True) -> Iterator[tuple[str, tuple[str, ...]]]:
    """A real sshd on a free loopback port with a throw-away key; `sftp=False`: no sftp subsystem, as on some
    embedded boards (dropbear, trimmed OpenSSH)."""
    root.mkdir(exist_ok=True)
    os.chmod(root, 0o700)
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True)
    (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
    os.chmod(root / "authorized_keys", 0o600)
    port = _free_port()
    (root / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\nPidFile {root / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
        + ("Subsystem sftp internal-sftp\n" if sftp else "") + "MaxStartups 50\n")
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege-separation directory sshd insists on
    server = subprocess.Popen([SSHD, "-D", "-e", "-f", str(root / "sshd_config")], stderr=subprocess.PIPE)
    deadline = time.time() + 20
    while time.time() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    options = (f"IdentityFile={root / 'client_key'}", "IdentitiesOnly=yes", "StrictHostKeyChecking=no",
               f"UserKnownHostsFile={root / 'known_hosts'}", "LogLevel=ERROR")
    try:
        yield f"ssh://{getpass.getuser()}@127.0.0.1:{port}", options
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, tuple[str, ...]]]:
    with _running_sshd(tmp_path_factory.mktemp("sshd")) as board:
        yield board


def test_bench_over_ssh_measures_and_brings_results_back(sshd, tmp_path: Path, small_onnx: Path) -> None:
    device, options = sshd
    artifact = Artifact.open(small_onnx)  # conftest's, read only
    cfg = BenchConfig(threads=(1,), runs=20, min_seconds=0.2, device=device, ssh_options=options,
                      remote_python=sys.executable, data="fashion-mnist", eval_limit=64)
    (record,) = bench([str(artifact.path)], BenchConfig(**{**cfg.__dict__, "data": None}))
    assert record.status == "ok", record
    assert record.device == device and record.runs >= 20 and 0 < record.min_ms <= record.p50_ms
    assert record.peak_rss_mb > 0 and record.session is not None and record.session.runtime == "onnxruntime"
    found = record.device_fingerprint  # read by the runner on the board, not by this process
    assert found is not None and found.machine and found.cores and found.python and record.memory_source == "VmHWM"
    from vit_edge.benchmarking.report import markdown_table

    assert f"| {device} ({found.machine}, " in markdown_table([record])


def test_accuracy_over_ssh_equals_local(sshd, tmp_path: Path) -> None:
    """Accuracy travels: the images go to the board, the logits come back, numbers equal the local ones."""
    device, options = sshd
    model = small_vit(in_chans=1, img_size=28, patch_size=4)
    artifact = export(model, "onnx", tmp_path / "onnx")
    common = dict(threads=(1,), runs=5, min_seconds=0.0, data="fashion-mnist", eval_limit=200,
                  reference=str(artifact.path))
    (remote,) = bench([str(artifact.path)], BenchConfig(device=device, ssh_options=options,
                                                        remote_python=sys.executable, **common))
    (local,) = bench([str(artifact.path)], BenchConfig(**common))
    assert remote.status == "ok" and remote.eval_images == 200, remote.error
    assert remote.top1 == pytest.approx(local.top1) and remote.agreement_top1 == 100.0


def test_the_boards_scoring_reaches_the_host_as_progress(sshd, tmp_path: Path) -> None:
    """The runner on the board sends its scoring as lines on its stderr; the host shows them as its own progress
    and keeps them out of the record. A board whose runner sends none (the flag dropped on the way, as an older
    runner would ignore it) is measured the same."""
    from vit_edge.core.progress import reporting

    device, options = sshd
    artifact = export(small_vit(in_chans=1, img_size=28, patch_size=4), "onnx", tmp_path / "onnx")
    cfg = BenchConfig(threads=(1,), runs=3, min_seconds=0.0, warmup=0, device=device, ssh_options=options,
                      remote_python=sys.executable, data="fashion-mnist", eval_limit=300)

    def heard(python: str) -> list[tuple[str, int, int]]:
        events: list[tuple[str, int, int]] = []
        with reporting(lambda *event: events.append(event)):
            (record,) = bench([str(artifact.path)], BenchConfig(**{**cfg.__dict__, "remote_python": python}))
        assert record.status == "ok" and record.eval_images == 300 and record.error is None, record
        assert "VIT_EDGE_PROGRESS" not in json.dumps(record.to_json())
        return events

    what = f"bench on {device}"
    assert heard(sys.executable) == [("scoring", 256, 300), ("scoring", 300, 300), (what, 1, 1)]
    older = f"sh -c 'exec {sys.executable} \"$1\" \"$2\"' sh"  # passes the zip and its config, not --progress
    assert heard(older) == [(what, 1, 1)]


def test_unreachable_host_is_a_status_row_and_exit_2(tmp_path: Path, small_onnx: Path) -> None:
    artifact = Artifact.open(small_onnx)  # conftest's, read only
    result = run_cli("bench", str(artifact.path), "--device", f"ssh://nobody@127.0.0.1:{_free_port()}",
                     "--runs", "3", "--out", str(tmp_path / "report"),
                     "--ssh-option", "StrictHostKeyChecking=no", "--ssh-option", "ConnectTimeout=5")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("vit-edge: error: cannot reach ssh://")


def _board_leftovers() -> tuple[list[str], list[str]]:
    """Runner processes and working folders of vit-edge on the 'board' (this machine)."""
    # pgrep reads a regex: an unescaped dot also matched a local bench's /tmp/vit-edge-bench-*/ in another worker
    processes = subprocess.run(["pgrep", "-af", r"/tmp/vit-edge\."], capture_output=True, text=True).stdout
    running = [line for line in processes.splitlines() if "runner" in line or ".pyz" in line]
    return running, sorted(str(p) for p in Path("/tmp").glob("vit-edge.*"))


def test_timeout_stops_the_board_side_process_and_cleans_up(sshd, tmp_path: Path, small_onnx: Path) -> None:
    device, options = sshd
    artifact = Artifact.open(small_onnx)  # conftest's, read only
    before = _board_leftovers()[1]
    cfg = BenchConfig(threads=(1,), runs=10**9, min_seconds=600.0, device=device, ssh_options=options,
                      remote_python=sys.executable, timeout_s=8.0)
    (record,) = bench([str(artifact.path)], cfg)
    assert record.status != "ok" and "did not finish within 8 s (stopped there)" in record.error, record
    time.sleep(1)
    running, folders = _board_leftovers()
    assert running == [] and set(folders) <= set(before)


def test_host_that_looks_like_an_option_is_refused(tmp_path: Path) -> None:
    from tests.helpers import assert_user_error

    for device, fragment in [("ssh://-oProxyCommand", "would be read by"), ("ssh://-V", "would be read by"),
                             ("adb:-s", "would be read by"), ("ssh://-oProxyCommand=touch%20pwned", "cannot parse")]:
        result = run_cli("bench", str(tmp_path), "--device", device, "--out", str(tmp_path / "r"))
        assert_user_error(result, fragment)
    assert not (tmp_path / "pwned").exists()


def _python_without(tmp_path: Path, package: str) -> str:
    """This Python as a board whose Python cannot import `package` (an import blocker first on its path)."""
    blocker = tmp_path / "blocker" / package
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('not installed on this board')\n")
    return f"env PYTHONPATH={blocker.parent} {sys.executable}"


def test_board_without_the_runtime_is_told_what_to_install_there(sshd, tmp_path: Path, small_onnx: Path) -> None:
    """The zipped runner on a board whose Python cannot import onnxruntime (an import blocker on its path)."""
    device, options = sshd
    artifact = Artifact.open(small_onnx)  # conftest's, read only
    cfg = BenchConfig(threads=(1,), runs=2, min_seconds=0.0, device=device, ssh_options=options,
                      remote_python=_python_without(tmp_path, "onnxruntime"))
    (record,) = bench([str(artifact.path)], cfg)
    assert record.status == "MissingDependencyError", record
    assert "python3 -m pip install numpy onnxruntime" in record.error and "vit-edge[" not in record.error


def test_fleet_of_two_devices_one_unreachable_gives_one_report(sshd, tmp_path: Path, small_onnx: Path) -> None:
    """A devices file with the loopback board and a port nobody listens on: both in one report, exit 2."""
    import json

    device, options = sshd
    artifact = Artifact.open(small_onnx)  # conftest's, read only
    extra = " ".join(f"ssh-option={option}" for option in options)
    (tmp_path / "devices.txt").write_text(
        "# the fleet\n"
        f"{device} name=board python={sys.executable} {extra}\n"
        f"ssh://nobody@127.0.0.1:{_free_port()} name=gone ssh-option=ConnectTimeout=5 {extra}\n")
    result = run_cli("bench", str(artifact.path), "--devices", str(tmp_path / "devices.txt"), "--runs", "3",
                     "--min-time", "0", "--warmup", "0", "--out", str(tmp_path / "report"))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    records = [json.loads(line) for line in (tmp_path / "report" / "bench.jsonl").read_text().splitlines()]
    status = {r["device_name"]: r["status"] for r in records}
    assert status == {"board": "ok", "gone": "DeviceError"}, status
    table = (tmp_path / "report" / "bench.md").read_text()
    assert "| board (" in table and "| gone |" in table


@pytest.mark.parametrize("text, fragment", [
    ("ssh://a name=x\nssh://b name=x\n", "listed twice"),
    ("ssh://a\nssh://a\n", "listed twice"),
    ("ssh://a\ntelnet://b\n", "devices.txt:2: cannot parse device"),
    ("ssh://a colour=red\n", "devices.txt:1: 'colour=red' is not one of"),
    ("# nothing\n", "lists no device"),
])
def test_bad_devices_file_is_refused_before_measuring(text: str, fragment: str, tmp_path: Path) -> None:
    from tests.helpers import assert_user_error

    (tmp_path / "devices.txt").write_text(text)
    result = run_cli("bench", str(tmp_path), "--devices", str(tmp_path / "devices.txt"), "--out", str(tmp_path / "r"))
    assert_user_error(result, fragment)
    assert not (tmp_path / "r").exists()


def test_executorch_program_is_measured_over_ssh(sshd, tmp_path: Path) -> None:
    """The fourth target through the same zipped runner; the board's Python has torch and executorch (the
    runtime needs both), and a board without them hears that torch comes along."""
    device, options = sshd
    artifact = export(small_vit(), "executorch", tmp_path / "pte", parity_samples=2)
    cfg = BenchConfig(threads=(1,), runs=5, min_seconds=0.0, device=device, ssh_options=options,
                      remote_python=sys.executable)
    (record,) = bench([str(artifact.path)], cfg)
    assert record.status == "ok" and record.runtime == "executorch" and record.p50_ms and record.p50_ms > 0, record
    delegated = record.session.delegation if record.session else None
    assert delegated is not None and delegated.delegate == "XNNPACK"
    assert delegated.undelegated_ops == ("expand_copy", "select_copy")
    cfg = BenchConfig(threads=(1,), runs=2, min_seconds=0.0, device=device, ssh_options=options,
                      remote_python=_python_without(tmp_path, "executorch"))
    (missing,) = bench([str(artifact.path)], cfg)
    assert missing.status == "MissingDependencyError" and "pip install numpy executorch" in (missing.error or "")
    assert "needs torch too" in (missing.error or "")


def test_board_without_sftp_is_measured_and_left_clean(tmp_path: Path, small_onnx: Path) -> None:
    """OpenSSH ≥ 9's scp speaks sftp; a board without the subsystem is reached with scp -O, and its working folder
    is removed whether the copy works or not."""
    artifact = Artifact.open(small_onnx)  # conftest's, read only
    before = _board_leftovers()[1]
    with _running_sshd(tmp_path / "sshd", sftp=False) as (device, options):
        cfg = BenchConfig(threads=(1,), runs=5, min_seconds=0.0, device=device, ssh_options=options,
                          remote_python=sys.executable)
        (record,) = bench([str(artifact.path)], cfg)
    assert record.status == "ok", record
    assert set(_board_leftovers()[1]) <= set(before)


def test_segmentation_over_ssh_brings_its_class_maps_back(sshd, tmp_path: Path) -> None:
    """A segmentation run keeps two files on the board (class maps, the sample's logits: core/segmentation_metrics.
    ClassMapFiles); both come back, the artifact's and its reference's (run on the board too), so the board's mIoU
    and agreement equal the local ones."""
    pytest.importorskip("transformers")
    import numpy as np
    from PIL import Image

    from tests.helpers import make_dpt
    from vit_edge.data.synthetic import smooth_images

    device, options = sshd
    artifact = export(make_dpt("segmentation"), "onnx", tmp_path / "onnx")
    for folder in ("images", "annotations"):
        (tmp_path / "ade" / folder).mkdir(parents=True)
    masks = np.random.default_rng(0).integers(0, 6, (3, 64, 64)).astype(np.uint8)
    for index, (image, mask) in enumerate(zip(smooth_images(3, 64, 3, seed=3), masks)):
        Image.fromarray(image).save(tmp_path / "ade" / "images" / f"{index}.png")
        Image.fromarray(mask).save(tmp_path / "ade" / "annotations" / f"{index}.png")
    common = dict(threads=(1,), runs=2, warmup=0, min_seconds=0.0, data=str(tmp_path / "ade"),
                  reference=str(artifact.path))
    (remote,) = bench([str(artifact.path)], BenchConfig(device=device, ssh_options=options,
                                                        remote_python=sys.executable, **common))
    (local,) = bench([str(artifact.path)], BenchConfig(**common))
    assert remote.status == "ok" and remote.agreement_cosine_images == 3, remote.error
    for key in ("seg_miou", "seg_pixel_agreement", "seg_min_pixel_agreement", "seg_miou_vs_reference"):
        assert remote.extra[key] == local.extra[key], key
    assert remote.extra["seg_pixel_agreement"] == 1.0 and remote.agreement_cosine == pytest.approx(1.0)
