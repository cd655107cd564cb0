"""What vit-edge made, recognised by its own schema and never by a file name: the only things `--force` replaces.

Each kind of output a verb writes has one recogniser here: an artifact (its manifest, read by the one manifest
reader, lists every file the folder holds), a tune folder, a checkpoint, a folder of QAT checkpoints, a bench
report folder. Nothing here writes; `core/outputs.py` asks these before it replaces anything.
"""
from __future__ import annotations

import enum
import json
import os
import zipfile
from pathlib import Path
from typing import Callable

from vit_edge.core.errors import VitEdgeError

__all__ = ["OutputKind", "BENCH_MARK", "BENCH_FILES", "QAT_FILES", "is_artifact", "is_tune_folder", "is_checkpoint",
           "is_qat_folder", "is_bench_report", "recognised"]

TUNE_RESULTS = "tune.json"
TUNE_ENTRIES = frozenset({TUNE_RESULTS, "candidates", "chosen"})
QAT_FILES = frozenset({"last.pt", "best.pt"})
BENCH_FILES = frozenset({"bench.jsonl", "bench.md", "bench.html", "bench.png"})
BENCH_MARK = "vit-edge bench report"  # in bench.md (a comment), bench.html (generator) and bench.png (Software)
BENCH_RECORD_KEYS = frozenset({"artifact", "device", "threads", "batch", "status"})
CHECKPOINT_MARKERS = (b"vit-edge-checkpoint/", b"vit-edge-qat-checkpoint/")
MAX_READ_BYTES = 16 << 20


class OutputKind(str, enum.Enum):
    """What a verb writes; `--force` replaces only an existing output of the same kind."""

    ARTIFACT = "artifact"
    TUNE = "tune folder"
    CHECKPOINT = "checkpoint"
    QAT_CHECKPOINTS = "QAT checkpoint folder"
    BENCH_REPORT = "bench report folder"


def _ours_or_partial(name: str, allowed: frozenset[str]) -> bool:
    """`name` is one of `allowed` or the hidden temporary of one (`.NAME.partial-PID`, `.NAME.XXXX`)."""
    return name in allowed or any(name.startswith(f".{known}.") for known in allowed)


def _files_under(folder: Path) -> list[str]:
    found = []
    for here, _, files in os.walk(folder):
        found += [str((Path(here) / name).relative_to(folder)) for name in files]
    return sorted(found)


def is_artifact(folder: Path) -> bool:
    """A vit-edge artifact: its manifest reads (the one reader, files unhashed) and lists every file it holds."""
    from vit_edge.core.manifest import MANIFEST_NAME, read_manifest

    if not folder.is_dir() or folder.is_symlink():
        return False
    try:
        listed = set(map(str, read_manifest(folder, verify_files=False).files))
    except (VitEdgeError, OSError):
        return False
    return all(name == MANIFEST_NAME or name in listed for name in _files_under(folder))


def is_tune_folder(folder: Path) -> bool:
    """What `vit-edge tune` writes: tune.json (config and rows), candidates/ of artifacts, chosen/ (an artifact)."""
    try:
        entries = [entry.name for entry in folder.iterdir()]
        document = json.loads((folder / TUNE_RESULTS).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    if not all(_ours_or_partial(name, TUNE_ENTRIES) for name in entries):
        return False
    if not isinstance(document, dict) or not {"config", "rows"} <= set(document):
        return False
    candidates = folder / "candidates"
    built = [p for p in candidates.iterdir() if not p.name.startswith(".")] if candidates.is_dir() else []
    chosen = folder / "chosen"
    return all(is_artifact(p) for p in built) and (not chosen.exists() or is_artifact(chosen))


def is_checkpoint(path: Path, markers: tuple[bytes, ...] = CHECKPOINT_MARKERS) -> bool:
    """A torch zip file whose pickle names vit-edge's checkpoint format (read without torch or unpickling)."""
    try:
        if not path.is_file() or path.is_symlink():
            return False
        with zipfile.ZipFile(path) as archive:
            pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
            if len(pickles) != 1 or archive.getinfo(pickles[0]).file_size > MAX_READ_BYTES:
                return False
            head = archive.read(pickles[0])
    except (OSError, zipfile.BadZipFile, KeyError, ValueError):
        return False
    return any(marker in head for marker in markers)


def is_qat_folder(folder: Path) -> bool:
    """What QAT writes: last.pt and best.pt, each a vit-edge QAT checkpoint (and hidden partials of them)."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return False
    if not all(_ours_or_partial(entry.name, QAT_FILES) and not entry.is_symlink() for entry in entries):
        return False
    return all(is_checkpoint(entry, (b"vit-edge-qat-checkpoint/",)) for entry in entries if entry.name in QAT_FILES)


def _bench_file_is_ours(path: Path) -> bool:
    """Each report file by what vit-edge puts in it: records with bench's keys, or the report's mark."""
    if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_READ_BYTES:
        return False
    data = path.read_bytes()
    if path.name != "bench.jsonl":
        return BENCH_MARK.encode() in data[:8192]
    try:
        records = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return all(isinstance(record, dict) and BENCH_RECORD_KEYS <= set(record) for record in records)


def is_bench_report(folder: Path) -> bool:
    """What `vit-edge bench` writes: bench.jsonl, bench.md, bench.html, bench.png, each recognised by content."""
    try:
        entries = list(folder.iterdir())
        return all(_ours_or_partial(entry.name, BENCH_FILES) for entry in entries) and all(
            _bench_file_is_ours(entry) for entry in entries if entry.name in BENCH_FILES)
    except OSError:
        return False


def _empty_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


RECOGNISERS: dict[OutputKind, Callable[[Path], bool]] = {
    OutputKind.ARTIFACT: is_artifact,
    OutputKind.TUNE: is_tune_folder,
    OutputKind.CHECKPOINT: is_checkpoint,
    OutputKind.QAT_CHECKPOINTS: is_qat_folder,
    OutputKind.BENCH_REPORT: is_bench_report,
}
FOLDER_KINDS = frozenset({OutputKind.ARTIFACT, OutputKind.TUNE, OutputKind.QAT_CHECKPOINTS, OutputKind.BENCH_REPORT})


def recognised(path: Path, kind: OutputKind) -> bool:
    """`path` is a vit-edge output of `kind` (an empty folder counts for the folder kinds: nothing to lose)."""
    if path.is_symlink():
        return False
    if kind in FOLDER_KINDS and path.is_dir() and _empty_folder(path):
        return True
    try:
        return RECOGNISERS[kind](path)
    except OSError:
        return False
