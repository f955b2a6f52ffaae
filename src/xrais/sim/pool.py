"""Disk cache of structure-factor tables, shared by simulation workers.

Building a structure with cctbx takes seconds and the tables do not depend on the image (B factor,
orientation, mosaicity, detector are applied at render time), so a pool of random structures is
built once and reused: entry i of a pool is fully determined by (seed, i, d_min, space groups...),
is written atomically the first time any worker needs it, and is memory-mapped afterwards.

Cache folder: the ``folder`` argument, else ``$XRAIS_CACHE/structures``, else
``~/.cache/xrais/structures``.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np

from .structure_factors import StructureFactors
from .structures import (MAX_TABLE_BYTES, PAPER_SPACE_GROUPS, PAPER_VOLUME_RANGE_A3, random_structure_factors,
                         structure_factors_from_model)


def cache_folder(folder=None) -> Path:
    """The structure cache folder (see the module docstring)."""
    if folder is not None:
        return Path(folder)
    root = os.environ.get("XRAIS_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "xrais") / "structures"


class StructurePool:
    """``size`` random protein-like structures (see :func:`random_structure_factors`) cached on disk.

    seed: pool seed (entry i uses the seed sequence (seed, i)); d_min: table resolution (Å), the
    highest resolution any image rendered with the pool reaches; space_groups, volume_range (Å³),
    max_table_bytes: as :func:`random_structure_factors`.
    """

    def __init__(self, size: int = 100, seed: int = 0, d_min: float = 1.0, folder=None,
                 space_groups: Sequence[str] = PAPER_SPACE_GROUPS, volume_range=PAPER_VOLUME_RANGE_A3,
                 max_table_bytes: int = MAX_TABLE_BYTES):
        if size < 1:
            raise ValueError(f"pool size must be ≥ 1, got {size}")
        self.size = int(size)
        self.seed = int(seed)
        self.d_min = float(d_min)
        self.folder = cache_folder(folder)
        self.space_groups = tuple(space_groups)
        self.volume_range = tuple(float(v) for v in volume_range)
        self.max_table_bytes = int(max_table_bytes)
        settings = json.dumps([self.seed, self.d_min, self.space_groups, self.volume_range, self.max_table_bytes])
        self._tag = hashlib.sha1(settings.encode()).hexdigest()[:10]

    def stem(self, index: int) -> Path:
        """Path stem (without .npy/.json) of entry ``index``."""
        return self.folder / f"random-{self._tag}-{index:05d}"

    def get(self, index: int) -> StructureFactors:
        """Entry ``index`` (0 ≤ index < size): loaded (memory-mapped) if cached, else built and cached."""
        if not 0 <= index < self.size:
            raise IndexError(f"pool entry {index} out of range 0..{self.size - 1}")
        stem = self.stem(index)
        if not StructureFactors.exists(stem):
            random_structure_factors(np.random.SeedSequence([self.seed, index]), d_min=self.d_min,
                                     space_groups=self.space_groups, volume_range=self.volume_range,
                                     max_table_bytes=self.max_table_bytes).save(stem)
        return StructureFactors.load(stem)

    def draw(self, rng: np.random.Generator) -> StructureFactors:
        """A random entry of the pool."""
        return self.get(int(rng.integers(self.size)))

    def missing(self) -> List[int]:
        """The entries not built (cached) yet."""
        return [index for index in range(self.size) if not StructureFactors.exists(self.stem(index))]

    def build(self, indices: Optional[Sequence[int]] = None,
              progress: Optional[Callable[[int], None]] = None) -> None:
        """Build (if missing) the given entries, all by default; e.g. before starting workers.

        progress(1): called as each entry is ready (a few seconds each for one to build with cctbx)."""
        for index in range(self.size) if indices is None else indices:
            self.get(int(index))
            if progress is not None:
                progress(1)


def model_structure_factors(path, d_min: float = 1.0, folder=None) -> StructureFactors:
    """:func:`structure_factors_from_model` of a PDB/mmCIF file, cached on disk by file content."""
    path = Path(path)
    digest = hashlib.sha1(path.read_bytes()).hexdigest()[:16]
    stem = cache_folder(folder) / f"model-{path.stem}-{digest}-d{d_min:g}"
    if not StructureFactors.exists(stem):
        structure_factors_from_model(path, d_min=d_min).save(stem)
    return StructureFactors.load(stem)
