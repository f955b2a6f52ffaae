"""Image input: readers for every common diffraction format → :class:`Frame` (pixels, mask, geometry).

Built-in readers are registered here in the order they are tried; plugins add more through the
``xrais_readers`` hook (see :mod:`xrais.plugins`).
"""
import importlib

from . import detectors
from .base import Reader, readers, register_reader
from .errors import GeometryError, ImageError, XraisError
from .frame import Frame, FrameError
from .geometry import Geometry, GeometryOverride
from .open import expand_inputs, identify, open_image, open_images

#: Built-in reader modules (each defines ``READER``), in the order they are tried.
BUILTIN_READER_MODULES = ("cbf",)

for _name in BUILTIN_READER_MODULES:
    register_reader(importlib.import_module(f"{__name__}.{_name}").READER)

__all__ = [
    "Frame", "FrameError", "Geometry", "GeometryOverride", "GeometryError", "ImageError", "XraisError",
    "Reader", "detectors", "expand_inputs", "identify", "open_image", "open_images", "readers", "register_reader",
]
