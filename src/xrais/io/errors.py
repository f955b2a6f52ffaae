"""Errors that reach users as one clear line: what file, which frame, what is wrong."""
from __future__ import annotations

from typing import Optional


class XraisError(Exception):
    """Base class of every error xrais reports to users (no traceback needed)."""


class GeometryError(XraisError, ValueError):
    """A geometry value is missing or makes no sense (zero distance, negative wavelength…)."""


class UnsupportedGeometryError(GeometryError):
    """A geometry that is right but that xrais does not handle (electron wavelengths…): no override
    fixes it."""


class ChoiceError(XraisError, ValueError):
    """A name the caller chose is not one of those available (a predictor, a detector model…);
    the message lists the available ones. Programs report it as a bad command line."""


class ImageError(XraisError):
    """An image file (or one frame of it) cannot be read: the message names the file and the problem."""

    def __init__(self, path, problem: str, frame: Optional[int] = None):
        self.path = str(path)
        self.problem = str(problem)
        self.frame = frame
        where = self.path if frame is None else f"{self.path} (frame {frame})"
        super().__init__(f"{where}: {self.problem}")
