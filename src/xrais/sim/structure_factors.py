"""Dense P1 structure-factor tables: |F(h,k,l)|² on a box of Miller indices.

The kernels look up the node nearest to each scattering vector in this table (nanoBragg's
nearest-neighbour lookup); any index outside the box, or not given, has F = 0. Tables hold the
B = 0 intensities; the Debye–Waller factor exp(−2B·stol²) is applied per reflection by the kernels,
so one table serves every B factor. Tables are saved as ``<stem>.npy`` (memory-mappable, so the
workers of one machine share one copy) and ``<stem>.json`` (metadata).
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Optional, Tuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class StructureFactors:
    """|F|² table of a P1 unit cell (electrons²).

    intensities: float32 (nh, nk, nl) with intensities[h − h_min, k − k_min, l − l_min] = |F(h,k,l)|²;
    origin: (h_min, k_min, l_min); cell: (a, b, c, α, β, γ) in Å and degrees, when known;
    space_group: symbol of the model's space group (before expansion to P1); d_min: resolution
    limit (Å) of the table; label: free text naming the source (model file, random seed...).
    """

    intensities: np.ndarray
    origin: Tuple[int, int, int]
    cell: Optional[Tuple[float, ...]] = None
    space_group: str = "P 1"
    d_min: float = 0.0
    label: str = ""

    def __post_init__(self):
        table = np.asarray(self.intensities)
        if table.ndim != 3:
            raise ValueError(f"intensities must be a 3-D table, got shape {table.shape}")
        if table.dtype != np.float32:
            table = table.astype(np.float32)
        object.__setattr__(self, "intensities", table)
        object.__setattr__(self, "origin", tuple(int(v) for v in self.origin))
        if self.cell is not None:
            object.__setattr__(self, "cell", tuple(float(v) for v in self.cell))

    @classmethod
    def from_amplitudes(cls, h, k, l, amplitudes, **metadata) -> "StructureFactors":
        """Table from a reflection list (h, k, l integer arrays, |F| amplitudes). Every reflection
        the kernels may need must be listed, Friedel mates included (no symmetry is applied)."""
        h, k, l = (np.asarray(v, dtype=np.int64) for v in (h, k, l))
        amplitudes = np.asarray(amplitudes, dtype=np.float64)
        if not (h.shape == k.shape == l.shape == amplitudes.shape) or h.size == 0:
            raise ValueError("h, k, l and amplitudes must be non-empty arrays of one shape")
        origin = (int(h.min()), int(k.min()), int(l.min()))
        shape = (int(h.max()) - origin[0] + 1, int(k.max()) - origin[1] + 1, int(l.max()) - origin[2] + 1)
        table = np.zeros(shape, dtype=np.float32)
        table[h - origin[0], k - origin[1], l - origin[2]] = amplitudes * amplitudes
        return cls(table, origin, **metadata)

    @property
    def nbytes(self) -> int:
        return int(self.intensities.nbytes)

    def intensity(self, h, k, l):
        """|F|² at integer indices (0 outside the table)."""
        h, k, l = (np.asarray(v, dtype=np.int64) for v in (h, k, l))
        index = (h - self.origin[0], k - self.origin[1], l - self.origin[2])
        inside = np.ones(np.broadcast(h, k, l).shape, dtype=bool)
        for axis, i in enumerate(index):
            inside &= (i >= 0) & (i < self.intensities.shape[axis])
        values = np.zeros(inside.shape, dtype=np.float64)
        values[inside] = self.intensities[tuple(np.broadcast_to(i, inside.shape)[inside] for i in index)]
        return values

    def metadata(self) -> dict:
        return {"origin": list(self.origin), "shape": list(self.intensities.shape), "cell": self.cell,
                "space_group": self.space_group, "d_min": self.d_min, "label": self.label}

    def save(self, stem) -> None:
        """Write ``<stem>.npy`` and ``<stem>.json`` atomically (safe with concurrent writers)."""
        stem = Path(stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        suffix = f".tmp{os.getpid()}"
        table_tmp = stem.with_name(stem.name + suffix + ".npy")
        meta_tmp = stem.with_name(stem.name + suffix + ".json")
        np.save(table_tmp, self.intensities)
        meta_tmp.write_text(json.dumps(self.metadata()))
        os.replace(table_tmp, stem.with_name(stem.name + ".npy"))
        os.replace(meta_tmp, stem.with_name(stem.name + ".json"))

    @classmethod
    def load(cls, stem, mmap: bool = True) -> "StructureFactors":
        """Read a table written by :meth:`save` (memory-mapped read-only unless ``mmap`` is False)."""
        stem = Path(stem)
        meta = json.loads(stem.with_name(stem.name + ".json").read_text())
        table = np.load(stem.with_name(stem.name + ".npy"), mmap_mode="r" if mmap else None)
        if tuple(table.shape) != tuple(meta["shape"]):
            raise ValueError(f"{stem}: table shape {table.shape} disagrees with its metadata {meta['shape']}")
        return cls(table, tuple(meta["origin"]), cell=meta["cell"], space_group=meta["space_group"],
                   d_min=meta["d_min"], label=meta["label"])

    @staticmethod
    def exists(stem) -> bool:
        stem = Path(stem)
        return stem.with_name(stem.name + ".npy").exists() and stem.with_name(stem.name + ".json").exists()
