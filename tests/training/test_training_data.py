"""Shard reading, the stable validation split, augmentation, and launcher environments."""
import logging

import h5py
import hdf5plugin
import numpy as np
import pytest
from shardhelpers import make_dataset, write_shard

from xrais.sim.dataset import read_labels, shard_paths
from xrais.training import DataError, QuadrantDataset, launch_environment, open_shards, validation_mask


def test_open_shards_reads_labels_geometry_and_identity(resolution_shards):
    shards = open_shards([str(resolution_shards)], "resolution")
    assert len(shards) == 96 and shards.recipe == "resolution" and len(shards.paths) == 3
    assert shards.identity[0] == "resolution:7:0" and shards.identity[95] == "resolution:7:95"
    geometry = shards.geometry()
    assert geometry.shape == (96, 4) and set(geometry[:, 3]) <= {2.0, 4.0}
    assert shards.target("resolution").dtype == np.float32
    assert set(shards.summary()["detectors"]) <= {"PILATUS 6M", "EIGER 16M"}


def test_split_is_stable_whatever_the_shard_order(resolution_shards):
    paths = sorted(str(p) for p in resolution_shards.glob("*.h5"))
    forward = open_shards(paths, "resolution")
    backward = open_shards(paths[::-1], "resolution")
    held_forward = set(forward.identity[validation_mask(forward.identity, 0.1, 0)])
    held_backward = set(backward.identity[validation_mask(backward.identity, 0.1, 0)])
    assert held_forward == held_backward and 3 <= len(held_forward) <= 20
    alone = open_shards(paths[:1])  # a shard on its own keeps its images on the same side
    assert set(alone.identity[validation_mask(alone.identity, 0.1, 0)]) == held_forward & set(alone.identity)
    many = validation_mask([f"image:{k}" for k in range(20000)], 0.1, 5)
    assert abs(many.mean() - 0.1) < 0.01
    assert not np.array_equal(validation_mask(forward.identity, 0.3, 0), validation_mask(forward.identity, 0.3, 1))


def test_incomplete_and_broken_shards(tmp_path, caplog):
    make_dataset(tmp_path / "ok", 4, shard_size=4)
    image = np.zeros((1, 512, 512), np.uint16)
    labels = {"inverse_d": [0.5], "is_multi": [0], "wavelength": [1.0], "distance": [200.0], "pixel_size": [0.172],
              "downsample": [2]}
    write_shard(tmp_path / "ok" / "resolution_99999.h5", image, labels, complete=False, first_index=99)
    with caplog.at_level(logging.WARNING):
        assert len(open_shards([str(tmp_path / "ok")])) == 4
    assert "skipped 1 incomplete shard" in caplog.text
    (tmp_path / "only_partial").mkdir()
    write_shard(tmp_path / "only_partial" / "a.h5", image, labels, complete=False)
    with pytest.raises(DataError, match=r"no complete shard among the inputs \(1 incomplete\)"):
        open_shards([str(tmp_path / "only_partial")])
    del labels["distance"]
    write_shard(tmp_path / "missing.h5", image, labels)
    with pytest.raises(DataError, match="missing.h5: label column.* distance missing"):
        open_shards([str(tmp_path / "missing.h5")])
    with pytest.raises(DataError, match="no such file or folder"):
        open_shards([str(tmp_path / "nowhere")])
    with pytest.raises(DataError, match="same image appears twice"):
        open_shards([str(tmp_path / "ok" / "resolution_00000.h5")] * 2)


def test_a_label_column_some_shards_lack_is_left_out(tmp_path):
    """A recipe that records a new column: older shards lack it, and the merged tables (of the
    training reader and of the dataset's own reader) keep only the columns every shard has, each
    the length of the whole set."""
    image = np.zeros((2, 512, 512), np.uint16)
    labels = {"inverse_d": [0.5, 0.4], "is_multi": [0, 0], "wavelength": [1.0, 1.0], "distance": [200.0, 250.0],
              "pixel_size": [0.172, 0.172], "downsample": [2, 2]}
    write_shard(tmp_path / "resolution_00000.h5", image, labels, first_index=0)
    write_shard(tmp_path / "resolution_00001.h5", image, dict(labels, lattice_split_deg=[0.0, 0.0]), first_index=2)
    shards = open_shards([str(tmp_path)], "resolution")
    assert len(shards) == 4 and "lattice_split_deg" not in shards.labels
    assert all(len(values) == 4 for values in shards.labels.values())
    table = read_labels(shard_paths(str(tmp_path)))
    assert "lattice_split_deg" not in table and set(table) == set(labels)
    assert all(len(values) == 4 for values in table.values())
    assert "lattice_split_deg" in open_shards([str(tmp_path / "resolution_00001.h5")]).labels


def test_lz4_shards_are_read(tmp_path):
    image = np.arange(512 * 512, dtype=np.uint32).reshape(1, 512, 512).astype(np.uint16)
    with h5py.File(tmp_path / "lz4.h5", "w") as handle:
        handle.attrs.update({"recipe": "multilattice", "complete": True})
        handle.create_dataset("images", data=image, chunks=(1, 512, 512), **hdf5plugin.LZ4())
        for name, value in (("is_multi", 1), ("wavelength", 1.0), ("distance", 200.0), ("pixel_size", 0.1),
                            ("downsample", 4)):
            handle.create_dataset(f"labels/{name}", data=np.array([value]))
    shards = open_shards([str(tmp_path / "lz4.h5")], "multilattice")
    assert shards.identity[0] == "lz4.h5:0"
    dataset = QuadrantDataset(shards, np.array([0]), "multilattice")
    pixels, geometry, target = dataset[0]
    np.testing.assert_array_equal(pixels.numpy(), image[0].astype(np.float32))
    assert target == 1.0 and geometry.tolist() == pytest.approx([1.0, 200.0, 0.1, 4.0])


def test_transposition_keeps_the_beam_corner_and_is_reproducible(resolution_shards):
    shards = open_shards([str(resolution_shards)], "resolution")
    indices = np.arange(16)
    plain = QuadrantDataset(shards, indices, "resolution")
    augmented = QuadrantDataset(shards, indices, "resolution", augment=True, seed=3)
    augmented.set_epoch(1)
    first = augmented.transpose.copy()
    assert 0 < first.sum() < 16
    for i in range(16):
        expected = plain[i][0].T if first[i] else plain[i][0]
        assert np.array_equal(augmented[i][0].numpy(), expected.numpy())
    augmented.set_epoch(2)
    second = augmented.transpose.copy()
    augmented.set_epoch(1)
    assert np.array_equal(augmented.transpose, first) and not np.array_equal(first, second)


def test_launch_environment_from_mpi_and_torchrun():
    openmpi = launch_environment({"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "8",
                                  "OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "4",
                                  "MASTER_ADDR": "node01"})
    assert (openmpi["RANK"], openmpi["WORLD_SIZE"], openmpi["LOCAL_RANK"], openmpi["LOCAL_WORLD_SIZE"]) == ("3", "8", "1", "4")
    assert openmpi["MASTER_ADDR"] == "node01" and openmpi["MASTER_PORT"] == "29500"
    mpich = launch_environment({"PMI_RANK": "1", "PMI_SIZE": "2", "MPI_LOCALRANKID": "1", "MPI_LOCALNRANKS": "2",
                                "MASTER_ADDR": "127.0.0.1"})
    assert (mpich["RANK"], mpich["WORLD_SIZE"], mpich["LOCAL_RANK"], mpich["LOCAL_WORLD_SIZE"]) == ("1", "2", "1", "2")
    torchrun = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "h",
                "MASTER_PORT": "1234", "PMI_RANK": "5", "PMI_SIZE": "9"}
    assert launch_environment(dict(torchrun)) == torchrun  # torchrun's variables win
    assert launch_environment({}) == {}  # one process: nothing to set up
