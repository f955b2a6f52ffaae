"""dials.xrais_resolution and dials.xrais_multilattice: predictions for every image, DIALS-style.

    dials.xrais_resolution imported.expt
    dials.xrais_resolution /data/run1/*.cbf.gz nproc=2 output.csv=run1.csv
    mpiexec -n 8 dials.xrais_resolution master.h5 mpi=True
    dials.xrais_multilattice images/ predictors=multilattice,indexing,spots
"""
from __future__ import annotations

import logging
from typing import Dict, List, Tuple

from ..predict import Predictor, summarise
from ..results import plot_results, result_label, summary_lines, table_lines, write_csv, write_json
from .common import (GEOMETRY_PARAMS, KNOWN_SYMMETRY_PARAMS, MULTILATTICE_THRESHOLD_PARAM, QUADRANTS_PARAM,
                     geometry_override, known_symmetry, quadrants_choice)
from .params import Param, ParameterError
from .program import EXIT_FAILED, EXIT_OK, Program, Progress, report_failed_image

log = logging.getLogger(__name__)


REDUCE_PARAM = Param("reduce", "min", "image resolution for the summary and plot: min (best quadrant, d_min) or mean "
                     "(d_mean)", "choice", choices=("min", "mean"))


def _params(stem: str, predictors: str, resolution_params: Tuple[Param, ...]) -> Tuple[Param, ...]:
    return (
        Param("predictors", tuple(predictors.split(",")), "predictors to run, comma-separated (see xrais.plugins): "
              "resolution, resolution_resnet, multilattice, multilattice_resnet, spots, decay, indexing, or any installed plugin", "strs"),
        QUADRANTS_PARAM,
        MULTILATTICE_THRESHOLD_PARAM,
    ) + KNOWN_SYMMETRY_PARAMS + resolution_params + (
        Param("nproc", 1, "threads reading and conditioning images (also torch threads on the CPU)", "int", minimum=1),
        Param("device", "auto", "where the networks run: auto (GPU if present), cpu, cuda", "choice",
              choices=("auto", "cpu", "cuda")),
        Param("batch_size", 16, "images per network batch", "int", minimum=1),
        Param("mpi", False, "split the images over MPI ranks (run under mpiexec); rank 0 writes the outputs", "bool"),
        Param("output.json", f"{stem}.json", "results for every image + summary (JSON); None to skip", "path",
              optional=True),
        Param("output.csv", None, "results as a CSV table (one row per image)", "path", optional=True),
        Param("output.plot", f"{stem}.png", "PNG of resolution / multi-lattice probability vs image number; None to skip",
              "path", optional=True),
    ) + GEOMETRY_PARAMS


def run_predictions(params, inputs) -> int:
    """The whole program: predict, gather (MPI), write outputs; exit 1 if any image failed."""
    if not inputs:
        raise ParameterError("no input images given (image files, globs, folders, NeXus master files or .expt files)")
    comm = _mpi_comm() if params.mpi else None
    rank, size = (comm.Get_rank(), comm.Get_size()) if comm is not None else (0, 1)
    if params.device == "cpu" or params.device == "auto":
        import torch

        torch.set_num_threads(params.nproc)
    predictor = Predictor(predictors=params.predictors, device=params.device,
                          quadrants=quadrants_choice(params.quadrants),
                          multilattice_threshold=params.multilattice_threshold, batch_size=params.batch_size,
                          nproc=params.nproc, geometry=geometry_override(params), shard=(rank, size),
                          **known_symmetry(params))
    if rank == 0:
        log.info("predictors on %s: %s%s", predictor.device, ", ".join(
            f"{name} ({len(predictor.plugin_quadrants[name])} quadrants)" if predictor.plugin_quadrants.get(name)
            else f"{name} (whole frame)" for name in params.predictors), f", {size} MPI ranks" if size > 1 else "")
    mine: List[Tuple[int, Dict]] = []
    progress = Progress(_count_hint(inputs), "predicting", enabled=None if rank == 0 else False)
    with progress:
        for ordinal, result in predictor.predict_iter(inputs, with_ordinal=True):
            mine.append((ordinal, result))
            progress.update(size)
            if result["error"]:
                report_failed_image(result_label(result), result["error"])
    if comm is not None:
        gathered = comm.gather(mine, root=0)
        if rank != 0:
            return EXIT_OK if all(not r["error"] for _, r in mine) else EXIT_FAILED
        mine = [pair for part in gathered for pair in part]
    results = [result for _, result in sorted(mine, key=lambda pair: (pair[0], pair[1]["frame"]))]
    reduce = params.as_dict().get("reduce", REDUCE_PARAM.default)  # dials.xrais_multilattice has no reduce=
    summary = summarise(results, reduce=reduce, experimental=predictor.experimental)
    for line in table_lines(results, predictor.experimental):
        log.info("%s", line)
    log.info("Summary:")
    for line in summary_lines(summary):
        log.info("%s", line)
    if params.output.json:
        write_json(params.output.json, results, summary, _parameters(params))
        log.info("results written to %s", params.output.json)
    if params.output.csv:
        write_csv(params.output.csv, results, predictor.fields)
        log.info("table written to %s", params.output.csv)
    if params.output.plot and results:
        if plot_results(params.output.plot, results, title=f"{len(results)} images", reduce=reduce,
                        experimental=predictor.experimental, multilattice_threshold=params.multilattice_threshold):
            log.info("plot written to %s", params.output.plot)
        else:
            log.info("no plot: the predictors' results have nothing to plot against the image number")
    failed = summary["n_failed"]
    if failed:
        log.warning("%d of %d images could not be processed (see the error column)", failed, len(results))
    return EXIT_FAILED if failed or not results else EXIT_OK


def _mpi_comm():
    try:
        from mpi4py import MPI
    except ImportError:
        from ..io.errors import XraisError

        raise XraisError("mpi=True needs mpi4py (pip install 'xrais[mpi]')") from None
    return MPI.COMM_WORLD


def _count_hint(inputs) -> int:
    """Number of image files for the progress bar (multi-frame files count once)."""
    from ..io import expand_inputs

    return len(expand_inputs(inputs))


def _parameters(params) -> Dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.as_dict().items()}


def _program(name: str, stem: str, predictors: str, resolution_params: Tuple[Param, ...], description: str) -> Program:
    return Program(name, description, f"{name} <images|folders|globs|master.h5|imported.expt> [key=value ...]",
                   _params(stem, predictors, resolution_params), run_predictions)


resolution_program = _program(
    "dials.xrais_resolution", "xrais_resolution", "resolution", (REDUCE_PARAM,),
    "Predict the resolution of every diffraction image (1/d, d and B factor per quadrant; d_min is the best "
    "quadrant, d_mean from the mean 1/d) with the shipped shell-profile network, which pools the quadrants into one "
    "1/d with its σ (resolution_undetermined when σ is too large to call). Images without diffraction "
    "(1/d < 1/20 Å⁻¹) are reported as such. b_factor (Å²) is the B of the training labels' relation "
    "B = 4d² + 12 at d_min, not a Wilson B fitted to intensities. Add predictors=resolution,multilattice,spots "
    "for more.")
multilattice_program = _program(
    "dials.xrais_multilattice", "xrais_multilattice", "multilattice", (),
    "Predict for every diffraction image the probability that it holds more than one lattice (split or cracked "
    "crystal, several crystals in the beam) with the shipped lattice-evidence network: the frame's spots, found at "
    "full resolution, are indexed (without a known cell, or with known_symmetry.unit_cell= as dials.index) and the "
    "network reads how well one lattice explains them (p_multilattice; null, with the reason, when no lattice "
    "indexes). Add predictors=multilattice,indexing for the "
    "lattices found (cell, misorientation), multilattice_resnet for the paper's quadrant ResNet; xrais.show_lattices "
    "draws a frame's spots coloured by lattice.")
run_resolution = resolution_program.main
run_multilattice = multilattice_program.main


if __name__ == "__main__":  # python -m xrais.command_line.predict … (dials.xrais_resolution)
    run_resolution()
