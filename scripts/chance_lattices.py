"""How many spots a lattice found by chance indexes: the calibration behind
``xrais.lattice.indexing.CHANCE_INDEXED`` (a further lattice is kept only well above it).

A frame's leftover spots (those its first lattice leaves) are few and, on a single crystal, carry
no lattice: noise, spots the spot finder split, reflections off their nodes. The basis search
still returns its best cell, and that cell indexes a share of any points (more of fewer points,
and more with a longer cell). Here: n points drawn uniformly over the detector-facing Ewald cap
(λ = 1 Å, out to 1/d = 0.25–0.6 Å⁻¹, as spots spread), searched with :func:`index_lattice` at a
given longest cell edge; per (n, max_cell), the given quantile over draws of the points its
lattice indexes (0 when none is found).

``--known-cell``: the same for a further lattice of a cell already found
(``xrais.lattice.indexing.orient_known_cell``, behind ``CHANCE_INDEXED_KNOWN_CELL``): the best
orientation of a known cell (small, thaumatin-like and long) in n random points, down to 8 points.
``--known-cell --pairs``: the same for the pair search that orients a known cell without a basis
search (``orient_known_cell_from_pairs``, behind ``CHANCE_INDEXED_KNOWN_CELL_PAIRS``).

    python scripts/chance_lattices.py [--draws 24] [--quantile 0.99] [--seed 0] [--known-cell [--pairs]]
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

COUNTS = (15, 20, 30, 50, 80, 120, 200)
MAX_CELLS = (60.0, 120.0, 250.0)
KNOWN_CELL_COUNTS = (8, 10, 15, 20, 30, 50, 80, 120, 200)
#: Known cells (Å, orthogonal edges): small, thaumatin-like, long.
KNOWN_CELLS = ((38.0, 44.0, 52.0), (58.5, 58.5, 151.0), (80.0, 100.0, 240.0))


def random_cap(n: int, rng: np.random.Generator, inverse_wavelength: float = 1.0) -> np.ndarray:
    """n scattering vectors (Å⁻¹) uniform in solid angle on the Ewald sphere out to a random
    1/d of 0.25–0.6 Å⁻¹ (beam along +x, the lab frame of xrais.spotfinder)."""
    reach = rng.uniform(0.25, 0.6)
    max_angle = 2.0 * np.arcsin(reach / (2.0 * inverse_wavelength))
    cos_two_theta = rng.uniform(np.cos(max_angle), np.cos(0.02), n)
    azimuth = rng.uniform(0.0, 2.0 * np.pi, n)
    sin_two_theta = np.sqrt(1.0 - cos_two_theta ** 2)
    s1 = np.stack([cos_two_theta, sin_two_theta * np.cos(azimuth), sin_two_theta * np.sin(azimuth)], axis=1)
    return inverse_wavelength * (s1 - np.array([1.0, 0.0, 0.0]))


def main():
    from xrais.lattice import IndexingSettings, index_lattice
    from xrais.lattice.indexing import orient_known_cell, orient_known_cell_from_pairs
    from xrais.sim import random_rotation

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=24)
    parser.add_argument("--quantile", type=float, default=0.99)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--known-cell", action="store_true", help="a known cell's best orientation instead")
    parser.add_argument("--pairs", action="store_true", help="with --known-cell: found by the pair search")
    args = parser.parse_args()
    if args.pairs and not args.known_cell:
        parser.error("--pairs calibrates a known cell's search: give --known-cell too")
    # every lattice, however few it indexes: the chance distribution itself
    settings = dataclasses.replace(IndexingSettings(), min_lattice_spots=0, min_spots=COUNTS[0])
    rng = np.random.default_rng(args.seed)
    started = time.time()
    print(f"fraction of n random spots the best lattice indexes ({args.quantile:.0%} quantile of {args.draws} draws)")
    columns = KNOWN_CELLS if args.known_cell else MAX_CELLS
    print("n".rjust(5) + "".join(f"{'×'.join(f'{e:g}' for e in c) if args.known_cell else f'≤ {c:g} Å':>16}"
                                 for c in columns))

    def search(points, column):
        if args.known_cell:
            orient = orient_known_cell_from_pairs if args.pairs else orient_known_cell
            return orient(points, np.diag(column) @ random_rotation(rng).T, settings)
        return index_lattice(points, settings, column)

    table = {}
    for n in KNOWN_CELL_COUNTS if args.known_cell else COUNTS:
        row = []
        for column in columns:
            found = [search(random_cap(n, rng), column) for _ in range(args.draws)]
            fractions = [0.0 if lattice is None else lattice.n_indexed / n for lattice in found]
            row.append(float(np.quantile(fractions, args.quantile)))
        table[n] = row
        print(f"{n:5d}" + "".join(f"{value:16.3f}" for value in row), flush=True)
    name = "CHANCE_INDEXED" + ("_KNOWN_CELL" if args.known_cell else "") + ("_PAIRS" if args.pairs else "")
    print(f"({time.time() - started:.0f} s) as {name}:")
    print("{" + ", ".join(f"{n}: ({', '.join(f'{v:.2f}' for v in row)})" for n, row in table.items()) + "}")


if __name__ == "__main__":
    main()
