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

__all__ = ["ModelRef", "ModelFacts", "REBUILDABLE_KINDS"]

REBUILDABLE_KINDS = ("shipped", "checkpoint", "huggingface", "timm", "reference", "transreid", "depth-anything-v2")


@dataclass(frozen=True)
class ModelRef:
    """How to load an artifact's model again, and what it must hash to."""

    kind: str  # shipped | checkpoint | huggingface | timm | reference | transreid | depth-anything-v2 | module
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
    output: str = "pooled"  # pooled | tokens | features | depth (a dense model's own output)
    layers: tuple[int, ...] = ()  # the blocks a dense output stacks (empty: the last block's)
    max_depth: float | None = None  # a Depth Anything V2 checkpoint's metric range (its weights do not say it)

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
                       layers=tuple(int(index) for index in arch.get("layers") or ()),
                       max_depth=None if source.get("max_depth") is None else float(source["max_depth"]))
        except (TypeError, ValueError) as exc:
            raise ArtifactError(f"the manifest's source is damaged: {exc}") from exc

    @property
    def output_kind(self) -> str:
        """What the model returns: 'logits', 'embedding' (pooled, no head), 'tokens', 'features' or 'depth'."""
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


@dataclass(frozen=True)
class ModelFacts:
    """What an artifact's model is, for people and reports: family, what it returns and its shape, TransReID's
    selection. Read from a manifest's `source` here, once; the architecture itself stays a config (ViTConfig)."""

    kind: str
    ident: str
    family: str
    output_kind: str  # logits | embedding | tokens | features | depth
    output_shape: tuple[int, ...]  # per sample; empty where the manifest does not say (pooled outputs)
    layers: tuple[int, ...]
    depth_loaded: int | None  # the model's blocks before --layers dropped those after the last one read
    global_pool: str
    num_classes: int
    reid: tuple[int, int, str] | None  # (camera, view, neck feature) for a TransReID checkpoint
    metric_depth: bool = False  # a depth model whose output is metres (else disparity up to scale and shift)

    @classmethod
    def from_manifest(cls, source: dict[str, Any], img_size: int | tuple[int, int]) -> "ModelFacts":
        ref = ModelRef.from_manifest(source, img_size)
        arch = source.get("architecture") or {}
        try:
            depth = source.get("depth_loaded")
            return cls(kind=ref.kind, ident=ref.ident, family=str(source.get("family") or "?"),
                       output_kind=ref.output_kind,
                       output_shape=tuple(int(n) for n in source.get("output_shape") or ()), layers=ref.layers,
                       depth_loaded=None if depth is None else int(depth),
                       global_pool=str(arch.get("global_pool", "?")), num_classes=ref.num_classes,
                       reid=(ref.camera, ref.view, ref.neck_feat) if ref.kind == "transreid" else None,
                       metric_depth=bool((arch.get("head") or {}).get("metric", False)))
        except (TypeError, ValueError) as exc:
            raise ArtifactError(f"the manifest's source is damaged: {exc}") from exc

    def output_line(self) -> str:
        """The output in words: 'patch tokens (batch, 16, 384) after the final norm, ...'."""
        shape = ", ".join(map(str, self.output_shape)) or "?"
        if self.output_kind == "tokens":
            text = f"patch tokens (batch, {shape}) after the final norm, prefix tokens left out"
        elif self.output_kind == "features":
            text = f"feature map (batch, {shape}) of the normed patch tokens"
        elif self.output_kind == "depth":
            return f"depth map (batch, {shape})"
        else:
            text = (f"{self.num_classes} logits" if self.output_kind == "logits" else "pooled embedding")
            text += f", pooling {self.global_pool}"
        if self.layers:
            text += f", of blocks {', '.join(map(str, self.layers))} of {self.depth_loaded or '?'}"
        return text


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)
