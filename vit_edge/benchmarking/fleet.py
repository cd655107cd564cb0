"""A fleet: several devices in one sweep, measured in parallel (each device one configuration at a time).

Devices come from repeated `--device` options or a devices file, one device a line:

    # address                      then optional key=value fields
    ssh://pi@raspberrypi.local     name=pi5 python=/home/pi/ve/bin/python ssh-option=IdentityFile=~/.ssh/pi
    ssh://jetson                   name=orin            # a ~/.ssh/config host alias works as the host
    local                          name=this-host

A device that cannot be reached becomes status rows; the others go on, and one report holds them all.
"""
from __future__ import annotations

import contextvars
import shlex
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from vit_edge.benchmarking.devices import parse_device
from vit_edge.benchmarking.record import BenchRecord
from vit_edge.core.errors import ConfigError, VitEdgeError

__all__ = ["FleetDevice", "Fleet", "read_devices_file", "bench_fleet"]

_FIELDS = ("name", "python", "ssh-option")


@dataclass(frozen=True)
class FleetDevice:
    """One device of a fleet: its address, a name for the report, its Python and extra SSH options."""

    address: str
    name: str | None = None
    python: str | None = None
    ssh_options: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.name or self.address


def _parse_line(text: str, where: str) -> FleetDevice:
    try:
        words = shlex.split(text, comments=True)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    address, fields, options = words[0], {}, []
    parse_device(address)  # a DeviceError names the bad address
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if not sep or key not in _FIELDS or not value:
            raise ConfigError(f"{where}: '{word}' is not one of {', '.join(f + '=VALUE' for f in _FIELDS)}")
        if key == "ssh-option":
            options.append(value)
        else:
            fields[key] = value
    return FleetDevice(address, fields.get("name"), fields.get("python"), tuple(options))


def read_devices_file(path: str | Path) -> list[FleetDevice]:
    """The devices file, one device a line; every problem is a ConfigError naming the line."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise ConfigError(f"devices file {path} is not a regular file (a folder or a pipe?)")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()  # Notepad writes a BOM
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read devices file {path}: {exc}") from exc
    devices = []
    for number, line in enumerate(lines, start=1):
        if line.strip() and not line.strip().startswith("#"):
            try:
                devices.append(_parse_line(line, f"{path}:{number}"))
            except VitEdgeError as exc:
                message = str(exc)
                raise ConfigError(message if message.startswith(str(path)) else f"{path}:{number}: {message}") \
                    from None
    if not devices:
        raise ConfigError(f"devices file {path} lists no device")
    return devices


@dataclass(frozen=True)
class Fleet:
    """The devices one bench measures, each once. Checked when it is made (an address that does not parse, a device
    listed twice by address or by name), so whoever holds a Fleet holds a checked one and nothing checks it again."""

    devices: tuple[FleetDevice, ...] = (FleetDevice("local"),)

    def __post_init__(self) -> None:
        if not self.devices:
            raise ConfigError("a fleet needs at least one device")
        seen: set[str] = set()
        for device in self.devices:
            for key in {str(parse_device(device.address)), device.label}:
                if key in seen:
                    raise ConfigError(f"device {key} is listed twice; each device once (its name must be unique)")
                seen.add(key)

    @classmethod
    def of(cls, entries: Sequence[str | FleetDevice]) -> "Fleet":
        """Addresses ('local', 'ssh://user@host', 'adb:SERIAL') or FleetDevice entries; none: this machine."""
        devices = tuple(d if isinstance(d, FleetDevice) else FleetDevice(str(d)) for d in entries)
        return cls(devices) if devices else cls()

    @property
    def plain_single(self) -> FleetDevice | None:
        """The one device, when it is a bare address (no name, Python or SSH options): no fleet machinery needed."""
        (device, *rest) = self.devices
        plain = not rest and device.name is None and device.python is None and not device.ssh_options
        return device if plain else None


def bench_fleet(artifacts: list[str], cfg: Any, fleet: Fleet,
                progress: Callable[[str], None] = lambda _: None,
                on_records: Callable[[list[BenchRecord]], None] = lambda _: None) -> list[BenchRecord]:
    """Every device in parallel, each running the whole sweep one configuration at a time; merged records."""
    from vit_edge.benchmarking.sweep import bench, failed_records

    lock = threading.Lock()

    def locked(records: list[BenchRecord]) -> None:
        with lock:
            on_records(records)

    def one(device: FleetDevice) -> list[BenchRecord]:
        device_cfg = replace(cfg, device=device.address, remote_python=device.python or cfg.remote_python,
                             ssh_options=cfg.ssh_options + device.ssh_options)

        def say(line: str) -> None:
            progress(f"[{device.label}] {line}")

        def named(found: list[BenchRecord]) -> list[BenchRecord]:
            return [replace(r, device_name=device.label) for r in found]

        try:
            records = bench(artifacts, device_cfg, progress=say, on_records=lambda found: locked(named(found)))
        except VitEdgeError as exc:  # the device itself failed (unreachable, no Python): its rows say so
            say(f"{type(exc).__name__}: {exc}")
            records = failed_records(artifacts, device_cfg, exc)
            locked(named(records))
        return named(records)

    # each device's thread runs in a copy of this context: a caller's progress reporter hears every device
    contexts = [contextvars.copy_context() for _ in fleet.devices]
    with ThreadPoolExecutor(max_workers=len(fleet.devices)) as pool:
        found = pool.map(lambda pair: pair[0].run(one, pair[1]), zip(contexts, fleet.devices))
        return [record for records in found for record in records]
