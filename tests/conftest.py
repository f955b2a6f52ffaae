"""Shared test fixtures: where the project's shared real data live (beside the checkout)."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("XRAIS_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real images with provenance); tests using it skip only if it is absent."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip(f"shared data folder not found at {path}")
    return path


@pytest.fixture(scope="session")
def shared_reference() -> Path:
    """../shared/reference (nanoBragg reference cases, the paper)."""
    path = SHARED / "reference"
    if not path.is_dir():
        pytest.skip(f"shared reference folder not found at {path}")
    return path
