"""Generate a training dataset: draw every image's parameters from a recipe, render, condition and
write sharded HDF5 files — in one process, a pool of processes (``nproc``), or MPI ranks."""
from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
import time
from typing import Callable, Optional, Sequence

from .dataset import ShardPlan, pending_shards, plan_shards, remove_partials, run_shards, write_shard
from .pool import StructurePool

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class GenerationSettings:
    """Everything a worker needs to make shards (plain values, picklable).

    recipe, seed, n_images, shard_size: what to make; detector: force one catalogue detector;
    pool_size, pool_seed, cache: the structure pool; directory, compression: where and how;
    raw_cbf: per shard, how many raw detector images to also write as CBF (for inspection);
    raw_whole_detector: render those raw images on the whole detector (slower), not only the
    trained quadrant; device: simulation kernel device.
    """

    recipe: str
    n_images: int
    directory: str
    seed: int = 0
    shard_size: int = 100
    detector: Optional[str] = None
    pool_size: int = 40
    pool_seed: int = 0
    cache: Optional[str] = None
    compression: str = "gzip"
    raw_cbf: int = 0
    raw_whole_detector: bool = False
    device: str = "cpu"

    def pool(self) -> StructurePool:
        return StructurePool(size=self.pool_size, seed=self.pool_seed, folder=self.cache)


_PROGRESS: Optional["queue.Queue"] = None


def _worker_init(progress_queue, threads: int) -> None:
    """Pool worker set-up: one numba thread each (processes give the parallelism), progress queue."""
    global _PROGRESS
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    _PROGRESS = progress_queue


def make_shard(settings: GenerationSettings, plan: ShardPlan) -> None:
    """Render the images of one shard and write it (atomically)."""
    from ..io.cbf import write_cbf
    from .recipes import sample_spec
    from .training_images import render_training_image

    pool = settings.pool()
    raw_folder = os.path.join(settings.directory, "raw")

    def images():
        for index in range(plan.first, plan.stop):
            spec = sample_spec(settings.recipe, index, settings.seed, settings.pool_size, detector=settings.detector)
            keep_raw = index - plan.first < settings.raw_cbf
            image = render_training_image(spec, pool, device=settings.device, keep_raw=keep_raw,
                                          whole_detector=keep_raw and settings.raw_whole_detector)
            if keep_raw:
                os.makedirs(raw_folder, exist_ok=True)
                write_cbf(os.path.join(raw_folder, f"{settings.recipe}_{index:07d}.cbf"), image.raw.pixels, image.geometry,
                          start_angle=-0.5 * spec.rotation_wedge_deg, angle_increment=spec.rotation_wedge_deg)
            if _PROGRESS is not None:
                _PROGRESS.put(1)
            yield image.conditioned, image.labels

    write_shard(plan.path(settings.directory, settings.recipe), plan, settings.recipe, settings.seed, images(),
                settings.compression)


class _ShardJob:
    """Picklable callable: make_shard with fixed settings."""

    def __init__(self, settings: GenerationSettings):
        self.settings = settings

    def __call__(self, plan: ShardPlan) -> None:
        make_shard(self.settings, plan)


def generate(settings: GenerationSettings, nproc: int = 1, rank: int = 0, size: int = 1,
             barrier: Callable[[], None] = lambda: None, progress: Optional[Callable[[int], None]] = None) -> dict:
    """Make every missing shard of a dataset (resuming a killed run), this rank's share of them.

    rank/size/barrier: MPI rank, number of ranks and a barrier (shards are dealt round-robin);
    progress(n): called as images are finished. Returns a small report.
    """
    os.makedirs(settings.directory, exist_ok=True)
    plans = plan_shards(settings.n_images, settings.shard_size)
    if rank == 0:
        pool = settings.pool()
        log.info("structure pool: %d random structures in %s", pool.size, pool.folder)
        pool.build()
        remove_partials(settings.directory, settings.recipe)
    barrier()
    todo = pending_shards(settings.directory, settings.recipe, settings.seed, plans)
    barrier()  # every rank has its list before any rank starts writing
    mine = todo[rank::size]
    done_before = settings.n_images - sum(p.n_images for p in todo)
    if rank == 0 and done_before:
        log.info("resuming: %d of %d images already made", done_before, settings.n_images)
    started = time.perf_counter()
    progress_queue, drain = _progress_relay(progress)
    try:
        run_shards(mine, _ShardJob(settings), nproc=nproc, initializer=_worker_init, initargs=(progress_queue, 1))
    finally:
        drain()
    elapsed = time.perf_counter() - started
    made = sum(p.n_images for p in mine)
    return {"images_made": made, "already_done": done_before, "seconds": elapsed,
            "seconds_per_image": elapsed / made if made else 0.0, "shards": len(mine)}


def _progress_relay(progress):
    """A queue workers put image counts in, and a thread passing them to ``progress``."""
    if progress is None:
        return None, lambda: None
    import multiprocessing

    relay = multiprocessing.get_context("spawn").Manager().Queue()
    stop = threading.Event()

    def pump():
        while not stop.is_set() or not relay.empty():
            try:
                progress(relay.get(timeout=0.2))
            except queue.Empty:
                continue
            except (EOFError, OSError):
                return

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()

    def drain():
        stop.set()
        thread.join()

    return relay, drain


def montage(paths: Sequence[str], output: str, count: int = 15, columns: int = 5, seed: int = 0) -> int:
    """PNG montage (paper Figures 2–3) of ``count`` random images of a dataset; returns how many."""
    import h5py
    import hdf5plugin  # noqa: F401  (LZ4 shards)
    import numpy as np

    from ..plots import save_montage
    from .dataset import read_labels

    labels = read_labels(paths)
    sizes = []
    for path in paths:
        with h5py.File(path, "r") as handle:
            sizes.append(handle["images"].shape[0])
    total = sum(sizes)
    chosen = sorted(np.random.default_rng(seed).choice(total, size=min(count, total), replace=False))
    starts = np.cumsum([0] + sizes)
    images = []
    for index in chosen:
        shard = int(np.searchsorted(starts, index, side="right") - 1)
        with h5py.File(paths[shard], "r") as handle:
            images.append(handle["images"][index - starts[shard]])
    selected = {name: values[chosen] for name, values in labels.items()}
    recipe = "multilattice" if "n_lattices" in labels and labels["n_lattices"].max() > 1 else "resolution"
    save_montage(np.stack(images), selected, output, columns=columns, title=f"{recipe}: {len(chosen)} random images")
    return len(chosen)
