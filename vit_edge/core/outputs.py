"""The one way vit-edge writes a file: every verb's output (artifacts, bench reports, QAT and train checkpoints,
tune folders) and every scratch file passes through here.

- `check_output`, before any work: an existing output is refused without `--force`; with it, it must be a
  vit-edge output of the same kind (`core/recognise.py`, by schema, never by name), and not the current folder, one
  above it, a home or root folder, or one that holds the model or data being read.
- `staged_folder`, `write_atomically`, `save_torch`: the new content appears whole or not at all (a temporary
  sibling renamed into place; a killed process's leftovers are removed by the next writer).
- A full disk is one line naming the output, whichever layer noticed it, with nothing half-written kept.
`tests/fast/test_one_writer.py` fails when a module writes a file any other way.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from vit_edge.core.errors import ArtifactError, ConfigError, DiskFullError, ExportError, VitEdgeError
from vit_edge.core.recognise import OutputKind, is_artifact, is_tune_folder, recognised
from vit_edge.core.signals import raise_if_stopped

__all__ = ["OutputKind", "append_whole", "check_output", "check_writable", "clear_output", "copy_folder",
           "held_scratch_folder", "is_artifact", "is_tune_folder", "make_folder", "replace_file", "reserved_array",
           "save_array", "write_with", "scratch_folder", "staged_folder", "write_atomically"]

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
NEARLY_FULL_BYTES = 4 << 20  # a converter that hides the errno (OpenVINO: "iostream error") leaves less than this
EXISTS_HINT = {OutputKind.QAT_CHECKPOINTS: "pass --resume to continue the run it holds, or --force to start over"}


def _refuse_special(out: Path) -> None:
    """The current folder, one above it, a home or a root folder are never an output to replace."""
    target, here = out.resolve(), Path.cwd().resolve()
    if target == here or target in here.parents:
        raise ConfigError(f"{out} is the current folder or a folder above it; choose a new folder for the output")
    if target == Path.home().resolve() or target.parent == target or target == Path(target.anchor):
        raise ConfigError(f"{out} is a home or root folder; choose a new folder for the output")


def _refuse_inputs(out: Path, reads: Sequence[tuple[str, Any]]) -> None:
    for what, source in reads:
        if isinstance(source, (str, Path)) and Path(source).exists():
            inside, target = Path(source).resolve(), out.resolve()
            if inside == target or target in inside.parents:
                raise ConfigError(f"{out} is, or contains, {what} {source}: writing there would replace it; "
                                  "choose another output")


def check_output(out: Path, kind: OutputKind, force: bool, reads: Sequence[tuple[str, Any]] = ()) -> None:
    """Refuse, before any work, an output vit-edge must not write: an existing one without `force` (an empty
    folder aside, for the folder kinds); with it, anything that is not a vit-edge output of `kind`, a special
    folder, or one that is or holds an input in `reads` ((what, path) pairs: the model, the data)."""
    out = Path(out)
    _refuse_inputs(out, reads)
    if not out.exists() and not out.is_symlink():
        return
    empty_folder = kind is not OutputKind.CHECKPOINT and out.is_dir() and not out.is_symlink() \
        and not any(out.iterdir())
    if empty_folder and kind is not OutputKind.ARTIFACT:
        return  # a folder made for the results: nothing in it to lose
    if not force:
        raise ArtifactError(f"{out} exists already; {EXISTS_HINT.get(kind, 'pass --force to replace it')}")
    _refuse_special(out)
    if not recognised(out, kind):
        raise ArtifactError(f"{out} is not a vit-edge {kind.value} (--force replaces only what vit-edge made); "
                            "choose another output, or move it away yourself")


def check_writable(folder: Path) -> None:
    """Fail before the slow part when `folder` could not be made or written (read-only disk, no rights, a file in
    the way). Nothing is created here: a command refused later, or one that fails, leaves no empty folder behind."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise ArtifactError(f"cannot write to {folder}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise ArtifactError(f"cannot write to {folder}: {exc.strerror or exc}") from exc


def full_disk_error(out: Path, exc: BaseException, where: Path | None = None) -> DiskFullError | None:
    """The one line for a write that failed for want of space, whichever layer reported it; None otherwise."""
    cause: BaseException | None = exc
    while cause is not None and not (isinstance(cause, OSError) and cause.errno in FULL_ERRNOS):
        cause = cause.__cause__ or cause.__context__
    try:
        nearly_full = where is not None and shutil.disk_usage(where).free < NEARLY_FULL_BYTES
    except OSError:
        nearly_full = False
    if cause is None and not nearly_full:
        return None
    reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else "No space left on device"
    remedy = ("the file size limit (ulimit -f) is too small" if isinstance(cause, OSError)
              and cause.errno == errno.EFBIG else "free some space or choose another output")
    return DiskFullError(f"writing {out} failed: {reason}; nothing was kept: {remedy}")


@contextlib.contextmanager
def _full_disk_is_one_line(out: Path, where: Path | None = None) -> Iterator[None]:
    try:
        yield
    except (OSError, ExportError) as exc:
        full = full_disk_error(out, exc, where)
        if full is None:
            raise
        raise full from exc


@contextlib.contextmanager
def staged_folder(out: Path, kind: OutputKind, force: bool) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `out`, on failure it is removed.

    An existing `out` is kept unless `force` (and then only if it is a vit-edge output of `kind`). A lock beside
    `out` lets one writer at a time in; an output that appears meanwhile is kept unless `force`; a replacement swaps
    the two folders in one step where Linux allows it, so `out` is never missing; partial folders left by killed
    processes are removed.
    """
    out = Path(out)
    check_output(out, kind, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _output_lock(out):
        _remove_stale_partials(out)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-{os.getpid()}-", dir=out.parent))
        try:
            with _full_disk_is_one_line(out, staging):
                yield staging
                if out.exists() and not force:
                    raise ArtifactError(f"{out} appeared while writing; it was kept (pass --force to replace it)")
                check_output(out, kind, force)  # what appeared meanwhile is replaced only if vit-edge made it
                raise_if_stopped()  # a signal a converter caught on its way up still stops the write here
                _move_into_place(staging, out)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def _output_lock(out: Path) -> Iterator[None]:
    """An exclusive lock on `.NAME.lock` beside `out` (released by the kernel if the process dies)."""
    import fcntl

    lock_path = out.parent / f".{out.name}.lock"
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ArtifactError(f"another vit-edge process is writing {out}; wait for it or choose another --out")
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                lock_path.unlink()
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_stale_partials(out: Path) -> None:
    """`.NAME.partial-PID-*` / `.NAME.old-PID-*` folders of processes that no longer run (a SIGKILL's leftovers)."""
    for leftover in out.parent.glob(f".{out.name}.*-*-*"):
        kind, _, rest = leftover.name[len(out.name) + 2 :].partition("-")
        pid = rest.partition("-")[0]
        if kind in ("partial", "old") and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _move_into_place(staging: Path, out: Path) -> None:
    """Rename `staging` to `out`; an existing `out` is exchanged in one step (Linux), else moved aside first."""
    if not out.exists():
        os.replace(staging, out)
        return
    if _exchange(staging, out):  # out now holds the new content, staging the old one
        shutil.rmtree(staging, ignore_errors=True)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-", dir=out.parent))
    os.replace(out, trash / out.name)
    os.replace(staging, out)
    shutil.rmtree(trash, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """renameat2(RENAME_EXCHANGE): swap two paths atomically; False where the kernel or libc lacks it."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange) == 0


@contextlib.contextmanager
def _partial_beside(path: Path) -> Iterator[Path]:
    """A temporary name beside `path`, renamed over it when the block ends cleanly, removed on every other path."""
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        with _full_disk_is_one_line(path):
            yield partial
            os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()


def write_atomically(path: Path, content: str | bytes) -> None:
    """`path` holds `content` or what it held before, never a part: a temporary sibling renamed over it."""
    with _partial_beside(Path(path)) as partial:
        if isinstance(content, bytes):
            partial.write_bytes(content)
        else:
            partial.write_text(content, encoding="utf-8")


def write_with(path: str | Path, write: Callable[[Path], None]) -> Path:
    """`write(name)` fills a temporary name beside `path` (torch.save for a checkpoint), renamed over `path` when
    it returns: the previous file survives any interruption; a full disk is one line."""
    path = Path(path)
    make_folder(path.parent)
    with _partial_beside(path) as partial:
        write(partial)
    return path


def save_array(path: Path, array: Any) -> Path:
    """An .npy file (np.save's format), written atomically."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array)
    write_atomically(Path(path), buffer.getvalue())
    return Path(path)


def replace_file(source: Path, destination: Path) -> None:
    """Rename a finished file over `destination` in one step (a scratch file rewritten beside its original)."""
    os.replace(source, destination)


def append_whole(path: Path, text: str) -> None:
    """Append `text` to a log file entirely or not at all: a failed write is cut back off (no half line), and a
    file this call created is removed again."""
    data = text.encode("utf-8")
    existed = path.exists()
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.fstat(descriptor).st_size
        try:
            with _full_disk_is_one_line(path):
                view = memoryview(data)
                while view:
                    view = view[os.write(descriptor, view):]
        except (OSError, VitEdgeError):
            os.ftruncate(descriptor, start)
            if not existed:
                path.unlink()
            raise
    finally:
        os.close(descriptor)


def make_folder(folder: Path) -> Path:
    """A folder (and its parents) for an output this module has already checked."""
    with _full_disk_is_one_line(folder):
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def clear_output(out: Path, kind: OutputKind, force: bool) -> None:
    """Remove an existing output before it is rewritten in place, checked again here (not only at the start):
    only what vit-edge made of `kind` is removed, and only with `force`."""
    check_output(out, kind, force)
    if out.is_dir() and not out.is_symlink():
        for entry in list(out.iterdir()):
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


def copy_folder(source: Path, destination: Path) -> None:
    """A copy of a folder vit-edge wrote (the tune's chosen artifact), whole or not at all."""
    with _full_disk_is_one_line(destination):
        partial = destination.with_name(f".{destination.name}.partial-{os.getpid()}")
        try:
            shutil.copytree(source, partial, symlinks=True)
            os.replace(partial, destination)
        finally:
            if partial.exists():
                shutil.rmtree(partial, ignore_errors=True)


@contextlib.contextmanager
def scratch_folder(prefix: str, near: Path | None = None) -> Iterator[Path]:
    """A private temporary folder for intermediate files (a bench's prepared images, a converter's work), removed
    on every path out of the block."""
    with tempfile.TemporaryDirectory(prefix=prefix, dir=near) as folder:
        yield Path(folder)


def held_scratch_folder(prefix: str) -> "tempfile.TemporaryDirectory[str]":
    """A private temporary folder that lives as long as the returned object (or until its cleanup()): for files an
    object keeps memory-mapped beyond one block (a data set's prepared images); removed at exit at the latest."""
    return tempfile.TemporaryDirectory(prefix=prefix)


def reserved_array(path: Path, dtype: Any, shape: tuple[int, ...], what: str = "the prepared images") -> Any:
    """A memory-mapped .npy whose disk space is reserved up front: a full temporary folder is one line here, not a
    SIGBUS when the mapping is written later."""
    import numpy as np

    array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    needed = path.stat().st_size
    descriptor = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(descriptor, 0, needed)
    except OSError as exc:
        if exc.errno not in FULL_ERRNOS:
            return array  # a file system that cannot reserve space: written as before
        del array
        free = shutil.disk_usage(path.parent).free
        raise DiskFullError(f"{path.parent} has {free / 2**20:.0f} MiB free, and {what} need "
                        f"{needed / 2**20:.0f} MiB: free some space, or point TMPDIR at a larger disk") from exc
    finally:
        os.close(descriptor)
    return array
