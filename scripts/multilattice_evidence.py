"""Multi-lattice evidence features (:func:`xrais.lattice.lattice_evidence`) of labelled images, the
data of the learned multi-lattice classifier: every image's spots indexed, its features and labels
written to one ``.npz`` (features, feature_names, is_multi, n_lattices, split_deg, detector, n_spots).

    python scripts/multilattice_evidence.py OUT.npz --spots data/ml_spots/train_s2.npz [--nproc 2]
    python scripts/multilattice_evidence.py OUT.npz --labels ../shared/data/nanobragg_validation/ml/labels.json

``--spots``: simulated spot sets (``scripts/multilattice_spots.py``), blanks left out, with
``--centroid-scatter LOW HIGH`` their centroids scattered as measured spots' are
(:func:`xrais.training.evidence.scatter_centroids`); ``--labels``:
image files with a labels.json in the nanoBragg validation form (is_multi, n_lattices, sigma_deg,
misorientation_measured_deg).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time

import numpy as np


def evidence(job):
    """(features row, n_spots) of one spot set (vectors, intensities, ice-ring flags, (distance mm,
    wavelength Å) of the geometry that mapped them: the header's); n_spots: those the indexing kept
    (ice-band spots no lattice indexes left out)."""
    from xrais.lattice import FEATURE_NAMES, index_lattices, lattice_evidence

    vectors, intensities, on_ice_ring, detector = job
    result = index_lattices(vectors, intensities, detector=detector, on_ice_ring=on_ice_ring)
    features = lattice_evidence(result)
    return [features[name] for name in FEATURE_NAMES], result.n_spots


def simulated_jobs(path, centroid_scatter_px=None):
    """Jobs and labels of a simulated spots file; ``centroid_scatter_px`` (low, high): each image's
    spot centroids moved by σ pixels, log-uniform between them
    (:func:`xrais.training.evidence.scatter_centroids`), drawn from the image's seed and index."""
    from xrais.training.evidence import evidence_images, scatter_centroids

    data = np.load(path)
    offsets, keep_image = data["offsets"], evidence_images(data)
    jobs, sigma_px = [], []
    for i in np.flatnonzero(keep_image):
        part = slice(offsets[i], offsets[i + 1])
        header_distance = float(data["label_distance"][i] + data["label_header_distance_error_mm"][i])
        wavelength = float(data["label_wavelength"][i])
        vectors = data["vectors"][part]
        if centroid_scatter_px is not None:
            rng = np.random.default_rng([int(data["label_seed"][i]), int(data["label_index"][i]), 29])
            sigma_px.append(float(np.exp(rng.uniform(*np.log(centroid_scatter_px)))))
            vectors = scatter_centroids(vectors, header_distance, wavelength,
                                        sigma_px[-1] * float(data["label_pixel_size"][i]), rng)
        jobs.append((vectors, data["intensity"][part], data["ice"][part], (header_distance, wavelength)))
    labels = dict(is_multi=data["label_n_lattices"][keep_image] > 1, n_lattices=data["label_n_lattices"][keep_image],
                  split_deg=data["label_lattice_split_deg"][keep_image], detector=data["label_detector"][keep_image],
                  # photons × crystal volume (µm³): the overall scale, which the label must not follow
                  bragg_scale=data["label_photons"][keep_image] * data["label_crystal_size_um"][keep_image] ** 3)
    if centroid_scatter_px is not None:
        labels["centroid_scatter_px"] = np.array(sigma_px)
    return jobs, labels


def labelled_image_jobs(path):
    import xrais
    from xrais.lattice import indexing_input
    from xrais.spotfinder import find_spots

    table = json.load(open(path))
    jobs, names = [], sorted(table)
    for name in names:
        frame = xrais.open_image(os.path.join(os.path.dirname(path), name))
        jobs.append(indexing_input(find_spots(frame.pixels, frame.mask, frame.geometry), frame.geometry)
                    + ((frame.geometry.distance, frame.geometry.wavelength),))
    splits = [min(table[n].get("misorientation_measured_deg") or [0.0]) for n in names]
    labels = dict(is_multi=np.array([bool(table[n]["is_multi"]) for n in names]),
                  n_lattices=np.array([table[n]["n_lattices"] for n in names]), split_deg=np.array(splits),
                  sigma_deg=np.array([table[n].get("sigma_deg") or 0.0 for n in names]),
                  detector=np.array(["PILATUS 6M"] * len(names)), name=np.array(names))
    return jobs, labels


def main():
    from xrais.lattice import FEATURE_NAMES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output")
    parser.add_argument("--spots")
    parser.add_argument("--labels")
    parser.add_argument("--centroid-scatter", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="with --spots: move each image's spot centroids by σ pixels, log-uniform between LOW "
                             "and HIGH (xrais.training.evidence.CENTROID_SCATTER_PX for the shipped model)")
    parser.add_argument("--nproc", type=int, default=2)
    args = parser.parse_args()
    if args.centroid_scatter and not args.spots:
        parser.error("--centroid-scatter applies to simulated spots (--spots)")
    started = time.time()
    jobs, labels = (simulated_jobs(args.spots, args.centroid_scatter) if args.spots
                    else labelled_image_jobs(args.labels))
    with multiprocessing.get_context("spawn").Pool(args.nproc) as workers:
        rows = workers.map(evidence, jobs, chunksize=4)
    np.savez(args.output, features=np.array([r[0] for r in rows]), n_spots=np.array([r[1] for r in rows]),
             feature_names=np.array(FEATURE_NAMES), **labels)
    print(f"{len(rows)} images in {time.time() - started:.0f} s → {args.output}")


if __name__ == "__main__":
    main()
