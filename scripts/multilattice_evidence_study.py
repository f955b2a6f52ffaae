"""Learning curve of the multi-lattice evidence classifier: a small network on the features of
:func:`xrais.lattice.lattice_evidence` (``scripts/multilattice_evidence.py``), trained on xrais's
own simulated quadrants at growing sizes, measured on a held-out simulated set (per split range and
detector) and on the nanoBragg validation images (with and without the σ = 0.1° pairs), beside the
indexing baseline's score (``fraction_other``) and the spot count (the confound to beat).

    python scripts/multilattice_evidence_study.py --train data/ml_evidence/train_s2.npz \\
        --test data/ml_evidence/test_s1.npz --nanobragg data/ml_evidence/nanobragg_ml.npz \\
        --sizes 250 500 1000 2000 --plot docs/multilattice_evidence_curve.png
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from xrais.training.evidence import fit_evidence_net
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
    keep = data["sigma_deg"] != 0.1
    multi = data["is_multi"].astype(bool)
    return {"auc_all_24": auc(scores, multi), "auc_without_sigma_0.1deg": auc(scores[keep], multi[keep]),
            "accuracy_without_sigma_0.1deg": float(((scores[keep] > 0.5) == multi[keep]).mean())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--nanobragg")
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000, 2000])
    parser.add_argument("--repeats", type=int, default=3, help="draws of each training size")
    parser.add_argument("--plot")
    parser.add_argument("--json")
    parser.add_argument("--export", help="train on every training row and write the model (a registry name "
                                         "writes into the shipped weights folder)")
    args = parser.parse_args()
    train, test = load(args.train), load(args.test)
    nanobragg = load(args.nanobragg) if args.nanobragg else None
    names = list(train["feature_names"])
    print("features:", ", ".join(names))

    print("\nsingle features (AUC; held-out simulated | nanoBragg without σ = 0.1°):")
    for j, name in enumerate(names + ["log_n_spots"]):
        column = (lambda d: np.log10(d["n_spots"] + 1)) if name == "log_n_spots" else (lambda d, j=j: d["features"][:, j])
        line = f"  {name:<20} {auc(column(test), test['is_multi']):.3f}"
        if nanobragg is not None:
            line += f" | {nanobragg_rows(column(nanobragg), nanobragg)['auc_without_sigma_0.1deg']:.3f}"
        print(line)

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
            curve.append(row)
            print(f"n={size:5d} #{repeat}: held-out {json.dumps({k: round(v, 3) for k, v in row['test'].items()})}"
                  + (f"  nanoBragg {json.dumps({k: round(v, 3) for k, v in row['nanobragg'].items()})}" if nanobragg is not None else ""))
    network = fit_evidence_net(train["features"], train["is_multi"].astype(float))
    test_scores = probabilities(network, test["features"])
    print("\nper detector (held-out, all training images):")
    for detector in sorted(set(test["detector"])):
        keep = test["detector"] == detector
        print(f"  {detector:<18} {keep.sum():4d} images AUC {auc(test_scores[keep], test['is_multi'][keep]):.3f}")
    final = {"held-out": table(test_scores, test)}
    if nanobragg is not None:
        final["nanobragg"] = nanobragg_rows(probabilities(network, nanobragg["features"]), nanobragg)
        print("nanoBragg per image (all training images):")
        for name, p, multi, sigma in zip(nanobragg["name"], probabilities(network, nanobragg["features"]),
                                         nanobragg["is_multi"], nanobragg["sigma_deg"]):
            print(f"  {name} multi {bool(multi)!s:5} σ {sigma:4.1f}°  p {p:.3f}")
    print("final:", json.dumps(final))
    if args.json:
        json.dump({"curve": curve, "final": final}, open(args.json, "w"), indent=1)
    if args.plot:
        plot(curve, args.plot)
    if args.export:
        from xrais.models.registry import export

        path = export(network, args.export, {
            "description": "xrais lattice-evidence multi-lattice classifier: how well one lattice indexes a still's spots",
            "recipe": f"multilattice (simulated quadrants, {args.train})", "training_images": int(len(train["is_multi"])),
            "held_out": final["held-out"], "nanobragg_validation": final.get("nanobragg"),
            "limitations": ("experimental: short of the targets (nanoBragg validation AUC ≥ 0.97 without the σ = 0.1° "
                            "pairs). A still whose spots index no lattice (fewer than ~20 spots, or mostly noise, as on "
                            "the CS-PAD thermolysin stills) gets no probability (null): the evidence is how well a "
                            "lattice explains the spots; a split that indexes as one lattice within the tolerance shows "
                            "only in the fit's looseness (two of the three σ = 1° nanoBragg pairs: missed); a single of few "
                            "spots (30–70) misindexed as two lattices can read as multi-lattice. "
                            "The learning curve rises only slowly from 250 to 1,926 quadrants (held-out AUC 0.89 → 0.91): "
                            "the features more than the data limit it"),
            "compared_with": ("same images — held-out simulated: indexing baseline fraction_other_lattices AUC 0.62, "
                              "multilattice ResNet 0.57 (its card), spot count 0.61; nanoBragg without σ = 0.1°: "
                              "indexing baseline 0.73, ResNet 0.61, spot count 0.66"),
            "cpu_time": "indexing 0.4–2 s per image on one core (spot finding included); the network itself < 1 ms",
            "commands": [
                "python scripts/multilattice_spots.py data/ml_spots/train_s2.npz --seed 2 --n 2000",
                "python scripts/multilattice_spots.py data/ml_spots/rn_s1.npz --seed 1 --n 200",
                "python scripts/multilattice_evidence.py data/ml_evidence/train_s2c.npz --spots data/ml_spots/train_s2.npz",
                "python scripts/multilattice_evidence.py data/ml_evidence/test_s1c.npz --spots data/ml_spots/rn_s1.npz",
                "python scripts/multilattice_evidence.py data/ml_evidence/nanobragg_mlc.npz "
                "--labels ../shared/data/nanobragg_validation/ml/labels.json",
                "python " + " ".join(sys.argv),
            ],
        })
        print("model written:", path)


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
