"""Classical resolution peer: the decay of the spots' intensity with s² = 1/d² (a per-image Wilson fit).

A Bragg spot's integrated intensity (photons) is I ∝ |F|²·exp(−B·s²/2)·(Lorentz, polarisation,
partiality), s = 1/d = 2·sin θ/λ (Å⁻¹), B the crystal's Debye–Waller factor (Å²). The spots of one
image (:func:`xrais.spotfinder.find_spots`, those on ice rings left out: a ring's spots are ice, not
the crystal) are sorted by s² and cut into shells of equal population; a straight line through
ln⟨I⟩ of each shell against its mean s², weighted by the spots it holds, has the slope −B_app/2.

B_app is not yet the crystal's B: ⟨|F|²⟩ = Σ f_j(s)² falls with the atoms' scattering factors
(≈ 10–15 Å² more), and the spot finder misses the weakest spots of the outer shells, which raises
their ⟨I⟩ and flattens the slope, the more so the dimmer the image. A straight line B = a + b·B_app,
fitted on xrais's own simulated images (:data:`CALIBRATION`, ``scripts/decay_study.py``), maps one
to the other; the resolution follows from the label's convention B = 4·d² + 12 (xrais.sim.labels).
The standard error of the slope (the scatter of the shells about the line) is reported with it:
a few spots over a short range of s² tell B poorly, and the fit says so.

No fit is made from fewer than :data:`MIN_SPOTS` spots off the ice rings or over fewer than
:data:`MIN_SHELLS` shells.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np

from .spotfinder import SpotList

#: Spots off the ice rings needed for a fit.
MIN_SPOTS = 20
#: Shells needed for a fit (a line through two points has no error estimate).
MIN_SHELLS = 3
#: Spots per shell sought (shells of equal population, at most :data:`MAX_SHELLS`).
SPOTS_PER_SHELL = 20
MAX_SHELLS = 20
#: (a, b, e): B = a + b·B_app (Å²), and the systematic error e·B added in quadrature to each fit's
#: own (the images' partiality, mosaic spread and spot-finding losses differ: their B_app scatter
#: about the line by about a quarter of B, more than the fits' errors say), fitted on xrais's
#: simulated images: 800 stills of the resolution recipe (v5) and 1,330 stills and rotation frames
#: of the multi-lattice recipe (v5), ``python scripts/decay_study.py --calibrate …`` (its docstring).
CALIBRATION = (-11.11, 1.2301, 0.437)


@dataclasses.dataclass(frozen=True)
class DecayFit:
    """The fit of one image.

    slope: d ln⟨I⟩ / d(s²) (Å²), with its standard error ``slope_error``; apparent_b: −2·slope (Å²);
    b_factor, b_factor_error: B (Å²) after :data:`CALIBRATION`, its error the fit's and the
    calibration's systematic one; n_spots: spots fitted; n_shells:
    shells; s_max: the largest s (Å⁻¹) among them.
    """

    slope: float
    slope_error: float
    apparent_b: float
    b_factor: float
    b_factor_error: float
    n_spots: int
    n_shells: int
    s_max: float


def shell_means(s_squared: np.ndarray, intensity: np.ndarray, spots_per_shell: int = SPOTS_PER_SHELL,
                max_shells: int = MAX_SHELLS):
    """(mean s² Å⁻², ln⟨I⟩, spots) per shell of equal population in s² (at least :data:`MIN_SHELLS`
    shells where there are as many spots; shells whose ⟨I⟩ is not positive left out)."""
    order = np.argsort(s_squared)
    n_shells = int(np.clip(len(order) // spots_per_shell, MIN_SHELLS, max_shells))
    n_shells = min(n_shells, len(order))
    x, y, n = [], [], []
    for members in np.array_split(order, n_shells):
        mean_intensity = float(np.mean(intensity[members]))
        if mean_intensity > 0:
            x.append(float(np.mean(s_squared[members])))
            y.append(math.log(mean_intensity))
            n.append(len(members))
    return np.array(x), np.array(y), np.array(n, dtype=float)


def weighted_line(x: np.ndarray, y: np.ndarray, weights: np.ndarray):
    """(slope, intercept, standard error of the slope) of the weighted least-squares line through
    (x, y), the error scaled by the residuals' weighted variance (n − 2 degrees of freedom)."""
    w = weights / weights.sum()
    x_mean, y_mean = float(w @ x), float(w @ y)
    sxx = float(w @ (x - x_mean) ** 2)
    if not sxx > 0:
        raise ValueError("the shells have one s²: no slope")
    slope = float(w @ ((x - x_mean) * (y - y_mean))) / sxx
    intercept = y_mean - slope * x_mean
    residual_variance = float(weights @ (y - intercept - slope * x) ** 2) / (len(x) - 2)
    error = math.sqrt(residual_variance / (weights.sum() * sxx))
    return slope, intercept, error


def fit_decay(spots: SpotList, min_spots: int = MIN_SPOTS) -> Optional[DecayFit]:
    """The decay fit of one image's spots (None: too few spots off the ice rings, or shells)."""
    with np.errstate(divide="ignore"):
        s_squared = 1.0 / np.square(spots.d)
    return fit_intensities(s_squared, spots.intensity, spots.on_ice_ring, min_spots)


def fit_intensities(s_squared: np.ndarray, intensity: np.ndarray, on_ice_ring: np.ndarray,
                    min_spots: int = MIN_SPOTS) -> Optional[DecayFit]:
    """The decay fit of spots given by s² (Å⁻²), integrated intensity and ice-ring flags."""
    s_squared = np.asarray(s_squared, dtype=float)
    intensity = np.asarray(intensity, dtype=float)
    good = ~np.asarray(on_ice_ring, dtype=bool) & (intensity > 0) & np.isfinite(s_squared) & (s_squared > 0)
    if good.sum() < max(min_spots, MIN_SHELLS):
        return None
    x, y, n = shell_means(s_squared[good], intensity[good])
    if len(x) < MIN_SHELLS or np.ptp(x) <= 0:
        return None
    slope, _, error = weighted_line(x, y, n)
    apparent_b = -2.0 * slope
    offset, scale, systematic = CALIBRATION
    b_factor = offset + scale * apparent_b
    return DecayFit(slope=slope, slope_error=error, apparent_b=apparent_b, b_factor=b_factor,
                    b_factor_error=math.hypot(2.0 * scale * error, systematic * b_factor), n_spots=int(good.sum()),
                    n_shells=len(x), s_max=float(math.sqrt(s_squared[good].max())))
