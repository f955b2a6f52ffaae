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
    returned pixels and mask have the window's shape (the same random draws, in the same order)."""
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
    if effects.poisson:
        values = rng.poisson(np.maximum(values, 0.0)).astype(np.float64)
    read_noise = effects.read_noise
    if read_noise is None:
        read_noise = 0.0 if model is None or model.counting else model.read_noise
    if read_noise > 0.0:
        values += rng.normal(0.0, read_noise, size=values.shape)
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


def beamstop_shadow(geometry: Geometry, window: Window, effects: DetectorEffects) -> np.ndarray:
    """Boolean (window shape) image, True in the shadow of the beamstop and its arm."""
    shadow = np.zeros(window.shape, dtype=bool)
    if effects.beamstop_radius <= 0.0 and effects.beamstop_arm_width <= 0.0:
        return shadow
    beam_fast, beam_slow = geometry.beam_centre
    slow = (np.arange(window.slow_start, window.slow_stop) + 0.5 - beam_slow)[:, None] * geometry.pixel_size
    fast = (np.arange(window.fast_start, window.fast_stop) + 0.5 - beam_fast)[None, :] * geometry.pixel_size
    if effects.beamstop_radius > 0.0:
        shadow |= fast * fast + slow * slow <= effects.beamstop_radius ** 2
    if effects.beamstop_arm_width > 0.0:
        angle = math.radians(effects.beamstop_arm_angle)
        along = fast * math.cos(angle) + slow * math.sin(angle)
        across = -fast * math.sin(angle) + slow * math.cos(angle)
        shadow |= (along >= 0.0) & (np.abs(across) <= effects.beamstop_arm_width / 2.0)
    return shadow


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
