"""Classical baseline: dispersion-threshold spot finding and the spot-based resolution estimate."""
import math

import numpy as np
import pytest

import xrais
from xrais.io import Geometry
from xrais.spotfinder import SpotFinderSettings, analyse_image, calibrate_noise, estimate_resolution, find_spots, on_ice_ring


def _spot_image(positions, intensity=400.0, background=5.0, shape=(400, 400), seed=0, sigma_px=1.0):
    rng = np.random.default_rng(seed)
    expected = np.full(shape, background)
    ss, ff = np.mgrid[0:shape[0], 0:shape[1]] + 0.5
    for f, s in positions:
        expected += intensity / (2 * math.pi * sigma_px ** 2) * np.exp(-((ff - f) ** 2 + (ss - s) ** 2) / (2 * sigma_px ** 2))
    return rng.poisson(expected).astype(np.int32)


GEOMETRY = Geometry(distance=100.0, wavelength=1.0, pixel_size=0.172, beam_centre=(200.0, 200.0), shape=(400, 400))


def test_finds_every_spot_at_its_centroid():
    rng = np.random.default_rng(5)
    positions = [(f, s) for f, s in rng.uniform(20, 380, (40, 2)) if math.hypot(f - 200, s - 200) > 15]
    positions = [p for i, p in enumerate(positions) if all(math.dist(p, q) > 12 for q in positions[:i])]
    pixels = _spot_image(positions)
    spots = find_spots(pixels, None, GEOMETRY)
    assert len(spots) == len(positions)
    found = np.stack([spots.fast, spots.slow], axis=1)
    errors = np.array([np.min(np.hypot(*(found - p).T)) for p in positions])
    assert errors.max() < 0.5 and errors.mean() < 0.15  # strong-pixel centroids of σ = 1 px spots
    # Only strong pixels are summed (as in DIALS spot finding): the core of each spot, ~70 % of a σ = 1 px Gaussian.
    assert np.all((spots.intensity > 0.45 * 400) & (spots.intensity < 400 + 4 * spots.sigma))


def test_pure_poisson_background_gives_no_spots():
    pixels = np.random.default_rng(2).poisson(20.0, (500, 500)).astype(np.int32)
    assert len(find_spots(pixels, None, Geometry(distance=100, wavelength=1, pixel_size=0.172,
                                                 beam_centre=(250, 250), shape=(500, 500)))) == 0


def _ccd_background(spots, read_noise=3.0, background=0.3, seed=4):
    """A CCD-like image as the simulator records one: Poisson photons plus Gaussian read noise
    (photons RMS), rounded and clipped at zero, on a faint background."""
    rng = np.random.default_rng(seed)
    photons = _spot_image(spots, intensity=600.0, background=background, seed=seed)
    return np.maximum(np.rint(photons + rng.normal(0.0, read_noise, photons.shape)), 0).astype(np.int32)


def test_read_noise_of_an_integrating_detector_is_not_taken_for_spots():
    """Over a faint background, a CCD's read noise makes windows far noisier than Poisson: the
    Poisson-only test calls much of it strong; the Poisson test with the read noise given, or the
    noise model fitted on the image, none of it, and the real spots are still found."""
    positions = [(100.0, 100.0), (300.0, 120.0), (150.0, 320.0)]
    pixels = _ccd_background(positions)
    assert len(find_spots(pixels, None, GEOMETRY, SpotFinderSettings(read_noise=0.0))) > 100
    for settings in (SpotFinderSettings(read_noise=3.0), SpotFinderSettings(noise_model="calibrated")):
        spots = find_spots(pixels, None, GEOMETRY, settings)
        assert len(spots) == len(positions)
        found = np.stack([spots.fast, spots.slow], 1)[np.argsort(spots.fast)]
        assert np.hypot(*(found - sorted(positions)).T).max() < 1.0


def test_an_adu_detector_is_thresholded_with_its_gain():
    """A CS-PAD records 25 ADU per photon (the detector catalogue's gain): its Poisson noise in ADU
    is 5× its square root, so the photon-counting test (gain 1) calls the whole background strong,
    while the catalogue's gain and read noise (1 photon = 25 ADU RMS) find the spots alone. The
    simulator records such a detector in ADU."""
    from xrais.io.detectors import noise_for

    geometry = Geometry(distance=100.0, wavelength=1.3, pixel_size=0.11, beam_centre=(200.0, 200.0), shape=(400, 400),
                        detector="CS-PAD")
    assert noise_for("CS-PAD", (1765, 1765)) == (25.0, 25.0) and noise_for("PILATUS 6M", (2527, 2463)) == (1.0, 0.0)
    positions = [(100.0, 100.0), (300.0, 120.0), (150.0, 320.0)]
    rng = np.random.default_rng(8)
    photons = _spot_image(positions, intensity=600.0, background=2.0, seed=8)
    adu = 25.0 * (photons + rng.normal(0.0, 1.0, photons.shape))
    assert len(find_spots(adu, None, geometry, SpotFinderSettings(gain=1.0, read_noise=0.0))) > 1000
    spots = find_spots(adu, None, geometry)
    assert len(spots) == len(positions)
    found = np.stack([spots.fast, spots.slow], 1)[np.argsort(spots.fast)]
    assert np.hypot(*(found - sorted(positions)).T).max() < 1.0


def test_noise_calibration_recovers_gain_and_read_noise():
    """Counts of g ADU per photon with an offset and Gaussian read noise, over a background that
    varies across the image: the fitted variance g·m + c has g and c = r² − g·offset."""
    rng = np.random.default_rng(7)
    photons = rng.poisson(np.linspace(2.0, 60.0, 600)[None, :].repeat(600, 0))
    gain, offset, read_noise = 5.0, 30.0, 4.0
    counts = gain * photons + offset + rng.normal(0.0, read_noise, photons.shape)
    fitted_gain, fitted_offset = calibrate_noise(counts, np.zeros(counts.shape, bool))
    assert fitted_gain == pytest.approx(gain, rel=0.05)
    assert fitted_offset == pytest.approx(read_noise ** 2 - gain * offset, abs=0.1 * gain * offset)
    poisson = rng.poisson(np.linspace(2.0, 60.0, 600)[None, :].repeat(600, 0)).astype(float)
    assert calibrate_noise(poisson, np.zeros(poisson.shape, bool))[0] == pytest.approx(1.0, rel=0.05)


def test_read_noise_comes_from_the_detector_catalogue():
    """A frame of a catalogued integrating detector (Rayonix, read noise 3 photons) gets its read
    noise in the noise model without being told; a photon counter's frame DIALS' Poisson test."""
    pixels = _ccd_background([(100.0, 100.0)])
    rayonix = Geometry(distance=100.0, wavelength=1.0, pixel_size=0.08854, beam_centre=(200.0, 200.0),
                       shape=(400, 400), detector="Rayonix MX340-HS")
    pilatus = Geometry(distance=100.0, wavelength=1.0, pixel_size=0.172, beam_centre=(200.0, 200.0),
                       shape=(400, 400), detector="PILATUS 6M")
    assert len(find_spots(pixels, None, rayonix)) == 1
    assert len(find_spots(pixels, None, pilatus)) > 100
    with pytest.raises(ValueError, match="noise_model"):
        SpotFinderSettings(noise_model="gaussian")


def test_masked_pixels_are_never_spots():
    pixels = _spot_image([(100.0, 100.0)])
    mask = np.zeros(pixels.shape, bool)
    mask[95:106, 95:106] = True
    assert len(find_spots(pixels, mask, GEOMETRY)) == 0


def test_resolution_estimate_follows_the_extent_of_the_spots():
    """Spots out to a radius R (weaker outwards, as a B factor does): the estimate is d at ≈ R."""
    rng = np.random.default_rng(9)
    geometry = Geometry(distance=100.0, wavelength=1.0, pixel_size=0.172, beam_centre=(300.0, 300.0), shape=(600, 600))
    for limit_px in (120.0, 250.0):
        positions, intensities = [], []
        while len(positions) < 250:
            f, s = rng.uniform(5, 595, 2)
            r = math.hypot(f - 300, s - 300)
            if 10 < r < limit_px and all(math.dist((f, s), q) > 8 for q in positions):
                positions.append((f, s))
        expected = np.full(geometry.shape, 3.0)
        ss, ff = np.mgrid[0:600, 0:600] + 0.5
        for f, s in positions:
            r = math.hypot(f - 300, s - 300)
            expected += 3000 * math.exp(-3 * (r / limit_px) ** 2) / (2 * math.pi) * np.exp(-((ff - f) ** 2 + (ss - s) ** 2) / 2)
        pixels = rng.poisson(expected).astype(np.int32)
        analysis = analyse_image(pixels, None, geometry)
        d_expected = float(geometry.d_at(limit_px))
        assert analysis.n_spots > 200
        assert analysis.d_min == pytest.approx(d_expected, rel=0.08)


def test_no_estimate_from_too_few_spots():
    spots = find_spots(_spot_image([(50.0, 50.0), (300.0, 320.0)]), None, GEOMETRY)
    assert len(spots) == 2 and estimate_resolution(spots) is None


def test_ice_ring_flags():
    flags = on_ice_ring(np.array([3.897, 3.669, 3.0, 2.0, 1.4]))
    assert flags.tolist() == [True, True, False, False, False]


def test_real_grid_scan_gradient(shared_data):
    """Thaumatin grid scan (README of shared/data): 0003 strongest; 0016–0019 blank."""
    counts = {}
    for index in (1, 3, 8, 14, 16, 19):
        frame = xrais.open_image(shared_data / "thaumatin_grid" / f"thau_3_2_{index:04d}.cbf.bz2")
        counts[index] = analyse_image(frame.pixels, frame.mask, frame.geometry)
    assert max(counts, key=lambda i: counts[i].n_spots) == 3
    assert counts[3].d_min < counts[14].d_min < 3.0
    assert counts[16].n_spots <= 3 and counts[19].n_spots <= 3 and counts[16].d_min is None


def _indexed(vectors, lattice, tolerance=0.15):
    """Which scattering vectors lie on the lattice's nodes (fractional indices within tolerance: a
    still's spot sits on the Ewald sphere, its node up to the excitation error away)."""
    fractional = vectors @ lattice.real_vectors.T
    return np.all(np.abs(fractional - np.round(fractional)) < tolerance, axis=1)


def test_spots_map_to_the_reciprocal_lattice_of_the_crystal_that_made_them():
    """Spots of a simulated crystal, mapped to reciprocal space, sit on its lattice's nodes (A·r
    whole numbers, |r| = 1/d); with a second lattice 4° away, each spot sits on one of the two
    lattices and neither lattice alone indexes them all — what the multi-lattice call rests on."""
    from xrais.sim import Beam, Lattice, axis_angle_rotation, mosaic_rotations, random_rotation, render_bragg
    from xrais.spotfinder import scattering_vectors

    rng = np.random.default_rng(31)
    geometry = Geometry(120.0, 1.0, 0.172, (300.3, 290.7), (600, 620))
    beam = Beam(1.0, 1e24)
    first = Lattice.from_cell((38.0, 44.0, 52.0, 90.0, 90.0, 90.0), random_rotation(rng), cells=(8, 8, 6),
                              shape="gauss", mosaic=mosaic_rotations(0.1, 10, rng))
    table = rng.exponential(400.0, size=(61, 61, 61)).astype(np.float32)
    from xrais.sim import StructureFactors

    structure = StructureFactors(0.5 * (table + table[::-1, ::-1, ::-1]), (-30, -30, -30))
    single = render_bragg(first, structure, beam, geometry, device="cpu")
    scale = 2000.0 / single.max()  # the brightest pixel 2000 photons over a background of 2
    single *= scale
    spots = find_spots(rng.poisson(single + 2.0).astype(float), None, geometry)
    assert len(spots) > 40
    vectors = scattering_vectors(spots, geometry)
    from xrais.sim.frame import MOSFLM_BEAM, MOSFLM_FAST, MOSFLM_SLOW
    from xrais.spotfinder import LAB_BEAM, LAB_FAST, LAB_SLOW

    assert [tuple(LAB_BEAM), tuple(LAB_FAST), tuple(LAB_SLOW)] == [MOSFLM_BEAM, MOSFLM_FAST, MOSFLM_SLOW]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0 / spots.d, rtol=1e-9)
    assert _indexed(vectors, first).mean() > 0.95
    turned = first.rotated(axis_angle_rotation(rng.normal(size=3), np.radians(4.0)))
    assert _indexed(vectors, turned).mean() < 0.3  # a wrong orientation does not index them
    both = single + scale * render_bragg(turned, structure, beam, geometry, device="cpu")
    spots = find_spots(rng.poisson(both + 2.0).astype(float), None, geometry)
    vectors = scattering_vectors(spots, geometry)
    on_first, on_second = _indexed(vectors, first), _indexed(vectors, turned)
    assert (on_first | on_second).mean() > 0.9
    assert 0.2 < on_first.mean() < 0.8 and 0.2 < on_second.mean() < 0.8


def test_dispersion_threshold_follows_its_definition_pixel_by_pixel():
    """The running-sum kernels against the definition, window by window: count, mean and variance
    of the valid pixels of each (2k+1)² window (cut at the edges and by the mask), the two tests,
    and the background of each strong pixel over the valid, non-strong pixels of the doubled window."""
    from xrais.spotfinder import _background_under, _strong_pixels, _strong_rows

    rng = np.random.default_rng(11)
    pixels = _spot_image([(10.0, 12.0), (30.5, 40.2), (58.0, 3.0), (47.0, 47.0)], shape=(64, 61), seed=3,
                         background=4.0).astype(np.float64)
    pixels += rng.normal(0.0, 1.5, pixels.shape)  # read noise: not whole counts
    mask = rng.random(pixels.shape) < 0.05
    mask[20:23, :] = True  # a gap
    half, sigma_b, sigma_s, min_local, gain, offset = 3, 6.0, 3.0, 2, 1.0, 2.25
    strong = _strong_pixels(pixels, mask, half, sigma_b, sigma_s, min_local, gain, offset)
    row_start, columns = _strong_rows(strong)
    background = _background_under(pixels, mask, strong, 2 * half, row_start, columns)
    margins = []  # how far each pixel is from the threshold it fell on (scale-free)
    expected = np.zeros(pixels.shape, bool)
    for s in range(pixels.shape[0]):
        for f in range(pixels.shape[1]):
            window = (slice(max(0, s - half), s + half + 1), slice(max(0, f - half), f + half + 1))
            values = pixels[window][~mask[window]]
            if mask[s, f] or len(values) < min_local or values.mean() <= 0:
                continue
            m, n = values.mean(), len(values)
            noise = gain * m + offset
            dispersion = values.var(ddof=1) / (noise * (1 + sigma_b * math.sqrt(2 / (n - 1)))) - 1
            standout = (pixels[s, f] - m) / (sigma_s * math.sqrt(noise)) - 1
            expected[s, f] = dispersion > 0 and standout > 0
            margins.append(min(abs(dispersion), abs(standout)))
    assert expected.sum() >= 20 and np.min(margins) > 1e-9  # no pixel on a knife edge
    np.testing.assert_array_equal(strong, expected)
    for position, (s, f) in enumerate(zip(*np.nonzero(strong))):  # row-major, as the strong rows
        assert columns[position] == f and row_start[s] <= position < row_start[s + 1]
        window = (slice(max(0, s - 2 * half), s + 2 * half + 1), slice(max(0, f - 2 * half), f + 2 * half + 1))
        values = pixels[window][~(mask[window] | strong[window])]
        assert background[position] == pytest.approx(values.mean(), rel=1e-5)


def test_screen_keeps_every_pixel_the_standing_out_test_passes():
    """The dispersion kernel's division-free screen (:func:`_may_stand_out`) may let through pixels
    that then fail, never drop one that passes I > m + σ_s·√(g·m + c) as the kernel computes it:
    tried on pixels placed on the threshold and one to four floating-point steps either side of it,
    over nine decades of counts and window sizes, for gains and offsets of either sign (a calibrated
    noise model can fit c < 0); on plain Poisson background it passes few pixels."""
    from xrais.spotfinder import _may_stand_out

    rng = np.random.default_rng(5)
    size = 50_000
    sigma_s = 3.0
    checked = 0
    for gain, offset in ((1.0, 0.0), (25.0, 1.0), (0.3, 50.0), (1.0, -0.5), (2.0, -3.0), (0.0, 4.0)):
        n = rng.integers(2, 170, size).astype(float)
        mean = 10.0 ** rng.uniform(-3, 6, size)
        t = mean * n
        m = t / n  # as the kernel computes them
        expected = gain * m + offset
        threshold = m + sigma_s * np.sqrt(np.maximum(expected, 0.0))
        value = threshold.copy()
        for _ in range(4):
            value = np.nextafter(value, -np.inf)
        for step in range(-4, 5):  # four representable numbers below the threshold, it, four above
            passes = (expected > 0) & (m > 0) & (value > threshold)
            screened = np.empty(size, bool)
            _may_stand_out(value, n, t, sigma_s, gain, offset, screened)
            assert not (passes & ~screened).any(), (gain, offset, step)
            checked += passes.sum()
            value = np.nextafter(value, np.inf)
    assert checked > 500_000  # the threshold's neighbourhood was reached
    counts = rng.poisson(20.0, size).astype(float)
    screened = np.empty(size, bool)
    _may_stand_out(counts, np.full(size, 49.0), np.full(size, 49.0 * 20.0), sigma_s, 1.0, 0.0, screened)
    assert screened.mean() < 0.01


def test_non_finite_pixels_count_as_masked():
    """A float image's NaN or infinite pixels are masked (as the readers mask them): the spots of an
    image with such pixels near its spots are those of the image with the pixels masked."""
    geometry = Geometry(distance=200.0, wavelength=1.0, pixel_size=0.172, beam_centre=(30.0, 30.0), shape=(64, 61),
                        detector="PILATUS 6M")
    pixels = _spot_image([(10.0, 12.0), (30.5, 40.2), (47.0, 47.0)], shape=(64, 61), seed=3,
                         background=4.0).astype(np.float64)
    bad = np.zeros(pixels.shape, bool)
    bad[[5, 16, 36, 52], [12, 9, 40, 44]] = True  # within the background windows of the spots
    spoiled = pixels.copy()
    spoiled[bad] = [np.inf, np.nan, -np.inf, np.nan]
    expected = find_spots(pixels, bad, geometry)
    found = find_spots(spoiled, None, geometry)
    assert len(expected) == 3
    for name in ("fast", "slow", "intensity", "sigma", "size"):
        np.testing.assert_array_equal(getattr(found, name), getattr(expected, name))
