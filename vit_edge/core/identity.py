"""Where an artifact's model came from, typed: the loaders write a `Provenance` (a manifest's `source`), and
`ModelRef` reads from it enough to load the very same model again (the PyTorch reference).

The export-time choices that change the graph (token merging, head-token pruning, input size, layout, TransReID's
camera/view/output) are part of the reference: an artifact's reference model is the model that was exported, not
the one its name alone would give.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vit_edge.core.errors import ArtifactError, ConfigError
from vit_edge.core.records import extra, flat, optional, renamed

__all__ = ["Provenance", "V2Checkpoint", "MaskReading", "ReidSource", "MergeCost", "ModelRef", "ModelFacts",
           "REBUILDABLE_KINDS"]

REBUILDABLE_KINDS = ("shipped", "checkpoint", "huggingface", "timm", "reference", "transreid", "depth-anything-v2")


@dataclass(frozen=True)
class ReidSource:
    """A TransReID checkpoint: the camera/view and output chosen at export, and what its weights hold (the
    side-information table, its scale, JPM's branch)."""

    camera: int
    view: int
    neck_feat: str
    sie_index: int
    sie_embeds: int
    sie_coe: float
    jpm: str | None


@dataclass(frozen=True)
class MergeCost:
    """Token merging (ToMe): its r, the tokens each block computes on, and on labelled data what it cost."""

    r: int
    tokens_per_block: tuple[int, ...] | None
    images: int | None = optional()
    top1_unmerged: float | None = optional()
    top1_merged: float | None = optional()
    drop: float | None = optional()


@dataclass(frozen=True)
class MaskReading:
    """How a segmentation model's masks store classes, as its Hugging Face config and processor say
    (core/segmentation_metrics.MaskLabels reads it)."""

    reduce_labels: bool = False  # ADE20K's layout: 0 is 'other', class k stored as k + 1
    ignore_index: int = 255

    def __post_init__(self) -> None:
        if self.ignore_index < 0:
            raise ValueError(f"mask_labels.ignore_index {self.ignore_index} is negative; a mask value is ≥ 0")


@dataclass(frozen=True)
class V2Checkpoint:
    """A Depth Anything V2 checkpoint in its authors' layout (reading/depth_anything_v2.py): which of their encoders,
    the blocks its head reads, and whether it is metric: sigmoid × `max_depth` metres, which the weights do not say
    and a rebuilt model needs again."""

    encoder: str  # vits | vitb | vitl | vitg
    blocks_read: tuple[int, ...]
    depth_kind: str  # relative | metric
    max_depth: float | None = None  # written as null for a relative model, as the loader always has


@dataclass(frozen=True)
class Provenance:
    """Where a model came from (a manifest's `source`), written by the loaders as they load it: the kind of
    source and its name, the family, the weights and their sha256, the architecture, and what export changed
    (input size, merging, output, class names)."""

    kind: str = ""  # shipped | checkpoint | huggingface | timm | reference | transreid | depth-anything-v2 | module
    ident: str = renamed("id", "")  # the name or path given to load_model
    family: str | None = optional()
    hf_architecture: str | None = optional()  # a transformers model: its class
    hf_output: str | None = optional(key="output")  # ... and the output the artifact computes (pooler_output, ...)
    weights_file: str | None = optional()
    random_init: bool | None = optional()
    reid: ReidSource | None = flat(None)
    train: dict[str, Any] | None = optional()  # a vit-edge checkpoint's training record, as the checkpoint holds it
    pos_embed_resampled_from: int | tuple[int, int] | None = optional()  # the size the position embedding was for
    depth_loaded: int | None = optional()  # the blocks before --layers dropped those after the last one read
    merge: MergeCost | None = optional()
    architecture: dict[str, Any] | None = optional()  # the config's own JSON (ViTConfig.to_json, DenseConfig's)
    output_shape: tuple[int, ...] | None = optional()  # per sample, for a dense output
    tokens_per_block: tuple[int, ...] | None = optional()  # with token merging
    weights_sha256: str | None = optional()  # of the weights as loaded: what a rebuilt model must match
    class_names_from: str | None = optional()  # the --class-names file the artifact's names came from
    mask_labels: MaskReading | None = optional()  # a segmentation model's masks
    v2_checkpoint: V2Checkpoint | None = flat(None)  # kind depth-anything-v2: what the file alone does not say
    unknown: dict[str, Any] = extra()


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
    dynamic_size: bool = False  # a graph for any input size (the position table resampled at every call)
    max_depth: float | None = None  # a Depth Anything V2 checkpoint's metric range (its weights do not say it)

    @classmethod
    def of(cls, source: Provenance, img_size: int | tuple[int, int]) -> "ModelRef":
        """The reference of a model's source (its architecture names merge and pruning) at `img_size`; the
        architecture is the config's own JSON, read here (ArtifactError where it is damaged)."""
        arch = source.architecture or {}
        reid = source.reid
        try:
            return cls(kind=source.kind, ident=source.ident, weights_file=source.weights_file,
                       weights_sha256=source.weights_sha256, random_init=bool(source.random_init), img_size=img_size,
                       merge=int(arch.get("merge", 0) or 0), head_tokens_only=bool(arch.get("head_tokens_only", True)),
                       camera=reid.camera if reid else 0, view=reid.view if reid else 0,
                       neck_feat=reid.neck_feat if reid else "after",
                       num_classes=int(arch.get("num_classes", 1) or 0), output=str(arch.get("output", "pooled")),
                       layers=tuple(int(index) for index in arch.get("layers") or ()),
                       dynamic_size=bool(arch.get("dynamic_size", False)),
                       max_depth=source.v2_checkpoint.max_depth if source.v2_checkpoint else None)
        except (TypeError, ValueError) as exc:
            raise ArtifactError(f"the manifest's source is damaged: {exc}") from exc

    @property
    def output_kind(self) -> str:
        """What the model returns: 'logits', 'embedding' (pooled, no head), 'tokens', 'features', 'depth' or
        'segmentation'."""
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
    output_kind: str  # logits | embedding | tokens | features | depth | segmentation
    output_shape: tuple[int, ...]  # per sample; empty where the manifest does not say (pooled outputs)
    layers: tuple[int, ...]
    depth_loaded: int | None  # the model's blocks before --layers dropped those after the last one read
    global_pool: str
    num_classes: int
    reid: tuple[int, int, str] | None  # (camera, view, neck feature) for a TransReID checkpoint
    metric_depth: bool = False  # a depth model whose output is metres (else disparity up to scale and shift)

    @classmethod
    def of(cls, source: Provenance, img_size: int | tuple[int, int]) -> "ModelFacts":
        ref = ModelRef.of(source, img_size)
        arch = source.architecture or {}
        head = arch.get("head")
        return cls(kind=ref.kind, ident=ref.ident, family=source.family or "?", output_kind=ref.output_kind,
                   output_shape=source.output_shape or (), layers=ref.layers, depth_loaded=source.depth_loaded,
                   global_pool=str(arch.get("global_pool", "?")), num_classes=ref.num_classes,
                   reid=(ref.camera, ref.view, ref.neck_feat) if ref.kind == "transreid" else None,
                   metric_depth=bool(head.get("metric", False)) if isinstance(head, dict) else False)

    def output_line(self) -> str:
        """The output in words: 'patch tokens (batch, 16, 384) after the final norm, ...'."""
        shape = ", ".join(map(str, self.output_shape)) or "?"
        if self.output_kind == "tokens":
            text = f"patch tokens (batch, {shape}) after the final norm, prefix tokens left out"
        elif self.output_kind == "features":
            text = f"feature map (batch, {shape}) of the normed patch tokens"
        elif self.output_kind == "depth":
            return f"depth map (batch, {shape})"
        elif self.output_kind == "segmentation":
            return f"segmentation logits (batch, {shape}): {self.num_classes} classes per pixel"
        else:
            text = (f"{self.num_classes} logits" if self.output_kind == "logits" else "pooled embedding")
            text += f", pooling {self.global_pool}"
        if self.layers:
            text += f", of blocks {', '.join(map(str, self.layers))} of {self.depth_loaded or '?'}"
        return text

