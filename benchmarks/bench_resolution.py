"""Speed of the whole prediction of the ``resolution`` predictor (the shipped shell-profile model) on
one core: conditioning the frame (four quadrants; a swung detector's whole frame), the shell
histograms and features, and the network.

    python benchmarks/bench_resolution.py [--images FILE ...] [--repeat 5]

Images: the files given (any format xrais reads), or else the measured frames in ``../shared/data``
(the thaumatin grid's PILATUS3 6M frames 1–15, the DLS I03 PILATUS3 6M frame, the EIGER2 16M frame,
and the two swung PILATUS frames of ``reader_cases``). Reading the file is not counted. Each stage's
time is the best of ``--repeat`` runs after a warm-up (which also builds the geometry's shell map,
made once per series), on one numba and one torch thread; the table gives each image's times (ms),
the median and the 95th percentile, and the p95's ratio to the target of 20 ms per PILATUS 6M frame
(issue 30).
"""
import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")  # one core, before numba loads

import argparse
import glob

import numpy as np

from timing import best_seconds

TARGET_MS = 20.0
SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
MEASURED = ("thaumatin_grid/thau_3_2_00[01][0-9].cbf.bz2", "image_examples/DLS_I03_smargon_0001.cbf.gz",
            "image_examples/dlsnxs2cbf_therm_0001.cbf.gz", "reader_cases/l-cyst_01_00001.cbf.gz",
            "reader_cases/ximg2700_00001.cbf.gz")


def measured_images() -> list:
    """The measured frames of ``../shared/data`` this benchmark times by default (thaumatin 1–15)."""
    paths = []
    for pattern in MEASURED:
        found = sorted(glob.glob(os.path.join(SHARED, pattern)))
        paths += found[:15]
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", nargs="*", help="image files (default: the measured frames of ../shared/data)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import torch

    from xrais import conditioning
    from xrais.io import open_image
    from xrais.plugins.base import PredictionInput
    from xrais.plugins.builtin_predictors import ResolutionPredictor

    torch.set_num_threads(1)
    paths = args.images or measured_images()
    if not paths:
        raise SystemExit(f"no images: give --images or put the shared data at {SHARED}")
    predictor = ResolutionPredictor()
    predictor.setup("cpu")
    quadrants = (0, 1, 2, 3)
    rows = []
    for path in paths:
        frame = open_image(path)
        geometry = frame.geometry

        def condition():
            if geometry.faces_beam:
                return conditioning.condition(frame.pixels, frame.mask, geometry, quadrants=quadrants)
            return conditioning.condition_whole(frame.pixels, frame.mask, geometry)[None]

        condition_s, conditioned = best_seconds(condition, args.repeat)
        item = PredictionInput(geometry, conditioned, quadrants)
        predict_s, (result,) = best_seconds(lambda: predictor.predict([item]), args.repeat)
        rows.append((os.path.basename(path), geometry.detector, "quadrants" if geometry.faces_beam else "whole frame",
                     1e3 * condition_s, 1e3 * predict_s, result["d_min"]))
    print(f"{'image':32s} {'detector':16s} {'read as':11s} {'condition':>9s} {'predict':>8s} {'total':>7s}  d_min/Å")
    for name, detector, mode, condition_ms, predict_ms, d_min in rows:
        print(f"{name:32s} {detector:16s} {mode:11s} {condition_ms:9.1f} {predict_ms:8.1f} "
              f"{condition_ms + predict_ms:7.1f}  {d_min}")
    totals = np.array([row[3] + row[4] for row in rows])
    pilatus_6m = np.array([row[3] + row[4] for row in rows if row[1] == "PILATUS 6M"])
    print(f"all {len(rows)} frames: median {np.median(totals):.1f} ms, p95 {np.percentile(totals, 95):.1f} ms")
    if len(pilatus_6m):
        p95 = float(np.percentile(pilatus_6m, 95))
        print(f"PILATUS 6M ({len(pilatus_6m)} frames): median {np.median(pilatus_6m):.1f} ms, p95 {p95:.1f} ms "
              f"= {p95 / TARGET_MS:.2f}× the {TARGET_MS:g} ms target")


if __name__ == "__main__":
    main()
