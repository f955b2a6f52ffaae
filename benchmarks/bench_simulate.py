"""Simulator speed: Bragg rendering of one conditioned quadrant and of the full frame with 25 mosaic
domains, fast path vs the exact pixel-centred kernel, on the paper's detectors.

    python benchmarks/bench_simulate.py [--repeat 3] [--threads N] [--device cpu|cuda] [--quick]

PILATUS 6M quadrants are 1024×1024 raw pixels (2×2 blocks), EIGER 16M and Rayonix MX340-HS
quadrants 2048×2048 (4×4 blocks). The structure (a random protein-like P4₃2₁2 crystal,
79×79×38 Å, |F|² to 1 Å, built once with cctbx) is cached in the xrais structure cache.
Reference: nanoBragg (C, OpenMP, 2 threads) renders a PILATUS 6M quadrant with 25 domains in
about 0.9 s on the project's 2-core machines ("nB/fast": that time over the fast path's).
"""
from __future__ import annotations

import argparse
import resource
import time

import numba
import numpy as np

from xrais.io import Geometry, detectors
from xrais.sim import (Beam, DetectorEffects, Lattice, StructureFactors, blocks_in_crystal, cache_folder,
                       cells_per_domain, fluence_from_photons, mosaic_rotations, quadrant_window, random_rotation,
                       random_structure_factors, render_bragg, simulate_image, split_lattice)

CELL = (79.0, 79.0, 38.0, 90.0, 90.0, 90.0)
NANOBRAGG_QUADRANT_S = 0.9
#: (detector, distance mm, domain size Å, mosaic spread °, lattice shape, lattices, also the full frame)
SCENARIOS = (
    ("PILATUS 6M", 200.0, 1000.0, 0.3, "gauss_hkl", 1, True),
    ("PILATUS 6M", 200.0, 1500.0, 0.05, "gauss_hkl", 1, True),
    ("PILATUS 6M", 200.0, 500.0, 1.0, "gauss_hkl", 1, True),
    ("PILATUS 6M", 200.0, 1000.0, 0.3, "gauss", 1, True),
    ("EIGER 16M", 250.0, 1000.0, 0.3, "gauss_hkl", 1, False),
    ("Rayonix MX340-HS", 240.0, 1000.0, 0.005, "gauss_hkl", 3, False),
)


def structure() -> StructureFactors:
    stem = cache_folder() / "bench-P43212-79x79x38-d1"
    if not StructureFactors.exists(stem):
        random_structure_factors(2024, "P 43 21 2", CELL, d_min=1.0).save(stem)
    return StructureFactors.load(stem)


def best_time(function, repeat):
    """Best wall-clock time (s) of ``repeat`` runs, and best CPU time (s, all threads of this
    process): on a machine shared with other work, CPU time / threads estimates the idle wall time."""
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return min(wall), min(cpu)


def geometry_of(name, distance):
    model = detectors.get(name)
    centre = (model.shape[1] / 2 + 0.3, model.shape[0] / 2 + 0.7)
    return Geometry(distance, 0.9795, model.pixel_size, centre, model.shape, detector=model.name)


def lattices_of(domain, spread, shape, count, rng):
    cells = cells_per_domain(CELL, domain)
    lattice = Lattice.from_cell(CELL, random_rotation(np.random.default_rng(7)), cells=cells, shape=shape,
                                mosaic=mosaic_rotations(spread, 25, rng), blocks=blocks_in_crystal(25.0 ** 3, CELL, cells))
    return split_lattice(lattice, count, 1.0, rng, mosaic_spread_deg=spread)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement (the best is kept)")
    parser.add_argument("--threads", type=int, default=None, help="numba threads (default: all cores)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--quick", action="store_true", help="quadrants only, fast path only")
    args = parser.parse_args()
    if args.threads:
        numba.set_num_threads(args.threads)

    beam = Beam(0.9795, fluence_from_photons(4e11, 0.03))
    table = structure()
    print(f"25 mosaic domains, λ 0.9795 Å, device {args.device}, |F|² table {table.nbytes / 1e6:.0f} MB "
          f"(cell {CELL[:3]} Å); best of {args.repeat} runs")
    threads = numba.get_num_threads()
    print(f"wall-clock seconds, with [CPU seconds / {threads} threads] = the time on an otherwise idle machine")
    print(f"{'detector':>16} {'domain':>7} {'mosaic':>7} {'shape':>9} {'lat':>3} | {'quadrant':>8} "
          f"{'fast':>15} {'exact':>15} {'ratio':>6} {'nB/fast':>7} | {'frame fast':>15} {'exact':>15}")
    for name, distance, domain, spread, shape, count, full_frame in SCENARIOS:
        geometry = geometry_of(name, distance)
        quadrant = quadrant_window(geometry, 0)
        lattices = lattices_of(domain, spread, shape, count, np.random.default_rng(1))
        render_bragg(lattices, table, beam, geometry, window=(0, 8, 0, 8), device=args.device)  # compile, warm up
        windows = [("quadrant", quadrant)] + ([("frame", None)] if full_frame and not args.quick else [])
        paths = ("fast",) if args.quick else ("fast", "exact")
        times = {}
        for window_name, window in windows:
            for path in paths:
                times[window_name, path] = best_time(
                    lambda: render_bragg(lattices, table, beam, geometry, b_factor=20.0, window=window, path=path,
                                         device=args.device), args.repeat)
        def cell(key):
            wall, cpu = times[key]
            return f"{wall:6.3f}s [{cpu / threads:5.3f}]"

        idle = {key: cpu / threads for key, (_, cpu) in times.items()}
        row = f"{name:>16} {domain / 1e4:5.2f}µm {spread:6.3f}° {shape:>9} {count:3d} | {quadrant.shape[0]:>8d} "
        row += cell(("quadrant", "fast"))
        if not args.quick:
            row += f" {cell(('quadrant', 'exact'))} {idle['quadrant', 'exact'] / idle['quadrant', 'fast']:5.1f}x"
        if name == "PILATUS 6M":
            row += f" {NANOBRAGG_QUADRANT_S / idle['quadrant', 'fast']:6.1f}x"
        if ("frame", "fast") in times:
            row += f" | {cell(('frame', 'fast'))} {cell(('frame', 'exact'))}"
        print(row)

    geometry = geometry_of("PILATUS 6M", 200.0)
    lattices = lattices_of(1000.0, 0.3, "gauss_hkl", 1, np.random.default_rng(1))
    effects = DetectorEffects(beamstop_radius=3.0, hot_pixels=5, dead_pixels=124)
    layers = [("air", 5.0), ("water", 0.025), ("glycerol", 0.025)]
    whole = best_time(lambda: simulate_image(geometry, beam, np.random.default_rng(0), lattices=lattices,
                                             structure=table, b_factor=20.0, background=layers, photons=4e11,
                                             background_scale=0.3, effects=effects,
                                             window=quadrant_window(geometry, 0), device=args.device), args.repeat)
    print(f"whole PILATUS 6M quadrant image (Bragg 0.10 µm / 0.3° + air, water, glycerol background + Poisson noise, "
          f"beamstop, hot/dead pixels, gaps): {whole[0]:.3f}s [{whole[1] / threads:.3f}]")
    print(f"peak memory (max RSS of this process): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
