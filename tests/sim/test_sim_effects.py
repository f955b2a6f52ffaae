"""Detector effects: noise statistics, masks, defects, PSF, reproducibility, blank images."""
import numpy as np
import pytest

from xrais.io import Geometry, detectors
from xrais.sim import (GAP_VALUE, HOT_PIXEL_VALUE, Beam, DetectorEffects, Lattice, Window, apply_detector_effects,
                       quadrant_window, random_rotation, simulate_image)
from simhelpers import random_structure

GENERIC = Geometry(100.0, 1.0, 0.172, (150.0, 140.0), (300, 280))
PILATUS = Geometry(200.0, 0.9795, 0.172, (1231.5, 1263.5), detectors.get("PILATUS 6M").shape, detector="PILATUS 6M")


def test_poisson_noise_mean_equals_variance():
    rng = np.random.default_rng(1)
    expected = rng.uniform(2.0, 200.0, size=GENERIC.shape)
    pixels = apply_detector_effects(expected, GENERIC, DetectorEffects(), rng).pixels
    assert np.all(pixels == np.round(pixels))
    residual = (pixels - expected) / np.sqrt(expected)
    assert residual.mean() == pytest.approx(0.0, abs=0.01)
    assert residual.var() == pytest.approx(1.0, abs=0.02)
    flat = apply_detector_effects(np.full(GENERIC.shape, 40.0), GENERIC, DetectorEffects(), rng).pixels
    assert flat.mean() == pytest.approx(40.0, rel=0.01)
    assert flat.var() == pytest.approx(40.0, rel=0.03)


@pytest.mark.parametrize("mean", [0.02, 0.5, 3.0, 11.5, 12.5, 300.0])
def test_photon_counts_follow_the_poisson_distribution(mean):
    """Both samplers (inversion below POISSON_INVERSION_LIMIT, PTRS above): the frequencies of the
    counts match the Poisson probabilities (χ² over the counts holding most of the mass)."""
    from math import lgamma, log

    rng = np.random.default_rng(7)
    counts = apply_detector_effects(np.full(GENERIC.shape, mean), GENERIC, DetectorEffects(), rng).pixels.ravel()
    values, observed = np.unique(counts.astype(int), return_counts=True)
    probability = np.exp([k * log(mean) - mean - lgamma(k + 1) for k in values])
    expected = probability * counts.size
    keep = expected >= 20
    chi2 = float(np.sum((observed[keep] - expected[keep]) ** 2 / expected[keep]))
    dof = int(keep.sum()) - 1
    assert chi2 < dof + 5.0 * np.sqrt(2.0 * max(dof, 1)) + 10.0, (chi2, dof)
    assert counts.mean() == pytest.approx(mean, rel=0.02, abs=0.002)


def test_read_noise_only_on_integrating_detectors():
    rng = np.random.default_rng(2)
    rayonix = detectors.get("Rayonix MX340-HS")
    geometry = Geometry(240.0, 1.3, rayonix.pixel_size, (1920.0, 1920.0), rayonix.shape, detector=rayonix.name)
    window = Window(0, 300, 0, 300)
    recorded = apply_detector_effects(np.zeros(geometry.shape), geometry, DetectorEffects(), rng, window=window)
    noise = recorded.pixels[window.slices]
    assert noise.std() == pytest.approx(rayonix.read_noise, rel=0.02)
    assert abs(noise.mean()) < 0.05
    counting = apply_detector_effects(np.zeros(GENERIC.shape), GENERIC, DetectorEffects(), rng).pixels
    assert np.all(counting == 0)


def test_an_adu_detector_records_its_gain_per_photon():
    """The CS-PAD records 25 ADU per photon (catalogue gain): photons and read noise are scaled
    alike, so a flat 4-photon image reads 100 ADU with variance 25² × (4 + 1²)."""
    rng = np.random.default_rng(3)
    cspad = detectors.get("CS-PAD")
    geometry = Geometry(100.0, 1.3, cspad.pixel_size, (880.0, 880.0), cspad.shape, detector=cspad.name)
    window = Window(0, 400, 0, 400)
    recorded = apply_detector_effects(np.full(geometry.shape, 4.0), geometry, DetectorEffects(psf_fwhm=0.0), rng,
                                      window=window).pixels[window.slices]
    assert cspad.gain == 25.0 and cspad.read_noise == 1.0
    assert recorded.mean() == pytest.approx(100.0, rel=0.01)
    assert recorded.var() == pytest.approx(25.0 ** 2 * (4.0 + 1.0), rel=0.03)


def test_module_gaps_are_minus_one_and_masked_in_the_rendered_window():
    rng = np.random.default_rng(3)
    window = quadrant_window(PILATUS, 0)
    recorded = apply_detector_effects(np.full(PILATUS.shape, 10.0, dtype=np.float32), PILATUS, DetectorEffects(), rng,
                                      window=window)
    gaps = detectors.get("PILATUS 6M").gap_mask()
    inside = np.zeros(PILATUS.shape, dtype=bool)
    inside[window.slices] = True
    assert np.any(gaps & inside)
    assert np.all(recorded.pixels[gaps & inside] == GAP_VALUE)
    assert np.all(recorded.mask[gaps & inside])
    assert not np.any(recorded.mask[~gaps & inside])
    assert np.all(recorded.mask[~inside]) and np.all(recorded.pixels[~inside] == 0)


def test_beamstop_and_arm_shadow():
    rng = np.random.default_rng(4)
    effects = DetectorEffects(poisson=False, beamstop_radius=5.0, beamstop_arm_width=1.0, beamstop_arm_angle=90.0,
                              mask_beamstop=True)
    recorded = apply_detector_effects(np.full(GENERIC.shape, 7.0), GENERIC, effects, rng)
    fast, slow = np.meshgrid(np.arange(280) + 0.5 - 150.0, np.arange(300) + 0.5 - 140.0)
    radius_mm = np.hypot(fast, slow) * 0.172
    disk = radius_mm <= 5.0
    arm = (slow >= 0) & (np.abs(fast) * 0.172 <= 0.5)  # 90°: the arm runs towards +slow
    np.testing.assert_array_equal(recorded.mask, disk | arm)
    assert np.all(recorded.pixels[disk | arm] == 0)
    assert np.all(recorded.pixels[~(disk | arm)] == 7.0)
    unmasked = apply_detector_effects(np.full(GENERIC.shape, 7.0), GENERIC,
                                      DetectorEffects(poisson=False, beamstop_radius=5.0), rng)
    assert not unmasked.mask.any() and np.all(unmasked.pixels[disk] == 0)


def test_hot_and_dead_pixels():
    rng = np.random.default_rng(5)
    recorded = apply_detector_effects(np.full(GENERIC.shape, 1000.0), GENERIC,
                                      DetectorEffects(hot_pixels=5, dead_pixels=124), rng)
    assert np.count_nonzero(recorded.pixels == HOT_PIXEL_VALUE) == 5
    assert np.count_nonzero(recorded.pixels == 0) == 124
    assert not recorded.mask.any()


def test_point_spread_function_conserves_photons_and_has_the_requested_width():
    rng = np.random.default_rng(6)
    expected = np.zeros(GENERIC.shape)
    expected[150, 140] = 1e6
    blurred = apply_detector_effects(expected, GENERIC, DetectorEffects(poisson=False, psf_fwhm=3.0), rng).pixels
    assert blurred.sum() == pytest.approx(1e6, rel=1e-5)
    offsets = np.arange(GENERIC.shape[1]) - 140
    variance = (blurred.sum(axis=0) * offsets ** 2).sum() / blurred.sum()
    assert 2.0 * np.sqrt(2.0 * np.log(2.0) * variance) == pytest.approx(3.0, rel=0.03)


def test_same_seed_same_image_and_blank_images():
    lattice = Lattice.from_cell((40.0, 50.0, 60.0, 90.0, 90.0, 90.0), random_rotation(np.random.default_rng(0)),
                                cells=(5, 5, 5), blocks=1e8)
    structure = random_structure(np.random.default_rng(0), extent=30)
    beam = Beam(1.0, 1e25)
    options = dict(lattices=lattice, structure=structure, b_factor=20.0, background=[("air", 5.0), ("water", 0.025)],
                   photons=1e11, effects=DetectorEffects(hot_pixels=3, dead_pixels=20, beamstop_radius=2.0),
                   device="cpu")
    one = simulate_image(GENERIC, beam, np.random.default_rng(42), **options)
    two = simulate_image(GENERIC, beam, np.random.default_rng(42), **options)
    other = simulate_image(GENERIC, beam, np.random.default_rng(43), **options)
    np.testing.assert_array_equal(one.pixels, two.pixels)
    np.testing.assert_array_equal(one.mask, two.mask)
    assert not np.array_equal(one.pixels, other.pixels)

    blank = simulate_image(GENERIC, beam, np.random.default_rng(42), **{**options, "lattices": None})
    background_only = simulate_image(GENERIC, beam, np.random.default_rng(42), background=options["background"],
                                     photons=1e11, device="cpu")
    assert blank.expected.max() > 0
    np.testing.assert_allclose(blank.expected, background_only.expected)
    assert one.expected.max() > 10 * blank.expected.max()  # Bragg spots on top
    with pytest.raises(ValueError, match="photons"):
        simulate_image(GENERIC, beam, np.random.default_rng(0), background=[("water", 0.01)])
