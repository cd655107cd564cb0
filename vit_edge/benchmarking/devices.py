"""Where a benchmark runs: this machine, a board over SSH, or an Android phone over adb. Parsed in one place."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

from vit_edge.core.errors import DeviceError

__all__ = ["LocalDevice", "SshDevice", "AdbDevice", "Device", "parse_device"]


@dataclass(frozen=True)
class LocalDevice:
    def __str__(self) -> str:
        return "local"


@dataclass(frozen=True)
class SshDevice:
    host: str
    user: str | None = None
    port: int = 22

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def __str__(self) -> str:
        return f"ssh://{self.destination}:{self.port}"


@dataclass(frozen=True)
class AdbDevice:
    serial: str

    def __str__(self) -> str:
        return f"adb:{self.serial}"


Device = Union[LocalDevice, SshDevice, AdbDevice]

_SSH = re.compile(r"ssh://(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<host>[A-Za-z0-9._-]+|\[[0-9a-fA-F:]+\])(?::(?P<port>\d+))?/?")
_ADB = re.compile(r"adb:(?P<serial>[A-Za-z0-9._:-]+)")


def parse_device(text: str) -> Device:
    """'local', 'ssh://user@host[:port]' or 'adb:SERIAL'; anything else is a DeviceError saying the forms."""
    if not isinstance(text, str):
        raise DeviceError(f"a device is an address such as local, ssh://user@host[:port] or adb:SERIAL, not a "
                          f"{type(text).__name__}")
    text = text.strip()
    if text in ("", "local", "localhost-process"):
        return LocalDevice()
    ssh = _SSH.fullmatch(text)
    if ssh and any((ssh.group(part) or "").startswith("-") for part in ("user", "host")):
        raise DeviceError(f"'{text}': a host or user starting with '-' would be read by ssh as an option")
    if ssh:
        port = int(ssh.group("port") or 22)
        if not 0 < port < 65536:
            raise DeviceError(f"port {port} in '{text}' is out of range")
        return SshDevice(host=ssh.group("host").strip("[]"), user=ssh.group("user"), port=port)
    adb = _ADB.fullmatch(text)
    if adb and adb.group("serial").startswith("-"):
        raise DeviceError(f"'{text}': a serial starting with '-' would be read by adb as an option")
    if adb:
        return AdbDevice(serial=adb.group("serial"))
    raise DeviceError(f"cannot parse device '{text}': use local, ssh://user@host[:port] or adb:SERIAL")
