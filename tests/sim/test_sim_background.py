"""Amorphous and powder background materials."""
import math

import numpy as np
import pytest

from xrais.sim import MATERIALS, PARASITIC_MATERIALS, material
from xrais.sim.background import WATER_TABLE, form_factor, independent_atom_sum

STOL = np.linspace(0.0, 1.5, 3001)


def test_form_factors_start_at_the_atomic_number():
    for element, z in {"H": 1, "C": 6, "N": 7, "O": 8, "S": 16, "Ar": 18}.items():
        assert form_factor(element, 0.0) == pytest.approx(z, abs=0.01)
        assert form_factor(element, 1.0) < 0.5 * z


def test_water_curve_is_the_tabulated_one():
    table = np.array(WATER_TABLE)
    water = MATERIALS["water"]
    np.testing.assert_allclose(water.squared_structure_factor(table[:, 0]), table[:, 1] ** 2)
    assert water.molecules_per_m3 == pytest.approx(3.343e28, rel=1e-3)


def test_air_is_nitrogen_oxygen_argon_with_molecular_interference():
    air = MATERIALS["air"]
    forward = 0.7808 * (2 * 7) ** 2 + 0.2095 * (2 * 8) ** 2 + 0.0093 * 18 ** 2  # whole molecules at s = 0
    assert air.squared_structure_factor(np.array([0.0]))[0] == pytest.approx(forward, rel=1e-3)
    high = np.array([1.2])  # intramolecular interference averages out: independent atoms
    atoms = independent_atom_sum(air.formula, high)
    assert air.squared_structure_factor(high)[0] == pytest.approx(atoms[0], rel=0.1)
    assert air.molecular_weight == pytest.approx(28.96, rel=2e-3)
    assert air.density * 1e3 == pytest.approx(1.204)


def test_ice_rings_at_hexagonal_ice_spacings():
    ice = MATERIALS["ice"]
    curve = ice.squared_structure_factor(STOL)
    peaks = (curve > np.roll(curve, 1)) & (curve >= np.roll(curve, -1)) & (curve > 0.05 * curve.max())
    d_peaks = 1.0 / (2.0 * STOL[peaks])
    for d in (3.90, 3.66, 3.44, 2.67, 2.25, 2.07):  # 100, 002, 101, 102, 110, 103
        assert np.min(np.abs(d_peaks - d)) < 0.01
    assert curve[np.abs(1.0 / (2.0 * np.maximum(STOL, 1e-9)) - 3.0) < 0.05].max() < 1e-3 * curve.max()  # between rings
    assert ice.density == pytest.approx(0.933, abs=0.003)


@pytest.mark.parametrize("name", [n for n in PARASITIC_MATERIALS if n != "ice"])
def test_organics_have_an_amorphous_peak_and_independent_atoms_at_high_angle(name):
    chosen = material(name)
    structure = chosen.squared_structure_factor(STOL) / independent_atom_sum(chosen.formula, STOL)
    assert structure[0] == pytest.approx(0.1, abs=0.01)
    assert structure[-1] == pytest.approx(1.0, abs=0.02)
    assert structure.max() > 1.5
    peak_d = 1.0 / (2.0 * STOL[np.argmax(structure)])
    assert 3.5 < peak_d < 6.5


def test_material_lookup_and_molecular_weights():
    assert material("Glycerol") is MATERIALS["glycerol"]
    assert material(MATERIALS["water"]) is MATERIALS["water"]
    assert MATERIALS["glycerol"].molecular_weight == pytest.approx(92.09, abs=0.02)
    assert MATERIALS["sucrose"].molecular_weight == pytest.approx(342.30, abs=0.05)
    with pytest.raises(KeyError, match="unknown material"):
        material("unobtainium")
    assert math.isfinite(MATERIALS["kapton"].molecules_per_m3)


# --- crystalline ice: smooth and spotty rings (resolution recipe v6) --------------------------------

from xrais.io import Geometry  # noqa: E402
from xrais.sim.background import (ICE_AZIMUTH_BINS, IceRings, ice_azimuth_tables, ice_rings,  # noqa: E402
                                   render_background, render_ice)
from xrais.sim.beam import Beam  # noqa: E402
from xrais.spotfinder import ICE_RINGS_A  # noqa: E402

ICE_GEOMETRY = Geometry(distance=120.0, wavelength=1.0, pixel_size=0.172, beam_centre=(300.0, 300.0), shape=(600, 600))


def test_ice_ring_list_holds_the_spot_finders_bands():
    positions, weights = ice_rings()
    spacings = 1.0 / positions
    for d in ICE_RINGS_A[:6]:
        assert np.min(np.abs(spacings - d)) < 0.01
    assert np.all(weights > 0) and np.all(np.diff(positions) > 0)


def test_spotty_tables_keep_the_rings_intensity_and_their_smooth_share():
    ice = IceRings(5.0, spots_per_ring=20, spot_width_deg=0.5, smooth_fraction=0.3, seed=4)
    tables = ice_azimuth_tables(ice, 12)
    assert tables.shape == (12, ICE_AZIMUTH_BINS)
    assert np.allclose(tables.mean(axis=1), 1.0, atol=1e-4)  # the powder's intensity, redistributed
    assert tables.min() >= 0.3 - 1e-6 and tables.max() > 5.0  # spots stand far above the floor
    # a spot's azimuthal FWHM is the one asked for: count the bins above half of one lone spot
    lone = ice_azimuth_tables(IceRings(5.0, spots_per_ring=1.0, spot_width_deg=0.5, smooth_fraction=0.0,
                                       seed=1), 40)
    single = [row for row in lone if 0 < (row > 1e-3).sum() < ICE_AZIMUTH_BINS / 50]
    row = single[0]
    width_deg = (row > 0.5 * row.max()).sum() * 360.0 / ICE_AZIMUTH_BINS
    assert width_deg == pytest.approx(0.5, abs=0.05)


def test_smooth_ice_is_the_powder_curve_and_spotty_ice_the_same_rings_broken_up():
    beam = Beam(wavelength=1.0, fluence=1.0)  # the background takes its photons from the call
    smooth = render_ice(IceRings(10.0), beam, ICE_GEOMETRY, photons=1e12)
    powder = render_background([("ice", 0.01)], beam, ICE_GEOMETRY, photons=1e12)
    assert np.allclose(smooth, powder)
    spotty = render_ice(IceRings(10.0, spots_per_ring=15, spot_width_deg=1.0, smooth_fraction=0.0, seed=2), beam,
                        ICE_GEOMETRY, photons=1e12)
    # the strongest ring (3.90 Å), wholly on the detector: the same photons, in a few bright arcs
    ss, ff = np.mgrid[0:600, 0:600] + 0.5
    two_theta = np.arctan(np.hypot(ff - 300, ss - 300) * 0.172 / 120.0)
    d = 1.0 / (2.0 * np.sin(0.5 * two_theta))
    ring = np.abs(d - 3.897) < 0.03
    assert spotty[ring].sum() == pytest.approx(smooth[ring].sum(), rel=0.1)
    assert np.percentile(spotty[ring], 99) > 5 * np.percentile(smooth[ring], 99)
    assert np.median(spotty[ring]) < 0.3 * np.median(smooth[ring])


def test_nonsensical_ice_is_refused():
    with pytest.raises(ValueError):
        IceRings(-1.0)
    with pytest.raises(ValueError):
        IceRings(1.0, spots_per_ring=5, smooth_fraction=1.5)
