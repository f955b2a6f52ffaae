"""Training-data speed: labelled, conditioned 512×512 training quadrants per second, whole recipe
(Bragg + background + detector effects + noise + masks + conditioning), old path and new path in
the same run, on the same specs.

    python benchmarks/bench_training_data.py [--images 40] [--seed 5] [--recipes resolution,multilattice]
                                             [--pool-size 40] [--stream-images 400] [--workers 2]

"old": ``render_training_image(reference=True)``, the simulator as it was before the reflection
kernel (the pixel kernel's fast path at threshold 1e-10, whole-detector arrays); "new": the
default path (one quadrant's window, the reflection-driven kernel or the pixel kernel, whichever
is cheaper for the crystal, at the training threshold 1e-5). One process with one numba thread:
the per-core rate, which ``nproc=`` workers multiply (the images are independent). Start-up
(structure pool, kernel compilation) is left out: the first image is rendered once before timing.
Printed: per recipe, mean seconds per image of each path, images/s per core and on 2 cores
(2 × per core), their ratio, and the slowest images with what makes them slow.

With ``--stream-images N``: a streamed training run of the shipped architecture (the ``cpu``
preset's resolution network, ResNet-18 ×0.25) over N fresh resolution images with ``--workers``
simulation processes, its sustained images/s (validation and start-up left out) and the time a
50,000-image run would take at that rate.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numba
import numpy as np

from xrais.sim import StructurePool
from xrais.sim.bragg import lattice_crowding
from xrais.sim.recipes import RECIPES, sample_spec
from xrais.sim.training_images import TRAINING_THRESHOLD, render_training_image, spec_lattices


def crowding(spec, pool) -> float:
    """Nodes per reach sphere of the spec's crystal (0 for a blank image)."""
    lattices, _ = spec_lattices(spec, pool, np.random.default_rng([spec.seed, spec.index, 1_000_003]))
    return 0.0 if lattices is None else lattice_crowding(lattices[0], TRAINING_THRESHOLD)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=40, help="images per recipe (default 40)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--pool-size", type=int, default=40, help="structure pool of the recipes (default 40)")
    parser.add_argument("--stream-images", type=int, default=0, help="also time a streamed training run of this many "
                        "images (0: no)")
    parser.add_argument("--workers", type=int, default=2, help="simulation workers of the streamed run (default 2)")
    args = parser.parse_args()
    numba.set_num_threads(1)
    pool = StructurePool(size=args.pool_size, seed=0)
    started = time.perf_counter()
    pool.build()
    print(f"structure pool: {args.pool_size} structures ready in {time.perf_counter() - started:.1f} s")
    for recipe in args.recipes.split(","):
        specs = [sample_spec(recipe, index, args.seed, args.pool_size) for index in range(args.images)]
        render_training_image(specs[0], pool)
        render_training_image(specs[0], pool, reference=True)
        old, new = [], []
        for spec in specs:
            started = time.perf_counter()
            render_training_image(spec, pool, reference=True)
            old.append(time.perf_counter() - started)
            started = time.perf_counter()
            render_training_image(spec, pool)
            new.append(time.perf_counter() - started)
        old, new = np.array(old), np.array(new)
        print(f"\n{recipe} ({args.images} images, seed {args.seed}), one core:")
        for name, times in (("old", old), ("new", new)):
            print(f"  {name}: {times.mean():.3f} s per image (median {np.median(times):.3f}, max {times.max():.3f}): "
                  f"{1 / times.mean():.2f} images/s per core, {2 / times.mean():.2f} on 2 cores")
        print(f"  ratio old/new: {old.sum() / new.sum():.2f}× (median per image {np.median(old / new):.2f}×)")
        slowest = np.argsort(new)[::-1][:3]
        for index in slowest:
            spec = specs[index]
            print(f"  slowest new #{index}: {new[index]:.2f} s (old {old[index]:.2f} s), {spec.detector}, "
                  f"domains {spec.mosaic_domains}, {spec.domain_size_um} µm, crowding {crowding(spec, pool):.2f}, "
                  f"bandwidth {spec.bandwidth_fraction}")
    if args.stream_images:
        streamed_run(args.stream_images, args.workers, args.pool_size)


def streamed_run(images: int, workers: int, pool_size: int) -> None:
    """Time a streamed training run of the shipped resolution architecture."""
    from xrais.training import TrainConfig, train
    from xrais.training.stream import StreamSettings

    epochs = 2
    per_epoch = max(16, images // epochs // 16 * 16)
    seconds = []

    def clock(trainer, entry):
        seconds.append(entry["seconds"])

    with tempfile.TemporaryDirectory() as folder:
        stream = StreamSettings(recipe="resolution", seed=101, images_per_epoch=per_epoch, validation_images=16,
                                pool_size=pool_size)
        train(TrainConfig(data=[], output=os.path.join(folder, "run"), stream=stream, epochs=epochs, workers=workers),
              callbacks=[clock])
    # the first epoch includes the workers' start-up; the second is the sustained rate
    rate = per_epoch / seconds[-1]
    print(f"\nstreamed training, resolution, ResNet-18 ×0.25 (cpu preset), {workers} simulation workers: "
          f"epoch seconds {', '.join(f'{s:.0f}' for s in seconds)} for {per_epoch} images each")
    print(f"  sustained {rate:.2f} images/s ({1000 / rate:.0f} ms per image): 50,000 images in {50000 / rate / 3600:.1f} h")


if __name__ == "__main__":
    main()
