"""xrais: resolution and multi-lattice detection for every diffraction image, from models trained
on physics-based simulations (Mendez et al., XRAIS)."""

__version__ = "0.1.0"

from .io import Frame, Geometry, GeometryOverride, ImageError, XraisError, open_image, open_images  # noqa: E402
from . import plugins  # noqa: E402,F401  (hands the io layer the installed readers and detector models)

_LAZY = {"Predictor": ("predict", "Predictor"), "conditioning": ("conditioning", None), "models": ("models", None)}


def __getattr__(name):
    """``xrais.Predictor``, ``xrais.conditioning`` and ``xrais.models`` load on first use (torch is heavy)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'xrais' has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    module = importlib.import_module(f".{module_name}", __name__)
    return getattr(module, attribute) if attribute else module


__all__ = ["Frame", "Geometry", "GeometryOverride", "ImageError", "Predictor", "XraisError", "open_image",
           "open_images", "__version__"]
