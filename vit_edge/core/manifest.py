"""The artifact: a directory with model file(s) and manifest.json, written atomically, readable without torch.

Every stage reads and writes artifacts, so `bench` can run on a board that has only numpy and one runtime.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vit_edge.core.errors import ArtifactError, ConfigError
from vit_edge.core.identity import ModelFacts, ModelRef, Provenance
from vit_edge.core.jsonfile import read_json_object
from vit_edge.core.output_kinds import ModelOutput, output_named
from vit_edge.core.parity import ParityCheck
from vit_edge.core.records import as_json, from_json
from vit_edge.core.summaries import NpuEstimate, QuantSummary
from vit_edge.core.types import InputSpec, Precision

__all__ = ["MANIFEST_NAME", "NUMERICS_CHECK", "DELEGATION_FILE", "SCHEMA_VERSION", "Manifest", "read_manifest",
           "confined_path", "sha256_file", "DelegationReport"]

MANIFEST_NAME = "manifest.json"
NUMERICS_CHECK = "numerics_check.npz"  # a few parity inputs and PyTorch's outputs: every device re-checks them
DELEGATION_FILE = "delegation.json"  # what a delegate took and left, where the exporter knows it (ExecuTorch)
SCHEMA_VERSION = 2  # 2: the manifest carries its own sha256 (manifest_sha256)
READABLE_SCHEMAS = (2,)  # 1 had no hash of its own: an edited mean/std would pass unseen, so it is not read


@dataclass(frozen=True)
class DelegationReport:
    """What ExecuTorch's exporter says of its program (delegation.json): how many XNNPACK partitions it has, the ops
    left outside them and the matmuls inside them (each by count), and the precision those run in."""

    delegate: str
    delegates: int
    fully_delegated: bool
    undelegated_ops: dict[str, int]
    gemms_in_delegate: dict[str, int]
    precision: str


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Manifest:
    """What manifest.json holds; `model_file` is the file a runtime loads (its companions are listed in `files`).
    Its sections are typed records (core/records.py writes and reads them in the JSON written before)."""

    target: str
    precision: Precision
    model_file: str
    input_spec: InputSpec
    source: Provenance
    files: dict[str, str] = field(default_factory=dict)  # relative path → sha256
    parity: ParityCheck | None = None  # None: not checked (--no-verify), `{}` in the JSON
    export_options: dict[str, Any] = field(default_factory=dict)  # the options as given (pipeline/writing.py)
    quantization: QuantSummary | None = None
    tool_versions: dict[str, str] = field(default_factory=dict)
    npu_estimate: NpuEstimate | None = None  # Vela's placement and estimate for an Ethos-U (never a measurement)
    created_at: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        """manifest.json's object (without its own hash): the format every vit-edge of this schema reads."""
        return {"target": self.target, "precision": self.precision.value, "model_file": self.model_file,
                "input_spec": self.input_spec.to_json(), "source": as_json(self.source), "files": dict(self.files),
                "parity": as_json(self.parity) if self.parity is not None else {},
                "export_options": self.export_options,
                "quantization": as_json(self.quantization) if self.quantization is not None else None,
                "tool_versions": dict(self.tool_versions),
                "npu_estimate": as_json(self.npu_estimate) if self.npu_estimate is not None else None,
                "created_at": self.created_at, "schema_version": self.schema_version}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Manifest":
        """The manifest of `data`, each section read into its record with its types checked (TypeError or
        ValueError where one is damaged: read_manifest says so in one line)."""
        if data.get("schema_version") not in READABLE_SCHEMAS:
            raise ArtifactError(f"manifest schema {data.get('schema_version')} is not one of "
                                f"{', '.join(map(str, READABLE_SCHEMAS))} (made by another vit-edge version?)")
        parity, quantization, estimate = data.get("parity"), data.get("quantization"), data.get("npu_estimate")
        return cls(target=data["target"], precision=Precision(data["precision"]), model_file=data["model_file"],
                   input_spec=InputSpec.from_json(data["input_spec"]), source=from_json(Provenance, data["source"]),
                   files=data.get("files", {}), parity=from_json(ParityCheck, parity) if parity else None,
                   export_options=data.get("export_options", {}),
                   quantization=None if quantization is None else from_json(QuantSummary, quantization),
                   tool_versions=data.get("tool_versions", {}),
                   npu_estimate=None if estimate is None else from_json(NpuEstimate, estimate),
                   **{key: data[key] for key in ("created_at", "schema_version") if key in data})

    @property
    def output_kind(self) -> str:
        """What the model file returns: 'logits', 'embedding' (pooled, no head), 'tokens' or 'features'."""
        return self.model_ref.output_kind

    @property
    def model_facts(self) -> ModelFacts:
        """What the model is (family, output and its shape), read from `source`."""
        return ModelFacts.of(self.source, self.input_spec.img_size)

    @property
    def model_ref(self) -> ModelRef:
        """The model behind the artifact, read from `source` (ArtifactError where its architecture is damaged)."""
        return ModelRef.of(self.source, self.input_spec.img_size)

    @property
    def output(self) -> ModelOutput:
        """What the model file returns, with the measures that apply to it (core/output_kinds.py)."""
        try:
            return output_named(self.output_kind)
        except ConfigError as exc:
            raise ArtifactError(f"the manifest's source is damaged: {exc}") from exc

    @property
    def judged_by_cosine(self) -> bool:
        """Embeddings and dense outputs: the index of the largest value means nothing, so no top-1 is judged."""
        return self.output.judged_by_cosine

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
    """Every manifest read carries the sha256 of its own content; an edited one, or one of a schema without a
    hash (1), is refused: there is no unhashed path for a preprocessing or class list edited by hand."""
    schema = data.get("schema_version")
    if schema == 1:
        raise ArtifactError(f"{path} has manifest schema 1, which carries no hash of its own (an edit to its "
                            "preprocessing would go unseen); export the artifact again with this vit-edge")
    if schema not in READABLE_SCHEMAS:
        raise ArtifactError(f"{path} has manifest schema {schema!r}, not one of "
                            f"{', '.join(map(str, READABLE_SCHEMAS))} (made by another vit-edge version?)")
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
