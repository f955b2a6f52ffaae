"""The centroid scatter given to the lattice-evidence training spots (xrais.training.evidence):
spots moved on the detector by the σ asked, still on the Ewald sphere."""
import numpy as np
import pytest

from xrais.lattice.refinement import detector_positions
from xrais.spotfinder import LAB_BEAM, vectors_at
from xrais.training.evidence import scatter_centroids


def _spots(rng, n=4000, distance=250.0, wavelength=0.98):
    positions = rng.uniform(-150.0, 150.0, (n, 2))  # mm on a flat detector ⊥ the beam
    return positions, vectors_at(positions, distance, wavelength)


def test_scattered_spots_move_by_sigma_on_the_detector_and_stay_on_the_sphere():
    rng = np.random.default_rng(3)
    distance, wavelength, sigma = 250.0, 0.98, 0.172 * 0.5  # half a PILATUS pixel
    positions, vectors = _spots(rng, distance=distance, wavelength=wavelength)
    moved = scatter_centroids(vectors, distance, wavelength, sigma, rng)
    shift = detector_positions(moved, distance, wavelength) - positions
    assert shift.std(axis=0) == pytest.approx([sigma, sigma], rel=0.05)
    assert np.abs(shift.mean(axis=0)).max() < 0.1 * sigma
    # a scattering vector of an elastic ray: |r + s₀| = 1/λ
    assert np.linalg.norm(moved + LAB_BEAM / wavelength, axis=1) == pytest.approx(1.0 / wavelength, rel=1e-12)


def test_no_scatter_leaves_the_spots_where_they_are():
    rng = np.random.default_rng(4)
    _, vectors = _spots(rng, n=50)
    assert np.abs(scatter_centroids(vectors, 250.0, 0.98, 0.0, rng) - vectors).max() < 1e-12
