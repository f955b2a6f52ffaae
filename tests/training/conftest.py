"""Session-wide synthetic shard folders for the training tests (see shardhelpers)."""
import pytest
from shardhelpers import make_dataset


@pytest.fixture(scope="session")
def resolution_shards(tmp_path_factory):
    """96 synthetic resolution images in 3 shards (session-wide, read-only)."""
    folder = tmp_path_factory.mktemp("resolution_data")
    make_dataset(folder, 96, "resolution")
    return folder


@pytest.fixture(scope="session")
def multilattice_shards(tmp_path_factory):
    """64 synthetic multi-lattice images in 2 shards (session-wide, read-only)."""
    folder = tmp_path_factory.mktemp("multilattice_data")
    make_dataset(folder, 64, "multilattice", blank_fraction=0.0)
    return folder
