"""xrais.demo: the main job on the example images shipped inside the package, with the shipped
models — predictions beside the true labels, results files, plots and conditioned quadrants."""
from __future__ import annotations

import logging
import os

from .. import conditioning, examples
from ..io import open_image
from ..plots import save_quadrants_png
from ..predict import Predictor, summarise
from ..results import plot_results, write_csv, write_json
from .params import Param
from .program import EXIT_FAILED, EXIT_OK, Program

log = logging.getLogger(__name__)

PARAMS = (
    Param("output.directory", "xrais_demo", "folder for the results (JSON, CSV, plots, conditioned quadrants)", "path"),
    Param("device", "auto", "where the networks run: auto, cpu, cuda", "choice", choices=("auto", "cpu", "cuda")),
)


def run_demo(params, inputs) -> int:
    paths = examples.paths()
    truth = examples.truth()
    folder = params.output.directory
    os.makedirs(folder, exist_ok=True)
    log.info("%d example images (simulated PILATUS 2M, shipped in %s)", len(paths), examples.FOLDER)
    predictor = Predictor(predictors=("resolution", "multilattice", "spots"), device=params.device)
    results = predictor.predict(paths)
    experimental = predictor.experimental
    p_header = "p_multi*" if "p_multilattice" in experimental else "p_multi"
    header = f"{'image':<30} {'true d/Å':>8} {'d_min/Å':>8} {'σ(1/d)':>7} {'d_mean/Å':>8} {'B/Å²':>7} " \
             f"{'true lat.':>9} {p_header:>8} {'spots':>6} {'d_spots/Å':>9}  verdict (resolution, lattices)"
    log.info("%s\n%s", header, "-" * len(header))
    for result in results:
        name = os.path.basename(result["image"])
        known = truth.get(name, {})
        if result["error"]:
            log.info("%-30s error: %s", name, result["error"])
            continue
        sigma = _fmt(result.get("inverse_d_sigma"), "-", "{:.3f}") + ("?" if result.get("resolution_undetermined") else "")
        log.info("%-30s %8s %8s %7s %8s %7s %9s %8s %6d %9s  %s, %s", name, _fmt(known.get("resolution"), "blank"),
                 _fmt(result["d_min"], "no diff."), sigma, _fmt(result["d_mean"], "-"), _fmt(result["b_factor"], "-", "{:.0f}"),
                 known.get("n_lattices", "?"), _fmt(result["p_multilattice"], "-", "{:.3f}"), result["n_spots"],
                 _fmt(result["d_min_spots"], "-"), *verdicts(known, result))
    for result in results:  # each image without a multi-lattice answer, with its own reason
        if result.get("p_multilattice") is None and not result["error"]:
            log.info("-: %s: %s, so no multi-lattice probability", os.path.basename(result["image"]),
                     result["multilattice_undetermined"])
    if any(result.get("resolution_undetermined") for result in results):
        log.info("?: resolution undetermined (σ of 1/d above the model's limit: the spots fade before they tell)")
    if "p_multilattice" in experimental:
        log.info("* p_multi: experimental model, %s", experimental["p_multilattice"])
    summary = summarise(results, experimental=experimental)
    write_json(os.path.join(folder, "results.json"), results, summary, {"device": params.device})
    write_csv(os.path.join(folder, "results.csv"), results, predictor.fields)
    plot_results(os.path.join(folder, "resolution_and_multilattice.png"), results, title="xrais demo (example images)",
                 experimental=experimental)
    for path in paths:
        frame = open_image(path)
        quadrants = conditioning.condition_frame(frame)
        stem = os.path.basename(path).split(".")[0]
        save_quadrants_png(quadrants, os.path.join(folder, f"{stem}_quadrants.png"), title=stem)
    log.info("results, plots and conditioned quadrants written to %s/", folder)
    return EXIT_OK if not summary["n_failed"] else EXIT_FAILED


#: A resolution is right within this of the true 1/d (Å⁻¹), the models' accuracy target.
RIGHT_WITHIN = 0.07


def verdicts(known: dict, result: dict):
    """(resolution, lattices) verdicts of one example against its true labels: right, wrong or
    undetermined (the model says it cannot tell), or unknown without a label."""
    if not known:
        return "unknown", "unknown"
    if result.get("resolution_undetermined"):
        resolution = "undetermined"
    elif known.get("blank"):
        resolution = "right" if not result.get("diffraction") else "wrong"
    else:
        resolution = "right" if result.get("inverse_d") is not None and \
            abs(result["inverse_d"] - known["inverse_d"]) <= RIGHT_WITHIN else "wrong"
    if known.get("blank") or result.get("multilattice") is None:
        lattices = "undetermined" if not known.get("blank") else ("right" if result.get("multilattice") is not True else "wrong")
    else:
        lattices = "right" if result["multilattice"] == (known["n_lattices"] > 1) else "wrong"
    return resolution, lattices


def _fmt(value, missing: str, pattern: str = "{:.2f}") -> str:
    return missing if value is None else pattern.format(value)


program = Program(
    "xrais.demo",
    "Run xrais on the example images shipped inside the package with the shipped resolution and multi-lattice "
    "models (and the spot-finding baseline), and compare with the images' true labels.",
    "xrais.demo [output.directory=xrais_demo] [device=auto]", PARAMS, run_demo, takes_inputs=False)
run = program.main
