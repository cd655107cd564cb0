"""The steps every verb runs, in order: check (nothing loaded yet), load, convert, verify, write.

`vit_edge.api` holds the verbs and calls these; a verb reads as the list of its steps.
"""
from __future__ import annotations

__all__: list[str] = []
