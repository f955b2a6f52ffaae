"""Learning curve and confound tables of the shell-profile resolution network (issue 16).

    python scripts/nanobragg_features.py ../shared/data/nanobragg_validation/res data/study/nanobragg_res
    python scripts/resolution_profile_study.py --train data/res_v5_train --validation-images 1000 \
        --test test=data/res_v5_test --test rayonix=data/res_v5_rayonix \
        --features nanobragg=data/study/nanobragg_res_pooled.npz \
        --features nanobragg_quadrants=data/study/nanobragg_res_quadrants.npz \
        --sizes 1000,2000,5000,9000 --out docs/resolution_profile_study

The last ``--validation-images`` of the training shards pick each run's epoch; the ``--test`` sets
and feature files are scored only. The nanoBragg images are never trained or tuned on. Writes
``<out>.json`` (curves and tables) and ``<out>.png``; features are cached in
``data/study/resolution_profile_cache/``.
"""
import argparse
import json
import logging
import os
import sys

import h5py
import hdf5plugin  # noqa: F401
import numpy as np

from xrais.training.data import find_shards, open_shards
from xrais.training.profile import (FeatureSet, ProfileTraining, breakdown, cached_features, learning_curve,
                                    predict_features, score, shard_features, train_profile)

CACHE = "data/study/resolution_profile_cache"
#: Shard columns for the confound tables (read beside the features).
CONFOUNDS = ("crystal_size_um", "photons", "background_scale", "read_noise_photons", "mosaic_spread_deg", "blank",
             "rotation_wedge_deg", "ice_um", "ice_spots_per_ring")


def cached_shard_features(folder: str) -> FeatureSet:
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, os.path.normpath(folder).strip(os.sep).replace(os.sep, "_") + ".npz")
    shards = open_shards([folder], "resolution")
    return with_confounds(cached_features(path, len(shards), lambda: shard_features(shards)), folder)


def with_confounds(data: FeatureSet, folder: str) -> FeatureSet:
    columns = {name: [] for name in CONFOUNDS + ("quadrant_extent",)}
    for path in find_shards([folder]):
        with h5py.File(path, "r") as handle:
            for name in CONFOUNDS:
                if name in handle["labels"]:  # recipes before v6 had no rotation frames or ice
                    columns[name].append(handle["labels"][name][()])
            columns["quadrant_extent"].append(quadrant_extents(handle["labels"]))
    data.labels.update({name: np.concatenate(parts).astype(float) for name, parts in columns.items() if parts})
    return data


def quadrant_extents(labels) -> np.ndarray:
    """Per image of a shard: the image data its training quadrant holds, the lesser of its two
    extents in downsampled pixels (what a model card's ``min_quadrant_extent`` bounds)."""
    from xrais.conditioning import quadrant_extent
    from xrais.io import Geometry, detectors

    extents = []
    for k in range(len(labels["index"])):
        name = labels["detector"][k]
        model = detectors.get(name.decode() if isinstance(name, bytes) else str(name))
        geometry = Geometry(distance=labels["distance"][k], wavelength=labels["wavelength"][k],
                            pixel_size=labels["pixel_size"][k], shape=model.shape, detector=model.name,
                            beam_centre=(labels["beam_centre_fast"][k], labels["beam_centre_slow"][k]))
        extents.append(min(quadrant_extent(geometry, int(labels["quadrant"][k]))))
    return np.array(extents, dtype=float)


def extent_table(prediction, data: FeatureSet, edges=(0, 60, 95, 130, 170, 1e9)) -> list:
    """Scores per quadrant extent (downsampled pixels of image data, the lesser way), beside what
    answering every image with the bin's median label scores and the rank correlation with the
    labels: how small a quadrant the model still reads (the evidence for ``min_quadrant_extent``)."""
    from xrais.training.metrics import spearman

    extent = data.labels["quadrant_extent"]
    rows = []
    for row in breakdown(prediction, data, extent, list(edges)):
        inside = (extent >= row["low"]) & (extent < row["high"])
        target = data.target[inside]
        row["constant_median_accuracy"] = float(np.mean(np.abs(target - np.median(target)) < 0.07))
        row["spearman"] = float(spearman(np.asarray(prediction[0])[inside], target)) if inside.sum() > 2 else float("nan")
        rows.append(row)
    return rows


def tables(network, data: FeatureSet) -> dict:
    prediction = predict_features(network, data)
    labels = data.labels
    out = {"all": score(prediction, data.target),
           "by_label_inverse_d": breakdown(prediction, data, data.target, [0.0, 0.05, 0.3, 0.5, 0.7, 1.0])}
    if "crystal_size_um" in labels:
        # overall Bragg scale: crystal volume × photons, relative to the recipe's smallest
        scale = np.log10(labels["crystal_size_um"] ** 3 * labels["photons"] / (8.0 ** 3 * 2e11))
        out["by_log10_bragg_scale"] = breakdown(prediction, data, scale, [0.0, 0.7, 1.4, 2.1, 2.8])
        out["by_background_scale"] = breakdown(prediction, data, labels["background_scale"], [0.0, 0.05, 0.2, 0.5, 1.3])
        out["by_read_noise"] = breakdown(prediction, data, labels["read_noise_photons"], [0.0, 1e-9, 1.0, 5.0])
        out["by_mosaic_spread_deg"] = breakdown(prediction, data, labels["mosaic_spread_deg"], [0.0, 0.3, 0.6, 1.01])
        names = sorted(set(labels["detector"]))
        codes = np.array([names.index(d) for d in labels["detector"]])
        out["by_detector"] = {name: row for name, row in
                              zip(names, breakdown(prediction, data, codes, np.arange(len(names) + 1) - 0.5))}
    if "rotation_wedge_deg" in labels:  # stills, then rotation frames
        out["by_rotation_wedge_deg"] = breakdown(prediction, data, labels["rotation_wedge_deg"], [0.0, 1e-9, 0.3, 1.01])
    if "ice_um" in labels:  # none, smooth, spotty
        kind = np.where(labels["ice_um"] <= 0, 0, np.where(labels["ice_spots_per_ring"] > 0, 2, 1))
        out["by_ice_none_smooth_spotty"] = breakdown(prediction, data, kind, [-0.5, 0.5, 1.5, 2.5])
    if "quadrant_extent" in labels:
        out["by_quadrant_extent"] = extent_table(prediction, data)
    if "peak_target" in labels:
        out["by_peak_target"] = breakdown(prediction, data, labels["peak_target"], [0.0, 2500.0, 1e9])
    if "ice" in labels and np.any(labels["ice"]):  # nanoBragg rotation frames: without, with ice
        out["by_ice"] = breakdown(prediction, data, labels["ice"].astype(float), [-0.5, 0.5, 1.5])
    return out


def undetermined_table(network, data: FeatureSet) -> list:
    prediction = predict_features(network, data)
    return [{"limit": limit, **score(prediction, data.target, limit)} for limit in (0.03, 0.04, 0.05, 0.06, 0.07, 0.1)]


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k in rows[0] if isinstance(rows[0][k], dict)]
    sizes = [row["n_train"] for row in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name in names:
        ax.plot(sizes, [row[name]["accuracy"] for row in rows], "o-", label=name)
    ax.axhline(0.583, color="grey", ls=":", label="spots baseline, nanoBragg")
    ax.axhline(0.500, color="grey", ls="--", label="resolution_resnet (ResNet-18 ×0.25, v4, 5k), nanoBragg")
    ax.set_xscale("log")
    ax.set_xlabel("training images (resolution recipe v5)")
    ax.set_ylabel("fraction within 0.07 Å⁻¹")
    ax.set_title("shell-profile network: learning curve")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", help="training shard folders, comma-separated (their last --validation-images "
                                        "pick each run's epoch)")
    parser.add_argument("--score", action="append", default=[],
                        help="instead of training: a model (name or .json path) scored on the sets, with its tables")
    parser.add_argument("--validation-images", type=int, default=1000)
    parser.add_argument("--test", action="append", default=[], help="name=shard folder (scored only)")
    parser.add_argument("--features", action="append", default=[], help="name=features .npz (scored only)")
    parser.add_argument("--sizes", default="1000,2000,5000,9000")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--out", default="docs/resolution_profile_study")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    evaluate = {name: cached_shard_features(folder) for name, folder in (t.split("=", 1) for t in args.test)}
    evaluate.update({name: FeatureSet.load(path) for name, path in (f.split("=", 1) for f in args.features)})
    if args.score:
        from xrais.models.registry import load_network

        report = {model: {name: tables(load_network(model)[0], data) for name, data in evaluate.items()}
                  for model in args.score}
        with open(args.out + ".json", "w", encoding="utf-8") as handle:  # compact: a table per set, model and confound
            json.dump(report, handle, separators=(",", ":"))
        for model, sets in report.items():
            print(model, {name: round(t["all"]["accuracy"], 3) for name, t in sets.items()})
        return
    everything = FeatureSet.concatenate([cached_shard_features(folder) for folder in args.train.split(",")])
    if "," in args.train:  # several folders (detectors): mixed, so that every subset and the validation hold all
        everything = everything.subset(np.random.default_rng(0).permutation(len(everything)))
    split = len(everything) - args.validation_images
    train, validation = everything.subset(np.arange(split)), everything.subset(np.arange(split, len(everything)))
    recipe = ProfileTraining(epochs=args.epochs)
    rows = learning_curve(train, validation, [int(s) for s in args.sizes.split(",")], recipe=recipe, evaluate=evaluate)
    network = train_profile(train, validation, recipe=recipe)
    report = {"learning_curve": rows, "best_epoch": int(network.best_epoch),
              "undetermined_limits_on_validation": undetermined_table(network, validation),
              "tables": {name: tables(network, data) for name, data in evaluate.items()}}
    with open(args.out + ".json", "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)
    plot(rows, args.out + ".png")
    for row in rows:
        print(row["n_train"], {k: round(v["accuracy"], 3) for k, v in row.items() if isinstance(v, dict)})


if __name__ == "__main__":
    sys.exit(main())
