"""Lab-frame description of a flat detector, and the pixel windows the simulator renders.

Lab frame (nanoBragg's MOSFLM convention): the sample at the origin, the beam along +x, the
detector fast axis along +z and slow axis along −y, so the detector normal fast × slow is +x.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple, Tuple

import numpy as np

from ..conditioning import quadrant_region
from ..io.geometry import Geometry

#: MOSFLM-convention axes (lab frame): beam direction, detector fast and slow axes.
MOSFLM_BEAM = (1.0, 0.0, 0.0)
MOSFLM_FAST = (0.0, 0.0, 1.0)
MOSFLM_SLOW = (0.0, -1.0, 0.0)


def unit_vector(vector) -> Tuple[float, float, float]:
    """``vector`` (a non-zero 3-vector) scaled to length 1."""
    v = np.asarray(vector, dtype=float)
    norm = np.linalg.norm(v)
    if v.shape != (3,) or not np.isfinite(norm) or norm == 0.0:
        raise ValueError(f"expected a non-zero 3-vector, got {vector}")
    return tuple(float(x) for x in v / norm)


@dataclasses.dataclass(frozen=True)
class DetectorFrame:
    """A flat pixel array in the lab frame.

    pix0: vector (mm) from the sample to the outer corner of pixel (0, 0); fdet, sdet: unit vectors
    of increasing fast and slow pixel index; pixel_size: mm; shape: (slow, fast) pixels. The centre
    of pixel (s, f) is at pix0 + (f + 0.5)·pixel_size·fdet + (s + 0.5)·pixel_size·sdet.
    """

    pix0: Tuple[float, float, float]
    fdet: Tuple[float, float, float]
    sdet: Tuple[float, float, float]
    pixel_size: float
    shape: Tuple[int, int]

    def __post_init__(self):
        object.__setattr__(self, "pix0", tuple(float(x) for x in self.pix0))
        object.__setattr__(self, "fdet", unit_vector(self.fdet))
        object.__setattr__(self, "sdet", unit_vector(self.sdet))
        object.__setattr__(self, "pixel_size", float(self.pixel_size))
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        if abs(np.dot(self.fdet, self.sdet)) > 1e-9:
            raise ValueError("fdet and sdet must be perpendicular")
        if self.close_distance <= 0.0:
            raise ValueError("the sample must be in front of the detector (pix0 · normal > 0)")

    @property
    def normal(self) -> np.ndarray:
        """Unit detector normal fdet × sdet (pointing away from the sample)."""
        return np.cross(self.fdet, self.sdet)

    @property
    def close_distance(self) -> float:
        """Distance (mm) from the sample to the detector plane, along its normal."""
        return float(np.dot(self.pix0, np.cross(self.fdet, self.sdet)))

    @classmethod
    def from_geometry(cls, geometry: Geometry) -> "DetectorFrame":
        """The frame of an xrais :class:`Geometry`: detector perpendicular to the beam (+x) at
        ``distance``, with the direct beam at ``beam_centre`` (fast, slow pixels from the outer
        corner of pixel (0, 0)), MOSFLM axes."""
        beam_fast, beam_slow = (v * geometry.pixel_size for v in geometry.beam_centre)
        pix0 = (geometry.distance * np.asarray(MOSFLM_BEAM) - beam_fast * np.asarray(MOSFLM_FAST)
                - beam_slow * np.asarray(MOSFLM_SLOW))
        return cls(tuple(pix0), MOSFLM_FAST, MOSFLM_SLOW, geometry.pixel_size, geometry.shape)

    def as_array(self) -> np.ndarray:
        """Packed float64 vector for the kernels: pix0 (3), fdet (3), sdet (3), normal (3), pixel size."""
        return np.concatenate([self.pix0, self.fdet, self.sdet, self.normal, [self.pixel_size]]).astype(np.float64)

    def beam_hit(self, beam_direction=MOSFLM_BEAM) -> Tuple[float, float]:
        """Where a ray from the sample along ``beam_direction`` meets the detector plane:
        (fast, slow) in pixels from the outer corner of pixel (0, 0)."""
        direction = np.asarray(unit_vector(beam_direction))
        along = np.dot(direction, self.normal)
        if along <= 0.0:
            raise ValueError("the beam does not hit the detector plane")
        point = direction * self.close_distance / along - np.asarray(self.pix0)
        return float(np.dot(point, self.fdet) / self.pixel_size), float(np.dot(point, self.sdet) / self.pixel_size)


def as_detector_frame(detector) -> DetectorFrame:
    """A :class:`DetectorFrame` as is, or the frame of an xrais :class:`Geometry`."""
    return detector if isinstance(detector, DetectorFrame) else DetectorFrame.from_geometry(detector)


class Window(NamedTuple):
    """Rectangle of raw pixels [slow_start, slow_stop) × [fast_start, fast_stop) to render."""

    slow_start: int
    slow_stop: int
    fast_start: int
    fast_stop: int

    @classmethod
    def full(cls, shape) -> "Window":
        return cls(0, int(shape[0]), 0, int(shape[1]))

    @property
    def slices(self) -> Tuple[slice, slice]:
        return slice(self.slow_start, self.slow_stop), slice(self.fast_start, self.fast_stop)

    @property
    def shape(self) -> Tuple[int, int]:
        return self.slow_stop - self.slow_start, self.fast_stop - self.fast_start

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    def clip(self, shape) -> "Window":
        s0, s1 = max(0, self.slow_start), min(int(shape[0]), self.slow_stop)
        f0, f1 = max(0, self.fast_start), min(int(shape[1]), self.fast_stop)
        return Window(s0, max(s0, s1), f0, max(f0, f1))


def quadrant_window(geometry: Geometry, quadrant: int) -> Window:
    """Raw pixels of conditioned quadrant ``quadrant`` (0–3; 0 is the paper's "upper-left"), i.e.
    exactly the footprint :func:`xrais.conditioning.quadrant_region` reads, clipped to the image."""
    (rows, _), (cols, _) = quadrant_region(geometry, quadrant).spans(geometry.shape)
    return Window(rows.start, rows.stop, cols.start, cols.stop)


def resolve_window(window, shape) -> Window:
    """None → the whole detector; otherwise the window clipped to the detector."""
    return Window.full(shape) if window is None else Window(*window).clip(shape)
