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
    dropped), so the pass reads each pixel a few times and keeps only O(columns) sums. Each row's
    pixels are first screened without a division or a square root (:func:`_may_stand_out`, which
    the compiler vectorises); the few that pass are tested as defined."""
    ns, nf = pixels.shape
    column_n = np.zeros(nf, np.float64)
    column_t = np.zeros(nf, np.float64)
    column_q = np.zeros(nf, np.float64)
    window_n = np.empty(nf, np.float64)
    window_t = np.empty(nf, np.float64)
    window_q = np.empty(nf, np.float64)
    screened = np.empty(nf, np.bool_)
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
            window_n[f] = n
            window_t[f] = t
            window_q[f] = q
        _may_stand_out(pixels[s], window_n, window_t, sigma_s, gain, offset, screened)
        for f in range(nf):
            if not screened[f] or mask[s, f]:
                continue
            n = window_n[f]
            t = window_t[f]
            if n < min_local:
                continue
            mean = t / n
            expected = gain * mean + offset
            if mean <= 0.0 or expected <= 0.0:
                continue
            value = float(pixels[s, f])
            if value <= mean + sigma_s * math.sqrt(expected):
                continue
            variance = (n * window_q[f] - t * t) / (n * (n - 1.0))
            if variance > expected * (1.0 + sigma_b * math.sqrt(2.0 / (n - 1.0))):
                strong[s, f] = True
    return strong


#: Relative slack of :func:`_may_stand_out`'s screen: rounding moves its terms by ~10⁻¹⁶ of their
#: size, so a pixel the exact test passes never fails the screen.
SCREEN_SLACK = 1e-9


@numba.njit(cache=True, nogil=True)
def _may_stand_out(values, window_n, window_t, sigma_s, gain, offset, out):
    """out[f]: whether pixel f of a row may pass the standing-out test I > m + σ_s·√(g·m + c)
    (m = t/n, the window's mean): (nI − t)² > σ_s²·n·(g·t + c·n) with nI − t > 0, each side
    loosened by :data:`SCREEN_SLACK` of its terms' sizes, so that it holds for every pixel the
    exact test passes (and for few others). No division, square root or branch: one pass the
    compiler vectorises, where the exact test costs two of each per pixel. Holds within the
    double range of counts (squares of n·I below ~10³⁰⁸, offsets not subnormal)."""
    for f in range(len(values)):
        n = window_n[f]
        t = window_t[f]
        product = float(values[f]) * n
        excess = product - t + SCREEN_SLACK * (abs(product) + abs(t))
        noise = n * (gain * t + offset * n) - SCREEN_SLACK * n * (abs(gain * t) + abs(offset) * n)
        out[f] = (excess > 0.0) & (excess * excess > sigma_s * sigma_s * (1.0 - SCREEN_SLACK) * noise)


@numba.njit(cache=True, nogil=True)
def _add_row(pixels, mask, s, column_n, column_t, column_q, sign):
    """Add (sign 1) or remove (−1) row s's valid pixels to the per-column running sums."""
    for f in range(pixels.shape[1]):
        valid = not mask[s, f]
        v = float(pixels[s, f]) if valid else 0.0
        column_n[f] += sign if valid else 0.0
        column_t[f] += sign * v
        column_q[f] += sign * v * v


@numba.njit(cache=True, nogil=True)
def _strong_rows(strong):
    """The strong pixels in row-major order: (first position of each row, with one past the last
    at the end; their columns)."""
    ns, nf = strong.shape
    row_start = np.zeros(ns + 1, np.int64)
    for s in range(ns):
        count = 0
        for f in range(nf):
            count += strong[s, f]
        row_start[s + 1] = row_start[s] + count
    columns = np.empty(row_start[ns], np.int64)
    k = 0
    for s in range(ns):
        if row_start[s + 1] == row_start[s]:
            continue
        for f in range(nf):
            if strong[s, f]:
                columns[k] = f
                k += 1
    return row_start, columns


@numba.njit(cache=True, nogil=True)
def _position(row_start, columns, s, f):
    """Row-major position of strong pixel (s, f) among the strong pixels (binary search in its row)."""
    low = row_start[s]
    high = row_start[s + 1]
    while high - low > 1:
        middle = (low + high) // 2
        if columns[middle] <= f:
            low = middle
        else:
            high = middle
    return low


@numba.njit(cache=True, nogil=True)
def _background_under(pixels, mask, strong, half, row_start, columns):
    """Local background (counts) at each strong pixel, in row-major order (:func:`_strong_rows`):
    mean of the valid, non-strong pixels of its window (twice the threshold window, so that a spot
    does not fill it). Along a run of strong pixels in a row the window slides, a column of sums
    added and one dropped; nothing the size of the image is made (an EIGER 16M frame's would be
    72 MB)."""
    ns, nf = pixels.shape
    background = np.zeros(len(columns), np.float32)
    for s in range(ns):
        top = max(0, s - half)
        bottom = min(ns, s + half + 1)
        k = row_start[s]
        while k < row_start[s + 1]:
            f = columns[k]
            n = 0
            total = 0.0
            for f2 in range(max(0, f - half), min(nf, f + half + 1)):
                count, column = _column_background(pixels, mask, strong, top, bottom, f2)
                n += count
                total += column
            while True:
                if n > 0:
                    background[k] = total / n
                k += 1
                if k >= row_start[s + 1] or columns[k] != f + 1:
                    break
                f += 1
                if f + half < nf:
                    count, column = _column_background(pixels, mask, strong, top, bottom, f + half)
                    n += count
                    total += column
                if f - half - 1 >= 0:
                    count, column = _column_background(pixels, mask, strong, top, bottom, f - half - 1)
                    n -= count
                    total -= column
    return background


@numba.njit(cache=True, nogil=True)
def _column_background(pixels, mask, strong, top, bottom, f):
    """(count, sum) of the valid, non-strong pixels of column f in rows top…bottom − 1."""
    count = 0
    total = 0.0
    for s in range(top, bottom):
        if not (mask[s, f] or strong[s, f]):
            count += 1
            total += float(pixels[s, f])
    return count, total


@numba.njit(cache=True, nogil=True)
def _label_spots(strong, pixels, row_start, columns, background, min_size, max_size):
    """8-connected components of strong pixels → per-spot sums (flood fill with an explicit stack).
    background: each strong pixel's, in row-major order (:func:`_background_under`).

    Returns arrays (n_spots, 5): intensity sum, Σ I·f, Σ I·s, size, summed background.
    """
    ns, nf = strong.shape
    seen = np.zeros(len(columns), np.bool_)  # by row-major position: no image-sized array
    stack = np.empty(max(len(columns), 1), np.int64)
    out = np.zeros((1024, 5), np.float64)
    n_out = 0
    for s_seed in range(ns):
        for k_seed in range(row_start[s_seed], row_start[s_seed + 1]):
            if seen[k_seed]:
                continue
            top = 0
            stack[top] = s_seed * nf + columns[k_seed]
            top += 1
            seen[k_seed] = True
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
                under = background[_position(row_start, columns, s, f)]
                value = float(pixels[s, f]) - under
                weight = max(value, 0.0)
                signal += value
                back += under
                sum_f += weight * (f + 0.5)
                sum_s += weight * (s + 0.5)
                size += 1
                for ds in range(-1, 2):
                    for df in range(-1, 2):
                        s2 = s + ds
                        f2 = f + df
                        if 0 <= s2 < ns and 0 <= f2 < nf and strong[s2, f2]:
                            k = _position(row_start, columns, s2, f2)
                            if not seen[k]:
                                seen[k] = True
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
    """Strong spots of one image (dispersion threshold, 8-connected), with their d (Å). Pixels
    that are not finite numbers (NaN, ±inf in a float image) count as masked, as the readers mask
    them."""
    pixels = np.asarray(pixels)
    mask = np.zeros(pixels.shape, bool) if mask is None else np.asarray(mask, bool)
    if pixels.dtype.kind == "f":
        finite = np.isfinite(pixels)
        if not finite.all():
            mask = mask | ~finite
    gain, offset = noise_model(pixels, mask, geometry, settings)
    strong = _strong_pixels(pixels, mask, settings.kernel_half_size, settings.sigma_background,
                            settings.sigma_strong, settings.min_local, gain, offset)
    row_start, columns = _strong_rows(strong)
    background = _background_under(pixels, mask, strong, 2 * settings.kernel_half_size, row_start, columns)
    sums = _label_spots(strong, pixels, row_start, columns, background, settings.min_spot_size,
                        settings.max_spot_size)
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
