"""The fast path (terms below a relative threshold skipped) equals the exact pixel-centred kernel."""
import math

import numpy as np
import pytest

from xrais.io import Geometry
from xrais.sim import (Beam, Lattice, lattice_cuts, mosaic_rotations, random_rotation, render_bragg,
                       split_lattice)
from xrais.sim.kernels import GAUSS_WIDTH, TOPHAT_RADIUS_SQUARED
from simhelpers import random_structure

GEOMETRY = Geometry(90.0, 1.0, 0.172, (40.0, 30.5), (72, 80))


def busy_crystal(shape, seed):
    """Two lattices of a triclinic crystal, 8 mosaic domains each over 1°."""
    rng = np.random.default_rng(seed)
    lattice = Lattice.from_cell((28.0, 33.0, 41.0, 85.0, 97.0, 103.0), random_rotation(rng), cells=(4, 6, 5),
                                shape=shape, mosaic=mosaic_rotations(1.0, 8, rng), blocks=3.0)
    return split_lattice(lattice, 2, 5.0, rng, mosaic_spread_deg=1.0), random_structure(rng)


@pytest.mark.parametrize("path", ["fast", "reflections"])
@pytest.mark.parametrize("shape", ["gauss", "gauss_hkl", "tophat"])
def test_fast_path_equals_exact_kernel(shape, path):
    """The pixel kernel's fast path and the reflection-driven kernel give the exact kernel's image
    (several sources, sub-pixels, two lattices of 8 domains over 1°, a B factor)."""
    lattices, structure = busy_crystal(shape, seed=3)
    beam = Beam(1.0, 1e24, divergence=0.2, divergence_steps=3, dispersion=0.004, dispersion_steps=2)
    options = dict(b_factor=15.0, oversample=2, device="cpu")
    exact = render_bragg(lattices, structure, beam, GEOMETRY, path="exact", **options)
    fast = render_bragg(lattices, structure, beam, GEOMETRY, path=path, **options)
    assert np.count_nonzero(exact > 1e-3 * exact.max()) > 20
    np.testing.assert_allclose(fast, exact, rtol=1e-6, atol=1e-8 * exact.max())


@pytest.mark.parametrize("shape", ["square", "round"])
def test_shapes_with_side_lobes_are_never_cut(shape):
    lattices, structure = busy_crystal(shape, seed=4)
    beam = Beam(1.0, 1e24)
    assert np.all(np.isinf(lattice_cuts(lattices[0])))
    np.testing.assert_array_equal(render_bragg(lattices, structure, beam, GEOMETRY, path="fast", device="cpu"),
                                  render_bragg(lattices, structure, beam, GEOMETRY, path="exact", device="cpu"))


@pytest.mark.parametrize("cell", [(28.0, 33.0, 41.0, 90.0, 90.0, 90.0), (28.0, 33.0, 41.0, 85.0, 97.0, 103.0)])
@pytest.mark.parametrize("shape", ["gauss", "gauss_hkl", "tophat"])
def test_cut_is_where_the_lattice_transform_falls_below_threshold(shape, cell):
    """Along each axis, at |Δh| = cut (other Δ = 0), F_latt²/F_latt(0)² equals the threshold
    (tophat: the edge of the flat top); for the Cartesian shapes of an oblique cell it is below
    (the cut |Δh| ≤ |a|·|Δq| is conservative)."""
    lattice = Lattice.from_cell(cell, cells=(4, 6, 5), shape=shape)
    oblique = cell[3:] != (90.0, 90.0, 90.0) and shape != "gauss_hkl"
    threshold = 1e-8
    cuts = lattice_cuts(lattice, threshold)
    total = float(np.prod(lattice.cells))
    for axis in range(3):
        delta = np.zeros(3)
        delta[axis] = cuts[axis]
        if shape == "gauss_hkl":
            exponent = np.sum((delta * lattice.cells) ** 2)
        else:
            dq = delta @ lattice.reciprocal_vectors
            exponent = dq @ dq * total ** 2
        limit = TOPHAT_RADIUS_SQUARED if shape == "tophat" else -0.5 * GAUSS_WIDTH * math.log(threshold)
        if oblique:
            assert exponent > limit
        else:
            assert exponent == pytest.approx(limit, rel=1e-6)
