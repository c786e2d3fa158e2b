"""Fixtures of the renderer tests."""

from __future__ import annotations

from typing import Any

import pytest

from render.helpers import POLICIES, REPRESENTATIVE_SPECS, render


@pytest.fixture(params=sorted(REPRESENTATIVE_SPECS), ids=str)
def representative(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """The rendering of each representative store, with two policies selecting it."""
    return render(REPRESENTATIVE_SPECS[request.param], POLICIES)
