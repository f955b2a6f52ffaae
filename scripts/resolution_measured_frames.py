"""The shipped resolution model on every measured frame of ``../shared/data`` beside the spot-based
estimate and the decay fit (issue 30: "on the shared rotation frames and small-detector frames the
estimate is within 0.1 Å⁻¹ of the spot-based one, or the card shows why not").

    python scripts/resolution_measured_frames.py [--shared ../shared/data] [--json docs/resolution_measured_frames.json]

No measured frame here has a published resolution: the spot-based estimate (``spots``) and the decay
fit (``decay``) are the peers, not the truth. Frames: the thaumatin grid's stills with diffraction
(1–15), the DLS I03 rotation frame, the EIGER2 16M frame, the four CS-PAD thermolysin stills, the
Rayonix XFEL hit, the CCD SMV rotation frame and the two swung PILATUS frames of ``reader_cases``.
"""
import argparse
import glob
import json
import os

FRAMES = (("thaumatin_grid/thau_3_2_00[01][0-9].cbf.bz2", "PILATUS3 6M still (grid scan)"),
          ("image_examples/DLS_I03_smargon_0001.cbf.gz", "PILATUS3 6M, 0.1° rotation"),
          ("image_examples/dlsnxs2cbf_therm_0001.cbf.gz", "EIGER2 16M, rotation, 1 % transmission"),
          ("thermolysin_cspad/idx-*.cbf", "CS-PAD XFEL still"),
          ("rayonix340/hit-*.cbf", "Rayonix MX340 XFEL still"),
          ("reader_cases/snc_newhead_00001.img.gz", "CCD (SMV), rotation"),
          ("reader_cases/l-cyst_01_00001.cbf.gz", "PILATUS 2M at 2θ = 30°"),
          ("reader_cases/ximg2700_00001.cbf.gz", "PILATUS 300K at 2θ = 20°"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                         "shared", "data"))
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()

    from xrais.predict import Predictor

    paths, kinds = [], []
    for pattern, kind in FRAMES:
        found = sorted(glob.glob(os.path.join(args.shared, pattern)))
        if pattern.startswith("thaumatin"):
            found = found[:15]  # 16–19 are blank
        paths += found
        kinds += [kind] * len(found)
    results = Predictor(predictors=("resolution", "spots", "decay"), device="cpu", quadrants=4).predict(paths)
    rows = []
    print(f"{'frame':32s} {'kind':38s} {'model 1/d':>9s} {'σ':>6s} {'undet.':>6s} {'spots':>6s} {'decay':>6s} "
          f"{'model−spots':>11s}")
    for path, kind, result in zip(paths, kinds, results):
        spots = 1.0 / result["d_min_spots"] if result.get("d_min_spots") else None
        decay = 1.0 / result["d_min_decay"] if result.get("d_min_decay") else None
        model = result.get("inverse_d")
        row = {"frame": os.path.basename(path), "kind": kind, "error": result["error"],
               "inverse_d": model, "inverse_d_sigma": result.get("inverse_d_sigma"),
               "undetermined": result.get("resolution_undetermined"), "spots_inverse_d": spots,
               "decay_inverse_d": decay, "n_spots": result.get("n_spots"),
               "model_minus_spots": None if model is None or spots is None else model - spots}
        rows.append(row)
        show = lambda value, digits=3: "–" if value is None else f"{value:.{digits}f}"  # noqa: E731
        print(f"{row['frame']:32.32s} {kind:38.38s} {show(model):>9s} {show(row['inverse_d_sigma']):>6s} "
              f"{str(row['undetermined']):>6s} {show(spots):>6s} {show(decay):>6s} {show(row['model_minus_spots']):>11s}"
              + (f"  {result['error']}" if result["error"] else ""))
    compared = [row for row in rows if row["model_minus_spots"] is not None]
    close = [row for row in compared if abs(row["model_minus_spots"]) <= 0.1]
    determined = [row for row in compared if not row["undetermined"]]
    print(f"{len(close)} of {len(compared)} frames with both estimates within 0.1 Å⁻¹ of the spots' "
          f"({sum(abs(r['model_minus_spots']) <= 0.1 for r in determined)} of the {len(determined)} determined)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"rows": rows, "within_0.1_of_spots": len(close), "compared": len(compared)}, handle, indent=1)


if __name__ == "__main__":
    main()
