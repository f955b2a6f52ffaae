"""Spots in reciprocal space of simulated images: the data of the indexing baseline's measurements,
of the lattice-evidence model and (``--recipe resolution``) of the decay fit's calibration.

For images (seed, index) of the ``multilattice`` recipe (or ``--recipe``), renders the training quadrant (raw counts,
full resolution), finds its spots (dispersion threshold) and writes, per image, the spots'
scattering vectors (Å⁻¹), intensities, ice-ring flags and the image's labels (n_lattices, split
angle, detector…) to one ``.npz`` file. Usage:

    python scripts/multilattice_spots.py OUTPUT.npz --seed 1 --n 400 [--nproc 2] [--recipe resolution]
"""
from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import time

import numpy as np


def spots_of(job):
    """(labels, vectors, intensities, ice flags) of image (seed, index) of a recipe."""
    recipe, seed, index, pool_size = job
    from xrais.sim import recipes
    from xrais.sim.frame import quadrant_window
    from xrais.sim.pool import StructurePool
    from xrais.sim.training_images import render_training_image, spec_geometry
    from xrais.spotfinder import find_spots, scattering_vectors

    pool = StructurePool(size=pool_size)
    spec = recipes.sample_spec(recipe, index, seed, pool.size)
    image = render_training_image(spec, pool, keep_raw=True)
    window = quadrant_window(spec_geometry(spec), spec.quadrant)  # the pixels rendered
    rows, columns = window.slices
    fast0, slow0 = columns.start, rows.start
    geometry = dataclasses.replace(image.geometry, shape=(rows.stop - rows.start, columns.stop - columns.start),
                                   beam_centre=(image.geometry.beam_centre[0] - fast0,
                                                image.geometry.beam_centre[1] - slow0))
    spots = find_spots(image.raw.pixels[rows, columns].astype(float), image.raw.mask[rows, columns], geometry)
    return image.labels, scattering_vectors(spots, geometry), spots.intensity, spots.on_ice_ring


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--pool-size", type=int, default=40)
    parser.add_argument("--recipe", default="multilattice", choices=("multilattice", "resolution"))
    args = parser.parse_args()
    jobs = [(args.recipe, args.seed, index, args.pool_size) for index in range(args.start, args.start + args.n)]
    started = time.time()
    with multiprocessing.get_context("spawn").Pool(args.nproc) as workers:
        results = workers.map(spots_of, jobs, chunksize=4)
    keys = [key for key, value in results[0][0].items() if isinstance(value, (int, float, np.integer, np.floating))]
    columns = {f"label_{key}": np.array([r[0][key] for r in results]) for key in keys}
    columns["label_detector"] = np.array([r[0]["detector"] for r in results])
    offsets = np.cumsum([0] + [len(r[1]) for r in results])
    np.savez_compressed(args.output, offsets=offsets, vectors=np.concatenate([r[1] for r in results]),
                        intensity=np.concatenate([r[2] for r in results]),
                        ice=np.concatenate([r[3] for r in results]), **columns)
    print(f"{len(results)} images, {offsets[-1]} spots in {time.time() - started:.0f} s → {args.output}")


if __name__ == "__main__":
    main()
