"""Parameters and helpers shared by several programs."""
from __future__ import annotations

from typing import Optional

from ..io.geometry import GeometryOverride
from ..plugins.builtin_predictors import MULTILATTICE_THRESHOLD, MultilatticeResnetPredictor, ResolutionPredictor
from .params import Param, ParameterError

GEOMETRY_PARAMS = (
    Param("geometry.distance", None, "override the sample-to-detector distance (mm)", "float", minimum=1e-6, optional=True),
    Param("geometry.wavelength", None, "override the X-ray wavelength (Å)", "float", minimum=1e-6, optional=True),
    Param("geometry.beam_centre", None, "override the beam centre: fast,slow (pixels from the outer corner of pixel 0,0)",
          "floats", length=2, optional=True),
    Param("geometry.pixel_size", None, "override the pixel size (mm)", "float", minimum=1e-6, optional=True),
)

#: quadrants=auto gives each predictor its own number (``PredictorPlugin.quadrants``, set once for each).
QUADRANTS_PARAM = Param(
    "quadrants", "auto", f"quadrants per image: auto (each predictor its own, as in the paper: resolution "
    f"{ResolutionPredictor.quadrants}, multilattice_resnet {MultilatticeResnetPredictor.quadrants}), or 4 (all; the "
    "spread between them is an uncertainty) or 1 (quadrant 0, 4x faster) for every quadrant predictor (multilattice, "
    "spots and indexing read the whole frame)", "choice", choices=("auto", "1", "4"))

MULTILATTICE_THRESHOLD_PARAM = Param(
    "multilattice_threshold", MULTILATTICE_THRESHOLD, "probability above which an image counts as "
    "multi-lattice (the multilattice and multilattice_resnet columns and the summary's fractions)", "float", minimum=0.0, maximum=1.0)


#: The crystal's cell when the user knows it, as DIALS ``known_symmetry`` (the multi-lattice indexing).
KNOWN_SYMMETRY_PARAMS = (
    Param("known_symmetry.unit_cell", None, "the crystal's unit cell when known: a,b,c,alpha,beta,gamma (Å, degrees, "
          "conventional setting); the first lattice of every frame is then this cell oriented (found in fewer, looser "
          "spots than a free search; a frame it does not index gets no lattice)", "floats", length=6, optional=True),
    Param("known_symmetry.space_group", None, "space group of known_symmetry.unit_cell (a symbol, e.g. P6122, C2, "
          "I222, H3): its lattice letter gives the centring, and a hexagonal or tetragonal group checks the cell's shape; "
          "default P", "str", optional=True),
)


def known_symmetry(params) -> dict:
    """The Predictor's ``known_cell`` and ``known_space_group`` from the ``known_symmetry.*`` parameters,
    checked (ParameterError naming the problem: a cell that is none, a space group without a cell)."""
    from ..lattice.cell import check_known_symmetry

    cell, space_group = params.known_symmetry.unit_cell, params.known_symmetry.space_group
    try:
        check_known_symmetry(cell, space_group)
    except ValueError as exc:
        raise ParameterError(f"known_symmetry: {exc}") from None
    return {"known_cell": cell, "known_space_group": space_group}


def quadrants_choice(value: str) -> Optional[int]:
    """The Predictor's ``quadrants`` for a quadrants= value: None for auto, else 1 or 4."""
    return None if value == "auto" else int(value)


def geometry_override(params) -> GeometryOverride:
    """The user's geometry corrections from the ``geometry.*`` parameters."""
    g = params.geometry
    return GeometryOverride(distance=g.distance, wavelength=g.wavelength, beam_centre=g.beam_centre, pixel_size=g.pixel_size)
