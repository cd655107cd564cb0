"""What a model family declares, as data: one `Family` per family, read by the registry, the catalogue, the
loaders, the Hugging Face reader and the checkpoint's refusals (none of them holds a family's knowledge).

A module of this package declares its families by naming them (or a tuple of them) in its `__all__`; the package
finds them there (families/__init__.py), so a new family is its module and its tests.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import torch

from vit_edge.models.config import ViTConfig

__all__ = ["Family", "HFReading", "HFClass", "OriginalWeights", "Options", "StateDict", "IMAGENET", "OPENAI_CLIP",
           "HALF", "CLASSIFIER", "DENSE_HEADS"]

Options = dict[str, Any]  # ViTConfig keyword arguments
StateDict = dict[str, torch.Tensor]
MeanStd = tuple[tuple[float, ...], tuple[float, ...]]
IMAGENET: MeanStd = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
OPENAI_CLIP: MeanStd = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
HALF: MeanStd = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
CLASSIFIER = (("classifier.", "head."),)  # transformers' image-classification head → the reference's
DENSE_HEADS = ("depth", "segmentation")  # HFClass heads of dense models (reading/dense_hf.py builds them)


@dataclass(frozen=True)
class HFClass:
    """One transformers class the family reads: what it returns, its head, its own config options and renames."""

    name: str  # the class name, as config.json's `architectures` and `type(module).__name__` give it
    output: str  # the transformers output the reference reproduces (for the manifest)
    # labels: a class per id2label; projection: CLIP's; depth, segmentation: a dense model (encoder, neck, head)
    # that reading/dense_hf.py builds (Depth Anything's ViT config read from its backbone_config)
    head: Literal["labels", "projection", "none", "depth", "segmentation"] = "none"
    options: Options = field(default_factory=dict)
    renames: tuple[tuple[str, str], ...] = ()  # literal key-prefix renames of this class, before the family's
    output_without_pooler: str = ""  # ViTModel saved without its pooler, SigLIP without its head


@dataclass(frozen=True)
class HFReading:
    """How transformers stores the family: the encoder's key prefix, the config reader, renames, input defaults."""

    prefixes: tuple[str, ...]  # where the encoder's keys live in task models; stripped where present
    options: Callable[[dict[str, Any]], Options]  # config.json → the family's ViTConfig options
    ln_eps: float  # transformers' default layer_norm_eps for the family
    renames: tuple[tuple[str, str], ...] = ()  # literal key-prefix renames tried before the shared ones
    norm: MeanStd = HALF  # mean, std without a preprocessor_config.json
    interpolation: str = "bicubic"
    # how transformers resamples the position embeddings for another input size (interpolate_pos_encoding): bicubic
    # without antialiasing for most (ViT, DeiT, DINOv2, CLIP, SigLIP); timm's sources antialias (ViTConfig's default)
    antialias: bool = False
    classes: tuple[HFClass, ...] = ()  # the transformers classes of the family (hf_compat's table is built from them)


@dataclass(frozen=True)
class OriginalWeights:
    """The authors' own checkpoint layout (not timm's names): how to recognise it and rename it to the reference's."""

    recognise: Callable[[dict[str, Any]], bool]
    to_reference: Callable[[StateDict, ViTConfig], StateDict]


@dataclass(frozen=True)
class Family:
    """One model family: its timm names, what it needs of the reference, how its weights are read, or what is missing.

    `fields` are the ViTConfig fields the family turns on (a field no family claims is a field nobody needs, and
    a test says so). A family with `missing` set does not load; the refusal names the feature and `nearest`.
    `search_order` places the family in FAMILIES, where the first timm rule that matches a name wins: 0 for a rule
    that no other family's rule shadows; a broader rule, whose names a more specific rule also matches, gets a
    higher number (clip and dinov2 1, eva and registers 2, pooled 3, the refused families 4, patch14 5); ties go
    by name, and a test checks that no tie decides a name in the timm table.
    """

    name: str
    note: str
    timm_names: str = ""  # a regex on timm names; FAMILIES is searched in order, the first match wins
    fields: tuple[str, ...] = ()
    hf: HFReading | None = None
    original_weights: OriginalWeights | None = None
    recognise_config: Callable[[ViTConfig], bool] | None = None  # for sources that do not name their family
    weight_keys: tuple[str, ...] = ()  # key fragments that show these weights are this family's
    missing: str = ""
    nearest: str = ""
    search_order: int = 0  # where FAMILIES tries timm_names: lower first (see above)

    def names_timm(self, name: str) -> bool:
        return bool(self.timm_names) and re.search(self.timm_names, name) is not None

    @property
    def loads(self) -> bool:
        return not self.missing
