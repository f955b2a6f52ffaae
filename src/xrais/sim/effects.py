"""Detector effects: beamstop shadow, point-spread function, photon and read noise, hot and dead
pixels, module gaps. Random choices come from the caller's numpy Generator, so a seed reproduces
an image exactly.
"""
from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple, Optional

import numba
import numpy as np

from ..io import detectors
from ..io.geometry import Geometry
from .frame import Window, resolve_window

#: Value of hot pixels (paper Appendix A1.2) and of module-gap pixels.
HOT_PIXEL_VALUE = 2.0 ** 16
GAP_VALUE = -1.0


@dataclasses.dataclass(frozen=True)
class DetectorEffects:
    """What happens between the expected photons and the recorded image.

    poisson: photon-counting noise; read_noise: Gaussian electronic noise (photons RMS), None for
    the catalogue value of the detector (0 for photon-counting detectors); beamstop_radius: radius
    (mm) of the beamstop shadow around the direct beam (0: none); beamstop_arm_width (mm) and
    beamstop_arm_angle (degrees from the +fast axis towards +slow): the shadow of the arm holding the
    beamstop, from the beam to the detector edge (width 0: none); mask_beamstop: also flag the
    shadow in the mask; hot_pixels: number of pixels set to 2¹⁶; dead_pixels: number of pixels set
    to 0; module_gaps: gaps of the catalogue detector set to −1 and masked; psf_fwhm: Gaussian
    point-spread function FWHM (pixels, 0: none).
    """

    poisson: bool = True
    read_noise: Optional[float] = None
    beamstop_radius: float = 0.0
    beamstop_arm_width: float = 0.0
    beamstop_arm_angle: float = 0.0
    mask_beamstop: bool = False
    hot_pixels: int = 0
    dead_pixels: int = 0
    module_gaps: bool = True
    psf_fwhm: float = 0.0


class RecordedImage(NamedTuple):
    """pixels: float32 (slow, fast) as recorded (0 outside the rendered window); mask: bool, True
    where invalid (gaps, the beamstop if requested, everything outside the window). Of the window's
    shape when made by :func:`record_window`."""

    pixels: np.ndarray
    mask: np.ndarray


def apply_detector_effects(expected: np.ndarray, geometry: Geometry, effects: DetectorEffects,
                           rng: np.random.Generator, window=None) -> RecordedImage:
    """Record an image of expected photons (float, (slow, fast) of ``geometry.shape``) on the
    detector of ``geometry`` (catalogue model from ``geometry.detector``): only ``window`` (None:
    the whole detector) is processed."""
    expected = np.asarray(expected)
    if expected.shape != geometry.shape:
        raise ValueError(f"expected image shape {expected.shape} differs from the geometry's {geometry.shape}")
    window = resolve_window(window, geometry.shape)
    pixels = np.zeros(geometry.shape, dtype=np.float32)
    mask = np.ones(geometry.shape, dtype=bool)
    if window.size == 0:
        return RecordedImage(pixels, mask)
    recorded = record_window(expected[window.slices], geometry, window, effects, rng)
    pixels[window.slices] = recorded.pixels
    mask[window.slices] = recorded.mask
    return RecordedImage(pixels, mask)


def record_window(expected: np.ndarray, geometry: Geometry, window: Window, effects: DetectorEffects,
                  rng: np.random.Generator) -> RecordedImage:
    """:func:`apply_detector_effects` of the pixels of ``window`` alone: ``expected`` and the
    returned pixels and mask have the window's shape (the same random draws, in the same order).
    Photon and read noise come from numba's generator seeded by draws of ``rng``."""
    window = Window(*window)
    if expected.shape != window.shape:
        raise ValueError(f"expected window shape {expected.shape} differs from the window's {window.shape}")
    model = detectors.find(geometry.detector, geometry.shape) if geometry.detector != "generic" else None
    mask = np.zeros(window.shape, dtype=bool)
    values = np.array(expected, dtype=np.float64)
    shadow = beamstop_shadow(geometry, window, effects)
    values[shadow] = 0.0
    if effects.psf_fwhm > 0.0:
        values = gaussian_blur(values, effects.psf_fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0))))
    read_noise = effects.read_noise
    if read_noise is None:
        read_noise = 0.0 if model is None or model.counting else model.read_noise
    if effects.poisson or read_noise > 0.0:
        # seeds from the caller's generator: the noise of the whole window, drawn by numba
        _add_noise(values, effects.poisson, float(read_noise), rng.integers(2 ** 63, size=2))
    if model is not None and model.gain != 1.0:  # photons → the counts this detector records
        values *= model.gain
    flat = values.reshape(-1)
    flat[_random_pixels(rng, flat.size, effects.dead_pixels)] = 0.0
    flat[_random_pixels(rng, flat.size, effects.hot_pixels)] = HOT_PIXEL_VALUE
    if effects.mask_beamstop:
        mask |= shadow
    if effects.module_gaps and model is not None and model.shape == geometry.shape:
        gaps = model.gap_mask()[window.slices]
        values[gaps] = GAP_VALUE
        mask |= gaps
    return RecordedImage(values.astype(np.float32), mask)


#: Below this mean, photon counts are drawn by inverting the Poisson distribution (one uniform
#: number and about mean + 1 steps); above it, by numba's np.random.poisson (PTRS).
POISSON_INVERSION_LIMIT = 12.0


def _add_noise(values: np.ndarray, poisson: bool, read_noise: float, seeds) -> None:
    """In place: each value v → Poisson(max(v, 0)) if ``poisson``, then plus N(0, read_noise²) if
    read_noise > 0; seeds[0] seeds the photon counts, seeds[1] the read noise (the same seeds, the
    same noise; the counts do not depend on the read noise)."""
    flat = values.reshape(-1)
    if poisson:
        uniforms = np.random.Generator(np.random.PCG64(int(seeds[0]))).random(flat.size)
        _poisson_counts(flat, uniforms, int(seeds[0]) % 2 ** 32)  # numba's generator takes 32 bits
    if read_noise > 0.0:
        flat += read_noise * np.random.Generator(np.random.PCG64(int(seeds[1]))).standard_normal(flat.size)


@numba.njit(cache=True, nogil=True)
def _poisson_counts(flat, uniforms, seed):
    """flat[i] → a Poisson(flat[i]) count (0 where flat[i] ≤ 0): by inversion of uniforms[i] below
    :data:`POISSON_INVERSION_LIMIT`, by numba's np.random.poisson (seeded with ``seed``) above."""
    np.random.seed(seed)
    for i in range(flat.shape[0]):
        mean = flat[i]
        if mean <= 0.0:
            flat[i] = 0.0
            continue
        if mean >= POISSON_INVERSION_LIMIT:
            flat[i] = float(np.random.poisson(mean))
            continue
        uniform = uniforms[i]
        if uniform <= 1.0 - mean:  # then uniform ≤ exp(−mean), P(0): no exp needed
            flat[i] = 0.0
            continue
        term = math.exp(-mean)
        cumulative = term
        count = 0
        while uniform > cumulative and term > 0.0:
            count += 1
            term *= mean / count
            cumulative += term
        flat[i] = float(count)


def beamstop_shadow(geometry: Geometry, window: Window, effects: DetectorEffects) -> np.ndarray:
    """Boolean (window shape) image, True in the shadow of the beamstop and its arm."""
    shadow = np.zeros(window.shape, dtype=bool)
    if effects.beamstop_radius <= 0.0 and effects.beamstop_arm_width <= 0.0:
        return shadow
    beam_fast, beam_slow = geometry.beam_centre
    angle = math.radians(effects.beamstop_arm_angle)
    _shadow(shadow, window.slow_start, window.fast_start, beam_slow, beam_fast, geometry.pixel_size,
            effects.beamstop_radius, effects.beamstop_arm_width, math.cos(angle), math.sin(angle))
    return shadow


@numba.njit(cache=True, nogil=True)
def _shadow(shadow, slow_start, fast_start, beam_slow, beam_fast, pixel_size, radius, arm_width, cos_arm, sin_arm):
    """shadow[i, j] = pixel centre within ``radius`` (mm) of the beam, or on the arm: from the
    beam along (cos_arm, sin_arm) (fast, slow), within arm_width/2 (mm) of its axis."""
    rows, columns = shadow.shape
    for i in range(rows):
        slow = (slow_start + i + 0.5 - beam_slow) * pixel_size
        for j in range(columns):
            fast = (fast_start + j + 0.5 - beam_fast) * pixel_size
            inside = radius > 0.0 and fast * fast + slow * slow <= radius * radius
            if not inside and arm_width > 0.0:
                along = fast * cos_arm + slow * sin_arm
                across = -fast * sin_arm + slow * cos_arm
                inside = along >= 0.0 and abs(across) <= arm_width / 2.0
            shadow[i, j] = inside


def gaussian_blur(values: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of standard deviation ``sigma`` (pixels), kernel truncated at 4σ and
    normalized, edges extended with their nearest value (photons are conserved away from edges).
    Returns a new float64 array."""
    radius = max(1, int(math.ceil(4.0 * sigma)))
    weights = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    weights /= weights.sum()
    rows = _blur_rows(np.ascontiguousarray(values, dtype=np.float64), weights)
    return _blur_rows(np.ascontiguousarray(rows.T), weights).T.copy()


@numba.njit(cache=True, nogil=True)
def _blur_rows(values, weights):
    """Convolve every row with ``weights`` (odd length, centred), edges extended."""
    rows, columns = values.shape
    radius = weights.shape[0] // 2
    out = np.empty_like(values)
    for i in range(rows):
        for j in range(columns):
            total = 0.0
            for k in range(-radius, radius + 1):
                total += weights[k + radius] * values[i, min(columns - 1, max(0, j + k))]
            out[i, j] = total
    return out


def _random_pixels(rng: np.random.Generator, size: int, count: int) -> np.ndarray:
    """``count`` distinct flat indices among ``size`` (fewer if the window is smaller)."""
    count = min(int(count), size)
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    return rng.choice(size, size=count, replace=False)
