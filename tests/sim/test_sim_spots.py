"""Bragg peaks land where the Ewald construction puts them."""
import numpy as np
import pytest

from xrais.io import Geometry
from xrais.sim import Beam, DetectorFrame, Lattice, axis_angle_rotation, random_rotation, render_bragg
from simhelpers import find_spots, nearest_distances, predict_spots, spot_errors, uniform_structure

CELL = (25.0, 30.0, 35.0, 90.0, 90.0, 90.0)


@pytest.fixture(scope="module")
def single_domain():
    """A single-domain, noise-free image with spots ~1 pixel wide (σ), and its setup."""
    rng = np.random.default_rng(2024)
    geometry = Geometry(100.0, 1.0, 0.172, (131.0, 120.5), (256, 256))
    beam = Beam(1.0, 1e24)
    lattice = Lattice.from_cell(CELL, random_rotation(rng), cells=(6, 6, 6), shape="gauss")
    image = render_bragg(lattice, uniform_structure(), beam, geometry, path="exact", device="cpu")
    return image, lattice, beam, DetectorFrame.from_geometry(geometry)


def test_every_peak_lies_within_half_a_pixel_of_its_prediction(single_domain):
    image, lattice, beam, frame = single_domain
    spots = find_spots(image)
    assert len(spots) >= 20
    errors = spot_errors(spots, lattice, beam, frame)
    assert np.all(errors < 0.5)
    assert np.median(errors) < 0.05


def test_spot_check_detects_a_slightly_wrong_orientation(single_domain):
    """Negative control: predictions of the lattice turned by 1.5° miss peaks."""
    image, lattice, beam, frame = single_domain
    turned = lattice.rotated(axis_angle_rotation((0.0, 1.0, 1.0), np.radians(1.5)))
    assert np.max(spot_errors(find_spots(image), turned, beam, frame)) > 0.5


def test_reflections_on_the_ewald_sphere_all_give_peaks(single_domain):
    image, lattice, beam, frame = single_domain
    _, predicted = predict_spots(lattice, beam, frame, excitation=0.0005)
    interior = np.all((predicted > 4) & (predicted < 252), axis=1)
    assert interior.sum() >= 3
    assert np.all(nearest_distances(predicted[interior], find_spots(image)) < 0.5)
