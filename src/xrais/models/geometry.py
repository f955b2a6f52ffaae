"""Geometry of the resolution head (paper Figure 5B) and the label conversions.

The resolution network's scalar is a radius r in downsampled pixels from the beam (the corner of
the quadrant). With wavelength λ (Å), distance D (mm), pixel size p (mm) and max-pool factor N:

    2θ = atan(N·p·r / D),   1/d = 2·sin(θ)/λ   (Å⁻¹).

The map is odd in r (a negative radius gives a negative 1/d, so the loss keeps a gradient on both
sides of zero while training); predictions are clamped at 0 (no diffraction) at inference.
"""
from __future__ import annotations

import numpy as np
import torch

#: 1/d (Å⁻¹) below which an image is reported as not diffracting (d = inf, B = inf): 1/d < 1e-3
#: means d > 1000 Å, far beyond any crystal's resolution.
NO_DIFFRACTION_INVERSE_D = 1e-3


def inverse_d_from_radius(radius: torch.Tensor, wavelength: torch.Tensor, distance: torch.Tensor,
                          pixel_size: torch.Tensor, downsample: torch.Tensor) -> torch.Tensor:
    """1/d (Å⁻¹) at ``radius`` downsampled pixels from the beam (tensors broadcast together)."""
    two_theta = torch.atan(downsample * pixel_size * radius / distance)
    return 2.0 * torch.sin(0.5 * two_theta) / wavelength


def radius_from_inverse_d(inverse_d, wavelength, distance, pixel_size, downsample) -> np.ndarray:
    """Radius (downsampled pixels) where 1/d (Å⁻¹) is reached: inverse of
    :func:`inverse_d_from_radius` (NumPy; NaN where sin θ > 1 or 2θ ≥ 90°)."""
    sin_theta = 0.5 * np.asarray(inverse_d, dtype=float) * np.asarray(wavelength, dtype=float)
    with np.errstate(invalid="ignore"):
        two_theta = 2.0 * np.arcsin(np.where(np.abs(sin_theta) <= 1.0, sin_theta, np.nan))
        two_theta = np.where(np.abs(two_theta) < np.pi / 2, two_theta, np.nan)
    return np.tan(two_theta) * np.asarray(distance, dtype=float) / (np.asarray(downsample, dtype=float)
                                                                    * np.asarray(pixel_size, dtype=float))


def _label_relation():
    """(b_factor_from_resolution, resolution_from_b_factor) of the simulator's labels."""
    from ..sim.labels import b_factor_from_resolution, resolution_from_b_factor

    return b_factor_from_resolution, resolution_from_b_factor


def resolution_from_inverse_d(inverse_d) -> np.ndarray:
    """Resolution d (Å) from 1/d (Å⁻¹); inf where 1/d < :data:`NO_DIFFRACTION_INVERSE_D`."""
    inverse_d = np.asarray(inverse_d, dtype=float)
    diffracting = inverse_d >= NO_DIFFRACTION_INVERSE_D
    return np.where(diffracting, 1.0 / np.where(diffracting, inverse_d, 1.0), np.inf)


def b_factor_from_inverse_d(inverse_d) -> np.ndarray:
    """B factor (Å²) of the training labels' relation B = 4·d² + 12 from 1/d (Å⁻¹); inf if not
    diffracting. A restatement of the resolution, not a Wilson B fitted to intensities."""
    b_factor_from_resolution, _ = _label_relation()
    d = resolution_from_inverse_d(inverse_d)
    finite = np.isfinite(d)
    return np.where(finite, b_factor_from_resolution(np.where(finite, d, 1.0)), np.inf)


def inverse_d_from_b_factor(b_factor) -> np.ndarray:
    """1/d (Å⁻¹) of a B factor (Å²) by the label relation B = 4·d² + 12; 0 for inf (not diffracting)."""
    _, resolution_from_b_factor = _label_relation()
    b_factor = np.asarray(b_factor, dtype=float)
    finite = np.isfinite(b_factor)
    d = resolution_from_b_factor(np.where(finite, b_factor, 16.0))
    with np.errstate(divide="ignore"):
        return np.where(finite, 1.0 / d, 0.0)
