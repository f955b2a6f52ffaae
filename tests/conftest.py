"""Shared test fixtures: where the project's shared real data live (beside the checkout)."""
import importlib.util
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


@pytest.fixture(scope="session")
def adsc_image() -> Path:
    """The real ADSC Q4 SMV image that cctbx-base ships (``iotbx/detectors/adsc.img``)."""
    spec = importlib.util.find_spec("iotbx")
    path = Path(list(spec.submodule_search_locations)[0]) / "detectors" / "adsc.img" if spec else None
    if path is None or not path.is_file():
        pytest.skip("cctbx-base (iotbx/detectors/adsc.img) is not installed")
    return path
