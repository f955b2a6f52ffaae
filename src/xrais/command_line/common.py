"""Parameters and helpers shared by several programs."""
from __future__ import annotations

from ..io.geometry import GeometryOverride
from .params import Param

GEOMETRY_PARAMS = (
    Param("geometry.distance", None, "override the sample-to-detector distance (mm)", "float", minimum=1e-6, optional=True),
    Param("geometry.wavelength", None, "override the X-ray wavelength (Å)", "float", minimum=1e-6, optional=True),
    Param("geometry.beam_centre", None, "override the beam centre: fast,slow (pixels from the outer corner of pixel 0,0)",
          "floats", length=2, optional=True),
    Param("geometry.pixel_size", None, "override the pixel size (mm)", "float", minimum=1e-6, optional=True),
)


def geometry_override(params) -> GeometryOverride:
    """The user's geometry corrections from the ``geometry.*`` parameters."""
    g = params.geometry
    return GeometryOverride(distance=g.distance, wavelength=g.wavelength, beam_centre=g.beam_centre, pixel_size=g.pixel_size)
