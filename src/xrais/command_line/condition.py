"""xrais.condition: open diffraction images and write their conditioned quadrants (PNG, .npy)."""
from __future__ import annotations

import logging
import os

import numpy as np

from .. import conditioning
from ..io import FrameError, open_images
from ..io.errors import UnsupportedGeometryError
from ..plots import save_quadrants_png
from .common import GEOMETRY_PARAMS, geometry_override
from .params import Param, ParameterError
from .program import EXIT_FAILED, EXIT_OK, Program, report_failed_image

log = logging.getLogger(__name__)

PARAMS = (
    Param("quadrants", 4, "number of quadrants to condition: 1 (quadrant 0 only) or 4", "int", choices=("1", "4")),
    Param("output.directory", "conditioned", "folder for the PNG (and .npy) files", "path"),
    Param("output.npy", False, "also save the conditioned float32 array (quadrants, 512, 512) as .npy", "bool"),
) + GEOMETRY_PARAMS


def run_condition(params, inputs) -> int:
    if not inputs:
        raise ParameterError("no input images given (files, globs, folders, NeXus masters or .expt)")
    os.makedirs(params.output.directory, exist_ok=True)
    quadrants = conditioning.ALL_QUADRANTS if params.quadrants == 4 else (0,)
    failed = done = 0
    for frame in open_images(inputs, geometry=geometry_override(params), on_error="yield"):
        if isinstance(frame, FrameError):
            report_failed_image(frame.label, frame.message)
            failed += 1
            continue
        try:
            quads = conditioning.condition(frame.pixels, frame.mask, frame.geometry, quadrants=quadrants)
        except UnsupportedGeometryError as exc:  # a swung detector: no beam-centred quadrants
            report_failed_image(frame.label, str(exc))
            failed += 1
            continue
        stem = os.path.basename(frame.source).split(".")[0] + (f"_{frame.index:06d}" if frame.metadata.get("multi_frame") else "")
        png = os.path.join(params.output.directory, stem + ".png")
        g = frame.geometry
        save_quadrants_png(quads, png, title=f"{os.path.basename(frame.source)} [{frame.index}]  {g.detector}, "
                                             f"{g.distance:.1f} mm, {g.wavelength:.4f} Å, {g.downsample}×{g.downsample} max-pool",
                           indices=quadrants)
        if params.output.npy:
            np.save(os.path.join(params.output.directory, stem + ".npy"), quads)
        log.info("%s: %s %dx%d, distance %.2f mm, λ %.5f Å, beam (%.2f, %.2f) px, factor %d, max √I %d → %s",
                 frame.label, g.detector, g.shape[1], g.shape[0], g.distance, g.wavelength, *g.beam_centre,
                 g.downsample, int(quads.max()), png)
        done += 1
    log.info("%d image(s) conditioned, %d failed", done, failed)
    return EXIT_OK if failed == 0 and done > 0 else EXIT_FAILED


program = Program(
    "xrais.condition",
    "Open diffraction images (CBF, SMV, MarCCD, NeXus/HDF5, DIALS .expt) and write the conditioned 512×512 "
    "quadrants the models read (N×N max-pool, square root, beam in the corner) as PNG images.",
    "xrais.condition <images|folders|globs|.expt> [key=value ...]",
    PARAMS,
    run_condition,
)
run = program.main
