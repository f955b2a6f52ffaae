"""Lattice-evidence features of measured frames and of semi-real two-lattice images made from them:
the measured-frame judge of the multi-lattice model (its card's measured-frame table).

Measured frames of one crystal in ``../shared/data`` (the DLS I03 rotation frame, the EIGER2
thaumatin frame, the four CS-PAD thermolysin stills): label single. From each, semi-real
two-lattice images (:mod:`xrais.training.semireal`): the frame plus a copy turned by θ about the
beam, thinned to a weight w, for every θ of ``--angles`` and w of ``--weights``: label
multi-lattice, split θ; the same from two bright thaumatin grid frames (3 and 9). The thaumatin grid
frames 1–15 themselves (one large crystal; whether parts of it are split is not known) are written
apart, label unknown (``known`` False). Written to one ``.npz`` in the form of
``scripts/multilattice_evidence.py`` (features, feature_names, is_multi, split_deg, n_spots, name,
source, weight, known).

    python scripts/multilattice_measured.py data/ml_evidence/measured.npz [--shared ../shared/data]

No model is trained or calibrated on these images: they are reported only.
"""
from __future__ import annotations

import argparse
import glob
import multiprocessing
import os
import time

import numpy as np

SINGLES = ("image_examples/DLS_I03_smargon_0001.cbf.gz", "image_examples/dlsnxs2cbf_therm_0001.cbf.gz",
           "thermolysin_cspad/idx-20130301060858401.cbf", "thermolysin_cspad/idx-20130301060858601.cbf",
           "thermolysin_cspad/idx-20130301060858701.cbf", "thermolysin_cspad/idx-20130301060858801.cbf")
UNKNOWN = "thaumatin_grid/thau_3_2_00[01][0-9].cbf.bz2"  # frames 1–15 (16–19 are blank) are kept below
#: Bright thaumatin grid frames also made into semi-real pairs (their own lattice count is not known,
#: but a copy turned by θ adds a lattice θ away whatever it is: the pairs are multi-lattice).
BRIGHT_SOURCES = ("thaumatin_grid/thau_3_2_0003.cbf.bz2", "thaumatin_grid/thau_3_2_0009.cbf.bz2")


def features_of(job):
    """(feature row, n_spots, name, angle, weight) of one measured frame (angle None) or of its
    semi-real pair at (angle, weight)."""
    import xrais
    from xrais.lattice import FEATURE_NAMES, index_frame, lattice_evidence
    from xrais.training.semireal import semireal_pairs

    path, angle, weight = job
    frame = xrais.open_image(path)
    if angle is not None:
        (_, _, frame), = semireal_pairs(frame, [angle], [weight])
    result = index_frame(frame.pixels, frame.mask, frame.geometry)
    features = lattice_evidence(result)
    return [features[name] for name in FEATURE_NAMES], result.n_spots, os.path.basename(path), angle, weight


def main():
    from xrais.lattice import FEATURE_NAMES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output")
    parser.add_argument("--shared", default="../shared/data")
    parser.add_argument("--angles", type=float, nargs="+", default=[0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 90.0])
    parser.add_argument("--weights", type=float, nargs="+", default=[0.3, 0.6, 1.0])
    parser.add_argument("--nproc", type=int, default=2)
    args = parser.parse_args()
    singles = [os.path.join(args.shared, name) for name in SINGLES]
    missing = [path for path in singles if not os.path.isfile(path)]
    if missing:
        raise SystemExit(f"measured frames not found: {', '.join(missing)}")
    unknown = sorted(glob.glob(os.path.join(args.shared, UNKNOWN)))[:15]
    sources = singles + [os.path.join(args.shared, name) for name in BRIGHT_SOURCES]
    jobs = ([(path, None, None) for path in singles + unknown]
            + [(path, angle, weight) for path in sources for angle in args.angles for weight in args.weights])
    started = time.time()
    with multiprocessing.get_context("spawn").Pool(args.nproc) as workers:
        rows = workers.map(features_of, jobs, chunksize=1)
    known = np.array([job[0] not in unknown or job[1] is not None for job in jobs])
    np.savez(args.output, features=np.array([r[0] for r in rows]), n_spots=np.array([r[1] for r in rows]),
             feature_names=np.array(FEATURE_NAMES), name=np.array([r[2] for r in rows]),
             is_multi=np.array([r[3] is not None for r in rows]),
             split_deg=np.array([r[3] or 0.0 for r in rows]), weight=np.array([r[4] or 0.0 for r in rows]),
             known=known, detector=np.array(["measured"] * len(rows)))
    print(f"{len(rows)} images ({len(singles)} single, {len(unknown)} thaumatin grid, "
          f"{len(rows) - len(singles) - len(unknown)} semi-real from {len(sources)} frames) in "
          f"{time.time() - started:.0f} s → {args.output}")


if __name__ == "__main__":
    main()
