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


def invalid_mask(pixels: np.ndarray, trusted_max: Optional[float] = None, base: Optional[np.ndarray] = None) -> np.ndarray:
    """Mask of invalid pixels: negative values (gaps/dead pixels by detector convention), values
    above the trusted maximum (counts), and an optional base mask (module gaps)."""
    if trusted_max is not None and pixels.dtype == np.int32 and 0 <= trusted_max < 2**31:
        # One pass: negative int32 values become huge as uint32.
        mask = pixels.view(np.uint32) > np.uint32(trusted_max)
    else:
        mask = pixels < 0
        if trusted_max is not None:
            mask |= pixels > trusted_max
    if base is not None:
        mask |= base
    return mask
