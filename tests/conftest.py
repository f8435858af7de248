"""Shared fixtures: where the real scene data lives, and small synthetic scenes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path | None:
    """The shared real-scene folder ($GSCACHE_DATA, else ../shared/data beside the repo), or None."""
    env = os.environ.get("GSCACHE_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture
def shared_data() -> Path:
    path = data_dir()
    if path is None:
        pytest.skip("real scene data not found: set GSCACHE_DATA or place it at ../shared/data")
    return path


def data_file(name: str) -> Path:
    """A file of the shared data, or a skip with the reason."""
    path = data_dir()
    if path is None or not (path / name).exists():
        pytest.skip(f"real scene data {name!r} not found: set GSCACHE_DATA or place it at ../shared/data")
    return path / name
