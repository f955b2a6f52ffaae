"""xrais.show_lattices: each frame's spots drawn on it, coloured by the lattice that indexes them —
so that a person sees why a frame was (or was not) called multi-lattice.

    xrais.show_lattices image_0001.cbf.gz
    xrais.show_lattices run1/*.cbf output.directory=lattices
"""
from __future__ import annotations

import logging
import os
import textwrap

from ..io import open_images
from ..plots import save_lattice_png
from ..plugins.base import PredictionInput
from ..plugins.builtin_predictors import MultilatticePredictor, frame_indexing, frame_spots
from .common import GEOMETRY_PARAMS, KNOWN_SYMMETRY_PARAMS, MULTILATTICE_THRESHOLD_PARAM, geometry_override, known_symmetry
from .params import Param, ParameterError
from .program import EXIT_FAILED, EXIT_OK, Program, report_failed_image

log = logging.getLogger(__name__)

PARAMS = (
    Param("output.directory", ".", "folder for the pictures (one PNG per frame: <image name>_lattices.png)", "path"),
    MULTILATTICE_THRESHOLD_PARAM,
) + KNOWN_SYMMETRY_PARAMS + GEOMETRY_PARAMS


def describe(indexing, prediction) -> str:
    """One line: spots, lattices with their share of the spots and cells, misorientations, the call
    (``prediction``: the multilattice predictor's result for the frame, whose reason explains a
    frame with no lattice)."""
    if not indexing.lattices:
        return f"{prediction['multilattice_undetermined']}: no multi-lattice probability"
    parts = [f"{indexing.n_spots} spots"]
    for number, lattice in enumerate(indexing.lattices):
        cell = " × ".join(f"{v:.1f}" for v in lattice.cell[:3])
        parts.append(f"lattice {number + 1}: {lattice.n_indexed / indexing.n_spots:.0%} ({cell} Å)")
    angles = [f"{angle:.2f}°" if angle == angle else "another cell" for angle in indexing.misorientation_deg()]
    if angles:
        parts.append("turned from the first by " + ", ".join(angles))
    if indexing.geometry_refinement is not None:
        shift = indexing.geometry_refinement.beam_shift_mm
        parts.append(f"beam centre refined by ({shift[0]:+.3f}, {shift[1]:+.3f}) mm")
    parts.append(f"p_multilattice {prediction['p_multilattice']:.2f}")
    return "; ".join(parts)


def run_show_lattices(params, inputs) -> int:
    if not inputs:
        raise ParameterError("no input images given")
    symmetry = known_symmetry(params)
    os.makedirs(params.output.directory, exist_ok=True)
    predictor = MultilatticePredictor()
    failed = 0
    for frame in open_images(inputs, geometry=geometry_override(params), on_error="yield"):
        if getattr(frame, "message", None):
            report_failed_image(frame.source, frame.message)
            failed += 1
            continue
        item = PredictionInput(frame.geometry, None, (), frame=frame,
                               settings={"multilattice_threshold": params.multilattice_threshold, **symmetry})
        spots, indexing = frame_spots(item), frame_indexing(item)
        line = describe(indexing, predictor.predict([item])[0])
        stem = os.path.basename(frame.source).split(".")[0] + (f"_{frame.index}" if frame.metadata.get("multi_frame") else "")
        path = os.path.join(params.output.directory, f"{stem}_lattices.png")
        title = "\n".join([os.path.basename(frame.label)] + textwrap.wrap(line, 110))
        save_lattice_png(frame.pixels, frame.mask, spots, indexing, path, title=title)
        log.info("%s: %s → %s", frame.label, line, path)
    return EXIT_FAILED if failed else EXIT_OK


program = Program(
    "xrais.show_lattices",
    "Draw each frame's spots on it, coloured by the lattice that indexes them (unindexed ones in black, those on "
    "ice rings that no lattice indexes apart), with each lattice's share of the spots, its cell, the angle between "
    "lattices and the multi-lattice probability: the evidence behind dials.xrais_multilattice's call, for a "
    "person to check.",
    "xrais.show_lattices images... [output.directory=.]",
    PARAMS, run_show_lattices)
run = program.main
