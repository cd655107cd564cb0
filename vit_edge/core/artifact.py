"""The artifact: a directory with model file(s) and manifest.json, written atomically, readable without torch.

Every stage reads and writes artifacts, so `bench` can run on a board that has only numpy and one runtime.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from vit_edge.core.errors import ArtifactError, ExportError
from vit_edge.core.identity import ModelFacts, ModelRef
from vit_edge.core.jsonfile import read_json_object
from vit_edge.core.signals import raise_if_stopped
from vit_edge.core.types import InputSpec, Precision

__all__ = ["MANIFEST_NAME", "NUMERICS_CHECK", "DELEGATION_FILE", "SCHEMA_VERSION", "Manifest", "read_manifest",
           "confined_path", "atomic_artifact_dir", "check_writable", "sha256_file"]

MANIFEST_NAME = "manifest.json"
NUMERICS_CHECK = "numerics_check.npz"  # a few parity inputs and PyTorch's outputs: every device re-checks them
DELEGATION_FILE = "delegation.json"  # what a delegate took and left, where the exporter knows it (ExecuTorch)
SCHEMA_VERSION = 2  # 2: the manifest carries its own sha256 (manifest_sha256); 1 is still read, unhashed
READABLE_SCHEMAS = (1, 2)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Manifest:
    """What manifest.json holds; `model_file` is the file a runtime loads (its companions are listed in `files`)."""

    target: str
    precision: Precision
    model_file: str
    input_spec: InputSpec
    source: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)  # relative path → sha256
    parity: dict[str, Any] = field(default_factory=dict)
    export_options: dict[str, Any] = field(default_factory=dict)
    quantization: dict[str, Any] | None = None
    tool_versions: dict[str, str] = field(default_factory=dict)
    npu_estimate: dict[str, Any] | None = None  # Vela's placement and estimate for an Ethos-U (never a measurement)
    created_at: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["precision"] = self.precision.value
        data["input_spec"] = self.input_spec.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Manifest":
        if data.get("schema_version") not in READABLE_SCHEMAS:
            raise ArtifactError(f"manifest schema {data.get('schema_version')} is not one of "
                                f"{', '.join(map(str, READABLE_SCHEMAS))} (made by another vit-edge version?)")
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        fields["precision"] = Precision(data["precision"])
        fields["input_spec"] = InputSpec.from_json(data["input_spec"])
        return cls(**fields)

    @property
    def output_kind(self) -> str:
        """What the model file returns: 'logits', 'embedding' (pooled, no head), 'tokens' or 'features'."""
        return self.model_ref.output_kind

    @property
    def model_facts(self) -> ModelFacts:
        """What the model is (family, output and its shape), read from `source` once with its types checked."""
        return ModelFacts.from_manifest(self.source, self.input_spec.img_size)

    @property
    def model_ref(self) -> ModelRef:
        """The model behind the artifact, read from `source` once with its types checked (ArtifactError if not)."""
        return ModelRef.from_manifest(self.source, self.input_spec.img_size)

    @property
    def judged_by_cosine(self) -> bool:
        """Embeddings and dense outputs: the index of the largest value means nothing, so no top-1 is judged."""
        return self.output_kind != "logits"

    def record_files(self, root: Path) -> None:
        """Hash every file in the artifact except the manifest itself."""
        self.files = {
            str(path.relative_to(root)): sha256_file(path)
            for path in sorted(root.rglob("*"))
            if path.is_file() and path.name != MANIFEST_NAME
        }

    def size_bytes(self, root: Path) -> int:
        """What the artifact weighs on disk (every listed file; the manifest itself is negligible)."""
        return sum((root / name).stat().st_size for name in self.files if (root / name).is_file())

    def write(self, root: Path) -> Path:
        """manifest.json with its own sha256 (over every other field) as `manifest_sha256`."""
        path = root / MANIFEST_NAME
        data = self.to_json()
        data[MANIFEST_HASH] = manifest_digest(data)
        path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
        return path


MANIFEST_HASH = "manifest_sha256"


def manifest_digest(data: dict[str, Any]) -> str:
    """sha256 of a manifest's canonical JSON without its own hash: any edit to a field changes it."""
    body = {key: value for key, value in data.items() if key != MANIFEST_HASH}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _check_manifest_hash(path: Path, data: dict[str, Any]) -> None:
    """Schema 2 manifests must carry the sha256 of their own content; an edited one is refused."""
    if data.get("schema_version", 0) < 2:
        return  # written before manifests were hashed: its files are still checked
    if data.get(MANIFEST_HASH) != manifest_digest(data):
        raise ArtifactError(f"{path} was edited after export (its manifest_sha256 does not match its content); "
                            "export the artifact again")


def read_manifest(artifact: str | Path, verify_files: bool = True) -> Manifest:
    """Load an artifact's manifest, with every path it names confined to the artifact folder and (unless
    `verify_files` is off) every file's sha256 checked: a corrupt, edited or swapped file is caught at load."""
    root = Path(artifact)
    path = root / MANIFEST_NAME
    if not root.is_dir():
        raise ArtifactError(f"{root} is not an artifact directory (run  vit-edge export  first)")
    if not path.exists():
        raise ArtifactError(f"{root} has no {MANIFEST_NAME}: not a vit-edge artifact, or an interrupted one")
    data = read_json_object(path, ArtifactError)
    try:
        _check_manifest_hash(path, data)
        manifest = Manifest.from_json(data)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise ArtifactError(f"{path} is damaged: {exc}") from exc
    if not isinstance(manifest.files, dict) or not isinstance(manifest.model_file, str):
        raise ArtifactError(f"{path} is damaged: 'files' must map names to sha256 and 'model_file' be a name")
    for name in [manifest.model_file, *manifest.files]:
        confined_path(root, name)
    if manifest.model_file not in manifest.files:
        raise ArtifactError(f"{root}: the model file {manifest.model_file} is not among the manifest's files")
    if verify_files:
        for name, expected in manifest.files.items():
            file = root / name
            if not file.exists():
                raise ArtifactError(f"{root}: file {name} listed in the manifest is missing")
            if not file.is_file():
                raise ArtifactError(f"{root}: {name} listed in the manifest is not a regular file")
            try:
                digest = sha256_file(file)
            except OSError as exc:
                raise ArtifactError(f"cannot read {file}: {exc.strerror or exc}") from exc
            if digest != expected:
                raise ArtifactError(f"{root}: {name} does not match its sha256 in the manifest (corrupt or edited)")
    return manifest


def confined_path(root: Path, name: str) -> Path:
    """`root / name`, refused when `name` is absolute, climbs out with '..', or is a link that leads outside."""
    relative = Path(str(name))
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise ArtifactError(f"{root}: the manifest names '{name}', which is not a path inside the artifact")
    resolved = (root / relative).resolve()
    if resolved != root.resolve() and root.resolve() not in resolved.parents:
        raise ArtifactError(f"{root}: '{name}' leads outside the artifact (a symbolic link?)")
    return root / relative


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


@contextlib.contextmanager
def atomic_artifact_dir(out: Path, force: bool) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces `out`, on failure it is removed.

    An existing `out` is kept unless `force`, so a user's files are never overwritten by accident. A lock beside
    `out` lets one writer at a time in; an output that appears while the export runs is kept (not replaced)
    unless `force`; a replacement swaps the two directories in one step where Linux allows it, so `out` is never
    missing; partial folders left by killed processes are removed.
    """
    out = Path(out)
    _check_output(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _output_lock(out):
        _remove_stale_partials(out)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-{os.getpid()}-", dir=out.parent))
        try:
            yield staging
            if out.exists() and not force:
                raise ArtifactError(f"{out} appeared while exporting; it was kept (pass --force to replace it)")
            _check_output(out, force)  # what appeared meanwhile is replaced only if vit-edge made it
            raise_if_stopped()  # a signal a converter caught on its way up still stops the export here
            _move_into_place(staging, out)
        except (OSError, ExportError) as exc:
            full = _full_disk_error(out, staging, exc)
            if full is None:
                raise
            raise full from exc
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)


FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
NEARLY_FULL_BYTES = 4 << 20  # a converter that hides the errno (OpenVINO: "iostream error") leaves less than this


def _full_disk_error(out: Path, staging: Path, exc: BaseException) -> ArtifactError | None:
    """The one line for a write that failed for want of space, whichever layer reported it; None otherwise."""
    cause: BaseException | None = exc
    while cause is not None and not (isinstance(cause, OSError) and cause.errno in FULL_ERRNOS):
        cause = cause.__cause__ or cause.__context__
    try:
        nearly_full = shutil.disk_usage(staging).free < NEARLY_FULL_BYTES
    except OSError:
        nearly_full = False
    if cause is None and not nearly_full:
        return None
    reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else "No space left on device"
    return ArtifactError(f"writing {out} failed: {reason}; nothing was kept: free some space or choose another --out")


def _check_output(out: Path, force: bool) -> None:
    from vit_edge.core.outputs import OutputKind, check_output

    check_output(out, OutputKind.ARTIFACT, force)


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
    if _exchange(staging, out):  # out now holds the new artifact, staging the old one
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
