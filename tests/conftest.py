"""Shared fixtures (the helpers themselves live in tests/helpers.py)."""
from __future__ import annotations

import pytest

from tests.helpers import small_vit
from vit_edge.models.vit import VisionTransformer


@pytest.fixture
def tiny_vit() -> VisionTransformer:
    return small_vit()
