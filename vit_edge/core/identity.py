"""Where an artifact's model came from, typed: enough to load the very same model again (the PyTorch reference).

A manifest's `source` is a JSON object; `ModelRef.from_manifest` reads it once, here, with its types checked,
so no other module rebuilds a model from string keys. The export-time choices that change the graph (token
merging, head-token pruning, input size, layout, TransReID's camera/view/output) are part of the reference: an
artifact's reference model is the model that was exported, not the one its name alone would give.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vit_edge.core.errors import ArtifactError, ConfigError

__all__ = ["ModelRef", "REBUILDABLE_KINDS"]

REBUILDABLE_KINDS = ("shipped", "checkpoint", "huggingface", "timm", "reference", "transreid")


@dataclass(frozen=True)
class ModelRef:
    """How to load an artifact's model again, and what it must hash to."""

    kind: str  # shipped | checkpoint | huggingface | timm | reference | transreid | module
    ident: str  # the name or path given to load_model
    weights_file: str | None
    weights_sha256: str | None
    random_init: bool
    img_size: int | tuple[int, int]
    merge: int  # ToMe's r (0: none)
    head_tokens_only: bool  # the last block computes only the tokens the head reads
    camera: int = 0
    view: int = 0
    neck_feat: str = "after"
    num_classes: int = 1  # 0: an embedding (no head); a source without an architecture reads as a classifier
    output: str = "pooled"  # pooled | tokens | features
    layers: tuple[int, ...] = ()  # the blocks a dense output stacks (empty: the last block's)

    @classmethod
    def from_manifest(cls, source: dict[str, Any], img_size: int | tuple[int, int]) -> "ModelRef":
        """The reference of a manifest's `source` (its architecture names merge and pruning) at `img_size`."""
        if not isinstance(source, dict):
            raise ArtifactError("the manifest's source is not an object")
        arch = source.get("architecture") or {}
        if not isinstance(arch, dict):
            raise ArtifactError("the manifest's source.architecture is not an object")
        try:
            return cls(kind=str(source.get("kind", "")), ident=str(source.get("id") or ""),
                       weights_file=_optional_str(source.get("weights_file")),
                       weights_sha256=_optional_str(source.get("weights_sha256")),
                       random_init=bool(source.get("random_init", False)), img_size=img_size,
                       merge=int(arch.get("merge", 0) or 0), head_tokens_only=bool(arch.get("head_tokens_only", True)),
                       camera=int(source.get("camera", 0)), view=int(source.get("view", 0)),
                       neck_feat=str(source.get("neck_feat", "after")),
                       num_classes=int(arch.get("num_classes", 1) or 0), output=str(arch.get("output", "pooled")),
                       layers=tuple(int(index) for index in arch.get("layers") or ()))
        except (TypeError, ValueError) as exc:
            raise ArtifactError(f"the manifest's source is damaged: {exc}") from exc

    @property
    def output_kind(self) -> str:
        """What the model returns: 'logits', 'embedding' (pooled, no head), 'tokens' or 'features'."""
        if self.output != "pooled":
            return self.output
        return "logits" if self.num_classes else "embedding"

    def load_name(self) -> str:
        """What load_model takes for this model; ConfigError when it cannot be rebuilt."""
        if self.random_init:
            raise ConfigError(f"the model behind this artifact ({self.ident}) was randomly initialised; it cannot be "
                              "rebuilt")
        if self.kind not in REBUILDABLE_KINDS:
            raise ConfigError(f"an artifact exported from a '{self.kind}' source cannot be rebuilt in PyTorch")
        if not self.ident:
            raise ConfigError("the artifact's manifest does not name the model it came from (source.id)")
        return f"timm:{self.ident}" if self.kind == "timm" else self.ident


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)
