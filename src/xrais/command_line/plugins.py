"""xrais.plugins: list the installed predictors, image readers and detector models."""
from __future__ import annotations

import json
import logging

from .. import plugins
from ..io import detectors, readers
from .params import Param
from .program import EXIT_OK, Program

log = logging.getLogger(__name__)

PARAMS = (Param("output.json", None, "also write the listing as JSON to this file", "path", optional=True),)


def run_plugins(params, inputs) -> int:
    predictors = plugins.predictors()
    listing = {
        "plugins": plugins.describe(),
        "predictors": [{"name": p.name, "needs": p.needs, "fields": list(p.fields), "description": p.description,
                        "class": f"{type(p).__module__}.{type(p).__name__}"} for p in predictors.values()],
        "readers": [{"name": r.name, "suffixes": list(r.suffixes), "class": f"{type(r).__module__}.{type(r).__name__}"}
                    for r in readers()],
        "detectors": [{"name": m.name, "shape": list(m.shape), "pixel_size": m.pixel_size, "downsample": m.downsample}
                      for m in detectors.catalogue()],
    }
    log.info("Predictors (use predictors=a,b,…):")
    for p in listing["predictors"]:
        log.info("  %-14s needs %-9s → %s\n  %-14s %s [%s]", p["name"], p["needs"], ", ".join(p["fields"]), "",
                 p["description"], p["class"])
    log.info("Image readers, in the order they are tried:")
    for r in listing["readers"]:
        log.info("  %-14s %s", r["name"], " ".join(r["suffixes"]))
    log.info("Detector models: %s", ", ".join(m["name"] for m in listing["detectors"]))
    log.info("Plugin modules: %s", ", ".join(f"{row['plugin']} ({row['module']})" for row in listing["plugins"]))
    if params.output.json:
        with open(params.output.json, "w", encoding="utf-8") as handle:
            json.dump(listing, handle, indent=2)
    return EXIT_OK


program = Program("xrais.plugins", "List the installed xrais plugins: predictors (with the fields they add and the "
                  "input they need), image readers and detector models.", "xrais.plugins [output.json=plugins.json]",
                  PARAMS, run_plugins, takes_inputs=False)
run = program.main
if __name__ == "__main__":
    run()
