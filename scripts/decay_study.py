"""Calibration and measurement of the decay fit (``xrais.decay``, the ``decay`` predictor; issue 30).

    python scripts/multilattice_spots.py data/res_spots/cal_s21.npz --recipe resolution --seed 21 --n 800
    python scripts/multilattice_spots.py data/res_spots/test_s22.npz --recipe resolution --seed 22 --n 300
    python scripts/decay_study.py --calibrate data/res_spots/cal_s21.npz data/ml_spots/train_s2_v5.npz \
        --test resolution=data/res_spots/test_s22.npz --test multilattice=data/ml_spots/test_s1_v5.npz \
        --nanobragg ../shared/data/nanobragg_validation/res --nanobragg ../shared/data/nanobragg_rotation/res \
        --measured '../shared/data/thaumatin_grid/*.cbf*' --measured '../shared/data/image_examples/*' \
        --out docs/decay_study.json

``--calibrate``: simulated spot sets of xrais's recipes (``scripts/multilattice_spots.py``; stills of
the resolution recipe, stills and rotation frames of the multi-lattice one): the line B = a + b·B_app
that brings the fits' 1/d closest to the labels' (least squares in 1/d, the accuracy's unit), printed
for :data:`xrais.decay.CALIBRATION`. ``--test``: further simulated sets, scored. ``--nanobragg``:
folders of nanoBragg frames with ``labels.json`` (``inv_d``), run through the ``spots``, ``decay`` and
``resolution`` predictors and scored side by side; ``--measured``: real frames, each estimate beside
the spot-based one. Neither is calibrated on: they are reported only.
"""
from __future__ import annotations

import argparse
import glob
import json
import os

import numpy as np

from xrais.decay import CALIBRATION, fit_intensities
from xrais.models import b_factor_from_inverse_d, inverse_d_from_b_factor
from xrais.plugins.builtin_predictors import decay_resolution

TOLERANCE = 0.07
BRIGHT_PEAK = 2500.0


def apparent_b(path: str):
    """((apparent B, its statistical error) Å² or NaN, labels dict of arrays) per non-blank image of a spots file."""
    data = np.load(path, allow_pickle=True)
    offsets = data["offsets"]
    keep = data["label_blank"] == 0
    values = []
    for k in np.flatnonzero(keep):
        part = slice(offsets[k], offsets[k + 1])
        s_squared = np.square(data["vectors"][part]).sum(axis=1)
        fit = fit_intensities(s_squared, data["intensity"][part], data["ice"][part])
        values.append((fit.apparent_b, 2.0 * fit.slope_error) if fit else (np.nan, np.nan))
    labels = {key[6:]: data[key][keep] for key in data.files if key.startswith("label_")}
    return np.array(values), labels


def calibrated_inverse_d(apparent, offset, scale):
    b = offset + scale * np.asarray(apparent, dtype=float)
    return np.where(b > 12.0, inverse_d_from_b_factor(np.where(b > 12.0, b, 16.0)), 0.0)


def calibrate(paths):
    from scipy.optimize import least_squares

    apparent, errors, truth = [], [], []
    for path in paths:
        values, labels = apparent_b(path)
        found = np.isfinite(values[:, 0])
        apparent.append(values[found, 0])
        errors.append(values[found, 1])
        truth.append(labels["inverse_d"][found])
    apparent, errors, truth = np.concatenate(apparent), np.concatenate(errors), np.concatenate(truth)
    # started from the median offset at scale 1 (the atoms' scattering factors add to B_app)
    start = [-float(np.median(apparent - b_factor_from_inverse_d(truth))), 1.0]
    fit = least_squares(lambda p: calibrated_inverse_d(apparent, *p) - truth, x0=start, loss="soft_l1",
                        f_scale=TOLERANCE)
    offset, scale = (float(v) for v in fit.x)
    # the systematic error, a fraction of B (the images' B_app scatter about the line by about a
    # quarter of B at every B): the one that, added in quadrature to each fit's own, makes the
    # median |B − calibrated B| / error that of a normal distribution (0.674)
    b_true = b_factor_from_inverse_d(truth)
    calibrated = offset + scale * apparent
    residual = np.abs(b_true - calibrated)
    statistical = scale * errors
    low, high = 0.0, 10.0
    for _ in range(60):
        middle = 0.5 * (low + high)
        ratio = np.median(residual / np.hypot(statistical, middle * np.abs(calibrated)))
        low, high = (middle, high) if ratio > 0.674 else (low, middle)
    systematic = round(high, 3)
    print(f"calibration on {len(truth)} images: B = {offset:.2f} + {scale:.4f}·B_app, systematic error "
          f"{systematic:.3f}·B")
    return offset, scale, systematic


def score(error, undetermined, unreachable=None):
    """Accuracy figures of 1/d errors (NaN: no estimate) with the undetermined flags."""
    error = np.asarray(error, dtype=float)
    undetermined = np.asarray(undetermined, dtype=bool) | ~np.isfinite(error)
    absolute = np.abs(np.where(np.isfinite(error), error, np.inf))
    determined = ~undetermined
    return {
        "n": int(len(error)),
        "within_tolerance": round(float(np.mean(absolute < TOLERANCE)), 3) if len(error) else None,
        "within_tolerance_determined": round(float(np.mean(absolute[determined] < TOLERANCE)), 3)
        if determined.any() else None,
        "undetermined": round(float(np.mean(undetermined)), 3) if len(error) else None,
        "off_by_0.15_unflagged": int(np.sum(determined & (absolute > 0.15))),
        "median_abs_error": round(float(np.median(absolute[np.isfinite(absolute)])), 4)
        if np.isfinite(absolute).any() else None,
    }


def simulated_tables(path, offset, scale, systematic):
    values, labels = apparent_b(path)
    estimates = []  # the decay predictor's 1/d and σ (decay_resolution) of each image's calibrated B
    for apparent, statistical in values:
        b = offset + scale * apparent
        estimates.append(decay_resolution(b, float(np.hypot(scale * statistical, systematic * b))))
    inverse_d = np.array([np.nan if v is None else v for v, _ in estimates])
    sigma = np.array([np.nan if s is None else s for _, s in estimates])
    error = inverse_d - labels["inverse_d"]
    undetermined = ~(sigma <= TOLERANCE)
    rotation = labels.get("rotation_wedge_deg", np.zeros(len(error))) > 0
    table = {"all": score(error, undetermined), "stills": score(error[~rotation], undetermined[~rotation]),
             "rotation": score(error[rotation], undetermined[rotation])}
    for name, low, high in (("1/d < 0.3", 0, 0.3), ("1/d 0.3-0.5", 0.3, 0.5), ("1/d >= 0.5", 0.5, 9)):
        chosen = (labels["inverse_d"] >= low) & (labels["inverse_d"] < high)
        table[name] = score(error[chosen], undetermined[chosen])
    return table


def predictor_rows(paths):
    import xrais

    predictor = xrais.Predictor(predictors=("spots", "decay", "resolution"), nproc=1)
    return list(predictor.predict_iter(paths))


def nanobragg_tables(folder):
    with open(os.path.join(folder, "labels.json")) as handle:
        labels = json.load(handle)
    names = sorted(labels)
    rows = predictor_rows([os.path.join(folder, name) for name in names])
    truth = np.array([labels[name]["inv_d"] for name in names])
    bright = np.array([labels[name].get("peak_target", 0.0) >= BRIGHT_PEAK for name in names])
    ice = np.array([bool(labels[name].get("ice", {}).get("present", False)) for name in names])

    def inverse(value):
        return np.nan if value is None else float(value)

    estimates = {
        "decay": ([inverse(r["inverse_d_decay"]) for r in rows], [r["decay_undetermined"] for r in rows]),
        "spots": ([np.nan if r["d_min_spots"] is None else 1.0 / r["d_min_spots"] for r in rows],
                  [r["d_min_spots"] is None for r in rows]),
        "resolution": ([inverse(r["inverse_d"]) for r in rows], [bool(r["resolution_undetermined"]) for r in rows]),
    }
    tables = {}
    for method, (values, undetermined) in estimates.items():
        error = np.array(values) - truth
        undetermined = np.array(undetermined)
        tables[method] = {"all": score(error, undetermined), "bright": score(error[bright], undetermined[bright])}
        if ice.any():
            tables[method]["ice"] = score(error[ice], undetermined[ice])
            tables[method]["no ice"] = score(error[~ice], undetermined[~ice])
    frames = [{"image": name, "label": round(float(t), 4), "decay": r["inverse_d_decay"],
               "decay_sigma": r["inverse_d_decay_sigma"], "b_factor_decay": r["b_factor_decay"],
               "b_label": labels[name].get("B_A2"), "resolution": r["inverse_d"], "spots_d": r["d_min_spots"],
               "n_spots": r["n_spots"], "error": r["error"]} for name, t, r in zip(names, truth, rows)]
    return tables, frames


def measured_rows(patterns):
    paths = sorted(path for pattern in patterns for path in glob.glob(pattern))
    rows = []
    for result in predictor_rows(paths):
        rows.append({key: result.get(key) for key in ("image", "frame", "n_spots", "d_min_spots", "d_min", "inverse_d",
                                                        "inverse_d_sigma", "d_min_decay", "inverse_d_decay",
                                                        "inverse_d_decay_sigma", "b_factor_decay", "error")})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calibrate", nargs="*", default=[])
    parser.add_argument("--test", action="append", default=[], help="name=spots.npz")
    parser.add_argument("--nanobragg", action="append", default=[])
    parser.add_argument("--measured", action="append", default=[])
    parser.add_argument("--out")
    args = parser.parse_args()
    offset, scale, systematic = calibrate(args.calibrate) if args.calibrate else CALIBRATION
    report = {"calibration": {"offset": offset, "scale": scale, "systematic_error": systematic,
                              "files": args.calibrate},
              "simulated": {}, "nanobragg": {}, "measured": []}
    for item in args.test:
        name, path = item.split("=", 1)
        report["simulated"][name] = simulated_tables(path, offset, scale, systematic)
        print(name, json.dumps(report["simulated"][name]["all"]), "stills", report["simulated"][name]["stills"],
              "rotation", report["simulated"][name]["rotation"])
    for folder in args.nanobragg:
        tables, frames = nanobragg_tables(folder)
        report["nanobragg"][folder] = {"tables": tables, "frames": frames}
        for method, table in tables.items():
            print(folder, method, json.dumps(table))
    if args.measured:
        report["measured"] = measured_rows(args.measured)
        for row in report["measured"]:
            print(json.dumps(row))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(report, handle, indent=1)


if __name__ == "__main__":
    main()
