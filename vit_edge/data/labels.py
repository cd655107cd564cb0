"""Labels that mean what the model means: one check for every label, and a source's class names matched to the
model's outputs by name.

Every label source (class folders, a list file, .npy/.npz arrays, a named dataset, a source built in Python, a
--class-names file) passes `check_labels` where its labels are used: integer class indices in range, names that
differ, one model name per output. Folder names (or a list file's names) are matched to the model's class names
(its manifest, Hugging Face's id2label, a checkpoint's names, or a --class-names file), ignoring case, accents,
spaces and punctuation ("T-shirt_top" is "T-shirt/top"). ImageNet synset folders (n01440764/) and ImageNet names
map to the standard ImageNet-1k order for a 1000-class model. What cannot be matched is refused in one line, before
anything is measured: a subset of classes is scored by name, never by position.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence, overload

import numpy as np

from vit_edge.core.errors import DataError
from vit_edge.data.sources import DataOptions, ImageSource

__all__ = ["LabelMatch", "check_labels", "match_labels", "read_class_names", "given_class_names", "model_class_names",
           "names_summary", "imagenet_classes", "CLASS_NAMES_HINT"]

IMAGENET_TABLE = Path(__file__).with_name("imagenet1k_classes.tsv")
_SYNSET = re.compile(r"^n\d{8}$")
# What to do about a source class that matches none of the model's: a verb whose model names its own classes
# (train) says something else.
CLASS_NAMES_HINT = "rename them, or pass --class-names FILE"


@dataclass(frozen=True)
class LabelMatch:
    """Each image's label as a model output index, and how the source's labels were matched (for the report)."""

    labels: np.ndarray
    how: str


def _key(name: str) -> str:
    """A name as matching sees it: accents, case, spaces and punctuation dropped; letters of any script kept."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
    return re.sub(r"[\W_]+", "", plain.casefold())


# -- the one check ---------------------------------------------------------------------------------------------
@overload
def check_labels(origin: str, labels: None = None, *, names: Sequence[str] | None = None,
                 num_classes: int | None = None, count: int | None = None,
                 models_own_names: bool = False) -> None: ...


@overload
def check_labels(origin: str, labels: np.ndarray | Sequence[int], *, names: Sequence[str] | None = None,
                 num_classes: int | None = None, count: int | None = None,
                 models_own_names: bool = False) -> np.ndarray: ...


def check_labels(origin: str, labels: np.ndarray | Sequence[int] | None = None, *,
                 names: Sequence[str] | None = None, num_classes: int | None = None, count: int | None = None,
                 models_own_names: bool = False) -> np.ndarray | None:
    """The check every label source passes, so no image is scored or trained against the wrong class; DataError
    in one line otherwise. Returns the labels as int64 (None when there are none).

    `labels` must be a 1-D array of integers, `count` long, from 0 to below `num_classes` (or the number of
    `names`). Float labels are refused even when every value is whole (3.0): a float column is more often the
    wrong column than indices, and a silent cast hid that. `names` must be non-empty text, no two alike once case,
    spaces and punctuation are dropped (as matching compares them); with `num_classes` they are the model's, one
    per output. With `models_own_names` (a manifest's, id2label's) the names are counted, not judged: they may
    repeat (ImageNet-1k's id2label names 'crane' twice; a source class matching such a name is refused when
    matched) and a model is not refused over them; names a user gives are judged."""
    if names is not None and not models_own_names:
        _check_names(origin, names)
    if names and num_classes is not None and len(names) != num_classes:
        raise DataError(f"{origin} names {len(names)} classes but the model has {num_classes} outputs; give one "
                        "name per output, in output order (--class-names FILE)")
    if labels is None:
        return None
    if num_classes is not None:
        limit: tuple[int, str] | None = (num_classes, f"the model has {num_classes} outputs")
    else:
        limit = (len(names), f"it names {len(names)} classes") if names is not None else None
    return _check_indices(origin, np.asarray(labels), count, limit)


def _check_names(origin: str, names: Sequence[str]) -> None:
    seen: dict[str, str] = {}
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise DataError(f"{origin} has a class name {name!r}; give every class a name (text, not empty)")
        key = _key(name)
        if key in seen:
            first = seen[key]
            twice = (f"{name!r} twice" if first == name else f"{first!r} and {name!r}, which read as one class "
                     "(case, accents, spaces and punctuation are ignored)")
            raise DataError(f"{origin} names {twice}; rename one so every class has a name of its own")
        seen.setdefault(key, name)


def _check_indices(origin: str, labels: np.ndarray, count: int | None, limit: tuple[int, str] | None) -> np.ndarray:
    if labels.ndim != 1:
        raise DataError(f"{origin}'s labels have shape {labels.shape}; expected one label per image, shape (N,)")
    if count is not None and len(labels) != count:
        raise DataError(f"{origin}: {len(labels)} labels for {count} images; give one label per image")
    if not len(labels):
        return labels.astype(np.int64)
    if labels.dtype.kind not in "iu":
        raise DataError(f"{origin}'s labels are {labels.dtype} (e.g. {labels[0].item()!r}), not integer class indices; "
                        "store them as integers (int64), with any names apart (an .npz's 'class_names')")
    low, high = int(labels.min()), int(labels.max())
    span = f"labels 0 to {limit[0] - 1}" if limit else "labels count from 0"
    if low < 0:
        raise DataError(f"{origin} has label {low}, but labels are class indices ({span}); fix or leave out the "
                        "images it labels")
    if limit is not None and high >= limit[0]:
        raise DataError(f"{origin} has label {high}, but {limit[1]} ({span})")
    return labels.astype(np.int64)


# -- names --------------------------------------------------------------------------------------------------------
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
    """A --class-names file: one name a line (read whole, spaces kept), in the model's output order (blank lines
    and '#' skipped); names that read alike are refused, since labels could not tell them apart."""
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the class-names file {path}: {exc}") from exc
    names = tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
    if not names:
        raise DataError(f"class-names file {path} holds no names (one name a line, in the model's output order)")
    check_labels(f"class-names file {path}", names=names)
    return names


def model_class_names(options: DataOptions, default: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
    """The class names to match labels against (--class-names, else the model's), and where they came from."""
    if options.class_names is None:
        return default, "the model"
    return read_class_names(options.class_names), options.class_names


def given_class_names(path: str | Path, own: Sequence[str], num_classes: int) -> tuple[str, ...]:
    """The class names an artifact keeps when export or quantize is given a --class-names file, so no later verb
    needs the flag again: one per output, checked as every name is. Where the model names its classes itself, a file
    that reads otherwise is refused (the artifact would say one thing and its folders another) and the model's own
    spelling is kept where the two read alike."""
    names = read_class_names(path)
    check_labels(f"class-names file {path}", names=names, num_classes=num_classes)
    if not _real_names(own):
        return names
    differ = [i for i, (mine, theirs) in enumerate(zip(own, names)) if _key(mine) != _key(theirs)]
    if differ:
        first = differ[0]
        raise DataError(f"class-names file {path} names {len(differ)} of the model's {len(own)} classes otherwise "
                        f"than the model does (output {first}: the model says {own[first]!r}, the file "
                        f"{names[first]!r}); leave --class-names out: the model's own names are kept, and folders "
                        "match them ignoring case, spaces and punctuation")
    return tuple(own)


def _real_names(names: Sequence[str]) -> bool:
    """Whether a model's names name anything: transformers' default id2label (LABEL_0, LABEL_1, …) does not."""
    return bool(names) and any(name != f"LABEL_{index}" for index, name in enumerate(names))


def names_summary(names: Sequence[str], most: int = 4) -> str:
    """'10 classes: T-shirt/top, Trouser, Pullover, Dress, …': a model's classes in a few words (info, models)."""
    shown = ", ".join(names[:most]) + (", …" if len(names) > most else "")
    return f"{len(names)} {'class' if len(names) == 1 else 'classes'}: {shown}"


def _name_index(model_names: tuple[str, ...]) -> dict[str, int | None]:
    """Normalised name → output index, with each comma-separated alias ('tench, Tinca tinca') where unambiguous;
    None for a name two classes share (ImageNet-1k's two 'crane's), which cannot be matched."""
    exact: dict[str, int | None] = {}
    aliases: dict[str, set[int]] = {}
    for index, name in enumerate(model_names):
        exact[_key(name)] = None if _key(name) in exact else index
        for alias in name.split(","):
            aliases.setdefault(_key(alias), set()).add(index)
    unique: dict[str, int | None] = {alias: next(iter(found)) for alias, found in aliases.items()
                                     if len(found) == 1 and alias}
    return {**unique, **exact}


def _imagenet_index() -> dict[str, int | None]:
    table = imagenet_classes()
    index = _name_index(tuple(", ".join(lemmas) for _, lemmas in table))
    index.update({synset: i for i, (synset, _) in enumerate(table)})
    return index


# -- matching -----------------------------------------------------------------------------------------------------
def match_labels(source: ImageSource, model_names: tuple[str, ...], num_classes: int,
                 names_from: str = "the model", hint: str = CLASS_NAMES_HINT) -> LabelMatch:
    """The source's labels as indices into the model's `num_classes` outputs, matched by name; DataError when the
    source is unlabelled, its labels fail `check_labels`, or a name matches none (or several) of the model's
    classes. `hint` says what to do about unmatched names where --class-names does not apply (train)."""
    if source.labels is None:
        raise DataError(f"{source.origin} has no labels ({source.layout}); accuracy needs class folders, a list "
                        "file with labels, or a labelled .npz")
    if num_classes < 1:
        raise DataError(f"the model outputs an embedding, not class scores: {source.origin}'s labels cannot be "
                        "scored as top-1")
    check_labels(names_from, names=model_names, num_classes=num_classes, models_own_names=True)
    if source.label_names is None:
        labels = check_labels(source.origin, source.labels, num_classes=num_classes, count=len(source))
        return LabelMatch(labels, "numeric labels read as output indices")
    labels = check_labels(source.origin, source.labels, names=source.label_names, count=len(source))
    if not model_names and source.layout == "dataset":  # a named dataset's labels are its standard indices
        labels = check_labels(source.origin, labels, num_classes=num_classes)
        return LabelMatch(labels, f"{source.origin}'s standard class indices")
    index, how = _model_index(source, model_names, num_classes, names_from)
    mapping = _mapping(source, index, model_names, num_classes, names_from, hint)
    return LabelMatch(mapping[labels], f"{how} ({len(mapping)} of {num_classes} classes present)")


def _model_index(source: ImageSource, model_names: tuple[str, ...], num_classes: int,
                 names_from: str) -> tuple[dict[str, int | None], str]:
    """Normalised name → the model's output index, and how the names are matched (for the report)."""
    names = source.label_names or ()
    if model_names:
        index, how = _name_index(model_names), f"by class name against {names_from}'s {len(model_names)} classes"
    elif num_classes == 1000:
        index, how = _imagenet_index(), "by ImageNet-1k synset or name (standard class order)"
    elif all(name.isdecimal() and name.isascii() for name in names):
        index, how = {_key(name): int(name) for name in names}, "folder names read as output indices"
    else:
        raise DataError(f"the model carries no class names, so {_listing(names)} cannot be matched to "
                        f"its {num_classes} outputs; pass --class-names FILE (one name a line, in output order)")
    if num_classes == 1000:  # ImageNet synset folders also match a 1000-class model that names its classes
        index = {**{synset: i for i, (synset, _) in enumerate(imagenet_classes())}, **index}
    return index, how


def _mapping(source: ImageSource, index: dict[str, int | None], model_names: tuple[str, ...], num_classes: int,
             names_from: str, hint: str) -> np.ndarray:
    """Each source class's output index; DataError for a name that matches none, several, or another's class."""
    names = source.label_names or ()
    keys = [_key(name) for name in names]
    shared = [name for name, key in zip(names, keys) if key in index and index[key] is None]
    if shared:
        raise DataError(f"{len(shared)} of {source.origin}'s classes name more than one of {names_from}'s "
                        f"classes: {_listing(shared)}; rename them to a name one class alone has (for ImageNet-1k, "
                        "its synset, e.g. n02012849)")
    found = [index.get(key) for key in keys]
    missing = [name for name, hit in zip(names, found) if hit is None or hit >= num_classes]
    if missing:
        known = f" ({_listing(model_names)})" if model_names else ""
        raise DataError(f"{len(missing)} of {source.origin}'s {len(names)} classes match none of "
                        f"{names_from}'s classes{known}: {_listing(missing)}; {hint}")
    mapping = np.asarray(found, dtype=np.int64)
    if len(set(mapping.tolist())) != len(found):
        raise DataError(f"two of {source.origin}'s classes match the same model class; rename one of "
                        f"{_listing(_duplicates(names, mapping))}")
    return mapping


def _duplicates(names: tuple[str, ...], mapping: np.ndarray) -> list[str]:
    values = mapping.tolist()
    return [name for name, value in zip(names, values) if values.count(value) > 1]


def _listing(names: tuple[str, ...] | list[str], most: int = 4) -> str:
    shown = ", ".join(repr(n) for n in list(names)[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")
