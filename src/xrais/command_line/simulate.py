"""xrais.simulate: make labelled training images (sharded HDF5), or show montages of a dataset.

    xrais.simulate recipe=resolution n_images=2000 output.directory=data/resolution nproc=2
    mpiexec -n 64 xrais.simulate recipe=multilattice n_images=100000 output.directory=ml mpi=True
    xrais.simulate show=data/resolution output.montage=resolution.png
"""
from __future__ import annotations

import json
import logging
import os

from ..sim.dataset import shard_paths
from ..sim.generate import GenerationSettings, generate, montage
from ..sim.pool import StructurePool
from ..sim.recipes import RECIPES
from .params import Param, ParameterError
from .program import EXIT_FAILED, EXIT_OK, Program, Progress

log = logging.getLogger(__name__)

PARAMS = (
    Param("recipe", "resolution", "what to simulate (paper Appendix A1): resolution labels or multi-lattice labels",
          "choice", choices=RECIPES),
    Param("n_images", 1000, "number of images in the dataset", "int", minimum=1),
    Param("seed", 0, "dataset seed: image i is drawn from (seed, i) alone", "int", minimum=0),
    Param("shard_size", 100, "images per HDF5 shard (the unit of work and of resumption)", "int", minimum=1),
    Param("nproc", 1, "worker processes on this machine", "int", minimum=1),
    Param("mpi", False, "deal the shards over MPI ranks (run under mpiexec)", "bool"),
    Param("device", "auto", "simulation kernels: auto (GPU if present), cpu, cuda", "choice", choices=("auto", "cpu", "cuda")),
    Param("detector", None, "use only this catalogue detector (e.g. 'Rayonix MX340-HS' for a test set of a geometry "
          "never seen in training)", "str", optional=True),
    Param("structures.pool_size", 40, "random protein-like structures in the pool (built once with cctbx, cached)",
          "int", minimum=1),
    Param("structures.seed", 0, "seed of the structure pool", "int", minimum=0),
    Param("structures.cache", None, "structure cache folder (default $XRAIS_CACHE/structures or ~/.cache/xrais)",
          "path", optional=True),
    Param("output.directory", "simulated", "dataset folder (shards <recipe>_NNNNN.h5)", "path"),
    Param("output.compression", "gzip", "shard compression: gzip (anywhere) or lz4 (hdf5plugin, faster)", "choice",
          choices=("gzip", "lz4")),
    Param("output.raw_cbf", 0, "per shard, write this many raw detector images as CBF into <directory>/raw", "int",
          minimum=0),
    Param("output.raw_whole_detector", False, "render those raw images on the whole detector, not only the quadrant "
          "the models train on (slower; for example images)", "bool"),
    Param("show", None, "instead of simulating: a dataset folder or shard to draw a montage of (Figures 2–3)", "path",
          optional=True),
    Param("output.montage", "montage.png", "PNG file for show=", "path"),
    Param("montage.count", 15, "images in the montage", "int", minimum=1),
)


def run_simulate(params, inputs) -> int:
    if params.show:
        paths = shard_paths(params.show) if os.path.isdir(params.show) else [params.show]
        if not paths:
            log.error("xrais.simulate: error: %s: no dataset shards (*.h5) found", params.show)
            return EXIT_FAILED
        shown = montage(paths, params.output.montage, count=params.montage.count)
        log.info("montage of %d images written to %s", shown, params.output.montage)
        return EXIT_OK
    settings = GenerationSettings(
        recipe=params.recipe, n_images=params.n_images, directory=params.output.directory, seed=params.seed,
        shard_size=params.shard_size, detector=params.detector, pool_size=params.structures.pool_size,
        pool_seed=params.structures.seed, cache=params.structures.cache, compression=params.output.compression,
        raw_cbf=params.output.raw_cbf, raw_whole_detector=params.output.raw_whole_detector, device=params.device)
    if params.detector:
        from ..io import detectors

        try:
            detectors.get(params.detector)
        except KeyError as exc:  # an unknown name: the message lists the known ones
            raise ParameterError(f"detector={params.detector}: {exc.args[0]}") from None
    rank, size, barrier = 0, 1, (lambda: None)
    if params.mpi:
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
        rank, size, barrier = comm.Get_rank(), comm.Get_size(), comm.Barrier
    if rank == 0:
        build_pool(settings.pool())
        log.info("simulating %d '%s' images into %s (%s, %d process(es)%s)", params.n_images, params.recipe,
                 params.output.directory, params.device, params.nproc, f" × {size} MPI ranks" if size > 1 else "")
    progress = Progress(params.n_images, "simulating", enabled=None if rank == 0 else False)
    with progress:
        report = generate(settings, nproc=params.nproc, rank=rank, size=size, barrier=barrier,
                          progress=progress.update if rank == 0 else None)
    if rank == 0:
        log.info("%d images made in %.1f s (%.3f s per image; %d already there)", report["images_made"],
                 report["seconds"], report["seconds_per_image"], report["already_done"])
        write_record(os.path.join(params.output.directory, "simulate.json"), settings.__dict__,
                     dict(report, nproc=params.nproc, mpi_ranks=size))
    return EXIT_OK


def build_pool(pool: StructurePool) -> None:
    """Build the structures of the pool not cached yet (a few seconds each with cctbx), saying so
    and with a progress bar, before the simulation (which would otherwise build them in silence)."""
    missing = pool.missing()
    if not missing:
        return
    log.info("building the structure pool: %d of %d random protein-like structures with cctbx (a few seconds each; "
             "cached in %s for later runs)", len(missing), pool.size, pool.folder)
    with Progress(len(missing), "structure pool") as progress:
        pool.build(missing, progress=progress.update)


def recorded_runs(record: dict) -> list:
    """The run reports of a simulate.json (one written before runs were kept: its single report)."""
    return record.get("runs") or [dict(record["report"], nproc=record.get("nproc"), mpi_ranks=record.get("mpi_ranks"))]


def write_record(path: str, settings: dict, report: dict) -> None:
    """Write the dataset's simulate.json: its settings and the report of every run that added images
    to it (a resumed dataset keeps the cost of its earlier runs: images made, seconds, processes)."""
    runs = []
    try:
        with open(path, encoding="utf-8") as handle:
            earlier = json.load(handle)
        if {k: earlier["settings"].get(k) for k in ("recipe", "seed", "detector")} == \
                {k: settings.get(k) for k in ("recipe", "seed", "detector")}:
            runs = recorded_runs(earlier)
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no usable earlier record: this run starts it
    runs = [run for run in runs if run.get("images_made")] + [report]
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"settings": settings, "report": report, "runs": runs}, handle, indent=1)


program = Program(
    "xrais.simulate",
    "Simulate labelled training images with the physics of nanoBragg (paper section 2.1, Appendix A1): draw every "
    "image's parameters from a recipe, render the quadrant the models train on, record it on the detector (noise, "
    "beamstop, gaps, hot and dead pixels), condition it and write sharded HDF5 files. A killed run resumes where it "
    "stopped when started again with the same parameters.",
    "xrais.simulate recipe=resolution|multilattice n_images=N output.directory=DIR [nproc=K] [mpi=True] | show=DIR",
    PARAMS, run_simulate, takes_inputs=False)
run = program.main
if __name__ == "__main__":
    run()
