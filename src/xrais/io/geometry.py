"""Flat-detector diffraction geometry of one image.

Conventions (those of DIALS/dxtbx):

* pixel coordinates (fast, slow) have their origin at the outer corner of pixel (0, 0), so the
  centre of pixel index (s, f) is at (f + 0.5, s + 0.5);
* the detector plane is perpendicular to the beam at ``distance`` mm from the sample;
* array shape is (slow, fast), i.e. ``pixels[s, f]``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence, Tuple

import numpy as np

from .errors import GeometryError, UnsupportedGeometryError

# Physically sensible bounds, wide enough for every X-ray crystallography experiment.
WAVELENGTH_RANGE_A = (0.05, 20.0)
DISTANCE_RANGE_MM = (1.0, 10000.0)
PIXEL_SIZE_RANGE_MM = (0.001, 5.0)


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Geometry of one flat detector image.

    distance: sample-to-detector distance (mm); wavelength: X-ray wavelength (Å);
    pixel_size: square pixel edge (mm); beam_centre: direct-beam position (fast, slow) in pixels;
    shape: image shape (slow, fast); detector: catalogue name of the detector model (or a
    free text); downsample: max-pool block size the conditioning uses for this detector (from the
    detector catalogue unless given).
    """

    distance: float
    wavelength: float
    pixel_size: float
    beam_centre: Tuple[float, float]
    shape: Tuple[int, int]
    detector: str = "generic"
    downsample: Optional[int] = None

    def __post_init__(self):
        from .detectors import downsample_for

        object.__setattr__(self, "distance", float(self.distance))
        object.__setattr__(self, "wavelength", float(self.wavelength))
        object.__setattr__(self, "pixel_size", float(self.pixel_size))
        object.__setattr__(self, "beam_centre", tuple(float(v) for v in self.beam_centre))
        object.__setattr__(self, "shape", tuple(int(v) for v in self.shape))
        _check_range("distance", self.distance, DISTANCE_RANGE_MM, "mm")
        if 0.0 < self.wavelength < WAVELENGTH_RANGE_A[0]:  # 0.02–0.04 Å: 80–300 keV electrons
            raise UnsupportedGeometryError(f"wavelength = {self.wavelength:g} Å is an electron wavelength: electron diffraction is "
                                "not supported (xrais's geometry and models are for X-rays)")
        _check_range("wavelength", self.wavelength, WAVELENGTH_RANGE_A, "Å")
        _check_range("pixel_size", self.pixel_size, PIXEL_SIZE_RANGE_MM, "mm")
        if len(self.beam_centre) != 2 or not all(math.isfinite(v) for v in self.beam_centre):
            raise GeometryError(f"beam_centre must be two finite numbers (fast, slow) in pixels, got {self.beam_centre}")
        if len(self.shape) != 2 or min(self.shape) < 1:
            raise GeometryError(f"shape must be two positive integers (slow, fast), got {self.shape}")
        if self.downsample is None:
            object.__setattr__(self, "downsample", downsample_for(self.detector, self.shape))
        else:
            object.__setattr__(self, "downsample", int(self.downsample))
            if self.downsample < 1:
                raise GeometryError(f"downsample must be a positive integer, got {self.downsample}")

    # -- helpers -----------------------------------------------------------------------------
    def replace(self, **changes) -> "Geometry":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def two_theta_at(self, radius_px):
        """Scattering angle 2θ (radians) at a radius (raw pixels) from the beam centre."""
        return np.arctan(np.asarray(radius_px, dtype=float) * self.pixel_size / self.distance)

    def inverse_d_at(self, radius_px):
        """1/d (Å⁻¹) at a radius (raw pixels) from the beam centre: 2·sin(θ)/λ."""
        return 2.0 * np.sin(0.5 * self.two_theta_at(radius_px)) / self.wavelength

    def d_at(self, radius_px):
        """Resolution d (Å) at a radius (raw pixels) from the beam centre (inf at the centre)."""
        with np.errstate(divide="ignore"):
            return 1.0 / self.inverse_d_at(radius_px)

    def radius_at(self, d):
        """Radius (raw pixels) from the beam centre where resolution d (Å) is reached.

        NaN where d is beyond the reach of any scattering angle (d < λ/2) or 2θ ≥ 90°.
        """
        d = np.asarray(d, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            sin_theta = self.wavelength / (2.0 * d)
            theta = np.arcsin(np.where(sin_theta <= 1.0, sin_theta, np.nan))
            two_theta = 2.0 * theta
            radius = np.where(two_theta < np.pi / 2, np.tan(two_theta) * self.distance / self.pixel_size, np.nan)
        return radius if radius.ndim else float(radius)

    def corner_radius_px(self) -> float:
        """Largest distance (raw pixels) from the beam centre to a detector corner."""
        bf, bs = self.beam_centre
        ns, nf = self.shape
        return float(max(math.hypot(f - bf, s - bs) for f in (0, nf) for s in (0, ns)))

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Geometry":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in fields})


@dataclasses.dataclass(frozen=True)
class GeometryOverride:
    """User corrections for headers that are wrong or missing (None = keep the header value).

    distance (mm), wavelength (Å), beam_centre (fast, slow) in pixels, pixel_size (mm).
    """

    distance: Optional[float] = None
    wavelength: Optional[float] = None
    beam_centre: Optional[Sequence[float]] = None
    pixel_size: Optional[float] = None

    def __bool__(self):
        return any(v is not None for v in dataclasses.astuple(self))

    def apply(self, geometry: Geometry) -> Geometry:
        changes = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        return geometry.replace(**changes) if changes else geometry

    def complete(self, partial: dict) -> dict:
        """Fill the missing/overridden values of a header dictionary of Geometry fields."""
        merged = dict(partial)
        merged.update({k: v for k, v in dataclasses.asdict(self).items() if v is not None})
        return merged

    @classmethod
    def coerce(cls, value) -> "GeometryOverride":
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            return cls(**value)
        raise TypeError(f"geometry override must be a dict or GeometryOverride, got {type(value).__name__}")


def _check_range(name, value, bounds, unit):
    low, high = bounds
    if not math.isfinite(value) or not (low <= value <= high):
        raise GeometryError(
            f"{name} = {value:g} {unit} makes no sense (expected {low:g} to {high:g} {unit})"
        )
