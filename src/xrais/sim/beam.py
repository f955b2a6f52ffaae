"""Incident X-ray beam: wavelength, fluence, polarization, divergence and spectral dispersion.

The beam is sampled as nanoBragg does it: a grid of source directions spanning the divergence
(corners cut to an ellipse) times a set of wavelengths spanning the dispersion; every source point
has the same weight, and images are averaged over them.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Tuple

import numpy as np

from .frame import MOSFLM_BEAM, unit_vector

#: Classical electron radius squared (m²), the Thomson cross-section factor (nanoBragg's value).
R_E_SQUARED_M2 = 7.94079248018965e-30
#: E-vector axis of the MOSFLM convention (nanoBragg's default polarization axis).
MOSFLM_POLARIZATION_AXIS = (0.0, 0.0, 1.0)


def fluence_from_photons(photons: float, beam_size_mm: float) -> float:
    """Fluence (photons/m²) of ``photons`` spread over a square beam of edge ``beam_size_mm``
    (nanoBragg's flux·exposure/beamsize² convention)."""
    return float(photons) / (float(beam_size_mm) * 1e-3) ** 2


@dataclasses.dataclass(frozen=True)
class Beam:
    """Incident beam.

    wavelength: Å; fluence: photons/m² on the sample; direction: propagation unit vector (lab);
    polarization_axis: E-vector direction; kahn_factor: degree of polarization (0 = unpolarized,
    nanoBragg's default); divergence: full angular range (mrad) in both directions, sampled on
    ``divergence_steps`` × ``divergence_steps`` points; dispersion: full relative bandwidth
    Δλ/λ (fraction), sampled at ``dispersion_steps`` wavelengths.
    """

    wavelength: float
    fluence: float
    direction: Tuple[float, float, float] = MOSFLM_BEAM
    polarization_axis: Tuple[float, float, float] = MOSFLM_POLARIZATION_AXIS
    kahn_factor: float = 0.0
    divergence: float = 0.0
    divergence_steps: int = 1
    dispersion: float = 0.0
    dispersion_steps: int = 1

    def __post_init__(self):
        object.__setattr__(self, "direction", unit_vector(self.direction))
        object.__setattr__(self, "polarization_axis", unit_vector(self.polarization_axis))
        if not self.wavelength > 0.0:
            raise ValueError(f"wavelength must be positive (Å), got {self.wavelength}")
        if not self.fluence >= 0.0:
            raise ValueError(f"fluence must be ≥ 0 (photons/m²), got {self.fluence}")
        if self.divergence < 0.0 or self.dispersion < 0.0:
            raise ValueError("divergence and dispersion must be ≥ 0")
        if self.divergence_steps < 1 or self.dispersion_steps < 1:
            raise ValueError("divergence_steps and dispersion_steps must be ≥ 1")

    def sources(self) -> np.ndarray:
        """Source points as a float64 array (n, 4): incident unit direction (3) and wavelength (Å)."""
        directions = self._source_directions()
        wavelengths = self._wavelengths()
        table = np.empty((len(directions) * len(wavelengths), 4))
        row = 0
        for direction in directions:
            for wavelength in wavelengths:
                table[row, :3] = direction
                table[row, 3] = wavelength
                row += 1
        return table

    def polarization_array(self) -> np.ndarray:
        """Packed float64 vector for the kernels: beam direction (3), E-vector axis (3), Kahn factor."""
        return np.array(self.direction + self.polarization_axis + (self.kahn_factor,), dtype=np.float64)

    def _wavelengths(self):
        n = self.dispersion_steps
        if n == 1 or self.dispersion == 0.0:
            return [self.wavelength]
        step = self.dispersion / (n - 1)
        return [self.wavelength * (1.0 + step * i - self.dispersion / 2.0) for i in range(n)]

    def _source_directions(self):
        n = self.divergence_steps
        if n == 1 or self.divergence == 0.0:
            return [np.asarray(self.direction)]
        span = self.divergence * 1e-3
        step = span / (n - 1)
        beam = np.asarray(self.direction)
        horizontal = np.asarray(self.polarization_axis)
        vertical = np.cross(beam, horizontal)
        vertical /= np.linalg.norm(vertical)
        directions = []
        for i in range(n):
            for j in range(n):
                h_angle = step * i - span / 2.0
                v_angle = step * j - span / 2.0
                # nanoBragg's elliptical cut of the grid corners
                half_step_sq = step * step / 4.0 * (1 - n % 2)
                test = (h_angle * h_angle - half_step_sq + v_angle * v_angle - half_step_sq) / (span * span)
                if test * 4.0 > 1.1:
                    continue
                tilted = _rotate_about(_rotate_about(beam, horizontal, v_angle), vertical, h_angle)
                directions.append(tilted / np.linalg.norm(tilted))
        return directions


def _rotate_about(vector, axis, angle):
    """Rotate ``vector`` by ``angle`` (radians, right-handed) about the unit ``axis``."""
    vector = np.asarray(vector, dtype=float)
    axis = np.asarray(axis, dtype=float)
    return (vector * math.cos(angle) + np.cross(axis, vector) * math.sin(angle)
            + axis * np.dot(axis, vector) * (1.0 - math.cos(angle)))
