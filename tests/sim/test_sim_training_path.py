"""The training-image path (one quadrant's window, the reflection-driven Bragg kernel at the
training threshold) against the reference path (the pixel kernel on whole-detector arrays)."""
import numpy as np
import pytest

from xrais import conditioning
from xrais.io import Geometry
from xrais.sim import (Beam, DetectorFrame, Lattice, StructurePool, Window, mosaic_rotations, quadrant_window,
                       random_rotation, render_bragg)
from xrais.sim.bragg import lattice_crowding, render_bragg_window
from xrais.sim.frame import as_detector_frame
from xrais.sim.recipes import sample_spec
from xrais.sim.training_images import TRAINING_THRESHOLD, render_training_image
from simhelpers import random_structure

#: A 480×440-pixel detector, beam off centre: quadrant 3 is a 288×232-pixel window.
GEOMETRY = Geometry(120.0, 1.0, 0.172, (207.3, 191.8), (480, 440), detector="generic")
POOL = 3
SPECS_PER_RECIPE = 20


def roomy_crystal(seed):
    """A crystal whose transforms' tails do not overlap (the reflection kernel's case)."""
    rng = np.random.default_rng(seed)
    lattice = Lattice.from_cell((34.0, 41.0, 47.0, 88.0, 95.0, 101.0), random_rotation(rng), cells=(14, 12, 11),
                                mosaic=mosaic_rotations(0.4, 6, rng), blocks=2.0)
    return lattice, random_structure(rng)


@pytest.mark.parametrize("oversample", [1, 2])
def test_reflection_kernel_on_a_quadrant_window_equals_the_exact_kernel(oversample):
    lattice, structure = roomy_crystal(seed=5)
    assert lattice_crowding(lattice) < 0.2
    beam = Beam(1.0, 1e24, dispersion=0.003, dispersion_steps=3)
    window = quadrant_window(GEOMETRY, 3)
    options = dict(b_factor=20.0, oversample=oversample, device="cpu", window=window)
    exact = render_bragg(lattice, structure, beam, GEOMETRY, path="exact", **options)
    reflections = render_bragg(lattice, structure, beam, GEOMETRY, path="reflections", **options)
    assert np.count_nonzero(exact > 1e-3 * exact.max()) > 50
    assert not reflections[:window.slow_start].any() and not reflections[:, :window.fast_start].any()
    np.testing.assert_allclose(reflections, exact, rtol=1e-6, atol=1e-8 * exact.max())
    # the window-only renderer gives the window's pixels, whichever kernel it picks
    frame = as_detector_frame(GEOMETRY)
    for kernel in ("auto", "pixels", "reflections"):
        alone = render_bragg_window([lattice], structure, beam, frame, window, b_factor=20.0, oversample=oversample,
                                    kernel=kernel)
        np.testing.assert_allclose(alone, exact[window.slices], rtol=1e-6, atol=1e-8 * exact.max())


@pytest.mark.parametrize("tilt_deg", [30.0, 65.0])
def test_reflection_kernel_on_a_tilted_detector_equals_the_exact_kernel(tilt_deg):
    """A detector turned about its slow axis (the rays meet it obliquely, the spots are stretched
    along fast), and a window of it: the same image as the exact kernel."""
    lattice, structure = roomy_crystal(seed=8)
    c, s = np.cos(np.radians(tilt_deg)), np.sin(np.radians(tilt_deg))
    fdet, sdet, normal = np.array([s, 0.0, c]), np.array([0.0, -1.0, 0.0]), np.array([c, 0.0, -s])
    frame = DetectorFrame(90.0 * normal - 25.0 * fdet - 20.0 * sdet, fdet, sdet, 0.172, (240, 300))
    beam = Beam(1.0, 1e24, divergence=0.1, divergence_steps=2)
    window = Window(30, 200, 40, 290)
    options = dict(b_factor=10.0, oversample=2, device="cpu", window=window)
    exact = render_bragg(lattice, structure, beam, frame, path="exact", **options)
    reflections = render_bragg(lattice, structure, beam, frame, path="reflections", **options)
    assert np.count_nonzero(exact > 1e-3 * exact.max()) > 50
    np.testing.assert_allclose(reflections, exact, rtol=1e-6, atol=1e-8 * exact.max())


def test_conditioning_a_window_equals_conditioning_the_whole_detector():
    rng = np.random.default_rng(2)
    geometry = Geometry(200.0, 1.0, 0.172, (700.4, 650.6), (1400, 1300), detector="generic")
    pixels = rng.poisson(3.0, geometry.shape).astype(np.int32)
    mask = rng.random(geometry.shape) < 0.01
    for quadrant in range(4):
        window = quadrant_window(geometry, quadrant)
        whole = conditioning.condition(pixels, mask, geometry, quadrants=quadrant)
        part = conditioning.condition(pixels[window.slices], mask[window.slices], geometry, quadrants=quadrant,
                                      origin=(window.slow_start, window.fast_start))
        np.testing.assert_array_equal(part, whole)  # the same integers max-pooled by the same kernel


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    return StructurePool(size=POOL, seed=0, folder=tmp_path_factory.mktemp("structures"))


def _shell_statistics(raw, geometry, shells=5):
    """Per 1/d shell of the valid pixels: count of pixels 5σ above the shell's median (spots),
    and the shell's median (background)."""
    valid = ~raw.mask & (raw.pixels >= 0) & (raw.pixels < 65536)
    slow, fast = np.nonzero(valid)
    beam_fast, beam_slow = geometry.beam_centre
    radius = np.hypot(fast + 0.5 - beam_fast, slow + 0.5 - beam_slow) * geometry.pixel_size
    inverse_d = 2.0 * np.sin(0.5 * np.arctan(radius / geometry.distance)) / geometry.wavelength
    values = raw.pixels[slow, fast].astype(float)
    edges = np.quantile(inverse_d, np.linspace(0.0, 1.0, shells + 1))
    spots, background = [], []
    for low, high in zip(edges[:-1], edges[1:]):
        shell = values[(inverse_d >= low) & (inverse_d <= high)]
        median = np.median(shell)
        spots.append(int(np.count_nonzero(shell > median + 5.0 * np.sqrt(max(median, 1.0)) + 1.0)))
        background.append(median)
    return np.array(spots), np.array(background), float(values.sum())


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["resolution", "multilattice"])
def test_training_images_have_the_reference_statistics(recipe, pool):
    """On the same specs, the training path's images hold the reference path's photons (expected
    and recorded), spots per resolution shell and background level: the noise realisations
    differ (the Poisson draws part ways at the first pixel whose expected value differs in its
    last digits), the physics does not."""
    compared = 0
    for index in range(SPECS_PER_RECIPE):
        spec = sample_spec(recipe, index, 23, POOL)
        fast = render_training_image(spec, pool, keep_raw=True)
        reference = render_training_image(spec, pool, keep_raw=True, reference=True)
        assert fast.labels == reference.labels
        expected_fast, expected_reference = fast.raw.expected.sum(), reference.raw.expected.sum()
        assert expected_fast == pytest.approx(expected_reference, rel=10 * TRAINING_THRESHOLD)
        spots_fast, background_fast, total_fast = _shell_statistics(fast.raw, fast.geometry)
        spots_reference, background_reference, total_reference = _shell_statistics(reference.raw, reference.geometry)
        # recorded photons: the same up to Poisson noise (a few √N) and the hot pixels' 2¹⁶ (left out)
        assert abs(total_fast - total_reference) <= 6.0 * np.sqrt(total_reference) + 1.0
        np.testing.assert_allclose(background_fast, background_reference, rtol=0.05, atol=1.0)
        np.testing.assert_allclose(spots_fast, spots_reference, rtol=0.1, atol=8)
        compared += 1
    assert compared == SPECS_PER_RECIPE
