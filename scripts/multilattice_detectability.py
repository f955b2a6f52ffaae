"""From what misorientation is a split crystal told from a single one, per mosaic spread? (issue 29, item 3)

    python scripts/multilattice_detectability.py --train data/ml_evidence/train_s2_v5.npz \\
        data/ml_evidence/train_s3_v5.npz --train-spots data/ml_spots/train_s2_v5.npz \\
        data/ml_spots/train_s3_v5.npz [--folds 5] [--json docs/multilattice_detectability.json]

The held-out set (291 images) holds a few dozen splits per range, too few to cut by mosaic spread
and by misorientation at once. This script uses the training images themselves, cross-validated:
the images are cut into ``--folds`` parts; each part is scored by the lattice-evidence network (as
shipped: five networks averaged, splits under three times their crystal's mosaic spread left out of
its training) trained on the other parts, so that every image is scored by a network that never
saw it. Then, per mosaic spread (0.02–0.08°, 0.08–0.2°, 0.2–0.5°), the ROC AUC of the splits of
each misorientation range against the single crystals of that spread, and the share of them
called multi-lattice at p = 0.5 (an image that indexes no lattice: no answer, scored 0.5).
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from xrais.models.evidence import EvidenceArchitecture
from xrais.training.evidence import detectable_rows, fit_evidence_net, rows_mosaic_spread
from xrais.training.metrics import roc_auc

MOSAIC_RANGES = ((0.02, 0.08), (0.08, 0.2), (0.2, 0.5))
SPLIT_RANGES = ((0.3, 0.5), (0.5, 1.0), (1.0, 2.0), (2.0, 5.0), (5.0, 180.0))


def load_training(feature_paths, spots_paths):
    """(features, is_multi, split °, mosaic °, feature names) of the training rows: the spots files
    give each row's mosaic spread (blanks left out, as in the feature files)."""
    parts = [np.load(path) for path in feature_paths]
    try:
        mosaic = rows_mosaic_spread(spots_paths, [len(part["is_multi"]) for part in parts])
    except ValueError as exc:
        raise SystemExit(f"{exc} (give one --train-spots file per --train file, in the same order)") from None
    names = [str(name) for name in parts[0]["feature_names"]]
    return (np.concatenate([p["features"] for p in parts]), np.concatenate([p["is_multi"] for p in parts]).astype(bool),
            np.concatenate([p["split_deg"] for p in parts]), mosaic, names)


def cross_validated(features, is_multi, split, mosaic, names, folds: int, members: int, seed: int = 0):
    """Each row's probability from a network trained on the other folds (the shipped recipe)."""
    order = np.random.default_rng(seed).permutation(len(features))
    fold_of = np.empty(len(features), int)
    fold_of[order] = np.arange(len(features)) % folds
    shown = detectable_rows(is_multi, split, mosaic)
    architecture = EvidenceArchitecture(features=tuple(names), members=members)
    scores = np.empty(len(features))
    for fold in range(folds):
        train = (fold_of != fold) & shown
        network = fit_evidence_net(features[train], is_multi[train].astype(float), architecture)
        rows = [dict(zip(names, row)) for row in features[fold_of == fold]]
        scores[fold_of == fold] = network.probability(rows)
    determined = features[:, names.index("n_lattices")] > 0
    return np.where(determined, scores, 0.5)


def detectability(scores, is_multi, split, mosaic):
    rows = []
    for low_mosaic, high_mosaic in MOSAIC_RANGES:
        spread = (mosaic >= low_mosaic) & (mosaic < high_mosaic)
        singles = spread & ~is_multi
        for low, high in SPLIT_RANGES:
            splits = spread & is_multi & (split >= low) & (split < high)
            keep = singles | splits
            rows.append({"mosaic_low_deg": low_mosaic, "mosaic_high_deg": high_mosaic, "split_low_deg": low,
                         "split_high_deg": high, "splits": int(splits.sum()), "singles": int(singles.sum()),
                         "auc": roc_auc(scores[keep], is_multi[keep].astype(float)) if splits.any() and singles.any()
                         else None,
                         "called_multi": float((scores[splits] > 0.5).mean()) if splits.any() else None,
                         "singles_called_single": float((scores[singles] <= 0.5).mean()) if singles.any() else None})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", nargs="+", required=True, help="feature files (scripts/multilattice_evidence.py)")
    parser.add_argument("--train-spots", nargs="+", required=True, help="their spots files, in the same order")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--members", type=int, default=5, help="networks averaged (the shipped model's 5)")
    parser.add_argument("--json", help="write the table here")
    args = parser.parse_args()
    features, is_multi, split, mosaic, names = load_training(args.train, args.train_spots)
    scores = cross_validated(features, is_multi, split, mosaic, names, args.folds, args.members)
    rows = detectability(scores, is_multi, split, mosaic)
    print(f"{len(features)} training images, {args.folds}-fold cross-validated; per mosaic spread, "
          "splits of each misorientation against the singles of that spread:")
    print("| mosaic spread | split | splits | AUC | called multi-lattice | singles called single |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        show = (lambda value: "–" if value is None else f"{value:.2f}")
        print(f"| {row['mosaic_low_deg']:g}–{row['mosaic_high_deg']:g}° | {row['split_low_deg']:g}–"
              f"{row['split_high_deg']:g}° | {row['splits']} | {show(row['auc'])} | {show(row['called_multi'])} | "
              f"{show(row['singles_called_single'])} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"folds": args.folds, "members": args.members, "images": int(len(features)), "rows": rows},
                      handle, indent=1)


if __name__ == "__main__":
    main()
