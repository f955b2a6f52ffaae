"""The classical multi-lattice baseline (``indexing``, :mod:`xrais.lattice`) measured on labelled
images: ROC AUC of ``fraction_other_lattices`` and accuracy of the multi-lattice call, with and
without the σ = 0.1° pairs of the nanoBragg validation set, per split range and detector on
xrais's own simulated spots (``scripts/multilattice_spots.py``). With ``--true-lattices``, each
simulated quadrant's lattices are compared with the ones it was made of (the recipe's cell and
orientations for its (seed, index); needs the structure pool): how often the first lattice found is
a true one, per number of spots, and how often a single crystal gets a spurious further lattice;
and the indexing time per quadrant (median, 90th percentile, slowest) on one core.

    python scripts/multilattice_indexing_study.py --labels ../shared/data/nanobragg_validation/ml/labels.json
    python scripts/multilattice_indexing_study.py --spots data/ml_spots/test_s1.npz --n 120
    NUMBA_NUM_THREADS=1 python scripts/multilattice_indexing_study.py --spots data/ml_spots/rn_s1.npz --true-lattices
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from xrais.lattice import index_frame, index_lattices
from xrais.lattice.indexing import lattice_misorientation_deg, reduced_basis
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


def on_simulated_spots(path, n, true_lattices=False, pool_size=40):
    data = np.load(path)
    offsets = data["offsets"]
    n = min(n or len(offsets) - 1, len(offsets) - 1)
    lattices, splits, detector = data["label_n_lattices"][:n], data["label_lattice_split_deg"][:n], data["label_detector"][:n]
    results, seconds = [], []
    for i in range(n):
        part = slice(offsets[i], offsets[i + 1])
        keep = ~data["ice"][part]
        started = time.perf_counter()
        results.append(index_lattices(data["vectors"][part][keep], data["intensity"][part][keep]))
        seconds.append(time.perf_counter() - started)
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
    seconds = np.array(seconds)
    print(f"indexing time per quadrant (spots given): median {1e3 * np.median(seconds):.0f} ms, 90th percentile "
          f"{1e3 * np.percentile(seconds, 90):.0f} ms, slowest {1e3 * seconds.max():.0f} ms")
    if true_lattices:
        _true_lattice_table(data, results, n, pool_size)


#: Largest rotation (degrees) between a lattice found and a true one for it to count as that one (the
#: recipe's splits start at 0.3°; a found lattice's orientation is good to a few hundredths).
MATCH_DEG = 0.25


def _made_of(seed, index, pool):
    """Real-space bases (rows, Å, lab frame) of the lattices simulated image (seed, index) was made of."""
    from xrais.sim import Lattice, recipes

    spec = recipes.sample_spec("multilattice", int(index), int(seed), pool.size)
    if spec.blank:
        return []
    first = Lattice.from_cell(pool.get(spec.structure_index).cell, orientation=np.reshape(spec.orientation, (3, 3)))
    return [first.real_vectors] + [first.rotated(np.reshape(r, (3, 3))).real_vectors for r in spec.lattice_rotations]


def _is_true(found, made_of):
    """Whether a found lattice is one of the true ones (within MATCH_DEG, same cell)."""
    reduced = reduced_basis(found)
    angles = [lattice_misorientation_deg(reduced_basis(true), reduced) for true in made_of]
    return any(angle < MATCH_DEG for angle in angles)  # NaN (another cell) compares False


def _true_lattice_table(data, results, n, pool_size):
    """How often the lattices found are the true ones, per number of spots."""
    from xrais.sim.pool import StructurePool

    pool = StructurePool(size=pool_size)
    made_of = [_made_of(data["label_seed"][i], data["label_index"][i], pool) for i in range(n)]
    lattices = data["label_n_lattices"][:n]
    spots = np.array([r.n_spots for r in results])
    first_true = np.array([bool(r.lattices) and _is_true(r.lattices[0].real_vectors, made) for r, made in zip(results, made_of)])
    found = np.array([r.n_lattices for r in results])
    all_true = np.array([all(_is_true(l.real_vectors, made) for l in r.lattices) for r, made in zip(results, made_of)])
    print(f"lattices found against those the quadrants were made of (a match: within {MATCH_DEG}° of one):")
    print(f"{'spots':>10} {'kind':>7} {'images':>6} {'none':>6} {'1st true':>8} {'1st wrong':>9} {'all true':>8} {'≥2 found':>8}")
    for low, high in ((20, 50), (50, 100), (100, 300), (300, 100000)):
        for kind, keep in (("single", lattices == 1), ("multi", lattices > 1)):
            rows = keep & (spots >= low) & (spots < high)
            if rows.any():
                print(f"{low:>4}–{high if high < 100000 else '':<5} {kind:>7} {rows.sum():6d} {np.mean(found[rows] == 0):6.2f} "
                      f"{np.mean(first_true[rows]):8.2f} {np.mean((found[rows] > 0) & ~first_true[rows]):9.2f} "
                      f"{np.mean((found[rows] > 0) & all_true[rows]):8.2f} {np.mean(found[rows] > 1):8.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", help="labels.json of image files (nanoBragg validation form)")
    parser.add_argument("--spots", help=".npz of simulated spots (scripts/multilattice_spots.py)")
    parser.add_argument("--n", type=int, default=0, help="first N simulated images (0: all)")
    parser.add_argument("--true-lattices", action="store_true",
                        help="compare the simulated quadrants' lattices found with those they were made of")
    parser.add_argument("--pool-size", type=int, default=40, help="the structure pool the spots were made with "
                        "(scripts/multilattice_spots.py --pool-size)")
    args = parser.parse_args()
    if args.labels:
        on_labelled_images(args.labels)
    if args.spots:
        on_simulated_spots(args.spots, args.n, args.true_lattices, args.pool_size)


if __name__ == "__main__":
    main()
