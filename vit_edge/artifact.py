"""The artifact: a directory with model file(s) and manifest.json, written atomically, readable without torch.

Every stage reads and writes artifacts, so `bench` can run on a board that has only numpy and one runtime.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from vit_edge.errors import ArtifactError
from vit_edge.types import InputSpec, Precision

__all__ = ["MANIFEST_NAME", "SCHEMA_VERSION", "Manifest", "read_manifest", "confined_path", "atomic_artifact_dir",
           "sha256_file"]

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = 1


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
    created_at: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["precision"] = self.precision.value
        data["input_spec"] = self.input_spec.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Manifest":
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ArtifactError(f"manifest schema {data.get('schema_version')} is not {SCHEMA_VERSION}")
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        fields["precision"] = Precision(data["precision"])
        fields["input_spec"] = InputSpec.from_json(data["input_spec"])
        return cls(**fields)

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
        path = root / MANIFEST_NAME
        path.write_text(json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n")
        return path


def read_manifest(artifact: str | Path, verify_files: bool = True) -> Manifest:
    """Load an artifact's manifest, with every path it names confined to the artifact folder and (unless
    `verify_files` is off) every file's sha256 checked: a corrupt, edited or swapped file is caught at load."""
    root = Path(artifact)
    path = root / MANIFEST_NAME
    if not root.is_dir():
        raise ArtifactError(f"{root} is not an artifact directory (run  vit-edge export  first)")
    if not path.is_file():
        raise ArtifactError(f"{root} has no {MANIFEST_NAME}: not a vit-edge artifact, or an interrupted one")
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise TypeError(f"expected a JSON object, found a {type(data).__name__}")
        manifest = Manifest.from_json(data)
    except (json.JSONDecodeError, KeyError, ValueError, TypeError, AttributeError, UnicodeDecodeError) as exc:
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
            if not file.is_file():
                raise ArtifactError(f"{root}: file {name} listed in the manifest is missing")
            if sha256_file(file) != expected:
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


@contextlib.contextmanager
def atomic_artifact_dir(out: Path, force: bool) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces `out`, on failure it is removed.

    An existing `out` is kept unless `force`, so a user's files are never overwritten by accident.
    """
    out = Path(out)
    if out.exists() and not force:
        raise ArtifactError(f"{out} exists already; pass --force to replace it")
    if out.exists() and not out.is_dir():
        raise ArtifactError(f"{out} exists and is not a directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield staging
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, trash / out.name)
            os.replace(staging, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
