"""Diffraction geometry of one image on a flat detector of any orientation.

Conventions (those of DIALS/dxtbx):

* pixel coordinates (fast, slow) have their origin at the outer corner of pixel (0, 0), so the
  centre of pixel index (s, f) is at (f + 0.5, s + 0.5);
* array shape is (slow, fast), i.e. ``pixels[s, f]``;
* lab frame (dxtbx's): x along the horizontal rotation axis, y vertically up, z towards the
  source, so the beam travels along −z; the sample is at the origin;
* the detector's fast and slow axes are unit vectors in that frame (by default (1, 0, 0) and
  (0, −1, 0): a detector facing the beam, fast to the right, slow downwards); ``distance`` is the
  perpendicular distance (mm) from the sample to the detector plane and ``beam_centre`` the point
  (fast, slow pixels) where the direct beam meets the plane (dxtbx's ``get_distance`` and
  ``get_beam_centre``). For a detector facing the beam, the two meet at the beam centre.

A detector swung about an axis (a 2θ arm) is tilted: the beam meets it at an angle, the
perpendicular from the sample meets it elsewhere (:attr:`Geometry.perpendicular_foot`) and 1/d is
no longer a function of the distance from the beam centre. :meth:`Geometry.inverse_d_at_pixel`
holds for every orientation; the radial helpers (:meth:`Geometry.inverse_d_at` and the others that
take a radius) hold only for a detector facing the beam and refuse a tilted one.
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
#: Direction the beam travels in (lab frame: −z).
BEAM_DIRECTION = np.array([0.0, 0.0, -1.0])
#: Default detector axes: facing the beam, fast to the right (+x), slow downwards (−y).
FAST_AXIS, SLOW_AXIS = (1.0, 0.0, 0.0), (0.0, -1.0, 0.0)
#: Angle (degrees) between the detector normal and the beam below which the detector faces the beam
#: (radial helpers and beam-centred quadrants hold; a single panel is then read without its axes).
FACING_TILT_DEG = 0.1
#: Largest tilt (degrees) of the detector plane against the beam: beyond, the beam meets the plane
#: at a grazing angle or not at all.
MAX_TILT_DEG = 75.0
#: Largest deviation (degrees) of the fast and slow axes (of the image, or of a panel) from a right angle.
MAX_SKEW_DEG = 0.5


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Geometry of one flat detector image.

    distance: perpendicular sample-to-detector distance (mm); wavelength: X-ray wavelength (Å);
    pixel_size: square pixel edge (mm); beam_centre: where the direct beam meets the detector plane
    (fast, slow) in pixels; shape: image shape (slow, fast); detector: catalogue name of the
    detector model (or a free text); downsample: max-pool block size the conditioning uses for this
    detector (from the detector catalogue unless given); fast_axis, slow_axis: lab directions of
    increasing fast and slow index (unit vectors, module docstring).
    """

    distance: float
    wavelength: float
    pixel_size: float
    beam_centre: Tuple[float, float]
    shape: Tuple[int, int]
    detector: str = "generic"
    downsample: Optional[int] = None
    fast_axis: Tuple[float, float, float] = FAST_AXIS
    slow_axis: Tuple[float, float, float] = SLOW_AXIS

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
        self._check_axes()

    def _check_axes(self):
        axes = []
        for name in ("fast_axis", "slow_axis"):
            vector = np.asarray(getattr(self, name), dtype=float)
            length = float(np.linalg.norm(vector)) if vector.shape == (3,) else float("nan")
            if not (math.isfinite(length) and length > 1e-9):
                raise GeometryError(f"{name} must be a non-zero lab vector (x, y, z), got {getattr(self, name)}")
            axes.append(vector / length)
            object.__setattr__(self, name, tuple(float(v) for v in vector / length))
        skew = abs(90.0 - math.degrees(math.acos(float(np.clip(axes[0] @ axes[1], -1.0, 1.0)))))
        if skew > MAX_SKEW_DEG:
            raise GeometryError(f"the detector's fast and slow axes are {90.0 - skew:.1f}° apart, not at right angles")
        if self.tilt_deg > MAX_TILT_DEG:
            raise UnsupportedGeometryError(
                f"the detector plane is tilted {self.tilt_deg:.1f}° against the beam: beyond {MAX_TILT_DEG:g}° the "
                "beam meets it at a grazing angle or not at all")

    # -- orientation ---------------------------------------------------------------------------
    @property
    def normal(self) -> np.ndarray:
        """Unit normal of the detector plane, pointing from the sample towards the plane (lab)."""
        normal = np.cross(self.fast_axis, self.slow_axis)
        normal /= np.linalg.norm(normal)
        return normal if normal @ BEAM_DIRECTION >= 0.0 else -normal

    @property
    def tilt_deg(self) -> float:
        """Angle (degrees) between the detector normal and the beam: 0 for a detector facing the
        beam, 2θ for one swung on a 2θ arm."""
        return math.degrees(math.acos(float(np.clip(self.normal @ BEAM_DIRECTION, -1.0, 1.0))))

    @property
    def faces_beam(self) -> bool:
        """True when the detector plane is normal to the beam (within :data:`FACING_TILT_DEG`)."""
        return self.tilt_deg <= FACING_TILT_DEG

    @property
    def origin(self) -> np.ndarray:
        """Lab position (mm) of the outer corner of pixel (0, 0) (dxtbx's panel origin)."""
        along_beam = self.distance / float(self.normal @ BEAM_DIRECTION)
        return (along_beam * BEAM_DIRECTION - self.pixel_size * (self.beam_centre[0] * np.asarray(self.fast_axis)
                                                               + self.beam_centre[1] * np.asarray(self.slow_axis)))

    @property
    def perpendicular_foot(self) -> Tuple[float, float]:
        """(fast, slow) pixels where the perpendicular from the sample meets the detector plane (the
        beam centre of a detector facing the beam; a PILATUS header's ``Beam_xy`` and XDS's ORGX/ORGY
        for a swung one)."""
        offset = self.distance * self.normal - self.origin
        return (float(offset @ np.asarray(self.fast_axis)) / self.pixel_size,
                float(offset @ np.asarray(self.slow_axis)) / self.pixel_size)

    @classmethod
    def from_perpendicular_foot(cls, foot: Sequence[float], **fields) -> "Geometry":
        """Geometry whose perpendicular from the sample meets the plane at ``foot`` (fast, slow
        pixels), as swung-detector headers give it; ``fields`` are the other fields (``beam_centre``
        is computed)."""
        facing = cls(**{**fields, "beam_centre": tuple(foot)})
        shift = facing.perpendicular_foot
        return facing.replace(beam_centre=(2.0 * foot[0] - shift[0], 2.0 * foot[1] - shift[1]))

    def positions_mm(self, fast, slow) -> np.ndarray:
        """Lab positions (…, 3; mm) of detector positions (fast, slow; pixels, any matching shapes)."""
        fast = np.asarray(fast, dtype=float)[..., None]
        slow = np.asarray(slow, dtype=float)[..., None]
        return self.origin + self.pixel_size * (fast * np.asarray(self.fast_axis) + slow * np.asarray(self.slow_axis))

    def scattering_vectors_at_pixel(self, fast, slow) -> np.ndarray:
        """Scattering vectors r = s₁ − s₀ (…, 3; Å⁻¹, lab frame) at detector positions (fast, slow;
        pixels): s₁ the unit vector from the sample to the position over λ, s₀ the beam's."""
        position = self.positions_mm(fast, slow)
        unit = position / np.linalg.norm(position, axis=-1, keepdims=True)
        return (unit - BEAM_DIRECTION) / self.wavelength

    def inverse_d_at_pixel(self, fast, slow):
        """1/d = 2·sin(θ)/λ (Å⁻¹) at detector positions (fast, slow; pixels from the outer corner of
        pixel (0, 0), numpy arrays or numbers), for a detector of any orientation."""
        inverse_d = np.linalg.norm(self.scattering_vectors_at_pixel(fast, slow), axis=-1)
        return inverse_d if inverse_d.ndim else float(inverse_d)

    def _require_facing(self, what: str) -> None:
        if not self.faces_beam:
            raise UnsupportedGeometryError(
                f"{what} needs a detector facing the beam; this one is tilted {self.tilt_deg:.1f}° (a swung "
                "detector): use inverse_d_at_pixel")

    # -- helpers -----------------------------------------------------------------------------
    def replace(self, **changes) -> "Geometry":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def two_theta_at(self, radius_px):
        """Scattering angle 2θ (radians) at a radius (raw pixels) from the beam centre (a detector
        facing the beam only)."""
        self._require_facing("2θ from the radius alone")
        return np.arctan(np.asarray(radius_px, dtype=float) * self.pixel_size / self.distance)

    def inverse_d_at(self, radius_px):
        """1/d (Å⁻¹) at a radius (raw pixels) from the beam centre: 2·sin(θ)/λ (a detector facing the
        beam only: :meth:`inverse_d_at_pixel` for any)."""
        return 2.0 * np.sin(0.5 * self.two_theta_at(radius_px)) / self.wavelength

    def d_at(self, radius_px):
        """Resolution d (Å) at a radius (raw pixels) from the beam centre (inf at the centre)."""
        with np.errstate(divide="ignore"):
            return 1.0 / self.inverse_d_at(radius_px)

    def radius_at(self, d):
        """Radius (raw pixels) from the beam centre where resolution d (Å) is reached (a detector
        facing the beam only).

        NaN where d is beyond the reach of any scattering angle (d < λ/2) or 2θ ≥ 90°.
        """
        self._require_facing("a resolution's radius")
        d = np.asarray(d, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            sin_theta = self.wavelength / (2.0 * d)
            theta = np.arcsin(np.where(sin_theta <= 1.0, sin_theta, np.nan))
            two_theta = 2.0 * theta
            radius = np.where(two_theta < np.pi / 2, np.tan(two_theta) * self.distance / self.pixel_size, np.nan)
        return radius if radius.ndim else float(radius)

    def corner_radius_px(self) -> float:
        """Largest distance (raw pixels) from the beam centre to a detector corner."""
        self._require_facing("the beam-centred corner radius")
        bf, bs = self.beam_centre
        ns, nf = self.shape
        return float(max(math.hypot(f - bf, s - bs) for f in (0, nf) for s in (0, ns)))

    def as_dict(self) -> dict:
        """Fields as a dictionary; the axes only for a detector not in the default orientation."""
        values = dataclasses.asdict(self)
        if np.allclose(self.fast_axis, FAST_AXIS) and np.allclose(self.slow_axis, SLOW_AXIS):
            del values["fast_axis"], values["slow_axis"]
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "Geometry":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in fields})


def two_theta_axes(two_theta_deg: float) -> Tuple[Tuple[float, float, float], Tuple[float, float, float]]:
    """(fast, slow) axes of a detector swung by ``two_theta_deg`` about the horizontal x axis, as
    dxtbx reads a miniCBF ``Detector_2theta`` or an SMV ``TWOTHETA`` without further axes: fast
    stays along +x, slow (−y at 2θ = 0) turns with the arm; positive 2θ swings the detector upwards."""
    angle = math.radians(two_theta_deg)
    return FAST_AXIS, (0.0, -math.cos(angle), -math.sin(angle))


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
