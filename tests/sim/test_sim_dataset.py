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
from xrais.sim.recipes import RECIPE_VERSIONS
from xrais.sim.dataset import plan_shards, read_labels, shard_paths
from xrais.sim.training_images import render_training_image
from xrais.io import detectors
from xrais.sim.recipes import (MIN_SPLIT_DEG, READ_NOISE_FRACTION, READ_NOISE_RANGE_PHOTONS, quadrant_extents_px,
                                quadrant_reach_mm, ring_radius_mm, sample_spec)

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
    # v5: loose single crystals as measured ones are (mosaic 0.02–0.5°), half of them rotation frames
    # whose wedge (0.05–1°) has a domain every ≤ 0.05° (up to 30), header geometry off by ~0.7 px / 0.3 %
    assert all(0.02 <= s.mosaic_spread_deg <= 0.5 and 10 <= s.mosaic_domains <= 30 for s in specs)
    wedges = np.array([s.rotation_wedge_deg for s in specs])
    assert abs(np.mean(wedges > 0) - 0.5) < 0.04 and wedges.max() <= 1.0 and wedges[wedges > 0].min() >= 0.05
    assert all(s.mosaic_domains >= min(30, np.ceil(s.rotation_wedge_deg / 0.05)) for s in specs)
    beam_errors = np.array([s.header_beam_error_px for s in specs])
    assert 0.5 < beam_errors.std() < 0.9 and np.abs(beam_errors).max() <= 2.1
    assert all(1.2 <= s.resolution_A <= 4.0 for s in specs)
    # The paper's variances 0.1, 1, 10 deg² (σ = 0.32°, 1°, 3.2°), every split ≥ 0.3°.
    assert {round(s.lattice_sigma_deg ** 2, 9) for s in specs if s.n_lattices > 1} == {0.1, 1.0, 10.0}
    for s in specs:
        angles = [np.degrees(np.arccos(np.clip((np.trace(np.reshape(r, (3, 3))) - 1) / 2, -1, 1)))
                  for r in s.lattice_rotations]
        assert all(angle >= MIN_SPLIT_DEG - 1e-9 for angle in angles)
        assert s.lattice_split_deg == (pytest.approx(min(angles)) if angles and not s.blank else 0.0)
    medians = [np.median([s.lattice_split_deg for s in specs if s.n_lattices > 1 and s.lattice_sigma_deg == sigma])
               for sigma in sorted({s.lattice_sigma_deg for s in specs if s.n_lattices > 1})]
    assert medians == sorted(medians) and medians[0] < 0.6 and medians[-1] > 1.5  # wider σ, wider splits
    resolution = [sample_spec("resolution", i, seed=0, n_structures=10) for i in range(2000)]
    blank = np.mean([s.blank for s in resolution])
    assert 0.02 < blank < 0.06
    # v6: half of them rotation frames too, crystalline ice on a third, spotty on half of those
    wedges = np.array([s.rotation_wedge_deg for s in resolution])
    assert abs(np.mean(wedges > 0) - 0.5) < 0.04 and wedges.max() <= 1.0 and wedges[wedges > 0].min() >= 0.05
    ice = np.array([s.ice_um for s in resolution])
    spotty = np.array([s.ice_spots_per_ring > 0 for s in resolution])
    assert abs(np.mean(ice > 0) - 1 / 3) < 0.04 and abs(np.mean(spotty[ice > 0]) - 0.5) < 0.06
    assert not spotty[ice == 0].any() and 0.3 <= ice[ice > 0].min() and ice.max() <= 30.0
    inverse_d = np.array([s.inverse_d for s in resolution if not s.blank])
    assert inverse_d.min() >= 0.05 and inverse_d.max() <= 1 / 1.2 and 0.3 < np.median(inverse_d) < 0.5
    past_edge = []
    for s in resolution[:600]:  # every label's resolution ring crosses the rendered quadrant
        if not s.blank:
            model = detectors.get(s.detector)
            radius = ring_radius_mm(s.resolution_A, s.wavelength_A, s.distance_mm)
            assert radius <= quadrant_reach_mm(model, s.beam_centre_px, s.quadrant) + 1e-9
            assert 150.0 <= s.distance_mm <= 400.0
            longer_edge_mm = max(quadrant_extents_px(model, s.beam_centre_px, s.quadrant)) * model.pixel_size
            past_edge.append(radius > longer_edge_mm)  # past it, the ring is partly visible
    assert 0.2 < np.mean(past_edge) < 0.5  # partly visible rings (past the quadrant's edges) are common
    assert {s.detector for s in resolution} == {"PILATUS 6M", "EIGER 16M", "EIGER2 XE 16M", "EIGER 4M", "PILATUS 2M"}
    noisy = np.array([s.read_noise_photons for s in resolution])  # catalogue geometries all count photons
    assert abs(np.mean(noisy > 0) - READ_NOISE_FRACTION) < 0.04
    assert READ_NOISE_RANGE_PHOTONS[0] <= noisy[noisy > 0].min() and noisy.max() <= READ_NOISE_RANGE_PHOTONS[1]
    for s in specs:  # multilattice: each detector's own noise (none when counting photons)
        assert s.read_noise_photons == detectors.get(s.detector).read_noise
    rayonix = sample_spec("resolution", 0, seed=0, n_structures=10, detector="Rayonix MX340-HS")
    assert rayonix.read_noise_photons == detectors.get("Rayonix MX340-HS").read_noise
    for s in resolution[:50]:
        assert s.b_factor == pytest.approx(4 * s.resolution_A ** 2 + 12)
        assert s.label_columns()["inverse_d"] == (0.0 if s.blank else pytest.approx(1 / s.resolution_A))


def test_quadrant_reach_is_the_far_corner():
    """A quadrant wholly on the detector reaches 512·downsample·√2 pixels (its corner); one that runs
    off the detector reaches the corner of its on-detector part."""
    model = detectors.get("EIGER 16M")
    centre = (model.shape[1] / 2, model.shape[0] / 2)
    for quadrant in range(4):
        assert quadrant_reach_mm(model, centre, quadrant) == pytest.approx(512 * 4 * np.sqrt(2) * model.pixel_size)
    small = detectors.get("PILATUS 2M")  # 1475 × 1679 pixels: half-widths under 1024 = 512 × 2
    centre = (small.shape[1] / 2, small.shape[0] / 2)
    expected = np.hypot(small.shape[1] / 2, small.shape[0] / 2) * small.pixel_size
    for quadrant in range(4):
        assert quadrant_reach_mm(small, centre, quadrant) == pytest.approx(expected)


def test_shards_labels_resume_and_nproc(tmp_path, structure_cache):
    serial = tmp_path / "serial"
    _simulate(tmp_path, structure_cache, f"output.directory={serial}", "output.raw_cbf=1")
    paths = shard_paths(str(serial))
    assert [os.path.basename(p) for p in paths] == ["resolution_00000.h5", "resolution_00001.h5"]
    with h5py.File(paths[0], "r") as handle:
        assert handle.attrs["complete"] and handle.attrs["recipe"] == "resolution" and handle.attrs["recipe_version"] == RECIPE_VERSIONS["resolution"]
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


def test_training_image_records_the_drawn_read_noise():
    """The spec's read noise reaches the recorded image: a blank PILATUS quadrant rendered with
    3 photons RMS differs from the noiseless one (photon counting) by that RMS."""
    spec = next(s for i in range(200) if (s := sample_spec("resolution", i, seed=5, n_structures=1,
                                                           detector="PILATUS 6M")).blank)
    spec = dataclasses.replace(spec, background_scale=300.0)  # bright background: rounding at 0 does not clip
    quiet = render_training_image(dataclasses.replace(spec, read_noise_photons=0.0), pool=None, keep_raw=True).raw
    noisy = render_training_image(dataclasses.replace(spec, read_noise_photons=3.0), pool=None, keep_raw=True).raw
    valid = ~quiet.mask & (quiet.pixels > 20)
    difference = (noisy.pixels - quiet.pixels)[valid].astype(float)
    assert valid.sum() > 10_000
    robust_rms = 1.4826 * np.median(np.abs(difference - np.median(difference)))  # dead/hot pixels move
    assert robust_rms == pytest.approx(3.0, rel=0.1) and abs(np.median(difference)) <= 0.5
