"""A diffraction frame: pixels + validity mask + geometry, with where it came from."""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional

import numpy as np

from .geometry import Geometry


@dataclasses.dataclass
class Frame:
    """One diffraction image.

    pixels: 2-D array (slow, fast) of counts; mask: boolean array of the same shape, True where a
    pixel is invalid (negative value, module gap, beyond the trusted range, outside every panel);
    geometry: its :class:`Geometry`; source: the file it came from; index: the image's number —
    in a multi-frame file (NeXus) its 0-based frame index there, for a single-image file (CBF,
    SMV, MarCCD) the number in its name (``thau_3_2_0003.cbf.bz2`` → 3, 0 for a name without
    one; :func:`xrais.io.base.image_number`); metadata: extra header values (exposure time,
    detector serial…).
    """

    pixels: np.ndarray
    mask: np.ndarray
    geometry: Geometry
    source: str = ""
    index: int = 0
    metadata: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.pixels.ndim != 2:
            raise ValueError(f"pixels must be 2-D (slow, fast), got shape {self.pixels.shape}")
        if self.mask.shape != self.pixels.shape:
            raise ValueError(f"mask shape {self.mask.shape} differs from pixels shape {self.pixels.shape}")
        if tuple(self.geometry.shape) != tuple(self.pixels.shape):
            raise ValueError(f"geometry shape {self.geometry.shape} differs from pixels shape {self.pixels.shape}")

    @classmethod
    def from_pixels(cls, pixels, geometry: Geometry, mask: Optional[np.ndarray] = None,
                    trusted_max: Optional[float] = None, source: str = "<array>", index: int = 0,
                    metadata: Optional[Dict[str, Any]] = None) -> "Frame":
        """A frame from an array, masked by the rules the file readers apply (:func:`invalid_mask`):
        ``trusted_max`` (counts; default: the detector catalogue's for ``geometry.detector``) and
        ``mask`` (True = invalid, e.g. the file's own) beside the rules that need no header."""
        pixels = np.asarray(pixels)
        return cls(pixels, invalid_mask(pixels, trusted_max, base=mask, detector=geometry.detector), geometry,
                   source=source, index=index, metadata=dict(metadata or {}))

    @property
    def label(self) -> str:
        """Human-readable name: file, with the frame number for multi-frame files."""
        return f"{self.source}:{self.index}" if self.metadata.get("multi_frame") else self.source


@dataclasses.dataclass
class FrameError:
    """Stands in for a frame that could not be read (``open_images(..., on_error="yield")``)."""

    source: str
    index: Optional[int]
    message: str

    @property
    def label(self) -> str:
        return self.source if self.index is None else f"{self.source}:{self.index}"


def invalid_mask(pixels: np.ndarray, trusted_max: Optional[float] = None, base: Optional[np.ndarray] = None,
                 detector: Optional[str] = None) -> np.ndarray:
    """Mask of invalid pixels, the one rule for files and arrays: negative values (gaps and dead
    pixels by detector convention), values above the trusted maximum (counts: the file's cut-off;
    when the file does not give one, the detector catalogue's for ``detector``), the largest value
    of an unsigned integer type (the overflow marker of EIGER/JUNGFRAU/CCD data), NaN/inf, and an
    optional base mask (module gaps, a file's own mask)."""
    if trusted_max is None and detector:
        from .detectors import trusted_max_for

        trusted_max = trusted_max_for(detector, pixels.shape)
    if trusted_max is not None and pixels.dtype == np.int32 and 0 <= trusted_max < 2**31:
        # One pass: negative int32 values become huge as uint32.
        mask = pixels.view(np.uint32) > np.uint32(trusted_max)
    else:
        mask = pixels < 0
        if trusted_max is not None:
            mask |= pixels > trusted_max
    if pixels.dtype.kind == "u":
        mask |= pixels == np.iinfo(pixels.dtype).max
    elif pixels.dtype.kind == "f":
        mask |= ~np.isfinite(pixels)
    if base is not None:
        mask |= np.asarray(base, dtype=bool)
    return mask
