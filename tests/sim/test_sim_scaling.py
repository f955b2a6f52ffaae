"""Scaling laws of the kinematic model and the absolute intensity of a Bragg peak."""
import math

import numpy as np
import pytest

from xrais.io import Geometry
from xrais.sim import (R_E_SQUARED_M2, Beam, DetectorFrame, Lattice, random_rotation, render_background,
                       render_bragg)
from simhelpers import pixel_directions, random_structure, uniform_structure

CELL = (30.0, 40.0, 50.0, 80.0, 95.0, 100.0)
BEAM_DIRECTION = np.array([1.0, 0.0, 0.0])


def on_bragg_condition(lattice, hkl, distance=100.0, pixel=0.1):
    """(wavelength, one-pixel detector) such that reflection ``hkl`` is exactly on the Ewald sphere
    and diffracts exactly through the centre of the pixel, the detector facing the ray."""
    g = np.asarray(hkl) @ lattice.reciprocal_vectors
    wavelength = -2.0 * (g @ BEAM_DIRECTION) / (g @ g)
    assert wavelength > 0
    direction = wavelength * g + BEAM_DIRECTION
    assert np.linalg.norm(direction) == pytest.approx(1.0, abs=1e-12)
    fast = np.cross(direction, [0.0, 0.0, 1.0])
    fast /= np.linalg.norm(fast)
    slow = np.cross(direction, fast)
    pix0 = distance * direction - 0.5 * pixel * fast - 0.5 * pixel * slow
    return wavelength, DetectorFrame(pix0, fast, slow, pixel, (1, 1)), direction


@pytest.mark.parametrize("shape, peak_factor", [("gauss", 1.0), ("gauss_hkl", 1.0), ("tophat", 1.0), ("square", 1.0),
                                                ("round", 0.723601254558268)])
def test_peak_intensity_is_re2_fluence_F2_N2_omega_polarization(shape, peak_factor):
    """At an exact Bragg condition every shape peaks at F_latt = Na·Nb·Nc (round: × 0.7236)."""
    lattice = Lattice.from_cell(CELL, cells=(3, 4, 5), shape=shape)
    hkl = (-3, 1, 2)
    if (np.asarray(hkl) @ lattice.reciprocal_vectors) @ BEAM_DIRECTION > 0:
        hkl = tuple(-np.asarray(hkl))
    wavelength, frame, direction = on_bragg_condition(lattice, hkl)
    structure = uniform_structure(extent=10, value=250.0)
    fluence = 3e24
    value = render_bragg(lattice, structure, Beam(wavelength, fluence), frame, path="exact", device="cpu")[0, 0]
    omega = (0.1 / 100.0) ** 2  # pixel²/R², normal incidence
    polarization = 0.5 * (1.0 + (direction @ BEAM_DIRECTION) ** 2)
    expected = R_E_SQUARED_M2 * fluence * 250.0 * (peak_factor * 60) ** 2 * omega * polarization
    assert value == pytest.approx(expected, rel=1e-6)


def test_peak_scales_as_cells_squared_for_gauss():
    hkl = (2, -3, -1)
    reference = Lattice.from_cell(CELL, cells=(1, 1, 1), shape="gauss")
    if (np.asarray(hkl) @ reference.reciprocal_vectors) @ BEAM_DIRECTION > 0:
        hkl = tuple(-np.asarray(hkl))
    wavelength, frame, _ = on_bragg_condition(reference, hkl)
    structure = uniform_structure(extent=10)
    peaks = {}
    for cells in [(1, 1, 1), (2, 3, 4), (5, 5, 5), (10, 2, 7)]:
        lattice = reference.replace(cells=cells)
        peaks[cells] = render_bragg(lattice, structure, Beam(wavelength, 1e24), frame, device="cpu")[0, 0]
    for cells, peak in peaks.items():
        assert peak / peaks[(1, 1, 1)] == pytest.approx(float(np.prod(cells)) ** 2, rel=1e-6)


@pytest.fixture(scope="module")
def small_image_setup():
    rng = np.random.default_rng(11)
    geometry = Geometry(80.0, 1.1, 0.172, (60.3, 50.1), (128, 112))
    lattice = Lattice.from_cell(CELL, random_rotation(rng), cells=(4, 4, 4), shape="gauss")
    return geometry, lattice, random_structure(rng)


def test_intensity_is_proportional_to_fluence_and_blocks(small_image_setup):
    geometry, lattice, structure = small_image_setup
    base = render_bragg(lattice, structure, Beam(1.1, 1e24), geometry, device="cpu")
    assert base.max() > 0
    np.testing.assert_allclose(render_bragg(lattice, structure, Beam(1.1, 3e24), geometry, device="cpu"), 3 * base,
                               rtol=1e-6)
    np.testing.assert_allclose(render_bragg(lattice.replace(blocks=7.0), structure, Beam(1.1, 1e24), geometry,
                                            device="cpu"), 7 * base, rtol=1e-6)


def test_b_factor_decay_of_spot_intensities(small_image_setup):
    """Each pixel of a single-domain image takes its intensity from one node: B multiplies it by
    exp(−2B·stol²) of that node (stol = |G|/2 computed here independently)."""
    geometry, lattice, structure = small_image_setup
    beam = Beam(1.1, 1e24)
    b_factor = 25.0
    sharp = render_bragg(lattice, structure, beam, geometry, device="cpu")
    decayed = render_bragg(lattice, structure, beam, geometry, b_factor=b_factor, device="cpu")
    directions = pixel_directions(DetectorFrame.from_geometry(geometry))
    nodes = np.ceil((directions - BEAM_DIRECTION) / 1.1 @ lattice.real_vectors.T - 0.5)
    stol = np.linalg.norm(nodes @ lattice.reciprocal_vectors, axis=2) / 2.0
    bright = sharp > 1e-4 * sharp.max()
    assert bright.sum() > 50
    np.testing.assert_allclose(decayed[bright] / sharp[bright], np.exp(-2.0 * b_factor * stol[bright] ** 2), rtol=1e-5)


def test_mosaic_domains_are_averaged(small_image_setup):
    """n identical domains give the single-domain image (nanoBragg divides by the domain count)."""
    geometry, lattice, structure = small_image_setup
    beam = Beam(1.1, 1e24)
    single = render_bragg(lattice, structure, beam, geometry, device="cpu")
    repeated = render_bragg(lattice.replace(mosaic=np.repeat(np.eye(3)[None], 5, axis=0)), structure, beam, geometry,
                            device="cpu")
    np.testing.assert_allclose(repeated, single, rtol=1e-6)


def test_background_is_proportional_to_thickness_and_photons():
    geometry = Geometry(150.0, 1.0, 0.172, (50.0, 40.0), (90, 100))
    beam = Beam(1.0, 1.0)
    thin = render_background([("water", 0.025)], beam, geometry, photons=1e11)
    assert thin.min() > 0
    np.testing.assert_allclose(render_background([("water", 0.05)], beam, geometry, photons=1e11), 2 * thin, rtol=1e-6)
    np.testing.assert_allclose(render_background([("water", 0.025)], beam, geometry, photons=4e11), 4 * thin, rtol=1e-6)
    both = render_background([("water", 0.025), ("glycerol", 0.01)], beam, geometry, photons=1e11)
    glycerol = render_background([("glycerol", 0.01)], beam, geometry, photons=1e11)
    np.testing.assert_allclose(both, thin + glycerol, rtol=1e-6)


def test_background_absolute_value():
    """photons · r_e² · (molecules per m²) · F²(stol) · Ω · polarization at one pixel."""
    geometry = Geometry(100.0, 1.0, 0.2, (10.0, 10.0), (20, 120))
    value = render_background([("water", 0.1)], Beam(1.0, 1.0), geometry, photons=1e12)[10, 100]
    position = np.array([100.0, 0.0, 0.0]) + (100.5 - 10.0) * 0.2 * np.array([0.0, 0.0, 1.0]) - 0.5 * 0.2 * np.array(
        [0.0, -1.0, 0.0])
    r = np.linalg.norm(position)
    cos2theta = position[0] / r
    stol = math.sqrt((1 - cos2theta) / 2) / 1.0
    table = np.array([(0.0, 2.57), (0.0365, 2.58), (0.07, 2.8), (0.12, 5.0), (0.162, 8.0), (0.18, 7.32)])
    f_squared = np.interp(stol, table[:, 0], table[:, 1]) ** 2
    molecules = 1.0e6 * 6.02214076e23 / (2 * 1.008 + 15.999) * 0.1e-3
    omega = 0.2 ** 2 / r ** 2 * 100.0 / r
    expected = 1e12 * R_E_SQUARED_M2 * molecules * f_squared * omega * 0.5 * (1 + cos2theta ** 2)
    assert value == pytest.approx(expected, rel=2e-3)  # the kernel interpolates F² on a 2e-4 Å⁻¹ grid


@pytest.mark.parametrize("kahn", [0.0, 0.5, 1.0])
def test_polarization_factor_in_and_out_of_the_polarization_plane(kahn):
    """With the E-vector along +z (fast axis): a pixel in the E direction gets
    0.5·(1 + cos²2θ − K·sin²2θ), one at the same 2θ perpendicular to it 0.5·(1 + cos²2θ + K·sin²2θ)."""
    geometry = Geometry(100.0, 1.0, 0.5, (200.5, 200.5), (400, 400))  # beam on the centre of pixel (200, 200)
    beam = Beam(1.0, 1.0, kahn_factor=kahn)
    image = render_background([("water", 0.1)], beam, geometry, photons=1e12)
    along_e = image[200, 399]  # 199 pixels along +fast = +z
    across = image[1, 200]  # 199 pixels along −slow = +y
    cos2theta = 100.0 / math.hypot(100.0, 199 * 0.5)
    sin2theta_sqr = 1.0 - cos2theta ** 2
    expected_ratio = (1 + cos2theta ** 2 - kahn * sin2theta_sqr) / (1 + cos2theta ** 2 + kahn * sin2theta_sqr)
    assert along_e / across == pytest.approx(expected_ratio, rel=1e-5)
