"""Running the measuring process elsewhere: a zip of vit-edge's torch-free modules, copied with the artifact.

The board needs Python 3, numpy and the one runtime; the OpenSSH client (`ssh`, `scp`) does the transport.
"""
from __future__ import annotations

import io
import json
import shlex
import subprocess
import zipfile
from pathlib import Path
from typing import Any

from vit_edge.benchmarking.devices import SshDevice
from vit_edge.benchmarking.runner_process import progress_args, run_measuring
from vit_edge.core.errors import DeviceError
from vit_edge.core.outputs import write_atomically
from vit_edge.core.package_layers import BOARD_LAYERS
from vit_edge.core.version import __version__

__all__ = ["build_runner_zip", "runner_modules", "SshRunner", "check_reachable"]

_PACKAGE = Path(__file__).resolve().parents[1]
# The zip's package root: the real __init__ imports the verbs (api), which a board does not need.
_BOARD_INIT = f'"""vit-edge\'s board-side modules (runtime, data, core), zipped."""\n__version__ = "{__version__}"\n'


def runner_modules() -> list[str]:
    """The board layers' files (core/package_layers.py), relative to the package: what the import contract proves
    needs neither torch nor anything above them."""
    package = _PACKAGE
    modules = []
    for layer in BOARD_LAYERS:
        folder = package / layer.removeprefix("vit_edge.").replace(".", "/")
        modules += sorted(str(f.relative_to(package)) for f in folder.rglob("*.py"))
    return modules


def build_runner_zip(path: Path) -> Path:
    """A zipapp: `python3 runner.pyz CONFIG.json` runs vit_edge.runtime.runner on any Python ≥ 3.10."""
    package = _PACKAGE
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("vit_edge/__init__.py", _BOARD_INIT)
        for module in runner_modules():
            archive.write(package / module, f"vit_edge/{module}")
        archive.writestr("__main__.py", "from vit_edge.runtime.runner import main\nraise SystemExit(main())\n")
    write_atomically(path, buffer.getvalue())
    return path


class SshRunner:
    """Copies files to a fresh temporary folder on the board, runs commands there, and removes it at the end."""

    def __init__(self, device: SshDevice, ssh_options: tuple[str, ...] = (), timeout_s: float = 600.0,
                 python: str = "python3") -> None:
        self.device = device
        self.options = [arg for option in ssh_options for arg in ("-o", option)]
        self.options += ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
        self.timeout_s = timeout_s
        self.python = python
        self.remote_dir: str | None = None
        self.legacy_scp = False  # a board whose sshd has no sftp subsystem takes scp's old protocol (-O)

    def _ssh(self, command: str, timeout: float | None = None, runner: bool = False
             ) -> subprocess.CompletedProcess[str]:
        args = ["ssh", "-p", str(self.device.port), *self.options, self.device.destination, command]
        return self._call(args, timeout or self.timeout_s, runner=runner)

    def _call(self, args: list[str], timeout: float, scp: bool = False, runner: bool = False
              ) -> subprocess.CompletedProcess[str]:
        """`runner`: the measuring process, whose progress lines are shown as they arrive (runner_process.py)."""
        try:
            if runner:
                result = run_measuring(args, timeout)
            else:
                result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError as exc:
            raise DeviceError("the OpenSSH client (ssh, scp) is not installed on this machine") from exc
        except subprocess.TimeoutExpired as exc:
            self._stop_remote()  # the board-side process would otherwise run on at full CPU
            raise DeviceError(f"{self.device} did not finish within {timeout:.0f} s (stopped there)") from exc
        if result.returncode == 255 and not (scp and _sftp_missing(result.stderr)):
            last = (result.stderr.strip().splitlines() or ["no answer"])[-1]
            raise DeviceError(f"cannot reach {self.device}: {last}")
        return result

    def __enter__(self) -> "SshRunner":
        result = self._ssh("mktemp -d /tmp/vit-edge.XXXXXX", timeout=60)
        if result.returncode != 0 or not result.stdout.strip():
            raise DeviceError(f"{self.device}: cannot create a working folder: {result.stderr.strip()}")
        self.remote_dir = result.stdout.strip()
        return self

    def __exit__(self, *exc: Any) -> None:
        """Stop whatever still runs from the working folder and remove it, on every path (error, Ctrl-C too)."""
        if self.remote_dir:
            self._stop_remote(remove=True)
            self.remote_dir = None

    def _stop_remote(self, remove: bool = False) -> None:
        """Kill the processes started from the working folder (and remove it); best effort, never raises."""
        if not self.remote_dir:
            return
        # '[/]tmp/…' matches the runner's command line but not the shell running pkill (which it would kill);
        # the folder is removed by a second command for the same reason
        commands = [f"pkill -f {shlex.quote(f'[{self.remote_dir[0]}]{self.remote_dir[1:]}')} ; true"]
        if remove:
            commands.append(f"rm -rf {shlex.quote(self.remote_dir)}")
        for command in commands:
            args = ["ssh", "-p", str(self.device.port), *self.options, self.device.destination, command]
            try:
                subprocess.run(args, capture_output=True, text=True, timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                pass

    def _scp(self, source: str, target: str) -> subprocess.CompletedProcess[str]:
        """scp over sftp (OpenSSH ≥ 9's default); where the board's sshd has no sftp, once more with -O."""
        while True:
            legacy = ["-O"] if self.legacy_scp else []
            args = ["scp", "-q", "-r", *legacy, "-P", str(self.device.port), *self.options, source, target]
            result = self._call(args, self.timeout_s, scp=not self.legacy_scp)
            if result.returncode == 0 or self.legacy_scp or not _sftp_missing(result.stderr):
                return result
            self.legacy_scp = True

    def put(self, local: Path, name: str) -> str:
        """Copy a file or folder into the working folder; returns its path on the board."""
        remote = f"{self.remote_dir}/{name}"
        result = self._scp(str(local), f"{self.device.destination}:{remote}")
        if result.returncode != 0:
            raise DeviceError(f"copying {local.name} to {self.device} failed: {_last_line(result.stderr)}")
        return remote

    def get(self, remote: str, local: Path) -> None:
        result = self._scp(f"{self.device.destination}:{remote}", str(local))
        if result.returncode != 0:
            raise DeviceError(f"copying {remote} back from {self.device} failed: {_last_line(result.stderr)}")

    def run_runner(self, runner: str, config: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        """Write the config on the board and run the zipped runner with it."""
        config_path = f"{self.remote_dir}/config.json"
        text = shlex.quote(json.dumps(config))
        asked = "".join(f" {shlex.quote(arg)}" for arg in progress_args())
        command = (f"printf %s {text} > {shlex.quote(config_path)} && "
                   f"{self.python} {shlex.quote(runner)} {shlex.quote(config_path)}{asked}")
        return self._ssh(command, runner=True)


def _sftp_missing(stderr: str) -> bool:
    """What OpenSSH's scp says when the server has no sftp subsystem (the connection itself worked)."""
    return "subsystem request failed" in stderr or "Connection closed" in stderr


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def check_reachable(address: str, ssh_options: tuple[str, ...] = (), python: str = "python3") -> None:
    """DeviceError unless `address` answers (an SSH board opens a working folder); local and adb devices pass.

    For a caller that builds artifacts before measuring: an unreachable board is found before minutes of work.
    """
    from vit_edge.benchmarking.devices import parse_device

    device = parse_device(address)
    if isinstance(device, SshDevice):
        with SshRunner(device, ssh_options, timeout_s=60.0, python=python):
            pass
