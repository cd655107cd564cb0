"""What loads, as one table: `vit-edge models` prints it and the README's model section is its output.

Rows come from the same tables the loaders read (the timm table, the Hugging Face architectures, the reference
variants), so the list cannot drift from what really loads.
"""
from __future__ import annotations

from collections import defaultdict

from vit_edge.core.errors import ConfigError, did_you_mean
from vit_edge.reading.families import FAMILIES
from vit_edge.reading.registry import (
    REFERENCE_NAMES,
    SHIPPED_MODELS,
    TIMM_FAMILIES,
    TIMM_NAMES,
    TIMM_REFUSED,
    timm_entry,
)

__all__ = ["model_rows", "timm_rows", "FAMILY_NOTES"]

# one line per family that loads, from its declaration in reading/families
FAMILY_NOTES = {entry.name: entry.note for entry in FAMILIES if entry.loads}


def _spec_text(name: str) -> str:
    entry = timm_entry(name)
    cfg, spec = entry.config, entry.spec
    size = f"{spec.height}" if spec.height == spec.width else f"{spec.height}x{spec.width}"
    output = f"{cfg.num_classes} classes" if cfg.num_classes else f"{cfg.output_dim}-d embedding"
    mean = "imagenet" if spec.mean[0] == 0.485 else ("0.5" if spec.mean[0] == 0.5 else "clip")
    return f"{size} px, mean/std {mean}, crop {spec.crop_pct:g}, {spec.interpolation}; {output}"


def timm_rows(family: str | None = None, unsupported: bool = False) -> list[str]:
    """One line per timm name (of `family`), or the names that do not load and the feature each needs."""
    if family is not None and family not in TIMM_FAMILIES:
        raise ConfigError(f"unknown family '{family}'{did_you_mean(family, TIMM_FAMILIES)}; known: "
                          f"{', '.join(TIMM_FAMILIES)}")
    if unsupported:
        return [f"timm:{name}  needs {feature}" for name, (its_family, feature) in TIMM_REFUSED.items()
                if family is None or its_family == family]
    by_family: dict[str, list[str]] = defaultdict(list)
    for name in TIMM_NAMES:
        by_family[timm_entry(name).family].append(name)
    rows = []
    for fam in sorted(by_family):
        if family is not None and fam != family:
            continue
        rows.append(f"[{fam}] {FAMILY_NOTES.get(fam, '')} ({len(by_family[fam])} names)")
        rows.extend(f"  timm:{name:<42} {_spec_text(name)}" for name in sorted(by_family[fam]))
    return rows


def _shipped_text(name: str) -> str:
    """A shipped model and the classes it names (its checkpoint is small: reading it costs milliseconds)."""
    from vit_edge.data.labels import names_summary
    from vit_edge.reading.checkpoint import load_checkpoint

    names = load_checkpoint(SHIPPED_MODELS[name])[1].class_names
    return f"{name} ({names_summary(names)})" if names else name


def _other_rows() -> list[str]:
    from vit_edge.reading.hf_compat import SUPPORTED_ARCHITECTURES

    shipped = ", ".join(_shipped_text(name) for name in SHIPPED_MODELS)
    rows = ["shipped:   " + shipped + "  (weights inside the package)",
            "reference: " + ", ".join(REFERENCE_NAMES) + "  (--weights FILE or --random-init)",
            "Hugging Face directories (config.json + weights; transformers not needed):"]
    for name, arch in SUPPORTED_ARCHITECTURES.items():
        rows.append(f"  {name:<44} family {arch.family.name}, output {arch.output}")
    rows += ["TransReID checkpoints (.pth as its training saves them): ViT-B/16 with overlapping patches, "
             "SIE camera/view fixed at export (--camera/--view), output the BNNeck feature (--neck-feat)",
             "vit-edge checkpoints (vit-edge train), and model objects in memory (timm, transformers, vit-edge)",
             f"timm: {len(TIMM_NAMES)} names in {len(TIMM_FAMILIES)} families (vit-edge models --family NAME lists "
             "them; --unsupported lists the rest and why)"]
    return rows


def model_rows(family: str | None = None, unsupported: bool = False) -> list[str]:
    """The whole catalogue, or one timm family's names."""
    if family is not None or unsupported:
        return timm_rows(family, unsupported)
    counts: dict[str, int] = defaultdict(int)
    for name in TIMM_NAMES:
        counts[timm_entry(name).family] += 1
    rows = _other_rows()
    rows += [f"  [{fam}] {count:>3} names  {FAMILY_NOTES.get(fam, '')}" for fam, count in sorted(counts.items())]
    return rows
