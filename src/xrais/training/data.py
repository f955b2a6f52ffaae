"""Training data: HDF5 shards of conditioned quadrants written by ``xrais.simulate``.

A shard holds ``images`` (n, 512, 512) uint16, a ``labels`` group of 1-D columns (``inverse_d``
Å⁻¹, ``is_multi``, geometry ``wavelength`` Å, ``distance`` mm, ``pixel_size`` mm,
``downsample``…) and attributes (``recipe``, ``complete``, ``seed``, ``first_index``…).

The validation split is decided per image from its identity — (recipe, seed, image number) when
the shard records them, else (shard file name, row) — hashed with the split seed, so the same
image is always on the same side whatever the shard order, and adding shards moves no image.
"""
from __future__ import annotations

import dataclasses
import glob
import hashlib
import logging
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from ..io.errors import XraisError

log = logging.getLogger(__name__)

IMAGE_SHAPE = (512, 512)
IMAGE_BYTES = IMAGE_SHAPE[0] * IMAGE_SHAPE[1] * 2
GEOMETRY_LABELS = ("wavelength", "distance", "pixel_size", "downsample")
TARGET_LABEL = {"resolution": "inverse_d", "multilattice": "is_multi"}
#: Columns read when the shards record them (all of them; a column only some shards have is left
#: out): the detector's name, the smallest misorientation between lattices (degrees), the rotation
#: wedge (degrees; 0 for a still) and the ice's thickness (µm; recipes from resolution v6 on).
OPTIONAL_LABELS = ("detector", "lattice_split_deg", "rotation_wedge_deg", "ice_um")


class DataError(XraisError):
    """Training data cannot be used: the message names the file and the problem."""


@dataclasses.dataclass
class ShardSet:
    """The images of a set of shard files, with their labels.

    paths: shard files; shard: (n,) index into ``paths`` of each image; row: (n,) its row in
    that shard; labels: (n,) columns (targets, geometry, ``detector`` when recorded);
    identity: (n,) stable image names; recipe: the shards' recipe.
    """

    paths: List[str]
    shard: np.ndarray
    row: np.ndarray
    labels: Dict[str, np.ndarray]
    identity: np.ndarray
    recipe: str

    def __len__(self) -> int:
        return len(self.row)

    def target(self, kind: str) -> np.ndarray:
        """float32 (n,) training target: 1/d (Å⁻¹) or is_multi (0/1)."""
        return self.labels[TARGET_LABEL[kind]].astype(np.float32)

    def geometry(self) -> np.ndarray:
        """float32 (n, 4): wavelength Å, distance mm, pixel size mm, downsample factor."""
        return np.stack([self.labels[c].astype(np.float32) for c in GEOMETRY_LABELS], axis=1)

    def summary(self, indices: Optional[np.ndarray] = None) -> dict:
        """Counts for the logs and the model card: images, shards, per-detector images."""
        indices = np.arange(len(self)) if indices is None else indices
        summary = {"images": int(len(indices)), "shards": len(self.paths), "recipe": self.recipe}
        if "detector" in self.labels:
            names, counts = np.unique(self.labels["detector"][indices].astype(str), return_counts=True)
            summary["detectors"] = {str(n): int(c) for n, c in zip(names, counts)}
        return summary


def find_shards(inputs: Sequence[str]) -> List[str]:
    """Shard files from files and folders (a folder's ``*.h5``, sorted)."""
    paths: List[str] = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(glob.glob(os.path.join(item, "*.h5")))
            if not found:
                raise DataError(f"{item}: folder holds no shard files (*.h5)")
            paths.extend(found)
        elif os.path.isfile(item):
            paths.append(item)
        else:
            raise DataError(f"{item}: no such file or folder")
    if not paths:
        raise DataError("no training data given (shard folders or .h5 files)")
    return paths


def open_shards(inputs: Sequence[str], kind: Optional[str] = None) -> ShardSet:
    """Index shard files (folders or files). Incomplete shards are skipped with a warning; labels
    needed for ``kind`` (and the geometry) must be present."""
    import h5py
    import hdf5plugin  # noqa: F401  (registers the LZ4 filter)

    needed = list(GEOMETRY_LABELS) + ([TARGET_LABEL[kind]] if kind else list(TARGET_LABEL.values()))
    paths, shards, rows, identities, recipes = [], [], [], [], set()
    columns: Dict[str, list] = {}
    skipped = []
    for path in find_shards(inputs):
        try:
            handle = h5py.File(path, "r")
        except OSError as exc:
            raise DataError(f"{path}: not a readable HDF5 shard ({exc})") from None
        with handle:
            if not bool(handle.attrs.get("complete", False)):
                skipped.append(path)
                continue
            if "images" not in handle or "labels" not in handle:
                raise DataError(f"{path}: not an xrais shard (needs 'images' and a 'labels' group)")
            images = handle["images"]
            if images.ndim != 3 or tuple(images.shape[1:]) != IMAGE_SHAPE:
                raise DataError(f"{path}: images have shape {images.shape}, expected (n, 512, 512)")
            n = images.shape[0]
            group = handle["labels"]
            missing = [c for c in needed if c not in group]
            if missing:
                raise DataError(f"{path}: label column(s) {', '.join(missing)} missing")
            for name in needed + [name for name in OPTIONAL_LABELS if name in group]:
                values = group[name][()]
                if len(values) != n:
                    raise DataError(f"{path}: label column {name} has {len(values)} values for {n} images")
                if values.dtype.kind in "OS":
                    values = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=object)
                columns.setdefault(name, []).append(values)
            recipe = _text(handle.attrs.get("recipe", "unknown"))
            recipes.add(recipe)
            identities.append(_identities(handle.attrs, recipe, os.path.basename(path), n))
            shards.append(np.full(n, len(paths), dtype=np.int32))
            rows.append(np.arange(n, dtype=np.int64))
            paths.append(path)
    if skipped:
        log.warning("skipped %d incomplete shard(s) (still being written, or their writer was killed): %s",
                    len(skipped), ", ".join(skipped[:5]) + (" …" if len(skipped) > 5 else ""))
    if not paths:
        raise DataError("no complete shard among the inputs" + (f" ({len(skipped)} incomplete)" if skipped else ""))
    for name in OPTIONAL_LABELS:
        if name in columns and len(columns[name]) != len(paths):
            del columns[name]  # recorded by some shards only
    labels = {name: np.concatenate(parts) for name, parts in columns.items()}
    identity = np.concatenate(identities)
    if len(np.unique(identity)) != len(identity):
        raise DataError("the same image appears twice among the inputs (a shard given twice, or two runs with one seed)")
    return ShardSet(paths, np.concatenate(shards), np.concatenate(rows), labels, identity,
                    recipe=recipes.pop() if len(recipes) == 1 else "mixed")


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _identities(attrs, recipe: str, file_name: str, n: int) -> np.ndarray:
    if "seed" in attrs and "first_index" in attrs:
        first = int(attrs["first_index"])
        return np.array([f"{recipe}:{int(attrs['seed'])}:{first + k}" for k in range(n)], dtype=object)
    return np.array([f"{file_name}:{k}" for k in range(n)], dtype=object)


def validation_mask(identity: Sequence[str], fraction: float, seed: int) -> np.ndarray:
    """True for the images held out for validation: a hash of (seed, identity) below ``fraction``."""
    scale = float(1 << 64)
    values = np.array([int.from_bytes(hashlib.blake2b(f"{seed}:{name}".encode(), digest_size=8).digest(), "little") / scale
                       for name in identity])
    return values < fraction


class ShardReader:
    """Reads single images from shards; keeps one open handle per file and process."""

    def __init__(self, shards: ShardSet):
        self.shards = shards
        self._handles: Dict[int, object] = {}
        self._pid = None

    def read(self, index: int) -> np.ndarray:
        """Image ``index`` of the shard set: uint16 (512, 512)."""
        import h5py
        import hdf5plugin  # noqa: F401

        if self._pid != os.getpid():  # never share HDF5 handles across fork()
            self._handles, self._pid = {}, os.getpid()
        shard = int(self.shards.shard[index])
        handle = self._handles.get(shard)
        if handle is None:
            handle = self._handles[shard] = h5py.File(self.shards.paths[shard], "r")
        return handle["images"][int(self.shards.row[index])]

    def read_many(self, indices: np.ndarray, progress=None) -> np.ndarray:
        """uint16 (len(indices), 512, 512) array of the images, read shard by shard in row order."""
        out = np.empty((len(indices),) + IMAGE_SHAPE, dtype=np.uint16)
        order = np.lexsort((self.shards.row[indices], self.shards.shard[indices]))
        for position in order:
            out[position] = self.read(int(indices[position]))
            if progress is not None:
                progress.update(1)
        return out


def memory_available() -> Optional[int]:
    """Bytes of memory available to new allocations (Linux /proc/meminfo), None if unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def should_cache(mode: str, n_images: int, processes_per_node: int = 1) -> bool:
    """Whether to hold the decoded images in memory: mode "yes", "no", or "auto" (when they take
    less than half the available memory, shared by the node's processes)."""
    if mode in ("yes", "no"):
        return mode == "yes"
    available = memory_available()
    return available is not None and n_images * IMAGE_BYTES * processes_per_node < 0.5 * available


def transpositions(seed: int, epoch: int, count: int) -> np.ndarray:
    """Which of ``count`` images an epoch transposes (the augmentation): from (seed, epoch) alone,
    the same in every process."""
    return np.random.default_rng([seed, epoch]).random(count) < 0.5


class QuadrantDataset(torch.utils.data.Dataset):
    """(image float32 (512, 512), geometry float32 (4,), target float32) for some images of a shard set.

    indices: images of ``shards`` in this dataset; kind: "resolution" or "multilattice"; augment:
    transpose half of the images (swapping slow and fast keeps the beam at [0, 0]), chosen afresh
    each epoch from (seed, epoch), the same in every process; images: their decoded pixels, if
    cached in memory (else read from the shards on demand).
    """

    def __init__(self, shards: ShardSet, indices: np.ndarray, kind: str, augment: bool = False, seed: int = 0,
                 images: Optional[np.ndarray] = None):
        self.shards = shards
        self.indices = np.asarray(indices, dtype=np.int64)
        self.reader = ShardReader(shards)
        self.images = images
        self.geometry = torch.from_numpy(shards.geometry()[self.indices])
        self.target = torch.from_numpy(shards.target(kind)[self.indices])
        self.augment = augment
        self.seed = seed
        self.transpose = np.zeros(len(self.indices), dtype=bool)

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's transpositions (call before iterating; worker processes copy them)."""
        if self.augment:
            self.transpose = transpositions(self.seed, epoch, len(self.indices))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        image = self.images[i] if self.images is not None else self.reader.read(int(self.indices[i]))
        if self.transpose[i]:
            image = image.T
        return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)), self.geometry[i], self.target[i]
