"""Training datasets at scale: sharded HDF5 files of conditioned quadrants + label tables.

Layout of one shard (``<recipe>_<shard:05d>.h5``):

* ``images``: (n, 512, 512) uint16 conditioned quadrants (beam at [0, 0]); chunk = one image,
  gzip + shuffle (readable everywhere) or LZ4 (``hdf5plugin``);
* ``labels/<column>``: one 1-D dataset per label column (see :meth:`ImageSpec.label_columns`);
* attrs ``recipe``, ``recipe_version``, ``seed``, ``first_index``, ``n_images``, ``xrais_version``,
  ``complete``.

Image *i* of a run is drawn from ``(seed, i)`` alone, so shards can be made in any order, by any
number of processes or MPI ranks, and a killed run resumes by making only the shards that are not
complete (a shard is written to a ``.partial`` file and renamed when finished): nothing is
duplicated and nothing is lost.
"""
from __future__ import annotations

import dataclasses
import glob
import logging
import os
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np

from .recipes import RECIPE_VERSIONS

log = logging.getLogger(__name__)

SHARD_PATTERN = "{recipe}_{shard:05d}.h5"
IMAGE_SHAPE = (512, 512)


@dataclasses.dataclass(frozen=True)
class ShardPlan:
    """Which images a shard holds: indices [first, stop)."""

    shard: int
    first: int
    stop: int

    @property
    def n_images(self) -> int:
        return self.stop - self.first

    def path(self, directory: str, recipe: str) -> str:
        return os.path.join(directory, SHARD_PATTERN.format(recipe=recipe, shard=self.shard))


def plan_shards(n_images: int, shard_size: int) -> List[ShardPlan]:
    """Split image indices 0..n_images-1 into consecutive shards of ``shard_size``."""
    if n_images < 1 or shard_size < 1:
        raise ValueError("n_images and shard_size must be positive")
    return [ShardPlan(k, start, min(n_images, start + shard_size))
            for k, start in enumerate(range(0, n_images, shard_size))]


def shard_is_complete(path: str, plan: ShardPlan, recipe: str, seed: int) -> bool:
    """True when a finished shard of exactly this plan, recipe and seed exists at ``path``."""
    import h5py

    if not os.path.exists(path):
        return False
    try:
        with h5py.File(path, "r") as handle:
            attrs = handle.attrs
            return (bool(attrs.get("complete", False)) and attrs.get("recipe") == recipe
                    and int(attrs.get("recipe_version", 1)) == RECIPE_VERSIONS[recipe]
                    and int(attrs.get("seed", -1)) == seed and int(attrs.get("first_index", -1)) == plan.first
                    and int(attrs.get("n_images", -1)) == plan.n_images and handle["images"].shape[0] == plan.n_images)
    except (OSError, KeyError):
        return False


def remove_partials(directory: str, recipe: str) -> None:
    """Delete the ``.partial`` shards a killed run left behind (they are made again)."""
    for stale in glob.glob(os.path.join(directory, f".{recipe}_*.h5.partial")):
        os.remove(stale)


def pending_shards(directory: str, recipe: str, seed: int, plans: Sequence[ShardPlan]) -> List[ShardPlan]:
    """Plans whose shard is not complete yet."""
    return [plan for plan in plans if not shard_is_complete(plan.path(directory, recipe), plan, recipe, seed)]


def compression_options(name: str) -> Dict[str, object]:
    """h5py dataset keywords for a compression name: "gzip" (default) or "lz4"."""
    if name == "gzip":
        return {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    if name == "lz4":
        import hdf5plugin

        return dict(hdf5plugin.LZ4())
    raise ValueError(f"unknown compression {name!r} (gzip or lz4)")


def write_shard(path: str, plan: ShardPlan, recipe: str, seed: int,
                images: Iterable, compression: str = "gzip") -> None:
    """Write a shard from an iterable of (uint16 image (512, 512), label columns dict), atomically."""
    import h5py

    from .. import __version__

    partial = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".partial")
    columns: Dict[str, list] = {}
    with h5py.File(partial, "w") as handle:
        handle.attrs.update({"recipe": recipe, "recipe_version": RECIPE_VERSIONS[recipe], "seed": seed,
                             "first_index": plan.first, "n_images": plan.n_images, "xrais_version": __version__,
                             "complete": False})
        dataset = handle.create_dataset("images", shape=(plan.n_images,) + IMAGE_SHAPE, dtype=np.uint16,
                                        chunks=(1,) + IMAGE_SHAPE, **compression_options(compression))
        written = 0
        for k, (image, labels) in enumerate(images):
            dataset[k] = image
            for name, value in labels.items():
                columns.setdefault(name, []).append(value)
            written += 1
        if written != plan.n_images:
            raise RuntimeError(f"shard {plan.shard}: {written} images made, {plan.n_images} planned")
        group = handle.create_group("labels")
        for name, values in columns.items():
            if isinstance(values[0], str):
                group.create_dataset(name, data=np.array(values, dtype=object), dtype=h5py.string_dtype())
            else:
                group.create_dataset(name, data=np.asarray(values))
        handle.attrs["complete"] = True
    os.replace(partial, path)


def read_labels(paths: Sequence[str]) -> Dict[str, np.ndarray]:
    """Label columns of several shards, concatenated in the given order. A column that only some
    shards have (one added to the recipe's records since the others were made) is left out."""
    import h5py

    merged: Dict[str, list] = {}
    for path in paths:
        with h5py.File(path, "r") as handle:
            for name, dataset in handle["labels"].items():
                values = dataset[()]
                if dataset.dtype.kind == "O":
                    values = np.array([v.decode() if isinstance(v, bytes) else v for v in values], dtype=object)
                merged.setdefault(name, []).append(values)
    partial = sorted(name for name, parts in merged.items() if len(parts) != len(paths))
    if partial:
        log.info("label column(s) %s missing from some shards: left out", ", ".join(partial))
    return {name: np.concatenate(parts) for name, parts in merged.items() if name not in partial}


def shard_paths(directory: str, recipe: Optional[str] = None) -> List[str]:
    """Complete-looking shard files of a dataset folder, sorted."""
    pattern = f"{recipe}_*.h5" if recipe else "*.h5"
    return sorted(p for p in glob.glob(os.path.join(directory, pattern)))


def run_shards(plans: Sequence[ShardPlan], make_shard: Callable[[ShardPlan], None], nproc: int = 1,
               progress: Optional[Callable[[int], None]] = None, initializer=None, initargs=()) -> None:
    """Make shards in this process (nproc=1) or in a pool of ``nproc`` worker processes.

    ``make_shard`` must be a picklable module-level callable; ``progress(n_images)`` is called in
    this process as each shard finishes.
    """
    if nproc <= 1 or len(plans) <= 1:
        if initializer is not None:
            initializer(*initargs)
        for plan in plans:
            make_shard(plan)
            if progress:
                progress(plan.n_images)
        return
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with context.Pool(processes=min(nproc, len(plans)), initializer=initializer, initargs=initargs,
                      maxtasksperchild=None) as pool:
        for plan in pool.imap_unordered(_call_and_return, [(make_shard, p) for p in plans]):
            if progress:
                progress(plan.n_images)


def _call_and_return(job):
    function, plan = job
    function(plan)
    return plan
