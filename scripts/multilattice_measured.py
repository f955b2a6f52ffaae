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
        [--known-cells]

``--known-cells``: every frame indexed with its crystal's cell given (``IndexingSettings.known_cell``,
as ``known_symmetry.unit_cell=`` of the programs): :data:`KNOWN_CELLS`, the literature cells of the
crystals, not fitted to these frames.

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

#: The crystals' cells (a, b, c Å, α, β, γ °; space group), by the frame's folder or name: thermolysin
#: P6₁22 (Hattne et al. 2014: a = b ≈ 93, c ≈ 130.5 Å) for the CS-PAD stills; thaumatin P4₁2₁2
#: (a = b ≈ 58.5, c ≈ 151 Å, the issue's) for the thaumatin grid, the EIGER2 frame (its README:
#: thaumatin) and the DLS I03 frame (not named by its README; its free indexing finds thaumatin's cell).
THERMOLYSIN = ((93.0, 93.0, 130.5, 90.0, 90.0, 120.0), "P6122")
THAUMATIN = ((58.5, 58.5, 151.0, 90.0, 90.0, 90.0), "P41212")
KNOWN_CELLS = {"thermolysin_cspad": THERMOLYSIN, "thaumatin_grid": THAUMATIN,
               "DLS_I03_smargon_0001.cbf.gz": THAUMATIN, "dlsnxs2cbf_therm_0001.cbf.gz": THAUMATIN}


def known_cell_of(path: str):
    """(cell, space group) of a frame of :data:`SINGLES`, :data:`UNKNOWN` or :data:`BRIGHT_SOURCES`."""
    return next(value for key, value in KNOWN_CELLS.items() if key in path)


def features_of(job):
    """(feature row, n_spots, name, angle, weight) of one measured frame (angle None) or of its
    semi-real pair at (angle, weight); indexed with the frame's known cell when ``use_cell``."""
    import xrais
    from xrais.lattice import FEATURE_NAMES, IndexingSettings, index_frame, lattice_evidence
    from xrais.training.semireal import semireal_pairs

    path, angle, weight, use_cell = job
    frame = xrais.open_image(path)
    if angle is not None:
        (_, _, frame), = semireal_pairs(frame, [angle], [weight])
    cell, space_group = known_cell_of(path) if use_cell else (None, None)
    settings = IndexingSettings(known_cell=cell, known_space_group=space_group)
    result = index_frame(frame.pixels, frame.mask, frame.geometry, settings=settings)
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
    parser.add_argument("--known-cells", action="store_true", help="index each frame with its crystal's cell")
    args = parser.parse_args()
    singles = [os.path.join(args.shared, name) for name in SINGLES]
    missing = [path for path in singles if not os.path.isfile(path)]
    if missing:
        raise SystemExit(f"measured frames not found: {', '.join(missing)}")
    unknown = sorted(glob.glob(os.path.join(args.shared, UNKNOWN)))[:15]
    sources = singles + [os.path.join(args.shared, name) for name in BRIGHT_SOURCES]
    jobs = ([(path, None, None, args.known_cells) for path in singles + unknown]
            + [(path, angle, weight, args.known_cells) for path in sources for angle in args.angles
               for weight in args.weights])
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
