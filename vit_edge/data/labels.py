"""Labels that mean what the model means: a source's class names matched to the model's outputs by name.

Folder names (or a list file's names) are matched to the model's class names (its manifest, Hugging Face's
id2label, a checkpoint's names, or a --class-names file), ignoring case, spaces and punctuation ("T-shirt_top" is
"T-shirt/top"). ImageNet synset folders (n01440764/) and ImageNet names map to the standard ImageNet-1k order for a
1000-class model. What cannot be matched is refused in one line, before anything is measured: a subset of classes
is scored by name, never by position.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from vit_edge.core.errors import DataError
from vit_edge.data.sources import ImageSource

__all__ = ["LabelMatch", "match_labels", "read_class_names", "imagenet_classes"]

IMAGENET_TABLE = Path(__file__).with_name("imagenet1k_classes.tsv")
_SYNSET = re.compile(r"^n\d{8}$")


@dataclass(frozen=True)
class LabelMatch:
    """Each image's label as a model output index, and how the source's labels were matched (for the report)."""

    labels: np.ndarray
    how: str


def _key(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", name.casefold())


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(synset, lemmas) for ImageNet-1k's 1000 classes in the standard index order."""
    rows = []
    for line in IMAGENET_TABLE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            synset, _, lemmas = line.partition("\t")
            rows.append((synset, tuple(part.strip() for part in lemmas.split(","))))
    return tuple(rows)


def read_class_names(path: str | Path) -> tuple[str, ...]:
    """A --class-names file: one name a line, in the model's output order (blank lines and '#' skipped)."""
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the class-names file {path}: {exc}") from exc
    names = tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
    if not names:
        raise DataError(f"class-names file {path} holds no names (one name a line, in the model's output order)")
    return names


def _name_index(model_names: tuple[str, ...]) -> dict[str, int]:
    """Normalised name → output index, with each comma-separated alias ('tench, Tinca tinca') where unambiguous."""
    exact: dict[str, int] = {}
    aliases: dict[str, set[int]] = {}
    for index, name in enumerate(model_names):
        exact.setdefault(_key(name), index)
        for alias in name.split(","):
            aliases.setdefault(_key(alias), set()).add(index)
    unique = {alias: next(iter(found)) for alias, found in aliases.items() if len(found) == 1 and alias}
    return {**unique, **exact}


def _imagenet_index() -> dict[str, int]:
    table = imagenet_classes()
    index = _name_index(tuple(", ".join(lemmas) for _, lemmas in table))
    index.update({synset: i for i, (synset, _) in enumerate(table)})
    return index


def match_labels(source: ImageSource, model_names: tuple[str, ...], num_classes: int,
                 names_from: str = "the model") -> LabelMatch:
    """The source's labels as indices into the model's `num_classes` outputs, matched by name; DataError when the
    source is unlabelled or a name matches none of the model's classes."""
    if source.labels is None:
        raise DataError(f"{source.origin} has no labels ({source.layout}); accuracy needs class folders, a list "
                        "file with labels, or a labelled .npz")
    if num_classes < 1:
        raise DataError(f"the model outputs an embedding, not class scores: {source.origin}'s labels cannot be "
                        "scored as top-1")
    if source.label_names is None:
        return _by_index(source.labels, source.origin, num_classes)
    if model_names and len(model_names) != num_classes:
        raise DataError(f"{names_from} names {len(model_names)} classes but the model has {num_classes} outputs; "
                        "pass --class-names FILE with one name per output")
    if not model_names and source.layout == "dataset":  # a named dataset's labels are its standard indices
        return _by_index(source.labels, source.origin, num_classes, f"{source.origin}'s standard class indices")
    if model_names:
        index, how = _name_index(model_names), f"by class name against {names_from}'s {len(model_names)} classes"
    elif num_classes == 1000:
        index, how = _imagenet_index(), "by ImageNet-1k synset or name (standard class order)"
    elif all(name.isdigit() for name in source.label_names):
        index, how = {_key(name): int(name) for name in source.label_names}, "folder names read as output indices"
    else:
        raise DataError(f"the model carries no class names, so {_listing(source.label_names)} cannot be matched to "
                        f"its {num_classes} outputs; pass --class-names FILE (one name a line, in output order)")
    if num_classes == 1000:  # ImageNet synset folders also match a 1000-class model that names its classes
        index = {**{synset: i for i, (synset, _) in enumerate(imagenet_classes())}, **index}
    found = [index.get(_key(name)) for name in source.label_names]
    missing = [name for name, hit in zip(source.label_names, found) if hit is None or hit >= num_classes]
    if missing:
        known = f" ({_listing(model_names)})" if model_names else ""
        raise DataError(f"{len(missing)} of {source.origin}'s {len(source.label_names)} classes match none of "
                        f"{names_from}'s classes{known}: {_listing(missing)}; rename them, or pass --class-names FILE")
    mapping = np.asarray(found, dtype=np.int64)
    used = len(set(mapping.tolist()))
    if used != len(found):
        raise DataError(f"two of {source.origin}'s classes match the same model class; rename one of "
                        f"{_listing(_duplicates(source.label_names, mapping))}")
    return LabelMatch(mapping[source.labels], f"{how} ({len(found)} of {num_classes} classes present)")


def _by_index(labels: np.ndarray, origin: str, num_classes: int,
              how: str = "numeric labels read as output indices") -> LabelMatch:
    if len(labels) and int(labels.max()) >= num_classes:
        raise DataError(f"{origin} has label {int(labels.max())}, but the model has {num_classes} outputs "
                        f"(labels 0 to {num_classes - 1})")
    return LabelMatch(labels.astype(np.int64), how)


def _duplicates(names: tuple[str, ...], mapping: np.ndarray) -> list[str]:
    values = mapping.tolist()
    return [name for name, value in zip(names, values) if values.count(value) > 1]


def _listing(names: tuple[str, ...] | list[str], most: int = 4) -> str:
    shown = ", ".join(repr(n) for n in list(names)[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")
