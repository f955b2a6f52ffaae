"""xrais.evaluate: metrics of a model on labelled data (simulated shards, or images + labels JSON)."""
from __future__ import annotations

import logging
import os

import torch

from ..models import load
from ..models.registry import annotate
from ..training.evaluate import SUBSETS, evaluate_images, evaluate_shards
from ..training.history import write_json
from .common import GEOMETRY_PARAMS, geometry_override
from .params import Param, ParameterError
from .program import EXIT_FAILED, EXIT_OK, Program

log = logging.getLogger(__name__)

PARAMS = (
    Param("model", "resolution", "registered model name (resolution, multilattice, ...) or a model's .json/.pt path", "str"),
    Param("quadrants", 1, "labelled images: predict quadrant 0 only (1) or all four and average them (4)", "int",
          choices=("1", "4")),
    Param("subset", "all", "shards: evaluate all images, or the validation/train side of xrais.train's split", "choice",
          choices=SUBSETS),
    Param("validation_fraction", 0.1, "shards: the split's validation fraction (as given to xrais.train)", "float",
          minimum=0.001, maximum=0.999),
    Param("seed", 0, "shards: the split's seed (as given to xrais.train)", "int"),
    Param("device", "auto", "auto (GPU if present), cpu, cuda, cuda:1 ...", "str"),
    Param("precision", "fp32", "fp32, or fp16/bf16 autocast on GPUs", "choice", choices=("fp32", "fp16", "bf16")),
    Param("batch_size", 32, "quadrants per forward pass", "int", minimum=1),
    Param("nproc", None, "torch threads (None: all cores)", "int", minimum=1, optional=True),
    Param("output.json", "xrais_evaluation.json", "metrics and per-image predictions (JSON)", "path"),
    Param("output.predictions", True, "include the per-image predictions in the JSON", "bool"),
    Param("output.card", None, "also record the metrics in the model's card under this label (e.g. test_rayonix)",
          "str", optional=True),
) + GEOMETRY_PARAMS


def is_labels_json(path: str) -> bool:
    """A labels JSON file, or a folder holding labels.json (rather than shards)."""
    return path.endswith(".json") or (os.path.isdir(path) and os.path.isfile(os.path.join(path, "labels.json")))


def run_evaluate(params, inputs) -> int:
    if not inputs:
        raise ParameterError("give shard folders/files, or a labels JSON (or a folder holding labels.json)")
    if params.nproc:
        torch.set_num_threads(params.nproc)
    model = load(params.model, device=params.device, precision=params.precision, batch_size=params.batch_size)
    log.info("model %s: %s %s on %s", model.name, model.kind, model.network.architecture.label, model.device)
    labelled = [path for path in inputs if is_labels_json(path)]
    if labelled:
        if len(inputs) != 1:
            raise ParameterError("give one labels JSON (and no shards) at a time")
        labels_json = labelled[0] if labelled[0].endswith(".json") else os.path.join(labelled[0], "labels.json")
        quadrants = (0,) if params.quadrants == 1 else (0, 1, 2, 3)
        evaluation = evaluate_images(model, labels_json, quadrants, geometry_override(params))
    else:
        evaluation = evaluate_shards(model, inputs, params.subset, params.validation_fraction, params.seed)
    log.info("%s model %s on %s:\n%s", model.kind, model.name, evaluation.source, evaluation.table())
    payload = dict(evaluation.as_dict(with_items=params.output.predictions), model=model.card.get("path", model.name))
    write_json(params.output.json, payload)
    log.info("written %s", params.output.json)
    if params.output.card:
        card = annotate(params.model, evaluation=(params.output.card, {
            "source": f"{evaluation.source} ({params.subset}, {params.quadrants} quadrant(s) per image)",
            "images": len(evaluation.items), **evaluation.metrics, **evaluation.breakdowns()}))
        log.info("metrics recorded in the model card %s", card.with_suffix(".md"))
    if evaluation.failed:
        log.error("xrais.evaluate: %d image(s) could not be read and were left out of the metrics (listed in %s)",
                  len(evaluation.failed), params.output.json)
        return EXIT_FAILED
    return EXIT_OK


program = Program(
    "xrais.evaluate",
    "Measure a trained model on labelled data: simulated shards (all images, or the validation side of "
    "xrais.train's split) or image files listed in a labels JSON ({\"images\": [{\"image\": \"file.cbf\", "
    "\"d\": 2.0, \"is_multi\": 0}, ...]}). Prints the metrics (resolution: accuracy within 0.07 1/Å, MAE, "
    "Spearman; multi-lattice: accuracy, ROC AUC) and writes them with the predictions as JSON.",
    "xrais.evaluate <shard folders|.h5 files|labels.json> [key=value ...]",
    PARAMS,
    run_evaluate,
)
run = program.main
