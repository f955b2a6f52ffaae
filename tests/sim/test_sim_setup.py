"""Geometry, beam, crystal and label building blocks."""
import math

import numpy as np
import pytest

from xrais.conditioning import condition
from xrais.io import Geometry
from xrais.sim import (Beam, DetectorFrame, Lattice, b_factor_from_resolution, blocks_in_crystal, cells_per_domain,
                       misset_rotation, mosaic_rotations, quadrant_window, random_rotation, render_background,
                       resolution_from_b_factor)
from xrais.sim.crystal import default_orientation
from simhelpers import REFERENCE, load_reference_case


def test_quadrant_window_is_the_conditioning_footprint():
    """Rendering only a quadrant's window conditions to the same quadrant as the full render."""
    geometry = Geometry(120.0, 1.0, 0.172, (530.3, 470.8), (1100, 1000), downsample=2)
    beam = Beam(1.0, 1.0)
    layers = [("water", 0.1)]
    full = render_background(layers, beam, geometry, photons=1e12)
    for quadrant in range(4):
        window = quadrant_window(geometry, quadrant)
        partial = render_background(layers, beam, geometry, photons=1e12, window=window)
        np.testing.assert_array_equal(condition(partial, None, geometry, quadrant),
                                      condition(full, None, geometry, quadrant))
        outside = np.ones(geometry.shape, dtype=bool)
        outside[window.slices] = False
        assert np.all(partial[outside] == 0)
        assert window.size < geometry.shape[0] * geometry.shape[1]


@pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"reference cases not found at {REFERENCE}")
def test_cell_and_misset_reproduce_nanobragg_vectors():
    for case in ("case01", "case03"):
        params, _, _ = load_reference_case(case)
        lattice = Lattice.from_cell(params["cell"], misset_rotation(params["misset_deg"]))
        np.testing.assert_allclose(lattice.real_vectors, [params["a_vec_A"], params["b_vec_A"], params["c_vec_A"]],
                                   atol=1e-6)
        np.testing.assert_allclose(lattice.reciprocal_vectors,
                                   [params["a_star_vec_invA"], params["b_star_vec_invA"], params["c_star_vec_invA"]],
                                   atol=1e-8)


def test_default_orientation_of_a_triclinic_cell():
    cell = (31.0, 42.0, 55.0, 81.0, 97.0, 108.0)
    vectors = default_orientation(cell)
    lengths = np.linalg.norm(vectors, axis=1)
    np.testing.assert_allclose(lengths, cell[:3])
    angles = [math.degrees(math.acos(vectors[i] @ vectors[j] / lengths[i] / lengths[j])) for i, j in ((1, 2), (0, 2), (0, 1))]
    np.testing.assert_allclose(angles, cell[3:])
    reciprocal = np.linalg.inv(vectors).T
    assert reciprocal[0, 1] == pytest.approx(0.0, abs=1e-15) and reciprocal[0, 2] == pytest.approx(0.0, abs=1e-15)
    assert reciprocal[1, 2] == pytest.approx(0.0, abs=1e-15)


def test_rotations_and_mosaic_domains():
    rng = np.random.default_rng(8)
    for _ in range(5):
        rotation = random_rotation(rng)
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(rotation) == pytest.approx(1.0)
    domains = mosaic_rotations(0.5, 500, rng)
    np.testing.assert_array_equal(domains[0], np.eye(3))
    angles = np.degrees(np.arccos(np.clip((np.trace(domains, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    assert angles.max() <= 0.5 + 1e-9
    # angle = spread·(1 − u²)^(1/3), u uniform on [−1, 1]: mean spread·∫₀¹(1 − u²)^(1/3) du ≈ 0.8413·spread
    assert angles[1:].mean() == pytest.approx(0.8413 * 0.5, rel=0.03)
    lattice = Lattice.from_cell((50, 50, 50, 90, 90, 90), mosaic=domains)
    assert lattice.largest_mosaic_chord() == pytest.approx(2 * math.sin(math.radians(angles.max()) / 2))


def test_crystal_size_helpers():
    cell = (50.0, 60.0, 70.0, 90.0, 90.0, 90.0)
    assert cells_per_domain(cell, 1000.0) == (20, 17, 14)
    assert cells_per_domain(cell, 10.0) == (1, 1, 1)
    # a 25 µm cube of 0.1 µm domains: 25³/0.1³ = 1.5625e7 domains (volume ratio)
    domain_cells = (20, 20, 20)
    assert blocks_in_crystal(25.0 ** 3, (50.0, 50.0, 50.0, 90.0, 90.0, 90.0), domain_cells) == pytest.approx(1.5625e7)
    oblique = (50.0, 50.0, 50.0, 90.0, 90.0, 120.0)  # hexagonal: V = a²c·sin 120°
    assert blocks_in_crystal(1.0, oblique, (1, 1, 1)) == pytest.approx(1e12 / (50.0 ** 3 * math.sin(math.radians(120))))


def test_beam_sources_follow_nanobragg_sampling():
    beam = Beam(1.0, 1e24, divergence=0.2, divergence_steps=3, dispersion=0.01, dispersion_steps=3)
    sources = beam.sources()
    assert len(sources) == 5 * 3  # corners of the 3×3 divergence grid are cut, 3 wavelengths each
    np.testing.assert_allclose(np.linalg.norm(sources[:, :3], axis=1), 1.0)
    angles = np.arccos(np.clip(sources[:, 0], -1, 1))
    assert angles.max() == pytest.approx(0.1e-3, rel=1e-6)
    np.testing.assert_allclose(sorted(set(np.round(sources[:, 3], 12))), [0.995, 1.0, 1.005])
    assert len(Beam(1.0, 1e24).sources()) == 1


def test_detector_frame_from_geometry_puts_the_beam_at_the_beam_centre():
    geometry = Geometry(250.0, 1.0, 0.075, (2075.3, 2180.9), (4371, 4150))
    frame = DetectorFrame.from_geometry(geometry)
    assert frame.beam_hit() == pytest.approx(geometry.beam_centre)
    assert frame.close_distance == pytest.approx(250.0)


def test_b_factor_resolution_relation():
    assert b_factor_from_resolution(2.0) == pytest.approx(28.0)
    assert b_factor_from_resolution(1.0) == pytest.approx(16.0)
    d = np.linspace(1.0, 5.5, 10)
    np.testing.assert_allclose(resolution_from_b_factor(b_factor_from_resolution(d)), d)
    assert math.isnan(resolution_from_b_factor(10.0))


def test_rotation_exposure_spreads_the_domains_over_the_wedge_about_the_spindle():
    """Each domain of a rotation frame is its mosaic rotation turned about the spindle by a φ of
    its own part of the wedge, so the φ cover the wedge evenly; a wedge of 0 is the still."""
    from xrais.sim.crystal import rotation_exposure

    rng = np.random.default_rng(3)
    still = np.repeat(np.eye(3)[None], 20, axis=0)  # no mosaic: the rotation is the spindle's alone
    spindle = np.array([0.0, 0.0, 1.0])
    turned = rotation_exposure(still, 1.0, spindle, rng)
    assert turned.shape == (20, 3, 3)
    np.testing.assert_allclose(turned @ spindle, np.repeat(spindle[None], 20, axis=0), atol=1e-12)  # about the spindle
    phis = np.degrees(np.arctan2(turned[:, 1, 0], turned[:, 0, 0]))
    parts = np.floor((phis + 0.5) / 0.05).astype(int)  # the wedge −0.5…0.5° in 20 parts of 0.05°
    assert sorted(parts) == list(range(20))
    np.testing.assert_array_equal(rotation_exposure(still, 0.0, spindle, rng), still)


def test_a_rotation_frame_records_the_reflections_its_wedge_sweeps_through():
    """Physics: a crystal turned through 1° during the exposure records every reflection whose node
    crosses the Ewald sphere in that wedge — the still's at the wedge's middle among them — so it
    shows more spots than the still, each as bright as it is at its crossing (the image is the
    mean of the φ steps, not their sum: not brighter overall)."""
    from xrais.io.geometry import Geometry
    from xrais.sim import Beam, StructureFactors, render_bragg
    from xrais.sim.crystal import rotation_exposure

    rng = np.random.default_rng(5)
    geometry = Geometry(150.0, 1.0, 0.172, (300.5, 300.5), (600, 600))
    structure = StructureFactors(np.full((41, 41, 41), 100.0, np.float32), (-20, -20, -20))
    orientation = random_rotation(rng)
    lattices = {wedge: Lattice.from_cell((60, 70, 80, 90, 90, 90), orientation, cells=(10, 10, 10), shape="gauss",
                                         mosaic=rotation_exposure(np.repeat(np.eye(3)[None], 25, axis=0), wedge,
                                                                  (0.0, 0.0, 1.0), rng))
                for wedge in (0.0, 1.0)}
    images = {wedge: render_bragg(lattice, structure, Beam(1.0, 1e24), geometry, device="cpu")
              for wedge, lattice in lattices.items()}
    from xrais.spotfinder import find_spots

    scale = 2000.0 / images[0.0].max()  # the same photons per unit of the expected image in both
    spots = {wedge: len(find_spots(rng.poisson(image * scale + 1.0).astype(float), None, geometry))
             for wedge, image in images.items()}
    assert spots[1.0] > 1.5 * spots[0.0] > 0
    assert images[1.0].sum() < 1.2 * images[0.0].sum() * spots[1.0] / spots[0.0]
