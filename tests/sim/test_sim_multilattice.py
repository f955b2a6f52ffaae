"""Multi-lattice crystals: extra lattices turned by N(0, σ), each with its own mosaic."""
import numpy as np
import pytest

from xrais.io import Geometry
from xrais.sim import Beam, DetectorFrame, Lattice, mosaic_rotations, random_rotation, render_bragg, split_lattice
from simhelpers import find_spots, nearest_distances, predict_spots, spot_errors, uniform_structure

CELL = (25.0, 30.0, 35.0, 90.0, 90.0, 90.0)


def test_two_lattices_give_the_spots_of_both_orientations():
    rng = np.random.default_rng(99)
    geometry = Geometry(100.0, 1.0, 0.172, (128.0, 128.0), (256, 256))
    frame = DetectorFrame.from_geometry(geometry)
    beam = Beam(1.0, 1e24)
    first, second = split_lattice(Lattice.from_cell(CELL, random_rotation(rng), cells=(6, 6, 6), shape="gauss"),
                                  2, 10.0, rng)
    structure = uniform_structure()
    image = render_bragg([first, second], structure, beam, geometry, device="cpu")
    np.testing.assert_allclose(image, render_bragg(first, structure, beam, geometry, device="cpu")
                               + render_bragg(second, structure, beam, geometry, device="cpu"), rtol=1e-5)

    spots = find_spots(image)
    _, from_first = predict_spots(first, beam, frame, excitation=0.01)
    _, from_second = predict_spots(second, beam, frame, excitation=0.01)
    # spots of the two lattices that overlap bias each other's centroids: keep isolated ones
    predictions = np.concatenate([from_first, from_second])
    second_nearest = np.sort(np.linalg.norm(spots[:, None, :] - predictions[None, :, :], axis=2), axis=1)[:, 1]
    isolated = spots[second_nearest > 8.0]
    assert len(isolated) >= 20
    errors = np.minimum(spot_errors(isolated, first, beam, frame), spot_errors(isolated, second, beam, frame))
    assert np.all(errors < 0.5)
    only_second = nearest_distances(isolated, from_first) > 3.0
    assert only_second.sum() >= 3  # spots that only the second orientation explains
    assert np.all(spot_errors(isolated[only_second], second, beam, frame) < 0.5)


def test_split_angles_are_normal_with_sigma_and_mosaics_are_independent():
    rng = np.random.default_rng(5)
    lattice = Lattice.from_cell(CELL, cells=(6, 6, 6), mosaic=mosaic_rotations(0.01, 4, rng))
    sigma = 1.0
    lattices = split_lattice(lattice, 2001, sigma, rng, mosaic_spread_deg=0.01)
    assert lattices[0] is lattice
    angles = []
    for other in lattices[1:]:
        turn = np.linalg.solve(lattice.real_vectors, other.real_vectors).T
        angles.append(np.degrees(np.arccos(np.clip((np.trace(turn) - 1) / 2, -1, 1))))
        assert other.mosaic.shape == lattice.mosaic.shape
    # |N(0, σ)| has mean σ·sqrt(2/π)
    assert np.mean(angles) == pytest.approx(sigma * np.sqrt(2 / np.pi), rel=0.05)
    assert not np.allclose(lattices[1].mosaic, lattices[2].mosaic)


def test_lattices_of_different_cells_are_refused():
    structure = uniform_structure(extent=5)
    geometry = Geometry(100.0, 1.0, 0.172, (4.0, 4.0), (8, 8))
    with pytest.raises(ValueError, match="share cell"):
        render_bragg([Lattice.from_cell(CELL), Lattice.from_cell((40, 40, 40, 90, 90, 90))], structure,
                     Beam(1.0, 1e24), geometry, device="cpu")
