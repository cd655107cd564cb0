"""docs/models.md's table says what the loaders' own tables hold: the timm count, each family's count and every
Hugging Face class (a table written by hand drifts the day a loader learns a family)."""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from vit_edge.reading.hf_compat import SUPPORTED_ARCHITECTURES
from vit_edge.reading.registry import TIMM_NAMES, TIMM_REFUSED, timm_entry

MODELS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "models.md"


def _row(source: str) -> str:
    return next(line for line in MODELS_PAGE.read_text().splitlines() if line.startswith(f"| {source} |"))


def test_timm_row_counts_match_the_table() -> None:
    row = _row("`timm:NAME`")
    loaded, total = map(int, re.search(r"(\d+) of timm's (\d+)", row).groups())  # type: ignore[union-attr]
    assert (loaded, total) == (len(TIMM_NAMES), len(TIMM_NAMES) + len(TIMM_REFUSED))
    assert f"{loaded} of timm's {total}" in (MODELS_PAGE.parents[1] / "README.md").read_text()  # its summary
    families = Counter(timm_entry(name).family for name in TIMM_NAMES)
    listed = {name: int(count) for name, count in re.findall(r"`([\w-]+)`[^(`]*\((\d+)", row)}
    assert listed == {family: count for family, count in families.items() if family != "test"}


def test_hugging_face_row_names_every_class() -> None:
    row = _row("Hugging Face directory").split("|")[2]  # the "what loads" column
    named = {name for name in re.findall(r"`(\w+?)(?:\(WithTeacher\))?`", row) if name[0].isupper()}
    named |= {name + "WithTeacher" for name in named if f"`{name}(WithTeacher)`" in row}
    assert named == set(SUPPORTED_ARCHITECTURES)
