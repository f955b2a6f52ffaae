"""Crystal lattices: oriented unit cells, mosaic domains, crystal size, multiple lattices.

A :class:`Lattice` is one crystal lattice (one orientation) made of identical mosaic domains of
Na × Nb × Nc unit cells, each domain slightly rotated (nanoBragg's mosaic model), and ``blocks``
such domains in the crystal (the image of one domain is multiplied by it).
"""
from __future__ import annotations

import dataclasses
import math
from typing import List, Sequence, Tuple

import numpy as np

from ..lattice.cell import cell_volume, default_orientation

#: Lattice-transform shapes. "square", "round", "gauss" and "tophat" are nanoBragg's
#: -square_xtal, -round_xtal, -gauss_xtal and -tophat_spots exactly as coded (the gauss and tophat
#: widths scale with 1/(Na·Nb·Nc) in Å⁻¹, a nanoBragg quirk); "gauss_hkl" is a Gaussian in
#: fractional-index space, exp(−Σ Nᵢ²Δhᵢ²/0.63), whose width along each axis is the physical
#: 1/(Nᵢ·cell edge) of a domain of Nᵢ cells.
LATTICE_SHAPES = ("square", "round", "gauss", "gauss_hkl", "tophat")


def rotation_x(angle):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rotation_y(angle):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rotation_z(angle):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def misset_rotation(misset_deg) -> np.ndarray:
    """nanoBragg's ``-misset rx ry rz`` (degrees): Rz·Ry·Rx, x applied first."""
    rx, ry, rz = np.radians(np.asarray(misset_deg, dtype=float))
    return rotation_z(rz) @ rotation_y(ry) @ rotation_x(rx)


def axis_angle_rotation(axis, angle) -> np.ndarray:
    """Rotation matrix for ``angle`` (radians, right-handed) about ``axis``."""
    axis = np.asarray(axis, dtype=float)
    axis = axis / np.linalg.norm(axis)
    cross = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    return np.eye(3) + math.sin(angle) * cross + (1.0 - math.cos(angle)) * cross @ cross


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniformly distributed random rotation (Haar measure), from a random unit quaternion."""
    w, x, y, z = _random_unit_vector(rng, 4)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def _random_unit_vector(rng, dimension=3):
    while True:
        v = rng.standard_normal(dimension)
        norm = np.linalg.norm(v)
        if norm > 1e-6:
            return v / norm


def mosaic_rotations(spread_deg: float, domains: int, rng: np.random.Generator) -> np.ndarray:
    """Rotations (domains, 3, 3) of the mosaic domains, nanoBragg's model: the first domain is
    unrotated; the others turn about uniformly random axes by spread·(1 − u²)^(1/3) with u uniform
    on [−1, 1] (so ``spread_deg`` is the largest rotation, in degrees)."""
    if domains < 1:
        raise ValueError(f"need at least one mosaic domain, got {domains}")
    rotations = np.empty((domains, 3, 3))
    rotations[0] = np.eye(3)
    spread = math.radians(spread_deg)
    for i in range(1, domains):
        axis = _random_unit_vector(rng)
        u = rng.uniform(-1.0, 1.0)
        rotations[i] = axis_angle_rotation(axis, spread * (1.0 - u * u) ** (1.0 / 3.0))
    return rotations


def rotation_exposure(mosaic: np.ndarray, wedge_deg: float, spindle_axis, rng: np.random.Generator) -> np.ndarray:
    """The domains (domains, 3, 3) of a rotation exposure: mosaic domain j also turned about
    ``spindle_axis`` (lab frame) by φⱼ, the φⱼ spread evenly over the wedge (one in each of
    ``domains`` equal parts of it, at a random place in its part), centred on the nominal
    orientation. Every φ of the wedge is exposed for the same time, so the image is the mean of the
    stills at these φⱼ, as nanoBragg's ``-phi -osc -phisteps`` sums its φ steps (a reflection is
    ≈ 0.1° wide, so steps of ≤ 0.05° render it whole); a wedge of 0 returns ``mosaic``."""
    mosaic = np.asarray(mosaic, dtype=float).reshape(-1, 3, 3)
    if wedge_deg <= 0.0:
        return mosaic
    domains = len(mosaic)
    phis = math.radians(wedge_deg) * ((np.arange(domains) + rng.uniform(0.0, 1.0, domains)) / domains - 0.5)
    return np.stack([axis_angle_rotation(spindle_axis, phi) @ rotation for phi, rotation in zip(phis, mosaic)])


def reciprocal_vectors(real_vectors) -> np.ndarray:
    """Reciprocal vectors (rows a*, b*, c*, Å⁻¹) of real-space vectors (rows a, b, c, Å)."""
    return np.linalg.inv(np.asarray(real_vectors, dtype=float)).T


def cells_per_domain(cell, domain_size_A: float) -> Tuple[int, int, int]:
    """Unit cells (Na, Nb, Nc) along a, b, c in a domain of edge ``domain_size_A`` (Å), at least 1."""
    return tuple(max(1, int(round(domain_size_A / float(edge)))) for edge in cell[:3])


def blocks_in_crystal(crystal_volume_um3: float, cell, cells) -> float:
    """Number of mosaic domains of ``cells`` = (Na, Nb, Nc) unit cells of ``cell`` (a, b, c, α, β, γ)
    in a crystal of ``crystal_volume_um3`` (µm³): the factor that scales the image of one domain to
    the whole crystal (e.g. a 25 µm cube: 25³ µm³)."""
    return float(crystal_volume_um3) * 1e12 / (cell_volume(cell) * float(np.prod(cells)))


@dataclasses.dataclass(frozen=True)
class Lattice:
    """One crystal lattice.

    real_vectors: (3, 3) rows a, b, c (Å, lab frame) of the nominal (unrotated-domain) lattice;
    cells: (Na, Nb, Nc) unit cells per mosaic domain; shape: lattice transform (one of
    :data:`LATTICE_SHAPES`); mosaic: (domains, 3, 3) rotations of the domains about the nominal
    orientation (:func:`mosaic_rotations`); blocks: number of domains in the crystal, the factor
    on the image of one domain (:func:`blocks_in_crystal`; 1 renders a single domain like nanoBragg).
    """

    real_vectors: np.ndarray
    cells: Tuple[int, int, int] = (1, 1, 1)
    shape: str = "gauss_hkl"
    mosaic: np.ndarray = dataclasses.field(default_factory=lambda: np.eye(3)[None])
    blocks: float = 1.0

    def __post_init__(self):
        vectors = np.array(self.real_vectors, dtype=np.float64).reshape(3, 3)
        if abs(np.linalg.det(vectors)) < 1e-6:
            raise ValueError("real_vectors are degenerate")
        object.__setattr__(self, "real_vectors", vectors)
        object.__setattr__(self, "cells", tuple(int(n) for n in self.cells))
        if min(self.cells) < 1:
            raise ValueError(f"cells per domain must be ≥ 1, got {self.cells}")
        if self.shape not in LATTICE_SHAPES:
            raise ValueError(f"unknown lattice shape {self.shape!r}; choose from {LATTICE_SHAPES}")
        mosaic = np.array(self.mosaic, dtype=np.float64).reshape(-1, 3, 3)
        object.__setattr__(self, "mosaic", mosaic)
        object.__setattr__(self, "blocks", float(self.blocks))

    @classmethod
    def from_cell(cls, cell, orientation=None, **kwargs) -> "Lattice":
        """A lattice of ``cell`` (a, b, c, α, β, γ) rotated by ``orientation`` (3×3, default
        identity) from nanoBragg's default orientation."""
        vectors = default_orientation(cell)
        if orientation is not None:
            vectors = vectors @ np.asarray(orientation, dtype=float).T
        return cls(vectors, **kwargs)

    def replace(self, **changes) -> "Lattice":
        return dataclasses.replace(self, **changes)

    def rotated(self, rotation) -> "Lattice":
        """The same lattice turned by ``rotation`` (3×3) about the sample position."""
        return self.replace(real_vectors=self.real_vectors @ np.asarray(rotation, dtype=float).T)

    @property
    def reciprocal_vectors(self) -> np.ndarray:
        return reciprocal_vectors(self.real_vectors)

    def domain_vectors(self) -> np.ndarray:
        """Real-space vectors of every mosaic domain, (domains, 3, 3): rows a, b, c (Å)."""
        return np.einsum("mij,aj->mai", self.mosaic, self.real_vectors)

    def largest_mosaic_chord(self) -> float:
        """max over domains of 2·sin(θ/2) for their rotation angle θ: the largest relative
        displacement |U·x − x|/|x| any domain applies to a vector."""
        traces = np.clip((np.trace(self.mosaic, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)
        return float(np.max(2.0 * np.sin(np.arccos(traces) / 2.0)))


def split_lattice(lattice: Lattice, count: int, sigma_deg: float, rng: np.random.Generator,
                  mosaic_spread_deg: float = 0.0) -> List[Lattice]:
    """``count`` lattices of a split crystal (paper section 2.1.2): the first is ``lattice``, each
    other one is turned about a random axis by an angle drawn from N(0, σ) (degrees) and gets its
    own mosaic domains (same number, spread ``mosaic_spread_deg``)."""
    lattices = [lattice]
    domains = lattice.mosaic.shape[0]
    for _ in range(count - 1):
        turn = axis_angle_rotation(_random_unit_vector(rng), math.radians(rng.normal(0.0, sigma_deg)))
        lattices.append(lattice.rotated(turn).replace(mosaic=mosaic_rotations(mosaic_spread_deg, domains, rng)))
    return lattices


def as_lattice_list(lattices) -> Sequence[Lattice]:
    """A single :class:`Lattice` or a sequence of them → a non-empty list."""
    if isinstance(lattices, Lattice):
        return [lattices]
    lattices = list(lattices)
    if not lattices:
        raise ValueError("need at least one lattice")
    return lattices
