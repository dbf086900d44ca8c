"""Shared fixtures: the read-only reference data in ../shared (LLP annotations, one real clip)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared() -> Path:
    env = os.environ.get("AVVP_SHARED")
    return Path(env) if env else REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = _shared()
    if not (path / "llp").is_dir():
        pytest.skip(f"reference data not found at {path} (set AVVP_SHARED)")
    return path


@pytest.fixture(scope="session")
def llp_dir(shared_dir: Path) -> Path:
    return shared_dir / "llp"


@pytest.fixture(scope="session")
def sample_clip(shared_dir: Path) -> Path:
    return shared_dir / "llp" / "sample" / "BjCEufrlXm4.mp4"


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one torch thread (and leave the other core to other jobs);
    the setting is restored for the next test module."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
