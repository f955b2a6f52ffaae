"""Write into a shipped model's card what only the whole recipe knows: the exact commands that made
it (from scripts/train_shipped_models.sh), the simulation cost of its data (from each dataset's
simulate.json), its CPU inference time per quadrant (measured here) and, for the resolution model
when the project's shared data lie beside the checkout, its result on the real thaumatin grid scan
(the figures tests/test_shipped_models.py checks).

    python scripts/model_card_facts.py resolution|resolution_resnet|multilattice_resnet

Run from the repository root after scripts/train_shipped_models.sh (which calls it last).
"""
import glob
import json
import os
import re
import sys

import numpy as np
import torch

from xrais.command_line.simulate import recorded_runs
from xrais.models import cpu_seconds_per_quadrant, load
from xrais.models.registry import annotate
from xrais.predict import Predictor
from xrais.training.metrics import spearman

SCRIPT = "scripts/train_shipped_models.sh"
THAUMATIN_GRID = "../shared/data/thaumatin_grid"
BLANK_FRAMES = (16, 17, 18, 19)


def recipe_commands(kind: str) -> list:
    """The commands of the shell function ``kind`` in the training script, one per line."""
    text = open(SCRIPT, encoding="utf-8").read()
    body = re.search(rf"^{kind}\(\) \{{\n(.*?)^\}}", text, re.S | re.M)
    if body is None:
        raise SystemExit(f"{SCRIPT}: no function {kind}()")
    defaults = dict(re.findall(r"^(\w+)=\$\{\w+:-([^}]*)\}", text, re.M))
    commands = re.sub(r"\\\n\s*", "", body.group(1)).strip().splitlines()
    expand = lambda line: re.sub(r"\$\{?(\w+)(?::-([^}]*))?\}?",
                                 lambda m: m.group(2) or defaults.get(m.group(1), m.group(0)), line)
    steps = [expand(c.strip()).replace("model_card_facts ", "python scripts/model_card_facts.py ") for c in commands]
    return ["export XRAIS_CACHE=$PWD/cache"] + steps


def simulation_cost(directory: str) -> str:
    """Images, seconds per image and wall time of the runs recorded in ``directory``/simulate.json."""
    with open(os.path.join(directory, "simulate.json"), encoding="utf-8") as handle:
        record = json.load(handle)
    runs = recorded_runs(record)
    made = sum(run["images_made"] for run in runs)
    seconds = sum(run["seconds"] for run in runs)
    processes = sum(run["seconds"] * (run.get("nproc") or 1) * (run.get("mpi_ranks") or 1) for run in runs)
    if not made:
        return f"{directory}: {record['settings']['n_images']} images (no timed run recorded)"
    return (f"{directory}: {record['settings']['n_images']} images; timed runs made {made} in {seconds / 60:.1f} min "
            f"wall ({seconds / made:.3f} s per image, {processes / made:.2f} process-seconds per image)")


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ("resolution", "resolution_resnet", "multilattice_resnet"):
        raise SystemExit(__doc__)
    name = sys.argv[1]
    commands = recipe_commands(name)
    # the data folders the recipe's commands simulate, and those its xrais.train reads
    datasets = [d for c in commands if c.startswith("xrais.simulate")
                for d in re.findall(r"output\.directory=(\S+)", c) if os.path.isdir(d)]
    trained_on = [w for c in commands if c.startswith("xrais.train") for w in c.split()[1:]
                  if "=" not in w and os.path.isdir(w)]
    model = load(name, device="cpu")
    one_core = cpu_seconds_per_quadrant(model, threads=1, batch=1, repeat=10)
    all_cores = cpu_seconds_per_quadrant(model, threads=os.cpu_count() or 1, batch=16, repeat=5)
    card = annotate(name, training={
        "simulation": [simulation_cost(d) for d in datasets],
        "cpu_inference_ms_per_quadrant": (f"{1e3 * one_core:.1f} ms on 1 core (batch 1); "
                                         f"{1.0 / all_cores:.0f} quadrants/s on {os.cpu_count()} cores (batch 16); "
                                         f"torch {torch.__version__}"),
        "commands": commands,
        **({"min_quadrant_extent": smallest_quadrant_extent(trained_on)} if trained_on and kind_of(model) == "profile"
           else {}),
    })
    print(f"{card}: recipe commands, simulation cost and CPU inference time recorded "
          f"({1e3 * one_core:.1f} ms per quadrant on 1 core)")
    paths = sorted(glob.glob(os.path.join(THAUMATIN_GRID, "thau_3_2_*.cbf.bz2")))
    if name == "resolution" and paths:
        facts = thaumatin_grid(paths)
        print("thaumatin grid:", "; ".join(f"{k}: {v}" for k, v in facts.items()))
        annotate(name, evaluation=("real thaumatin grid scan (19 PILATUS3 6M stills, Diamond I24; shared/data of the "
                                   "project, tests/test_shipped_models.py)", facts))


def kind_of(model) -> str:
    return model.card.get("architecture", {}).get("family", "resnet")


def smallest_quadrant_extent(folders: list) -> int:
    """The smallest extent (downsampled pixels, the shorter side) of the image data in the training
    quadrants of these shard folders: the least a quadrant must hold for the model to read it (the
    resolution predictor's ``min_quadrant_extent``), rounded down to a multiple of 10."""
    import h5py

    from xrais.io import detectors
    from xrais.sim.recipes import quadrant_extents_px
    from xrais.training.data import find_shards

    smallest = np.inf
    for path in find_shards(folders):
        with h5py.File(path, "r") as handle:
            labels = handle["labels"]
            for detector, fast, slow, quadrant in zip(labels["detector"][()], labels["beam_centre_fast"][()],
                                                      labels["beam_centre_slow"][()], labels["quadrant"][()]):
                model = detectors.get(detector.decode() if isinstance(detector, bytes) else str(detector))
                extents = quadrant_extents_px(model, (fast, slow), int(quadrant))
                smallest = min(smallest, min(extents) / model.downsample)
    return int(smallest // 10 * 10)


def thaumatin_grid(paths: list) -> dict:
    """The resolution model on the real grid scan: blank frames, best frames, and the rank
    correlation of each frame's predicted 1/d (``inverse_d``: d_min's) with the spot finder's spot count."""
    results = Predictor(predictors=("resolution", "spots"), device="cpu", quadrants=4, nproc=2).predict(paths)
    frames = {int(os.path.basename(str(r["image"]))[9:13]): r for r in results}
    best = {k: r["inverse_d"] for k, r in frames.items()}
    ranking = sorted(best, key=best.get, reverse=True)
    blanks = [f"{k:04d} " + ("no diffraction" if frames[k]["d_min"] is None else f"d_min {frames[k]['d_min']:.2f} Å")
              for k in BLANK_FRAMES]
    spots = np.array([frames[k]["n_spots"] for k in sorted(frames)], dtype=float)
    return {
        "source": f"{os.path.basename(paths[0])}–{os.path.basename(paths[-1])[9:]}, 4 quadrants, the frame's 1/d (d_min)",
        "blank_frames_16_to_19": ", ".join(blanks),
        "three_best_frames": ", ".join(f"{k:04d} (d_min {frames[k]['d_min']:.2f} Å; spot finder's d_min "
                                       f"{frames[k]['d_min_spots']:.2f} Å)" for k in ranking[:3]),
        "spearman_with_spot_count": round(float(spearman(np.array([best[k] for k in sorted(frames)]), spots)), 3),
    }


if __name__ == "__main__":
    main()
