"""Image input: readers for every common diffraction format → :class:`Frame` (pixels, mask, geometry).

Readers are plugins (hook ``xrais_readers``, see :mod:`xrais.plugins`); xrais's own are listed in
:data:`BUILTIN_READER_MODULES` and registered by :mod:`xrais.plugins.builtin_readers`. This package
imports nothing above it: the plugin layer hands it the installed readers and detector models
(:func:`xrais.io.base.set_reader_source`, :func:`xrais.io.detectors.register_source`).
"""
from . import detectors
from .base import BUILTIN_READER_MODULES, Reader, builtin_readers, readers
from .errors import ChoiceError, GeometryError, ImageError, XraisError
from .frame import Frame, FrameError
from .geometry import Geometry, GeometryOverride
from .open import expand_inputs, identify, open_image, open_images

__all__ = [
    "ChoiceError", "Frame", "FrameError", "Geometry", "GeometryOverride", "GeometryError", "ImageError", "XraisError",
    "BUILTIN_READER_MODULES", "Reader", "builtin_readers", "detectors", "expand_inputs", "identify", "open_image",
    "open_images", "readers",
]
