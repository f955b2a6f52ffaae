"""Learning curve of the multi-lattice evidence classifier: a small network on the features of
:func:`xrais.lattice.lattice_evidence` (``scripts/multilattice_evidence.py``), trained on xrais's
own simulated quadrants at growing sizes, measured on a held-out simulated set (per split range and
detector), on the nanoBragg validation stills (with and without the σ = 0.1° pairs) and rotation
frames, and on measured frames of one crystal with the semi-real two-lattice images made from
them (``scripts/multilattice_measured.py``), beside the indexing baseline's score
(``fraction_other``) and the spot count (the confound to beat). Nothing but --train trains it.

    python scripts/multilattice_evidence_study.py --train data/ml_evidence/train_v5.npz \\
        --test data/ml_evidence/test_v5.npz --nanobragg data/ml_evidence/nanobragg_mlg.npz \\
        --nanobragg-rotation data/ml_evidence/nanobragg_rotation_ml.npz \\
        --measured data/ml_evidence/measured.npz --sizes 250 500 1000 1500 --plot docs/multilattice_evidence_curve.png

(the shipped model, ``multilattice``: its exact commands are in its card, ``multilattice.md``, and
in ``scripts/train_shipped_models.sh multilattice``)
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from xrais.sim.recipes import RECIPE_VERSIONS
from xrais.training.evidence import fit_evidence_net, targets_missed
from xrais.training.metrics import roc_auc

SPLIT_RANGES = ((0.3, 1.0), (1.0, 3.0), (3.0, 180.0))


def load(path):
    data = np.load(path)
    return {key: data[key] for key in data.files}


def probabilities(network, features):
    """The network's probability of several lattices for feature rows."""
    with torch.inference_mode():
        return torch.sigmoid(network(torch.as_tensor(np.asarray(features, np.float32)))).numpy()


def auc(scores, labels):
    labels = np.asarray(labels, bool)
    return roc_auc(np.asarray(scores, float), labels.astype(float)) if 0 < labels.sum() < len(labels) else float("nan")


def table(scores, data):
    """AUC and accuracy (call at 0.5) overall and per split range against the singles."""
    multi, split = data["is_multi"].astype(bool), data["split_deg"]
    row = {"auc": auc(scores, multi), "accuracy": float(((scores > 0.5) == multi).mean())}
    for low, high in SPLIT_RANGES:
        keep = ~multi | ((split >= low) & (split < high))
        row[f"auc_split_{low:g}-{high:g}deg"] = auc(scores[keep], multi[keep])
    return row


def nanobragg_rows(scores, data):
    """AUC (all, without the σ = 0.1° pairs), accuracy (call at 0.5) without them, and, as the
    predictor answers (null where no lattice indexes), how many of those are undetermined and the
    accuracy of the rest."""
    keep = data["sigma_deg"] != 0.1
    multi = data["is_multi"].astype(bool)
    determined = keep & (data["features"][:, list(data["feature_names"]).index("n_lattices")] > 0)
    return {"auc_all_24": auc(scores, multi), "auc_without_sigma_0.1deg": auc(scores[keep], multi[keep]),
            "accuracy_without_sigma_0.1deg": float(((scores[keep] > 0.5) == multi[keep]).mean()),
            "undetermined_without_sigma_0.1deg": int((keep & ~determined).sum()),
            "accuracy_determined_without_sigma_0.1deg": float(((scores[determined] > 0.5) == multi[determined]).mean())}


def rotation_rows(scores, data):
    """AUC and accuracy (call at 0.5; no lattice indexed: undetermined, scored 0.5) of the nanoBragg
    rotation frames, and how many are undetermined."""
    multi = data["is_multi"].astype(bool)
    determined = data["features"][:, list(data["feature_names"]).index("n_lattices")] > 0
    scores = np.where(determined, scores, 0.5)
    return {"auc": auc(scores, multi), "accuracy": float(((scores > 0.5) == multi).mean()),
            "undetermined": int((~determined).sum()), "frames": int(len(multi))}


SEMIREAL_RANGES = ((0.3, 1.0), (1.0, 5.0), (5.0, 91.0))


def measured_rows(scores, data):
    """On measured frames of one crystal and their semi-real pairs (no lattice indexed:
    undetermined, scored 0.5): the share of singles called single, how many are undetermined, the
    AUC of semi-real pairs against the singles, the share of pairs called multi-lattice at 0.5,
    overall and per θ range."""
    known, multi = data["known"].astype(bool), data["is_multi"].astype(bool)
    determined = data["features"][:, list(data["feature_names"]).index("n_lattices")] > 0
    scores = np.where(determined, scores, 0.5)
    singles, pairs = known & ~multi, known & multi
    row = {"singles": int(singles.sum()), "singles_called_single": float((scores[singles] <= 0.5).mean()),
           "singles_undetermined": int((singles & ~determined).sum()),
           "semireal": int(pairs.sum()), "semireal_auc": auc(scores[known], multi[known]),
           "semireal_called_multi": float((scores[pairs] > 0.5).mean())}
    for low, high in SEMIREAL_RANGES:
        keep = pairs & (data["split_deg"] >= low) & (data["split_deg"] < high)
        row[f"semireal_called_multi_{low:g}-{high:g}deg"] = float((scores[keep] > 0.5).mean())
        row[f"semireal_auc_{low:g}-{high:g}deg"] = auc(scores[singles | keep], multi[singles | keep])
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--nanobragg")
    parser.add_argument("--nanobragg-rotation")
    parser.add_argument("--measured")
    parser.add_argument("--train-spots", default="data/ml_spots/train_s2_v5.npz",
                        help="the spots --train was computed from (for the card's commands)")
    parser.add_argument("--test-spots", default="data/ml_spots/test_s1_v5.npz",
                        help="the spots --test was computed from (for the card's commands)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000, 2000])
    parser.add_argument("--repeats", type=int, default=3, help="draws of each training size")
    parser.add_argument("--plot")
    parser.add_argument("--json")
    parser.add_argument("--export", help="train on every training row and write the model (a registry name "
                                         "writes into the shipped weights folder)")
    args = parser.parse_args()
    train, test = load(args.train), load(args.test)
    nanobragg = load(args.nanobragg) if args.nanobragg else None
    rotation = load(args.nanobragg_rotation) if args.nanobragg_rotation else None
    measured = load(args.measured) if args.measured else None
    names = list(train["feature_names"])
    print("features:", ", ".join(names))

    print("\nsingle features (AUC; held-out simulated | nanoBragg without σ = 0.1°):")
    single = {}  # name: (held-out AUC, nanoBragg AUC without σ = 0.1° or NaN)
    for j, name in enumerate(names + ["log_n_spots"]):
        column = (lambda d: np.log10(d["n_spots"] + 1)) if name == "log_n_spots" else (lambda d, j=j: d["features"][:, j])
        single[name] = (auc(column(test), test["is_multi"]), float("nan") if nanobragg is None else
                        nanobragg_rows(column(nanobragg), nanobragg)["auc_without_sigma_0.1deg"])
        print(f"  {name:<20} {single[name][0]:.3f}" + (f" | {single[name][1]:.3f}" if nanobragg is not None else ""))

    curve = []
    rng = np.random.default_rng(0)
    for size in args.sizes:
        size = min(size, len(train["is_multi"]))
        for repeat in range(args.repeats):
            pick = rng.choice(len(train["is_multi"]), size, replace=False)
            network = fit_evidence_net(train["features"][pick], train["is_multi"][pick].astype(float), seed=repeat)
            row = {"size": size, "repeat": repeat, "test": table(probabilities(network, test["features"]), test)}
            if nanobragg is not None:
                row["nanobragg"] = nanobragg_rows(probabilities(network, nanobragg["features"]), nanobragg)
            if rotation is not None:
                row["rotation"] = rotation_rows(probabilities(network, rotation["features"]), rotation)
            if measured is not None:
                row["measured"] = measured_rows(probabilities(network, measured["features"]), measured)
            curve.append(row)
            print(f"n={size:5d} #{repeat}: held-out {json.dumps({k: round(v, 3) for k, v in row['test'].items()})}"
                  + (f"  nanoBragg {json.dumps({k: round(v, 3) for k, v in row['nanobragg'].items()})}" if nanobragg is not None else ""))
    network = fit_evidence_net(train["features"], train["is_multi"].astype(float))
    test_scores = probabilities(network, test["features"])
    print("\nper detector (held-out, all training images):")
    for detector in sorted(set(test["detector"])):
        keep = test["detector"] == detector
        print(f"  {detector:<18} {keep.sum():4d} images AUC {auc(test_scores[keep], test['is_multi'][keep]):.3f}")
    per_scale = []
    if "bragg_scale" in test:  # a confound check: the call must not follow the overall scale
        edges = np.percentile(test["bragg_scale"], [0, 100 / 3, 200 / 3, 100])
        print("per overall scale (photons × crystal volume, held-out terciles):")
        for low, high in zip(edges[:-1], edges[1:]):
            keep = (test["bragg_scale"] >= low) & (test["bragg_scale"] <= high)
            multi = test["is_multi"][keep].astype(bool)
            per_scale.append({"scale_low": float(low), "scale_high": float(high), "images": int(keep.sum()),
                              "auc": auc(test_scores[keep], multi),
                              "accuracy": float(((test_scores[keep] > 0.5) == multi).mean()),
                              "multilattice_share": float(multi.mean()),
                              "no_lattice_share": float((test["features"][keep, names.index("n_lattices")] == 0).mean())})
            print(f"  {low:9.3g}–{high:9.3g}  {keep.sum():4d} images  AUC {per_scale[-1]['auc']:.3f}  "
                  f"accuracy {per_scale[-1]['accuracy']:.3f}  multi-lattice share {multi.mean():.2f}  "
                  f"no lattice {per_scale[-1]['no_lattice_share']:.2f}")
    final = {"held-out": table(test_scores, test)}
    if rotation is not None:
        final["rotation"] = rotation_rows(probabilities(network, rotation["features"]), rotation)
        print("nanoBragg rotation frames per image (all training images):")
        for name, p, multi, split in zip(rotation["name"], probabilities(network, rotation["features"]),
                                         rotation["is_multi"], rotation["split_deg"]):
            print(f"  {name} multi {bool(multi)!s:5} split {split:5.1f}°  p {p:.3f}")
    if measured is not None:
        final["measured"] = measured_rows(probabilities(network, measured["features"]), measured)
        scores = probabilities(network, measured["features"])
        n_lattices = measured["features"][:, names.index("n_lattices")]
        print("measured frames (single crystals; thaumatin grid: unknown):")
        for keep_row in np.flatnonzero(~measured["is_multi"].astype(bool)):
            print(f"  {measured['name'][keep_row]:<36} {measured['n_spots'][keep_row]:5d} spots  lattices "
                  f"{int(n_lattices[keep_row])}  p " + ("null" if n_lattices[keep_row] == 0 else f"{scores[keep_row]:.3f}"))
        print("semi-real pairs, share called multi-lattice per source and θ:")
        pairs = measured["is_multi"].astype(bool)
        for source in dict.fromkeys(measured["name"][pairs]):
            cells = []
            for angle in sorted(set(measured["split_deg"][pairs])):
                keep = pairs & (measured["name"] == source) & (measured["split_deg"] == angle)
                cells.append(f"{angle:g}°: {np.mean(np.where(n_lattices[keep] > 0, scores[keep], 0.5) > 0.5):.2f}")
            print(f"  {source:<36} " + "  ".join(cells))
    if nanobragg is not None:
        final["nanobragg"] = nanobragg_rows(probabilities(network, nanobragg["features"]), nanobragg)
        print("nanoBragg per image (all training images):")
        for name, p, multi, sigma in zip(nanobragg["name"], probabilities(network, nanobragg["features"]),
                                         nanobragg["is_multi"], nanobragg["sigma_deg"]):
            print(f"  {name} multi {bool(multi)!s:5} σ {sigma:4.1f}°  p {p:.3f}")
    print("final:", json.dumps(final))
    if args.json:
        json.dump({"curve": curve, "final": final, "held_out_per_scale": per_scale}, open(args.json, "w"), indent=1)
    if args.plot:
        plot(curve, args.plot)
    if args.export:
        from xrais.models.registry import export

        path = export(network, args.export, {
            "description": "xrais lattice-evidence multi-lattice classifier: how well one lattice indexes a still's spots",
            "recipe": f"multilattice v{RECIPE_VERSIONS['multilattice']} (simulated quadrants, {args.train})", "training_images": int(len(train["is_multi"])),
            "held_out": final["held-out"], "nanobragg_validation": final.get("nanobragg"),
            "nanobragg_rotation": final.get("rotation"), "measured": final.get("measured"),
            "limitations": (f"{targets_status(final)}. A still whose spots index no lattice (fewer than ~20 spots, or mostly noise, as on "
                            "the CS-PAD thermolysin stills) gets no probability (null): the evidence is how well a "
                            "lattice explains the spots; a split that indexes as one lattice within the tolerance shows "
                            f"only in the fit's looseness ({missed_splits(network, nanobragg)}); a single of few spots "
                            "(20–70) misindexed, or indexed as two lattices, can read as multi-lattice; the held-out "
                            "misses are mostly splits of 0.3–0.6°. The learning curve rises only "
                            f"slowly from {curve_ends(curve)}: the features more than the data limit it"),
            "compared_with": (f"same images — held-out simulated: indexing baseline fraction_other_lattices AUC "
                              f"{single['fraction_other'][0]:.2f}, spot count {single['log_n_spots'][0]:.2f}, "
                              f"multilattice_resnet 0.57 (its card, recipe v3); nanoBragg without σ = 0.1°: indexing baseline "
                              f"{single['fraction_other'][1]:.2f}, spot count {single['log_n_spots'][1]:.2f}, ResNet 0.61"),
            "real_images": REAL_IMAGES,
            "cpu_time": ("the whole prediction (spot finding, indexing, network) on one core: see "
                         "benchmarks/bench_multilattice.py and benchmarks/RESULTS.md; the network itself < 1 ms"),
            "commands": [
                f"python scripts/multilattice_spots.py {args.train_spots} --seed 2 --n {spot_images(args.train_spots)}",
                f"python scripts/multilattice_spots.py {args.test_spots} --seed 1 --n {spot_images(args.test_spots)}",
                f"python scripts/multilattice_evidence.py {args.train} --spots {args.train_spots}",
                f"python scripts/multilattice_evidence.py {args.test} --spots {args.test_spots}",
                f"python scripts/multilattice_evidence.py {args.nanobragg} "
                "--labels ../shared/data/nanobragg_validation/ml/labels.json",
                "python " + " ".join(sys.argv),
            ],
        })
        print("model written:", path)


#: The shipped model on the real images of ../shared/data (lattice counts unknown), measured by
#: ``dials.xrais_multilattice ../shared/data/thaumatin_grid/*.cbf.bz2 ../shared/data/rayonix340/*.cbf
#: ../shared/data/thermolysin_cspad/*.cbf predictors=indexing`` with the model it describes.
REAL_IMAGES = ("thaumatin grid (PILATUS3 6M stills): frames 1–15 index thaumatin (58.4 × 58.8 × 153.3 Å); frames "
               "2–12 also a second and often a third lattice of the same cell turned 0.5–2.2° from the first (the first "
               "indexes 65–88 % of the spots) and read p 0.95–1.00; frames 1, 13, 14, 15: 0.88, 0.97, 0.75, 0.36; blanks "
               "16–19: null. Whether the crystal is split or its mosaic blocks lie that far apart is not known. "
               "Rayonix MX340-HS hit and the four CS-PAD thermolysin stills: null (their spots, mostly noise on these "
               "integrating detectors, index no lattice)")
def spot_images(path: str) -> int:
    """Images (blanks included) of a spots file of scripts/multilattice_spots.py."""
    return len(np.load(path)["offsets"]) - 1


def targets_status(final):
    """'experimental: short of the targets: …' naming each target not met and its measure, or 'targets met'."""
    tables = {"held_out": final["held-out"], "nanobragg_validation": final.get("nanobragg"),
              "nanobragg_rotation": final.get("rotation"), "measured": final.get("measured")}
    short = targets_missed(tables) + [f"{name} not measured" for name, value in tables.items() if value is None]
    return ("experimental: short of the targets: " + "; ".join(short) if short else
            "issue 29's accuracy targets met on the sets above (the nanoBragg figures rest on 21 stills and 12 "
            "rotation frames, the measured ones on 6 frames of single crystals)")


def curve_ends(curve):
    """'N₀ to N₁ quadrants (held-out AUC a → b)', the means over the repeats of the smallest and largest size."""
    sizes = sorted({row["size"] for row in curve})
    mean = {size: np.mean([row["test"]["auc"] for row in curve if row["size"] == size]) for size in (sizes[0], sizes[-1])}
    return f"{sizes[0]:,} to {sizes[-1]:,} quadrants (held-out AUC {mean[sizes[0]]:.2f} → {mean[sizes[-1]]:.2f})"


def missed_splits(network, nanobragg):
    """How many of the nanoBragg σ = 1° multi-lattice images the network calls single (p ≤ 0.5)."""
    if nanobragg is None:
        return "not measured on the nanoBragg images"
    pairs = (nanobragg["sigma_deg"] == 1.0) & nanobragg["is_multi"].astype(bool)
    missed = int((probabilities(network, nanobragg["features"][pairs]) <= 0.5).sum())
    return f"{missed} of the {int(pairs.sum())} σ = 1° nanoBragg images: missed"


def plot(curve, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({row["size"] for row in curve})
    figure, axis = plt.subplots(figsize=(6, 4))
    series = [("test", "auc", "held-out simulated, all splits"), ("test", "auc_split_0.3-1deg", "held-out, 0.3–1° splits"),
              ("test", "auc_split_3-180deg", "held-out, ≥ 3° splits"),
              ("nanobragg", "auc_without_sigma_0.1deg", "nanoBragg without σ = 0.1°")]
    for group, key, label in series:
        if group not in curve[0]:
            continue
        values = [[row[group][key] for row in curve if row["size"] == size] for size in sizes]
        axis.errorbar(sizes, [np.mean(v) for v in values], yerr=[np.std(v) for v in values], marker="o", label=label)
    axis.set_xscale("log")
    axis.set_xlabel("training quadrants")
    axis.set_ylabel("ROC AUC")
    axis.set_title("Multi-lattice evidence classifier: learning curve")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
