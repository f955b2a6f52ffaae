"""A further lattice only when significant (chance calibration), and the geometry refined with the
first lattice: physics tests on stills of known lattices and on random points."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from xrais.lattice import index_lattices
from xrais.lattice.indexing import CHANCE_INDEXED, chance_indexed
from xrais.lattice.refinement import detector_positions, refine_geometry, vectors_at
from xrais.sim import random_rotation

from latticehelpers import ewald_cap_spots

CELL = np.diag([38.0, 44.0, 52.0])
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "chance_lattices.py"


def _random_cap(n, rng):
    spec = importlib.util.spec_from_file_location("chance_lattices", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.random_cap(n, rng)


@pytest.mark.parametrize("n", [20, 30, 50])
def test_spots_with_no_lattice_index_no_lattice(n):
    """Random points on the Ewald cap (no lattice in them): the best cell of 20–50 such points
    indexes 40–85 % of them, yet none is taken for a lattice (a fixed rule of 'half the spots'
    took them)."""
    rng = np.random.default_rng(n)
    found = [index_lattices(_random_cap(n, rng)).n_lattices for _ in range(6)]
    assert found == [0] * 6


def test_chance_share_falls_with_the_number_of_spots():
    counts = sorted(CHANCE_INDEXED)
    shares = [chance_indexed(n) / n for n in counts]
    assert all(a >= b for a, b in zip(shares, shares[1:]))
    assert chance_indexed(10) == 10.0 and chance_indexed(400) == pytest.approx(400 * CHANCE_INDEXED[200])
    assert shares[0] > 0.8 > 0.3 > shares[-1]


def test_a_single_lattice_with_noise_spots_grows_no_second_lattice():
    """One crystal's spots plus 25 random ones (noise, split spots): the crystal indexes, and the
    25 leftovers (whose best cell indexes ~70 % of them) make no further lattice."""
    rng = np.random.default_rng(2)
    spots = ewald_cap_spots(CELL, random_rotation(rng), d_min=2.0, on_sphere=True)
    noise = _random_cap(25, rng)
    result = index_lattices(np.concatenate([spots, noise]))
    assert result.n_lattices == 1
    assert result.lattices[0].indexed[:len(spots)].mean() > 0.95


def test_refinement_finds_the_beam_centre_the_header_got_wrong():
    """A still's spots recorded with the beam centre 0.3 mm (≈ 2 px) off along fast and −0.2 mm
    along slow: refined with its lattice, the shift comes back within 0.03 mm and the spots' offsets
    along the Ewald sphere shrink to the excitation-free ideal."""
    rng = np.random.default_rng(4)
    distance, wavelength = 150.0, 1.0
    true = ewald_cap_spots(CELL, random_rotation(rng), d_min=1.8, wavelength=wavelength, on_sphere=True)
    error = np.array([0.3, -0.2])  # header's beam centre − true one (mm)
    recorded = vectors_at(detector_positions(true, distance, wavelength) - error, distance, wavelength)
    result = index_lattices(recorded)
    assert result.n_lattices == 1
    refinement = refine_geometry(recorded, result.lattices[0], distance, wavelength)
    assert np.allclose(refinement.beam_shift_mm, -error, atol=0.03)  # true centre = header's + shift
    assert abs(refinement.distance_shift_mm) < 1.0
    assert refinement.rms_tangential_after < 0.2 * refinement.rms_tangential_before
    assert np.allclose(refinement.vectors, true, atol=2e-4)


def test_detector_positions_and_vectors_are_inverse():
    rng = np.random.default_rng(0)
    positions = rng.uniform(-150, 150, size=(50, 2))
    back = detector_positions(vectors_at(positions, 200.0, 0.9), 200.0, 0.9)
    assert np.allclose(back, positions, atol=1e-9)
