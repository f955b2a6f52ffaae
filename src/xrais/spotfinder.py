"""Classical baseline: spot finding with the dispersion threshold (as DIALS) and a spot-based
resolution estimate (in the manner of DIALS' per-image analysis).

Dispersion threshold (Leslie 1999; DIALS ``threshold.algorithm=dispersion``): in a
(2k+1)×(2k+1) window of valid pixels around each pixel, with local mean m, variance v and count n,
a pixel is strong when the window is noisier than counting statistics allow,
v > σ²(m)·(1 + σ_b·√(2/(n−1))), and the pixel stands out, I > m + σ_s·σ(m), with the noise model
σ²(m) = g·m + r² (g the gain, counts per photon; r the read noise, counts RMS). For a photon
counter r = 0 and the test is DIALS' v/m > g·(1 + σ_b·√(2/(n−1))). An integrating detector (CCD,
CS-PAD) adds read noise, and over a faint background its windows then pass the Poisson test almost
everywhere: a simulated CCD quadrant gave thousands of "spots" of noise. So r is, unless given, the
detector catalogue's for the frame's detector, and so is g (counts per photon: 1 except for the
CS-PAD's ADU). ``noise_model="calibrated"`` fits g and c of
σ² = g·m + c on the image itself instead (:func:`calibrate_noise`), for counts of unknown scale; on
the real CCD images here neither model is right everywhere (their noise varies across the
detector and is not independent between pixels), so weak "spots" of noise remain on them. The
real CS-PAD thermolysin stills, thresholded with the catalogue's 25 ADU per photon, give 31–97
spots each (with gain 1: ~20,000 of noise).
Strong pixels are grouped into 8-connected spots.

Resolution estimate: spots are binned in d*² with equal populations; the 90th percentile of
ln(I/σ) in each bin is fitted by a line against d*², and the estimate is the d of the
highest-angle spot, not an outlier and not on an ice ring, lying below that line (spots beyond
the reach of good data fall above it only as outliers). With fewer than ``min_spots`` spots no
estimate is made.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional, Tuple

import numba
import numpy as np

from .io.detectors import noise_for
from .io.geometry import Geometry

#: Hexagonal ice powder-ring d-spacings (Å) and the half-width in d*² (Å⁻²) used to flag spots on them.
ICE_RINGS_A = (3.897, 3.669, 3.441, 2.671, 2.249, 2.072, 1.948, 1.918, 1.883, 1.721, 1.527, 1.473, 1.370, 1.300, 1.267)
ICE_HALF_WIDTH_D_STAR_SQ = 0.004


NOISE_MODELS = ("poisson", "calibrated")


@dataclasses.dataclass(frozen=True)
class SpotFinderSettings:
    """Dispersion-threshold settings (DIALS defaults): window half-size (pixels), σ_background,
    σ_strong, minimum valid pixels in the window, spot size limits (pixels), minimum spots for a
    resolution estimate, and the noise model: "poisson" (variance gain·m + read_noise², gain in
    counts per photon, read_noise in counts RMS; None: the detector catalogue's for the frame's
    detector, :func:`xrais.io.detectors.noise_for`: gain 1 and read noise 0 for photon counters)
    or "calibrated" (fitted on each image, :func:`calibrate_noise`)."""

    kernel_half_size: int = 3
    sigma_background: float = 6.0
    sigma_strong: float = 3.0
    min_local: int = 2
    noise_model: str = "poisson"
    gain: Optional[float] = None
    read_noise: Optional[float] = None
    min_spot_size: int = 3
    max_spot_size: int = 1000
    min_spots: int = 10

    def __post_init__(self):
        if self.noise_model not in NOISE_MODELS:
            raise ValueError(f"noise_model must be one of {', '.join(NOISE_MODELS)}, not {self.noise_model!r}")


@dataclasses.dataclass
class SpotList:
    """Spots of one image: centroid (fast, slow) px, background-subtracted intensity (counts),
    its σ, size (pixels), d (Å) and ice-ring flag."""

    fast: np.ndarray
    slow: np.ndarray
    intensity: np.ndarray
    sigma: np.ndarray
    size: np.ndarray
    d: np.ndarray
    on_ice_ring: np.ndarray

    def __len__(self):
        return len(self.fast)


@dataclasses.dataclass
class SpotAnalysis:
    """Per-image result: spot counts and the spot-based resolution estimate (Å, None if none)."""

    n_spots: int
    n_spots_no_ice: int
    n_spots_4A: int
    d_min: Optional[float]
    spots: SpotList


@numba.njit(cache=True, nogil=True)
def _strong_pixels(pixels, mask, half, sigma_b, sigma_s, min_local, gain, offset):
    """Boolean image of strong pixels (dispersion threshold; noise variance gain·m + offset).

    The window's count, Σv and Σv² are running sums: per column over the window's rows (a row
    added, one dropped, as the window moves down), then along the row (a column added, one
    dropped), so the pass reads each pixel a few times and keeps only O(columns) sums."""
    ns, nf = pixels.shape
    column_n = np.zeros(nf, np.float64)
    column_t = np.zeros(nf, np.float64)
    column_q = np.zeros(nf, np.float64)
    strong = np.zeros((ns, nf), np.bool_)
    for s in range(min(half, ns)):
        _add_row(pixels, mask, s, column_n, column_t, column_q, 1.0)
    for s in range(ns):
        if s + half < ns:
            _add_row(pixels, mask, s + half, column_n, column_t, column_q, 1.0)
        if s - half - 1 >= 0:
            _add_row(pixels, mask, s - half - 1, column_n, column_t, column_q, -1.0)
        n = 0.0
        t = 0.0
        q = 0.0
        for f in range(min(half, nf)):
            n += column_n[f]
            t += column_t[f]
            q += column_q[f]
        for f in range(nf):
            if f + half < nf:
                n += column_n[f + half]
                t += column_t[f + half]
                q += column_q[f + half]
            if f - half - 1 >= 0:
                n -= column_n[f - half - 1]
                t -= column_t[f - half - 1]
                q -= column_q[f - half - 1]
            if mask[s, f] or n < min_local:
                continue
            mean = t / n
            expected = gain * mean + offset
            if mean <= 0.0 or expected <= 0.0:
                continue
            value = float(pixels[s, f])
            if value <= mean + sigma_s * math.sqrt(expected):
                continue
            variance = (n * q - t * t) / (n * (n - 1.0))
            if variance > expected * (1.0 + sigma_b * math.sqrt(2.0 / (n - 1.0))):
                strong[s, f] = True
    return strong


@numba.njit(cache=True, nogil=True)
def _add_row(pixels, mask, s, column_n, column_t, column_q, sign):
    """Add (sign 1) or remove (−1) row s's valid pixels to the per-column running sums."""
    for f in range(pixels.shape[1]):
        if not mask[s, f]:
            v = float(pixels[s, f])
            column_n[f] += sign
            column_t[f] += sign * v
            column_q[f] += sign * v * v


@numba.njit(cache=True, nogil=True)
def _background_under(pixels, mask, strong, half):
    """Local background (counts) at each strong pixel: mean of the valid, non-strong pixels of
    its window (twice the threshold window, so that a spot does not fill it), summed directly at
    the strong pixels only (a few per cent of the image)."""
    ns, nf = pixels.shape
    background = np.zeros((ns, nf), np.float32)
    for s in range(ns):
        for f in range(nf):
            if not strong[s, f]:
                continue
            n = 0
            total = 0.0
            for s2 in range(max(0, s - half), min(ns, s + half + 1)):
                for f2 in range(max(0, f - half), min(nf, f + half + 1)):
                    if not (mask[s2, f2] or strong[s2, f2]):
                        n += 1
                        total += float(pixels[s2, f2])
            if n > 0:
                background[s, f] = total / n
    return background


@numba.njit(cache=True, nogil=True)
def _label_spots(strong, pixels, background, min_size, max_size):
    """8-connected components of strong pixels → per-spot sums (flood fill with an explicit stack).

    Returns arrays (n_spots, 5): intensity sum, Σ I·f, Σ I·s, size, summed background.
    """
    ns, nf = strong.shape
    seen = np.zeros((ns, nf), np.bool_)
    stack = np.empty(max(int(strong.sum()), 1), np.int64)
    out = np.zeros((1024, 5), np.float64)
    n_out = 0
    for s_seed in range(ns):
        for f_seed in range(nf):
            if not strong[s_seed, f_seed] or seen[s_seed, f_seed]:
                continue
            top = 0
            stack[top] = s_seed * nf + f_seed
            top += 1
            seen[s_seed, f_seed] = True
            signal = 0.0
            sum_f = 0.0
            sum_s = 0.0
            size = 0
            back = 0.0
            while top > 0:
                top -= 1
                index = stack[top]
                s = index // nf
                f = index - s * nf
                value = float(pixels[s, f]) - background[s, f]
                weight = max(value, 0.0)
                signal += value
                back += background[s, f]
                sum_f += weight * (f + 0.5)
                sum_s += weight * (s + 0.5)
                size += 1
                for ds in range(-1, 2):
                    for df in range(-1, 2):
                        s2 = s + ds
                        f2 = f + df
                        if 0 <= s2 < ns and 0 <= f2 < nf and strong[s2, f2] and not seen[s2, f2]:
                            seen[s2, f2] = True
                            stack[top] = s2 * nf + f2
                            top += 1
            if size < min_size or size > max_size or signal <= 0.0:
                continue
            if n_out == out.shape[0]:
                bigger = np.zeros((2 * out.shape[0], 5), np.float64)
                bigger[:n_out] = out[:n_out]
                out = bigger
            out[n_out, 0] = signal
            out[n_out, 1] = sum_f
            out[n_out, 2] = sum_s
            out[n_out, 3] = size
            out[n_out, 4] = back
            n_out += 1
    return out[:n_out]


def noise_model(pixels: np.ndarray, mask: np.ndarray, geometry: Geometry,
                settings: SpotFinderSettings) -> Tuple[float, float]:
    """(g, c) of the pixel-noise variance g·m + c (counts², m the local mean) the settings give
    for this image (see :class:`SpotFinderSettings`)."""
    if settings.noise_model == "calibrated":
        return calibrate_noise(pixels, mask, 2 * settings.kernel_half_size + 1,
                               noise_for(geometry.detector, geometry.shape)[0] if settings.gain is None else settings.gain)
    gain, read_noise = noise_for(geometry.detector, geometry.shape)
    gain = gain if settings.gain is None else settings.gain
    read_noise = read_noise if settings.read_noise is None else settings.read_noise
    return gain, read_noise ** 2


#: Bins of block means :func:`calibrate_noise` fits over (quantiles 2–98 %), and the fewest blocks
#: a bin needs.
CALIBRATION_BINS = 20
CALIBRATION_MIN_BLOCKS = 20


def calibrate_noise(pixels: np.ndarray, mask: np.ndarray, block: int = 7,
                    default_gain: float = 1.0) -> Tuple[float, float]:
    """(g, c) of an image's pixel-noise variance g·m + c (counts²) against the local mean m (counts),
    fitted on the image: the valid block × block tiles are binned by their mean, and a line is
    fitted through each bin's median variance (medians: most tiles are background, the spots'
    few tiles do not move them). When the means hardly vary (a flat background: no lever arm for
    the slope) the gain stays ``default_gain`` and only c is fitted; a slope ≤ 0 likewise."""
    rows, columns = (pixels.shape[0] // block) * block, (pixels.shape[1] // block) * block

    def tiles(array):
        return array[:rows, :columns].reshape(rows // block, block, columns // block, block).swapaxes(1, 2).reshape(-1, block * block)

    full = ~tiles(np.asarray(mask, bool)).any(axis=1)
    values = tiles(np.asarray(pixels, np.float64))[full]
    if len(values) < CALIBRATION_MIN_BLOCKS:
        return default_gain, 0.0
    means, variances = values.mean(axis=1), values.var(axis=1, ddof=1)
    edges = np.quantile(means, np.linspace(0.02, 0.98, CALIBRATION_BINS + 1))
    which = np.digitize(means, edges) - 1
    x, y = [], []
    for index in range(CALIBRATION_BINS):
        chosen = which == index
        if chosen.sum() >= CALIBRATION_MIN_BLOCKS:
            x.append(np.median(means[chosen]))
            y.append(np.median(variances[chosen]))
    x, y = np.array(x), np.array(y)
    if len(x) >= 3 and x[-1] - x[0] >= max(1.0, 0.5 * abs(np.median(x))):
        gain, offset = np.polyfit(x, y, 1)
        if gain > 0:
            return float(gain), float(offset)
    if not len(x):
        return default_gain, 0.0
    return default_gain, float(np.median(y - default_gain * x))


def find_spots(pixels: np.ndarray, mask: Optional[np.ndarray], geometry: Geometry,
               settings: SpotFinderSettings = SpotFinderSettings()) -> SpotList:
    """Strong spots of one image (dispersion threshold, 8-connected), with their d (Å)."""
    pixels = np.asarray(pixels)
    mask = np.zeros(pixels.shape, bool) if mask is None else np.asarray(mask, bool)
    gain, offset = noise_model(pixels, mask, geometry, settings)
    strong = _strong_pixels(pixels, mask, settings.kernel_half_size, settings.sigma_background,
                            settings.sigma_strong, settings.min_local, gain, offset)
    background = _background_under(pixels, mask, strong, 2 * settings.kernel_half_size)
    sums = _label_spots(strong, pixels, background, settings.min_spot_size, settings.max_spot_size)
    intensity = sums[:, 0]
    weights = np.where(intensity > 0, intensity, 1.0)
    fast = sums[:, 1] / weights
    slow = sums[:, 2] / weights
    sigma = np.sqrt(np.maximum(gain * (intensity + sums[:, 4]) + sums[:, 3] * offset, 0.0))
    with np.errstate(divide="ignore"):
        d = 1.0 / np.asarray(geometry.inverse_d_at_pixel(fast, slow), dtype=float).reshape(-1)
    return SpotList(fast, slow, intensity, sigma, sums[:, 3].astype(int), d, on_ice_ring(d))


#: Lab frame of :func:`scattering_vectors` (the simulator's, nanoBragg's MOSFLM convention): the
#: beam along +x, the fast axis of a detector facing the beam along +z and its slow axis along −y.
LAB_BEAM, LAB_FAST, LAB_SLOW = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0]), np.array([0.0, -1.0, 0.0])
#: Rotation from the geometry's lab frame (dxtbx's, :mod:`xrais.io.geometry`: beam along −z, default
#: fast axis +x, slow −y) into this one: rows are this frame's axes in the geometry's frame.
FROM_GEOMETRY_FRAME = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def scattering_vectors(spots: SpotList, geometry: Geometry) -> np.ndarray:
    """(n, 3) scattering vectors r = s₁ − s₀ (Å⁻¹) of the spots' centroids, as DIALS maps spots to
    reciprocal space: s₁ the unit vector from the sample to the centroid over λ, s₀ the beam's.
    |r| = 1/d; for a crystal whose real-space cell vectors (rows, Å) in this lab frame are A, A·r
    are the spots' fractional Miller indices (close to whole numbers on a lattice's spots).

    Lab frame (:data:`LAB_BEAM`, :data:`LAB_FAST`, :data:`LAB_SLOW`): that of :mod:`xrais.sim`; the
    centroids (fast, slow pixels from the outer corner of pixel (0, 0)) are placed by the geometry,
    for a detector of any orientation (:meth:`xrais.io.geometry.Geometry.scattering_vectors_at_pixel`).
    """
    vectors = geometry.scattering_vectors_at_pixel(np.asarray(spots.fast, dtype=float).reshape(-1),
                                                   np.asarray(spots.slow, dtype=float).reshape(-1))
    return vectors @ FROM_GEOMETRY_FRAME.T


def vectors_at(positions_mm: np.ndarray, distance_mm: float, wavelength_a: float) -> np.ndarray:
    """Scattering vectors (n, 3; Å⁻¹) of positions on a flat detector ⊥ the beam at ``distance_mm``
    ((n, 2) mm along its fast and slow axes from the beam centre): r = s₁ − s₀, s₁ the unit vector
    from the sample to the position over λ (:func:`scattering_vectors`, lab frame :data:`LAB_BEAM`…)."""
    positions_mm = np.asarray(positions_mm, dtype=float).reshape(-1, 2)
    position = (distance_mm * LAB_BEAM[None, :] + positions_mm[:, :1] * LAB_FAST[None, :]
                + positions_mm[:, 1:2] * LAB_SLOW[None, :])
    unit = position / np.linalg.norm(position, axis=1, keepdims=True)
    return (unit - LAB_BEAM[None, :]) / wavelength_a


def on_ice_ring(d: np.ndarray) -> np.ndarray:
    """True for d (Å) within the ice-ring bands."""
    d_star_sq = 1.0 / np.square(np.asarray(d, float))
    rings = 1.0 / np.square(np.asarray(ICE_RINGS_A))
    return (np.abs(d_star_sq[:, None] - rings[None, :]) < ICE_HALF_WIDTH_D_STAR_SQ).any(axis=1)


def estimate_resolution(spots: SpotList, min_spots: int = 10, n_bins_max: int = 20, target_per_bin: int = 20,
                        percentile: float = 90.0) -> Optional[float]:
    """Spot-based resolution (Å): the highest-angle non-ice, non-outlier spot below the line fitted
    through the per-bin upper percentile of ln(I/σ) against d*² (None with too few spots)."""
    good = (~spots.on_ice_ring) & (spots.sigma > 0) & (spots.intensity > 0) & np.isfinite(spots.d)
    if good.sum() < min_spots:
        return None
    d_star_sq = 1.0 / np.square(spots.d[good])
    log_i_sigma = np.log(spots.intensity[good] / spots.sigma[good])
    order = np.argsort(d_star_sq)
    n_bins = int(np.clip(len(order) // target_per_bin, 3, n_bins_max))
    bins = np.array_split(order, n_bins)
    x = np.array([np.median(d_star_sq[b]) for b in bins])
    y = np.array([np.percentile(log_i_sigma[b], percentile) for b in bins])
    slope, intercept = np.polyfit(x, y, 1)
    # Outliers: far above the upper line (zingers, hot pixels that passed the threshold).
    residual = log_i_sigma - (slope * d_star_sq + intercept)
    spread = np.median(np.abs(residual - np.median(residual))) * 1.4826 + 1e-6
    inliers = residual < 3.0 * spread
    if not inliers.any():
        return None
    return float(1.0 / math.sqrt(d_star_sq[inliers].max()))


def analyse_image(pixels, mask, geometry: Geometry, settings: SpotFinderSettings = SpotFinderSettings(),
                  spots: Optional[SpotList] = None) -> SpotAnalysis:
    """Spots, counts (all, not on ice rings, d ≥ 4 Å… as DIALS' n_spots_4A counts spots *to* 4 Å)
    and the spot-based resolution estimate of one image; ``spots``: its spots when already found
    with these settings."""
    if spots is None:
        spots = find_spots(pixels, mask, geometry, settings)
    return SpotAnalysis(
        n_spots=len(spots),
        n_spots_no_ice=int((~spots.on_ice_ring).sum()),
        n_spots_4A=int((spots.d >= 4.0).sum()),
        d_min=estimate_resolution(spots, settings.min_spots),
        spots=spots,
    )
