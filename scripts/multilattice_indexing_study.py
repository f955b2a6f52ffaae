"""The classical multi-lattice baseline (``indexing``, :mod:`xrais.lattice`) measured on labelled
images: ROC AUC of ``fraction_other_lattices`` and accuracy of the multi-lattice call, with and
without the σ = 0.1° pairs of the nanoBragg validation set, per split range and detector on
xrais's own simulated spots (``scripts/multilattice_spots.py``).

    python scripts/multilattice_indexing_study.py --labels ../shared/data/nanobragg_validation/ml/labels.json
    python scripts/multilattice_indexing_study.py --spots data/ml_spots/test_s1.npz --n 120
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from xrais.lattice import index_frame, index_lattices
from xrais.training.metrics import roc_auc


def _report(name, labels, scores, calls):
    labels, scores, calls = np.asarray(labels, bool), np.asarray(scores, float), np.asarray(calls, bool)
    auc = roc_auc(scores, labels.astype(float)) if 0 < labels.sum() < len(labels) else float("nan")
    print(f"{name:<28} {len(labels):4d} images  AUC {auc:.3f}  accuracy {(calls == labels).mean():.3f}  "
          f"multi found {calls[labels].mean() if labels.any() else float('nan'):.2f}  "
          f"singles called multi {calls[~labels].mean() if (~labels).any() else float('nan'):.2f}")


def on_labelled_images(path):
    import xrais

    labels = json.load(open(path))
    rows = []
    for name in sorted(labels):
        frame = xrais.open_image(os.path.join(os.path.dirname(path), name))
        started = time.perf_counter()
        result = index_frame(frame.pixels, frame.mask, frame.geometry)
        rows.append((bool(labels[name]["is_multi"]), labels[name].get("sigma_deg"), result, time.perf_counter() - started))
        print(f"{name}: n_lattices {labels[name]['n_lattices']} σ {labels[name].get('sigma_deg')}°; "
              f"indexed {result.n_lattices} lattice(s), {result.fraction_indexed:.2f} of {result.n_spots} spots by the first, "
              f"misorientation {np.round(result.misorientation_deg(), 2).tolist()}° ({rows[-1][3]:.2f} s)")
    for title, keep in (("all", lambda row: True), ("without σ = 0.1°", lambda row: row[1] != 0.1)):
        kept = [row for row in rows if keep(row)]
        _report(title, [r[0] for r in kept], [r[2].fraction_other_lattices for r in kept],
                [r[2].n_lattices > 1 for r in kept])
    print(f"indexing time per image (spot finding included): median {np.median([r[3] for r in rows]):.2f} s")


def on_simulated_spots(path, n):
    data = np.load(path)
    offsets = data["offsets"]
    n = min(n or len(offsets) - 1, len(offsets) - 1)
    lattices, splits, detector = data["label_n_lattices"][:n], data["label_lattice_split_deg"][:n], data["label_detector"][:n]
    results = []
    for i in range(n):
        part = slice(offsets[i], offsets[i + 1])
        keep = ~data["ice"][part]
        results.append(index_lattices(data["vectors"][part][keep], data["intensity"][part][keep]))
    visible = lattices > 0  # blanks left out
    scores = np.array([r.fraction_other_lattices for r in results])
    calls = np.array([r.n_lattices > 1 for r in results])
    multi = lattices > 1
    _report("all (no blanks)", multi[visible], scores[visible], calls[visible])
    for low, high in ((0.3, 1.0), (1.0, 3.0), (3.0, 90.0)):
        keep = visible & ((lattices == 1) | ((splits >= low) & (splits < high)))
        _report(f"split {low}–{high}° vs singles", multi[keep], scores[keep], calls[keep])
    unindexed = np.array([r.n_lattices == 0 for r in results])
    print(f"single-lattice quadrants with no lattice indexed: {unindexed[lattices == 1].mean():.2f} "
          f"of {(lattices == 1).sum()}; multi-lattice: {unindexed[multi].mean():.2f} of {multi.sum()}")
    for name in sorted(set(detector)):
        keep = visible & (detector == name)
        _report(name, multi[keep], scores[keep], calls[keep])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", help="labels.json of image files (nanoBragg validation form)")
    parser.add_argument("--spots", help=".npz of simulated spots (scripts/multilattice_spots.py)")
    parser.add_argument("--n", type=int, default=0, help="first N simulated images (0: all)")
    args = parser.parse_args()
    if args.labels:
        on_labelled_images(args.labels)
    if args.spots:
        on_simulated_spots(args.spots, args.n)


if __name__ == "__main__":
    main()
