"""Training-set generation: recipes, shards, resumption, parallel layouts (nproc, MPI), montages."""
import dataclasses
import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from xrais.command_line.simulate import program as simulate
from xrais.sim.dataset import plan_shards, read_labels, shard_paths
from xrais.sim.training_images import render_training_image
from xrais.io import detectors
from xrais.sim.recipes import MIN_SPLIT_DEG, quadrant_reach_mm, ring_radius_mm, sample_spec

POOL = 3


@pytest.fixture(scope="module")
def structure_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("structures"))


def _simulate(tmp_path, cache, *words):
    code = simulate(["recipe=resolution", "n_images=4", "shard_size=2", f"structures.pool_size={POOL}",
                     f"structures.cache={cache}", "output.log=None", *words])
    assert code == 0


def _images(directory):
    out = []
    for path in shard_paths(str(directory)):
        with h5py.File(path, "r") as handle:
            out.append(handle["images"][()])
    return np.concatenate(out)


def test_recipe_draws_are_reproducible_and_follow_the_paper():
    a = sample_spec("multilattice", 17, seed=3, n_structures=10)
    assert a == sample_spec("multilattice", 17, seed=3, n_structures=10)
    assert a != sample_spec("multilattice", 18, seed=3, n_structures=10)
    specs = [sample_spec("multilattice", i, seed=0, n_structures=10) for i in range(2000)]
    lattices = np.array([s.n_lattices for s in specs if not s.blank])
    assert abs(np.mean(lattices == 1) - 0.5) < 0.04 and abs(np.mean(lattices == 3) - 0.25) < 0.04
    assert all(0.001 <= s.mosaic_spread_deg <= 0.01 for s in specs)
    assert all(1.2 <= s.resolution_A <= 4.0 for s in specs)
    for s in specs:
        for rotation in s.lattice_rotations:
            angle = np.degrees(np.arccos(np.clip((np.trace(np.reshape(rotation, (3, 3))) - 1) / 2, -1, 1)))
            assert angle >= MIN_SPLIT_DEG - 1e-9
    resolution = [sample_spec("resolution", i, seed=0, n_structures=10) for i in range(2000)]
    blank = np.mean([s.blank for s in resolution])
    assert 0.02 < blank < 0.06
    inverse_d = np.array([s.inverse_d for s in resolution if not s.blank])
    assert inverse_d.min() >= 0.05 and inverse_d.max() <= 1 / 1.2 and 0.3 < np.median(inverse_d) < 0.5
    for s in resolution[:300]:  # every label's resolution ring lies on the rendered quadrant
        if not s.blank:
            reach = quadrant_reach_mm(detectors.get(s.detector), s.beam_centre_px, s.quadrant)
            assert ring_radius_mm(s.resolution_A, s.wavelength_A, s.distance_mm) <= reach + 1e-9
            assert 150.0 <= s.distance_mm <= 400.0
    for s in resolution[:50]:
        assert s.b_factor == pytest.approx(4 * s.resolution_A ** 2 + 12)
        assert s.label_columns()["inverse_d"] == (0.0 if s.blank else pytest.approx(1 / s.resolution_A))


def test_shards_labels_resume_and_nproc(tmp_path, structure_cache):
    serial = tmp_path / "serial"
    _simulate(tmp_path, structure_cache, f"output.directory={serial}", "output.raw_cbf=1")
    paths = shard_paths(str(serial))
    assert [os.path.basename(p) for p in paths] == ["resolution_00000.h5", "resolution_00001.h5"]
    with h5py.File(paths[0], "r") as handle:
        assert handle.attrs["complete"] and handle.attrs["recipe"] == "resolution" and handle.attrs["recipe_version"] == 2
        assert handle["images"].shape == (2, 512, 512) and handle["images"].dtype == np.uint16
        assert handle["images"].chunks == (1, 512, 512)
    labels = read_labels(paths)
    for column in ("inverse_d", "b_factor", "n_lattices", "is_multi", "blank", "distance", "wavelength",
                   "pixel_size", "downsample", "detector", "quadrant", "mosaic_spread_deg", "background_scale"):
        assert len(labels[column]) == 4, column
    for k in range(4):
        spec = sample_spec("resolution", k, 0, POOL)
        assert labels["inverse_d"][k] == pytest.approx(spec.inverse_d)
        assert labels["detector"][k] == spec.detector
    assert len(os.listdir(serial / "raw")) == 2  # one raw CBF per shard
    images = _images(serial)
    assert images.max() > 0

    # Resume: a lost shard and a stale partial are made again, identically; nothing else is redone.
    os.remove(paths[1])
    (serial / ".resolution_00000.h5.partial").write_bytes(b"junk")
    before = os.path.getmtime(paths[0])
    _simulate(tmp_path, structure_cache, f"output.directory={serial}")
    assert os.path.getmtime(paths[0]) == before
    assert not (serial / ".resolution_00000.h5.partial").exists()
    np.testing.assert_array_equal(_images(serial), images)
    record = json.loads((serial / "simulate.json").read_text())
    assert record["report"]["images_made"] == 2 and record["report"]["already_done"] == 2
    # the record keeps the cost of both runs that made images: 4 at first, then the lost shard's 2
    assert [run["images_made"] for run in record["runs"]] == [4, 2]

    # Two worker processes make the same dataset.
    parallel = tmp_path / "parallel"
    _simulate(tmp_path, structure_cache, f"output.directory={parallel}", "nproc=2")
    np.testing.assert_array_equal(_images(parallel), images)

    # Montage like Figures 2–3.
    montage = tmp_path / "montage.png"
    assert simulate([f"show={serial}", f"output.montage={montage}", "output.log=None"]) == 0
    assert montage.stat().st_size > 10000


@pytest.mark.skipif(shutil.which("mpiexec") is None and not os.path.exists(os.path.join(os.path.dirname(sys.executable), "mpiexec")),
                    reason="mpiexec not installed")
def test_mpi_ranks_make_the_same_dataset(tmp_path, structure_cache):
    mpiexec = shutil.which("mpiexec") or os.path.join(os.path.dirname(sys.executable), "mpiexec")
    serial, ranks = tmp_path / "serial", tmp_path / "mpi"
    _simulate(tmp_path, structure_cache, f"output.directory={serial}")
    command = [mpiexec, "-n", "2", sys.executable, "-m", "xrais.command_line.simulate", "recipe=resolution", "n_images=4",
               "shard_size=2", f"structures.pool_size={POOL}", f"structures.cache={structure_cache}",
               f"output.directory={ranks}", "mpi=True", "output.log=None"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    np.testing.assert_array_equal(_images(ranks), _images(serial))


def test_plan_shards_covers_every_image_once():
    plans = plan_shards(10, 4)
    assert [(p.first, p.stop) for p in plans] == [(0, 4), (4, 8), (8, 10)]
    with pytest.raises(ValueError):
        plan_shards(0, 4)


def test_training_image_read_noise_can_be_chosen():
    """render_training_image(read_noise=…) replaces the catalogue value: a blank PILATUS quadrant
    rendered with 3 photons RMS differs from the noiseless one (photon counting) by that RMS."""
    spec = next(s for i in range(200) if (s := sample_spec("resolution", i, seed=5, n_structures=1,
                                                           detector="PILATUS 6M")).blank)
    spec = dataclasses.replace(spec, background_scale=300.0)  # bright background: rounding at 0 does not clip
    quiet = render_training_image(spec, pool=None, keep_raw=True).raw
    noisy = render_training_image(spec, pool=None, keep_raw=True, read_noise=3.0).raw
    valid = ~quiet.mask & (quiet.pixels > 20)
    difference = (noisy.pixels - quiet.pixels)[valid].astype(float)
    assert valid.sum() > 10_000
    robust_rms = 1.4826 * np.median(np.abs(difference - np.median(difference)))  # dead/hot pixels move
    assert robust_rms == pytest.approx(3.0, rel=0.1) and abs(np.median(difference)) <= 0.5
