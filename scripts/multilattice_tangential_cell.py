"""What the tangential cell changes on measured frames, and what the thaumatin grid frames' further
lattices are: the figures of docs/models.md ("Offsets from the cell the spots say", and the
thaumatin grid paragraph).

    python scripts/multilattice_tangential_cell.py [--shared ../shared/data]

For each measured single crystal (and three nanoBragg rotation singles), the tangential features
(median and 90th percentile of the outer spots' tangential offsets, the two-sided rotation's
explained share, separation and pairing) measured from the indexing's cell, as before
:func:`xrais.lattice.evidence.tangential_cell`, and from the tangential cell, as now. For the
thaumatin grid frames 3, 6, 9 and 12, each further lattice's spots, misorientation from the first,
and the share of its spots within twice the indexing tolerance of the first lattice's nodes.
"""
import argparse
import dataclasses
import os

import numpy as np

FRAMES = ("image_examples/DLS_I03_smargon_0001.cbf.gz", "image_examples/dlsnxs2cbf_therm_0001.cbf.gz",
          "thaumatin_grid/thau_3_2_0003.cbf.bz2", "thermolysin_cspad/idx-20130301060858401.cbf",
          "thermolysin_cspad/idx-20130301060858701.cbf", "thermolysin_cspad/idx-20130301060858801.cbf",
          "nanobragg_rotation/ml/rot_ml_002.cbf.bz2", "nanobragg_rotation/ml/rot_ml_004.cbf.bz2",
          "nanobragg_rotation/ml/rot_ml_006.cbf.bz2")
GRID = (3, 6, 9, 12)
KEYS = ("tangential_median_deg", "tangential_p90_deg", "split_explained", "split_separation", "split_pairing")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                         "shared", "data"))
    args = parser.parse_args()

    import xrais
    from xrais.lattice import IndexingSettings, index_frame, lattice_evidence
    from xrais.lattice import evidence
    from xrais.lattice.indexing import _fractional_error

    def indexed(name):
        frame = xrais.open_image(os.path.join(args.shared, name))
        return index_frame(frame.pixels, frame.mask, frame.geometry)

    print("tangential features: from the indexing's cell → from the tangential cell")
    print(f"{'frame':32s} " + " ".join(f"{key:>24s}" for key in KEYS))
    for name in FRAMES:
        result = indexed(name)
        if not result.lattices:
            print(f"{os.path.basename(name):32s} no lattice")
            continue
        now = lattice_evidence(result)
        as_before = evidence.tangential_cell
        evidence.tangential_cell = lambda vectors, miller, real_vectors, *_: real_vectors  # the indexing's cell
        try:
            before = lattice_evidence(result)
        finally:
            evidence.tangential_cell = as_before
        print(f"{os.path.basename(name):32s} " + " ".join(f"{before[k]:>11.3f} → {now[k]:<10.3f}" for k in KEYS))

    tolerance = IndexingSettings().tolerance
    print(f"\nthaumatin grid: further lattices (indexing tolerance {tolerance:g})")
    for number in GRID:
        result = indexed(f"thaumatin_grid/thau_3_2_{number:04d}.cbf.bz2")
        first = result.lattices[0]
        for k, lattice in enumerate(result.lattices[1:], 2):
            _, error = _fractional_error(result.vectors[lattice.indexed], first.real_vectors)
            print(f"  frame {number:2d} lattice {k}: {lattice.indexed.sum():4d} spots, "
                  f"{result.misorientation_deg()[k - 2]:.2f}° from the first; within 2× tolerance of the first's "
                  f"nodes: {np.mean(error <= 2 * tolerance):.2f} (median fractional error {np.median(error):.2f})")


if __name__ == "__main__":
    main()
