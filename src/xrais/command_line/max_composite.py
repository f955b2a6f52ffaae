"""xrais.max_composite: the per-pixel maximum of a chosen subset of images (paper Figures 7, 9, 15).

    xrais.max_composite results=xrais_resolution.json select.d=1.3,1.6 output.png=best.png
    xrais.max_composite run1/*.cbf select.first=0,20 output.image=first20.cbf
    xrais.max_composite run1/ select.p_multilattice=0.5,1 predictors=multilattice
"""
from __future__ import annotations

import collections
import json
import logging
from typing import Dict, List

from ..composite import Selection, max_composite, mean_resolution, save_composite_png
from ..io import ImageError, open_images
from ..io.cbf import write_cbf
from ..predict import Predictor
from ..results import result_label
from .common import GEOMETRY_PARAMS, QUADRANTS_PARAM, geometry_override, quadrants_choice
from .params import Param, ParameterError
from .program import EXIT_FAILED, EXIT_OK, Program, report_failed_image

log = logging.getLogger(__name__)

PARAMS = (
    Param("results", None, "a results JSON of dials.xrais_resolution / dials.xrais_multilattice to select from "
          "(else the inputs are predicted first when the selection needs it)", "path", optional=True),
    Param("select.d", None, "keep images whose resolution lies in this range: low,high (Å)", "floats", length=2,
          optional=True),
    Param("select.reduce", "min", "resolution used by select.d: min (d_min) or mean (d_mean)", "choice",
          choices=("min", "mean")),
    Param("select.p_multilattice", None, "keep images whose multi-lattice probability lies in this range: low,high",
          "floats", length=2, optional=True),
    Param("select.first", None, "keep images at positions first,stop of the list (e.g. 0,20: the first 20 exposures)",
          "ints", length=2, optional=True),
    Param("predictors", ("resolution",), "predictors to run when selecting on predictions without a results file",
          "strs"),
    QUADRANTS_PARAM,
    Param("device", "auto", "where the networks run", "choice", choices=("auto", "cpu", "cuda")),
    Param("output.image", "max_composite.cbf", "the composite as a miniCBF image (None: skip)", "path", optional=True),
    Param("output.png", "max_composite.png", "the composite as a PNG (None: skip)", "path", optional=True),
) + GEOMETRY_PARAMS


def run_max_composite(params, inputs) -> int:
    selection = Selection(
        d_range=params.select.d, p_range=params.select.p_multilattice,
        index_range=params.select.first, resolution_key="d_min" if params.select.reduce == "min" else "d_mean")
    results = _results(params, inputs, selection)
    for result in results:
        if result.get("error"):
            report_failed_image(result_label(result), result["error"])
    chosen = selection.chosen(results)
    log.info("%d of %d images selected", len(chosen), len(results))
    if not chosen:
        log.error("xrais.max_composite: error: no image matches the selection")
        return EXIT_FAILED
    composite, used = max_composite(_frames_of(chosen, params))
    resolution = mean_resolution(chosen, selection.resolution_key)
    title = f"max-composite of {used} images" + (f", mean XRAIS resolution {resolution:.2f} Å" if resolution else "")
    if params.output.image:
        write_cbf(params.output.image, composite.pixels, composite.geometry, extra_header=f"xrais max-composite of {used} images")
        log.info("composite image written to %s", params.output.image)
    if params.output.png:
        save_composite_png(composite, params.output.png, title=title, resolution=resolution)
        log.info("composite PNG written to %s", params.output.png)
    return EXIT_OK


def _results(params, inputs, selection: Selection) -> List[Dict]:
    if params.results:
        try:
            with open(params.results, encoding="utf-8") as handle:
                return json.load(handle)["images"]
        except (OSError, ValueError, KeyError) as exc:
            raise ImageError(params.results, f"not a results file of dials.xrais_* ({exc})") from None
    if not inputs:
        raise ParameterError("give images (files, folders, globs) or results=<json>")
    if selection.d_range or selection.p_range:
        predictor = Predictor(predictors=params.predictors, device=params.device, quadrants=quadrants_choice(params.quadrants),
                              geometry=geometry_override(params))
        return predictor.predict(inputs)
    return [{"image": f.source, "frame": f.index, "error": getattr(f, "message", None)}
            for f in open_images(inputs, geometry=geometry_override(params), on_error="yield")]


def _frames_of(chosen: List[Dict], params):
    """The chosen (image, frame) pairs, each file opened once (a single-image file gives its one
    image whatever its frame in the results)."""
    wanted = collections.defaultdict(set)
    for result in chosen:
        wanted[result["image"]].add(int(result.get("frame") or 0))
    for path, indices in wanted.items():
        for frame in open_images([path], geometry=geometry_override(params), on_error="skip"):
            if frame.index in indices or not frame.metadata.get("multi_frame"):
                yield frame


program = Program(
    "xrais.max_composite",
    "Write the maximum-composite image (per-pixel maximum) of a chosen subset of images — by predicted resolution, "
    "multi-lattice probability or position in the series — as a miniCBF image and a PNG with the subset's mean "
    "resolution drawn as a circle (paper Figures 7, 9 and 15).",
    "xrais.max_composite [images...] [results=xrais_resolution.json] select.d=low,high | select.first=0,20 ...",
    PARAMS, run_max_composite)
run = program.main
