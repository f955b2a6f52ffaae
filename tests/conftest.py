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


def adsc_image_path():
    """The real ADSC Q4 SMV image that cctbx-base ships (``iotbx/detectors/adsc.img``); None when
    cctbx-base is not installed."""
    spec = importlib.util.find_spec("iotbx")
    path = Path(list(spec.submodule_search_locations)[0]) / "detectors" / "adsc.img" if spec else None
    return path if path is not None and path.is_file() else None


@pytest.fixture(scope="session")
def adsc_image() -> Path:
    """The real ADSC image (adsc_image_path); tests using it skip if cctbx-base is absent."""
    path = adsc_image_path()
    if path is None:
        pytest.skip("cctbx-base (iotbx/detectors/adsc.img) is not installed")
    return path


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One torch thread per test: the networks in the tests are tiny, and on a shared 2-core machine
    several OpenMP threads spin-wait against other processes and run many times slower."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
