"""Image input: readers for every common diffraction format → :class:`Frame` (pixels, mask, geometry).

Readers are plugins (hook ``xrais_readers``, see :mod:`xrais.plugins`); xrais's own are listed in
:data:`BUILTIN_READER_MODULES` and registered by :mod:`xrais.plugins.builtin_readers`.
"""
from . import detectors
from .base import Reader, readers
from .errors import ChoiceError, GeometryError, ImageError, XraisError
from .frame import Frame, FrameError
from .geometry import Geometry, GeometryOverride
from .open import expand_inputs, identify, open_image, open_images

#: Built-in reader modules (each defines ``READER``; None when an optional dependency is missing),
#: in the order they are tried.
BUILTIN_READER_MODULES = ("expt", "nexus", "cbf", "imgcif", "smv", "mccd", "dxtbx_adapter")

__all__ = [
    "ChoiceError", "Frame", "FrameError", "Geometry", "GeometryOverride", "GeometryError", "ImageError", "XraisError",
    "Reader", "detectors", "expand_inputs", "identify", "open_image", "open_images", "readers",
]
