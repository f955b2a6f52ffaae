"""The shell-profile representation of a conditioned quadrant, and the network that reads it.

The frame's geometry is exact, so every conditioned pixel has a known scattering-vector length
s = 1/d = 2·sin(θ)/λ (Å⁻¹): pixel (i, j) of a quadrant has its centre (i + ½, j + ½)·N·p mm from
the beam (max-pool factor N, pixel size p mm), so 2θ = atan(r / D). The representation is, for
:data:`N_SHELLS` shells of equal width in s from 0 to :data:`S_MAX`, the histogram of the
conditioned values v = ⌊√(max of N×N photons)⌋ (0–255) of the pixels in each shell. Everything the
resolution depends on is in it: where, in s, pixels stand out above their shell's background, and
by how many photons. A whole frame's histogram is the sum of its quadrants'.

From the histogram, :func:`profile_features` reads, per shell: the fraction of the shell covered
by the detector (non-zero pixels), the shell's size, its background level b (the median v of its
covered pixels, √-photon units), and, for photon thresholds E_k spaced by a factor
:data:`THRESHOLD_STEP` from :data:`THRESHOLD_FIRST` photons, the log10 fraction of covered pixels
with v ≥ b + :data:`SIGNIFICANCE` (a spot, not a noise fluctuation) and v² − b² ≥ E_k photons above
background. The label — the B factor's decay rate, d from B = 4d² + 12 — sets how these contours
of ln I fall with s²; the crystal's size and the flux only move them along the threshold axis, so
the network (:class:`ProfileNet`, convolutions along s with the thresholds as channels) can read the
decay rate apart from the brightness.

The network returns a mean 1/d (Å⁻¹) and a standard deviation σ (Å⁻¹), trained by the Gaussian
negative log-likelihood, so that an image whose spots fade before they tell (a dim crystal on a
high background) is reported as uncertain rather than with a confident wrong number.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Optional, Tuple

import numba
import numpy as np
import torch
from torch import nn

from .network import ArchitectureFields

#: Shells in s = 1/d (Å⁻¹), of width S_MAX / N_SHELLS = 0.0125 Å⁻¹, out to d = 1 Å.
N_SHELLS = 80
S_MAX = 1.0
#: Conditioned values: 0–255 (√ of 16-bit counts; 255 and above are hot or overloaded pixels).
N_VALUES = 256
#: Photon thresholds above background: E_k = THRESHOLD_FIRST · THRESHOLD_STEP^k, k < N_THRESHOLDS
#: (8 photons to ≈ 46,000).
THRESHOLD_FIRST = 8.0
THRESHOLD_STEP = 2.0 ** 0.75
N_THRESHOLDS = 16
#: A pixel counts as a spot pixel only this many √-photon units above its shell's background
#: (√ of Poisson counts has a standard deviation of ½: six of them).
SIGNIFICANCE = 3
#: Per-shell channels: coverage, log shell size, background, then one per threshold.
N_CHANNELS = 3 + N_THRESHOLDS
#: Global inputs: λ (Å), log10 of the conditioned pixel's angle D / (N·p) (radians⁻¹), N.
N_GLOBALS = 3
#: σ of 1/d (Å⁻¹) above which an estimate is reported undetermined (the spots fade out before
#: they tell where the decay would end), where a model card sets none: the accuracy tolerance
#: itself, 0.07 Å⁻¹ — an estimate whose σ exceeds it cannot tell 1/d to within it. On xrais's
#: held-out simulations it flags 23 % of the images, the others are 89 % within 0.07 Å⁻¹ and
#: 0.6 % of them more than 0.15 Å⁻¹ off (docs/resolution_profile_study.json).
UNDETERMINED_SIGMA = 0.07
#: Floor of the log10 fractions (a fraction below 1e-5 of a shell reads as none).
LOG_FLOOR = 1e-5


def shell_s_grid(shape: Tuple[int, int], wavelength: float, distance: float, pixel_size: float,
                 downsample: int) -> np.ndarray:
    """float64 (slow, fast) s = 1/d (Å⁻¹) of each conditioned pixel's centre, the beam at the outer
    corner of pixel (0, 0); wavelength Å, distance and pixel size mm, downsample = N."""
    if not (wavelength > 0 and distance > 0 and pixel_size > 0 and downsample >= 1):
        raise ValueError(f"nonsensical geometry: wavelength {wavelength} Å, distance {distance} mm, "
                         f"pixel size {pixel_size} mm, downsample {downsample}")
    step = downsample * pixel_size
    slow = (np.arange(shape[0]) + 0.5) * step
    fast = (np.arange(shape[1]) + 0.5) * step
    two_theta = np.arctan(np.hypot(slow[:, None], fast[None, :]) / distance)
    return 2.0 * np.sin(0.5 * two_theta) / wavelength


@functools.lru_cache(maxsize=16)
def _shell_index(shape: Tuple[int, int], wavelength: float, distance: float, pixel_size: float,
                 downsample: int) -> np.ndarray:
    """int64 (slow, fast) shell of each conditioned pixel (−1 beyond S_MAX); read-only, cached per
    geometry (a series' frames share one)."""
    shells = shell_of(shell_s_grid(shape, wavelength, distance, pixel_size, downsample))
    shells.setflags(write=False)
    return shells


def shell_of(inverse_d: np.ndarray) -> np.ndarray:
    """int64 shell of each 1/d (Å⁻¹): −1 beyond S_MAX."""
    shells = np.floor(np.asarray(inverse_d, dtype=float) * (N_SHELLS / S_MAX)).astype(np.int64)
    shells[shells >= N_SHELLS] = -1
    return shells


@numba.njit(cache=True, nogil=True)
def _accumulate(bins, shells, histogram, area):
    rows, cols = bins.shape
    for i in range(rows):
        for j in range(cols):
            shell = shells[i, j]
            if shell < 0:
                continue
            area[shell] += 1
            histogram[shell, bins[i, j]] += 1


@numba.njit(cache=True, nogil=True)
def _value_bins(values):
    """uint8 bin of each conditioned value (any real or integer type): its whole part, clamped to
    0…N_VALUES − 1 (NaN: 0). Selects, not branches: the loop vectorises, and a weak frame's values,
    0 or 1 at random, cost no mispredicted branch per pixel when they are counted (4× faster there)."""
    flat = values.ravel()
    bins = np.empty(flat.size, np.uint8)
    for k in range(flat.size):
        value = flat[k]
        value = value if value > 0 else 0.0
        value = value if value < N_VALUES - 1 else N_VALUES - 1.0
        bins[k] = np.uint8(value)
    return bins.reshape(values.shape)


def value_histogram(values: np.ndarray) -> np.ndarray:
    """int64 (N_VALUES,): how many of the conditioned ``values`` (any shape) hold each value 0–255
    (whole parts, clamped to the range)."""
    return _count_bins(_bins_of(values).ravel())


@numba.njit(cache=True, nogil=True)
def _count_bins(bins):
    """int64 (N_VALUES,) counts of uint8 bins, in four interleaved copies (a run of one value would
    otherwise wait on its own count at every pixel)."""
    copies = np.zeros((4, N_VALUES), np.int64)
    for k in range(bins.size):
        copies[k & 3, bins[k]] += 1
    return copies[0] + copies[1] + copies[2] + copies[3]


def _bins_of(values: np.ndarray) -> np.ndarray:
    """uint8 bins of conditioned values (:func:`_value_bins`) of any dtype: native-order integers up
    to 32 bits, int64, float32 and float64 as they are, any other (uint64, float16, big-endian) as
    float64."""
    values = np.ascontiguousarray(values)
    kind, size = values.dtype.kind, values.dtype.itemsize
    if not values.dtype.isnative or (kind == "f" and size < 4) or (kind == "u" and size > 4) or kind not in "iuf":
        values = values.astype(np.float64)
    return _value_bins(values)


def shell_histogram(quadrant: np.ndarray, wavelength: float, distance: float, pixel_size: float,
                    downsample: int) -> Tuple[np.ndarray, np.ndarray]:
    """(histogram int64 (N_SHELLS, 256), area int64 (N_SHELLS,)) of one conditioned quadrant: per
    shell in s, how many pixels hold each conditioned value, and how many pixels the shell has on
    the quadrant (zero padding included). Geometry as :func:`shell_s_grid`."""
    quadrant = np.asarray(quadrant)
    if quadrant.ndim != 2:
        raise ValueError(f"a quadrant is 2-D, got shape {quadrant.shape}")
    shells = _shell_index(quadrant.shape, float(wavelength), float(distance), float(pixel_size), int(downsample))
    histogram = np.zeros((N_SHELLS, N_VALUES), dtype=np.int64)
    area = np.zeros(N_SHELLS, dtype=np.int64)
    _accumulate(_bins_of(quadrant), shells, histogram, area)
    return histogram, area


def whole_shell_histogram(conditioned: np.ndarray, inverse_d: np.ndarray, wavelength: float, distance: float,
                          pixel_size: float, downsample: int) -> Tuple[np.ndarray, np.ndarray]:
    """(histogram, area) as the pooled four quadrants' (:func:`shell_histogram`), of a whole
    conditioned frame whose pixels have the 1/d ``inverse_d`` (Å⁻¹, same shape): for a detector of
    any orientation (:func:`xrais.conditioning.condition_whole`,
    :func:`xrais.conditioning.whole_inverse_d`). A shell's area is what the four 512 × 512 quadrants
    of a detector facing the beam at the same distance would give it (as the pooled quadrants count
    their zero padding), or the frame's own pixels in the shell where they are more, so that the
    coverage reads as the pooled quadrants' does."""
    conditioned = np.asarray(conditioned)
    if conditioned.ndim != 2 or np.shape(inverse_d) != conditioned.shape:
        raise ValueError(f"a conditioned frame {conditioned.shape} needs 1/d of the same shape, got {np.shape(inverse_d)}")
    histogram = np.zeros((N_SHELLS, N_VALUES), dtype=np.int64)
    area = np.zeros(N_SHELLS, dtype=np.int64)
    _accumulate(_bins_of(conditioned), shell_of(inverse_d), histogram, area)
    shells = _shell_index((512, 512), float(wavelength), float(distance), float(pixel_size), int(downsample))
    facing = 4 * np.bincount(shells[shells >= 0], minlength=N_SHELLS)
    return histogram, np.maximum(area, facing)


def thresholds() -> np.ndarray:
    """float64 (N_THRESHOLDS,) photon thresholds E_k above background."""
    return THRESHOLD_FIRST * THRESHOLD_STEP ** np.arange(N_THRESHOLDS)


def profile_features(histogram: np.ndarray, area: np.ndarray) -> np.ndarray:
    """float32 (N_CHANNELS, N_SHELLS) features of a shell histogram (see the module docstring).

    Channels: 0 coverage (covered / shell pixels), 1 log10(1 + shell pixels) / 6, 2 background
    b / 16 (√-photon units), 3… log10 of the fraction of covered pixels that are spot pixels above
    each photon threshold, plus 5 (so that none reads 0 and all reads 5)."""
    histogram = np.asarray(histogram, dtype=np.float64)
    area = np.asarray(area, dtype=np.float64)
    usable = histogram[:, 1:N_VALUES - 1]  # neither zero (padding, masks) nor hot/overloaded
    covered = usable.sum(axis=1)
    cumulative = np.cumsum(usable, axis=1)
    median_index = np.argmax(cumulative >= 0.5 * covered[:, None], axis=1)
    background = np.where(covered > 0, median_index + 1, 0)
    out = np.empty((N_CHANNELS, N_SHELLS), dtype=np.float64)
    out[0] = np.divide(covered, area, out=np.zeros_like(covered), where=area > 0)
    out[1] = np.log10(1.0 + area) / 6.0
    out[2] = background / 16.0
    # A shell's spot pixels above threshold E_k: the values v from the least with v ≥ b + SIGNIFICANCE
    # and v² − b² ≥ E_k up to 254 (255: hot or overloaded), read off the suffix sums of its row
    # (whole counts: every order of summation gives the same number)
    square = background.astype(np.int64) ** 2
    energies = thresholds()[:, None]
    least = np.ceil(np.sqrt(energies + square[None, :])).astype(np.int64)  # within one of the least v
    least = np.where((least - 1) ** 2 - square >= energies, least - 1, least)
    least = np.where(least ** 2 - square < energies, least + 1, least)
    start = np.minimum(np.maximum(least, background[None, :] + SIGNIFICANCE), N_VALUES - 1)
    suffix = np.cumsum(histogram[:, ::-1], axis=1)[:, ::-1]  # [s, v]: pixels of shell s with value ≥ v
    counts = suffix[np.arange(N_SHELLS)[None, :], start] - suffix[:, N_VALUES - 1][None, :]
    denominator = np.maximum(covered, 1.0)
    out[3:] = np.log10(counts / denominator + LOG_FLOOR) - math.log10(LOG_FLOOR)
    return out.astype(np.float32)


def global_inputs(wavelength: float, distance: float, pixel_size: float, downsample: int) -> np.ndarray:
    """float32 (N_GLOBALS,): λ (Å), log10(D / (N·p)), N / 4."""
    return np.array([wavelength, math.log10(distance / (downsample * pixel_size)), downsample / 4.0],
                    dtype=np.float32)


@dataclasses.dataclass(frozen=True)
class ProfileArchitecture(ArchitectureFields):
    """Everything needed to rebuild a :class:`ProfileNet` (stored with its weights).

    channels: convolution channels (four convolutions of kernel 5 along s, ReLU, the shells
    max-pooled by 2 after the second and the third: 80 → 20 positions of 0.05 Å⁻¹); hidden: the
    fully connected layer; dropout: after it; min_sigma: smallest σ (Å⁻¹) the head reports.
    Small on purpose: a wider head learns the training images' noise (its σ shrinks below its
    errors on held-out images). members: how many such networks, trained apart from different
    initial weights and batch orders, the model pools (:class:`ProfileNet`).
    """

    kind: str = "resolution"
    family: str = "profile"
    channels: int = 32
    hidden: int = 64
    dropout: float = 0.2
    min_sigma: float = 0.005
    members: int = 1

    def __post_init__(self):
        if self.kind != "resolution" or self.family != "profile":
            raise ValueError("the shell-profile network is a resolution network (family 'profile')")
        if self.channels < 1 or self.hidden < 1 or not self.min_sigma > 0 or self.members < 1:
            raise ValueError("channels, hidden, min_sigma and members must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def label(self) -> str:
        return (f"shell profile, 4×{self.channels}-channel 1-D CNN"
                + (f", {self.members} such networks pooled" if self.members > 1 else ""))


class ProfileMember(nn.Module):
    """One shell-profile network: ``forward(features, globals)`` → (mean 1/d, σ), Å⁻¹, the mean
    not clamped."""

    def __init__(self, architecture: ProfileArchitecture = ProfileArchitecture()):
        super().__init__()
        a = architecture
        c = a.channels
        self.min_sigma = a.min_sigma
        self.convolutions = nn.Sequential(
            nn.Conv1d(N_CHANNELS, c, 5, padding=2), nn.ReLU(inplace=True),
            nn.Conv1d(c, c, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool1d(2),
            nn.Conv1d(c, c, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool1d(2),
            nn.Conv1d(c, c, 5, padding=2), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Linear(c * (N_SHELLS // 4) + N_GLOBALS, a.hidden), nn.ReLU(inplace=True),
                                  nn.Dropout(a.dropout), nn.Linear(a.hidden, 2))

    def forward(self, features: torch.Tensor, globals_: torch.Tensor):
        x = self.convolutions(features.to(torch.float32)).flatten(1)
        out = self.head(torch.cat([x, globals_.to(torch.float32)], dim=1))
        # starting near the middle of the labels' range (0.4 Å⁻¹) with σ ≈ 0.05 Å⁻¹
        return out[:, 0] * 0.5 + 0.4, nn.functional.softplus(out[:, 1] - 3.0) + self.min_sigma


class ProfileNet(nn.Module):
    """The shell-profile model: one :class:`ProfileMember` or several pooled.

    ``forward(features (B, N_CHANNELS, N_SHELLS), globals (B, N_GLOBALS))`` → (mean 1/d (B,),
    σ (B,)), both Å⁻¹; in eval mode the mean is clamped at 0 (no diffraction). Several members
    are pooled as the mixture of their Gaussians (deep ensembles, Lakshminarayanan et al. 2017):
    the mean of their means, and σ² the mean of their σ² plus the variance of their means — where
    the networks disagree (an image unlike their training images), σ grows and the estimate is
    reported undetermined.
    """

    def __init__(self, architecture: ProfileArchitecture = ProfileArchitecture()):
        super().__init__()
        self.architecture = architecture
        self.members = nn.ModuleList(ProfileMember(architecture) for _ in range(architecture.members))

    def forward(self, features: torch.Tensor, globals_: torch.Tensor):
        if len(self.members) == 1:
            mean, sigma = self.members[0](features, globals_)
        else:
            means, sigmas = (torch.stack(column) for column in zip(*(m(features, globals_) for m in self.members)))
            mean = means.mean(0)
            sigma = torch.sqrt((sigmas ** 2).mean(0) + means.var(0, unbiased=False))
        return (mean if self.training else mean.clamp_min(0.0)), sigma

    @staticmethod
    def stored_state(state: dict) -> dict:
        """A weights file's state dict as this class names it: weights written before the model
        had members (one network's ``convolutions.*`` and ``head.*``) are member 0's."""
        return {("members.0." + key if key.startswith(("convolutions.", "head.")) else key): value
                for key, value in state.items()}


def gaussian_nll(mean: torch.Tensor, sigma: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Gaussian negative log-likelihood (up to a constant) of ``target`` under N(mean, σ²)."""
    return (0.5 * ((target - mean) / sigma) ** 2 + torch.log(sigma)).mean()


def reach(features: np.ndarray) -> np.ndarray:
    """(B,) the largest s = 1/d (Å⁻¹) the detector covers in each feature row (B, N_CHANNELS,
    N_SHELLS): the outer edge of the last shell with covered pixels (0 if none)."""
    covered = np.asarray(features)[:, 0] > 0
    last = np.where(covered.any(axis=1), N_SHELLS - 1 - np.argmax(covered[:, ::-1], axis=1), -1)
    return (last + 1) * (S_MAX / N_SHELLS)


def within_reach(mean: np.ndarray, sigma: np.ndarray, features: np.ndarray):
    """(mean, σ) with a mean beyond the detector's :func:`reach` brought back to it and σ made at
    least the distance it went beyond: the network was never shown a label past the data (the
    recipe keeps every label's ring on the quadrant), so such a number is an extrapolation (a
    detector whose counts are not photons, say), not a resolution."""
    limit = reach(features)
    excess = np.maximum(np.asarray(mean) - limit, 0.0)
    return np.minimum(mean, limit).astype(np.float32), np.maximum(sigma, excess).astype(np.float32)


def quadrant_inputs(quadrants: np.ndarray, geometry: np.ndarray, pool=None, per_quadrant: bool = True):
    """(features, globals) float32 tensors of conditioned quadrants (Q, 512, 512) with their
    geometry rows (Q, 4: λ Å, D mm, p mm, N): one row per quadrant (unless not ``per_quadrant``)
    and, with ``pool`` (a boolean mask of the quadrants), one last row of the summed histograms of
    the pooled ones (the quadrants of one image, one geometry). Each histogram is made once."""
    rows = [(float(g[0]), float(g[1]), float(g[2]), int(round(float(g[3])))) for g in np.asarray(geometry)]
    histograms = [shell_histogram(np.asarray(q), *row) for q, row in zip(quadrants, rows)]
    features = [profile_features(h, a) for h, a in histograms] if per_quadrant else []
    globals_ = [global_inputs(*row) for row in rows] if per_quadrant else []
    if pool is not None:
        chosen = [pair for pair, pooled in zip(histograms, pool) if pooled]
        features.append(profile_features(sum(h for h, _ in chosen), sum(a for _, a in chosen)))
        globals_.append(global_inputs(*rows[0]))
    if not features:
        return torch.zeros(0, N_CHANNELS, N_SHELLS), torch.zeros(0, N_GLOBALS)
    return torch.from_numpy(np.stack(features)), torch.from_numpy(np.stack(globals_))


def undetermined_sigma(card: dict) -> float:
    """σ of 1/d (Å⁻¹) above which a model's estimate is undetermined: its card's
    ``undetermined_sigma``, else :data:`UNDETERMINED_SIGMA`."""
    return float(card.get("training", {}).get("undetermined_sigma", UNDETERMINED_SIGMA))
