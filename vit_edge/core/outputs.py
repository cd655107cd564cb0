"""What `--force` may replace: only what vit-edge made, recognised by its own schema, never by a file name.

One check for every verb that writes (export, quantize, tune, train), run before any work: an output that exists
is refused without `--force`; with it, it must be a vit-edge output of the same kind (an artifact whose manifest
parses and lists every file in the folder; a tune folder; a vit-edge checkpoint), and it must not be the current
folder, a folder above it, a home or root folder, or hold the model or data being read.
"""
from __future__ import annotations

import enum
import json
import os
from pathlib import Path
from typing import Any, Sequence

from vit_edge.core.errors import ArtifactError, ConfigError

__all__ = ["OutputKind", "append_whole", "check_output", "is_artifact", "is_tune_folder", "write_atomically"]

MANIFEST = "manifest.json"
TUNE_RESULTS = "tune.json"
TUNE_ENTRIES = frozenset({TUNE_RESULTS, "candidates", "chosen"})
TUNE_PARTIAL = f".{TUNE_RESULTS}.partial"  # write_atomically's temporary, left behind by a killed tune
MAX_MANIFEST_BYTES = 16 << 20


class OutputKind(str, enum.Enum):
    """What a verb writes; `--force` replaces only an existing output of the same kind."""

    ARTIFACT = "artifact"
    TUNE = "tune folder"
    CHECKPOINT = "checkpoint"


def _manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST
    try:
        if not path.is_file() or path.stat().st_size > MAX_MANIFEST_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    needed = ("schema_version", "target", "precision", "model_file", "input_spec", "files")
    if not isinstance(data, dict) or any(key not in data for key in needed) or not isinstance(data["files"], dict):
        return None
    return data


def _unlisted(folder: Path, listed: set[str]) -> list[str]:
    """Files under `folder` that are not in `listed` (the manifest and hidden lock/partial names aside)."""
    extra = []
    for here, dirs, files in os.walk(folder):
        for name in files:
            relative = str((Path(here) / name).relative_to(folder))
            if relative != MANIFEST and relative not in listed:
                extra.append(relative)
    return sorted(extra)


def is_artifact(folder: Path) -> bool:
    """A vit-edge artifact: its manifest has vit-edge's schema and lists every file the folder holds."""
    data = _manifest(folder)
    return data is not None and not _unlisted(folder, set(map(str, data["files"])))


def is_tune_folder(folder: Path) -> bool:
    """What `vit-edge tune` writes: tune.json (config and rows), candidates/ of artifacts, chosen/ (an artifact)."""
    try:
        entries = {entry.name for entry in folder.iterdir()}
        document = json.loads((folder / TUNE_RESULTS).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    ours = all(name in TUNE_ENTRIES or name.startswith(TUNE_PARTIAL) for name in entries)
    if not ours or not isinstance(document, dict) or not {"config", "rows"} <= set(document):
        return False
    candidates = folder / "candidates"
    built = [p for p in candidates.iterdir() if not p.name.startswith(".")] if candidates.is_dir() else []
    chosen = folder / "chosen"
    return all(is_artifact(p) for p in built) and (not chosen.exists() or is_artifact(chosen))


CHECKPOINT_MARKERS = (b"vit-edge-checkpoint/", b"vit-edge-qat-checkpoint/")


def _is_checkpoint(path: Path) -> bool:
    """A torch zip file whose pickle names vit-edge's checkpoint format (read without torch or unpickling)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
            if len(pickles) != 1 or archive.getinfo(pickles[0]).file_size > MAX_MANIFEST_BYTES:
                return False
            head = archive.read(pickles[0])
    except (OSError, zipfile.BadZipFile, KeyError):
        return False
    return any(marker in head for marker in CHECKPOINT_MARKERS)


def _refuse_special(out: Path) -> None:
    """The current folder, one above it, a home or a root folder are never an output to replace."""
    target, here = out.resolve(), Path.cwd().resolve()
    if target == here or target in here.parents:
        raise ConfigError(f"--out {out} is the current folder or a folder above it; choose a new folder for the "
                          "output")
    if target == Path.home().resolve() or target.parent == target or target == Path(target.anchor):
        raise ConfigError(f"--out {out} is a home or root folder; choose a new folder for the output")


def check_output(out: Path, kind: OutputKind, force: bool, reads: Sequence[tuple[str, Any]] = ()) -> None:
    """Refuse, before any work, an output vit-edge must not write: an existing one without `force`; with it,
    anything that is not a vit-edge output of `kind`, a special folder, or one that is or holds an input in
    `reads` ((what, path) pairs: the model, the data)."""
    out = Path(out)
    for what, source in reads:
        if isinstance(source, (str, Path)) and Path(source).exists():
            inside, target = Path(source).resolve(), out.resolve()
            if inside == target or target in inside.parents:
                raise ConfigError(f"--out {out} is, or contains, {what} {source}: writing there would replace it; "
                                  "choose another output folder")
    if not out.exists() and not out.is_symlink():
        return
    if kind is OutputKind.TUNE and out.is_dir() and not out.is_symlink() and not any(out.iterdir()):
        return  # an empty folder made for the results: nothing in it to lose
    if not force:
        raise ArtifactError(f"{out} exists already; pass --force to replace it")
    _refuse_special(out)
    recognised = {OutputKind.ARTIFACT: lambda p: p.is_dir() and (is_artifact(p) or not any(p.iterdir())),
                  OutputKind.TUNE: lambda p: p.is_dir() and (is_tune_folder(p) or not any(p.iterdir())),
                  OutputKind.CHECKPOINT: lambda p: p.is_file() and _is_checkpoint(p)}[kind]
    if out.is_symlink() or not recognised(out):
        raise ArtifactError(f"{out} is not a vit-edge {kind.value} (--force replaces only what vit-edge made); "
                            "choose another output, or move it away yourself")


def write_atomically(path: Path, text: str) -> None:
    """`path` holds `text` or what it held before, never a part: a temporary sibling renamed over it."""
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()


def append_whole(path: Path, text: str) -> None:
    """Append `text` to a log file entirely or not at all: a failed write is cut back off (no half line)."""
    data = text.encode("utf-8")
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.fstat(descriptor).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view):]
        except OSError:
            os.ftruncate(descriptor, start)
            raise
    finally:
        os.close(descriptor)
