"""xrais: resolution and multi-lattice detection for every diffraction image, from models trained
on physics-based simulations (Mendez et al., XRAIS)."""

__version__ = "0.1.0"

from .io import Frame, Geometry, GeometryOverride, ImageError, XraisError, open_image, open_images  # noqa: E402

__all__ = ["Frame", "Geometry", "GeometryOverride", "ImageError", "XraisError", "open_image", "open_images", "__version__"]
