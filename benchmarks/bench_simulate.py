"""Simulator speed: Bragg rendering of one conditioned quadrant and of the full frame with 25 mosaic
domains, fast path vs the exact pixel-centred kernel, on the paper's detectors.

    python benchmarks/bench_simulate.py [--repeat 3] [--threads N] [--device cpu|cuda] [--quick]
                                        [--nanobragg PATH [--nanobragg-threads 2] [--nanobragg-only]]

PILATUS 6M quadrants are 1024×1024 raw pixels (2×2 blocks), EIGER 16M and Rayonix MX340-HS
quadrants 2048×2048 (4×4 blocks). The structure (a random protein-like P4₃2₁2 crystal,
79×79×38 Å, |F|² to 1 Å, built once with cctbx) is cached in the xrais structure cache.
Reference: nanoBragg (C, OpenMP, 2 threads) renders a PILATUS 6M quadrant with 25 domains in
about 0.9 s on the project's 2-core machines ("nB/fast": that time over the fast path's).

With ``--nanobragg PATH`` (a nanoBragg binary you compiled yourself, e.g.
``gcc -O3 -fopenmp -o nanoBragg nanoBragg.c -lm``; nothing of it is shipped here) the benchmark
also measures nanoBragg side by side with the CPU kernel, in the same run and on identical inputs:
the "gauss" scenario (nanoBragg's -gauss_xtal, 13×13×26 cells, 25 mosaic domains over 0.3°,
B = 20 Å² folded into the amplitudes of an hkl file written from the same |F|² table) on one
PILATUS 6M quadrant (nanoBragg: a 1024×1024 detector whose pixels are exactly the quadrant's) and
on the full frame, nanoBragg with OMP_NUM_THREADS and numba with the same number of threads
(--nanobragg-threads, default 2). nanoBragg draws its mosaic domains from its own random
generator, so the images are first compared pixel by pixel with a single domain (Pearson r and
total ratio on the quadrant), and only the 25-domain case is timed. Each nanoBragg run starts in
a fresh empty folder (it writes Fdump.bin, which a later run would silently reuse) and its time is
the whole process (reading the hkl file, writing its images); a 1-pixel run (-roi) of the same
command shows that fixed part.
"""
from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

from xrais.io import Geometry, detectors
from xrais.sim import (Beam, DetectorEffects, Lattice, StructureFactors, Window, blocks_in_crystal, cache_folder,
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


def orientation():
    return random_rotation(np.random.default_rng(7))


def lattices_of(domain, spread, shape, count, rng):
    cells = cells_per_domain(CELL, domain)
    lattice = Lattice.from_cell(CELL, orientation(), cells=cells, shape=shape,
                                mosaic=mosaic_rotations(spread, 25, rng), blocks=blocks_in_crystal(25.0 ** 3, CELL, cells))
    return split_lattice(lattice, count, 1.0, rng, mosaic_spread_deg=spread)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement (the best is kept)")
    parser.add_argument("--threads", type=int, default=None, help="numba threads (default: all cores)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--quick", action="store_true", help="quadrants only, fast path only")
    parser.add_argument("--nanobragg", metavar="PATH", default=None,
                        help="a compiled nanoBragg binary: also time it side by side with the CPU kernel")
    parser.add_argument("--nanobragg-threads", type=int, default=2,
                        help="OpenMP threads of nanoBragg and numba threads of xrais in that comparison (default 2)")
    parser.add_argument("--nanobragg-only", action="store_true",
                        help="with --nanobragg: skip the scenario table and the whole-image timing")
    args = parser.parse_args()
    if args.nanobragg_only and not args.nanobragg:
        parser.error("--nanobragg-only needs --nanobragg PATH")
    if args.nanobragg and not os.access(args.nanobragg, os.X_OK):
        parser.error(f"--nanobragg {args.nanobragg}: not an executable file")
    if args.threads:
        numba.set_num_threads(args.threads)

    beam = Beam(0.9795, fluence_from_photons(4e11, 0.03))
    table = structure()
    if not args.nanobragg_only:
        scenario_table(args, beam, table)
    if args.nanobragg:
        compare_with_nanobragg(args, beam, table)
    print(f"peak memory (max RSS of this process): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def scenario_table(args, beam, table):
    """The simulator's own timings (the benchmark's original output)."""
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


# --- side by side with nanoBragg (--nanobragg PATH) ------------------------------------------------
#: The compared scenario: the "gauss" row of SCENARIOS (nanoBragg's -gauss_xtal lattice transform).
COMPARED = ("PILATUS 6M", 200.0, 1000.0, 0.3, "gauss")
COMPARED_DOMAINS = 25
B_FACTOR = 20.0


def misset_angles(rotation):
    """nanoBragg ``-misset rx ry rz`` (degrees) of a rotation matrix R = Rz·Ry·Rx (x applied first),
    the inverse of :func:`xrais.sim.misset_rotation`."""
    r = np.asarray(rotation, dtype=float)
    rx = math.atan2(r[2, 1], r[2, 2])
    ry = math.atan2(-r[2, 0], math.hypot(r[2, 1], r[2, 2]))
    rz = math.atan2(r[1, 0], r[0, 0])
    return tuple(math.degrees(v) for v in (rx, ry, rz))


def write_hkl(path, table: StructureFactors, lattice: Lattice, b_factor: float) -> int:
    """nanoBragg's text hkl file ("h k l F" per line, P1, no symmetry) from an |F|² table: every
    non-zero node, F = |F|·exp(−B·stol²) with stol = |h·a* + k·b* + l·c*|/2 (the kernels apply
    exp(−2B·stol²) to |F|² per node, so the two agree). Returns the number of reflections."""
    intensities = np.asarray(table.intensities)
    index = np.nonzero(intensities)
    hkl = np.stack(index, axis=1) + np.asarray(table.origin)
    metric = lattice.reciprocal_vectors @ lattice.reciprocal_vectors.T
    q_sqr = np.einsum("ni,ij,nj->n", hkl, metric, hkl)
    amplitudes = np.sqrt(intensities[index].astype(np.float64)) * np.exp(-0.25 * b_factor * q_sqr)
    lines = [f"{h} {k} {l} {f:.9g}\n" for (h, k, l), f in zip(hkl.tolist(), amplitudes.tolist())]
    Path(path).write_text("".join(lines))
    return len(lines)


def nanobragg_arguments(geometry: Geometry, window, lattice: Lattice, beam: Beam, hkl, domains, spread,
                        roi_one_pixel=False):
    """nanoBragg command-line arguments for ``window`` of ``geometry`` (None: the whole detector).
    A window becomes a detector of the window's size whose direct-beam position is shifted by the
    window's corner, so its pixels are exactly the window's pixels of the full detector (same
    pix0 + f·fdet + s·sdet). MOSFLM convention (nanoBragg's default): Xbeam goes with the slow axis,
    Ybeam with the fast one, both measured to the pixel centre (Fbeam = Ybeam + pixel/2)."""
    window = Window.full(geometry.shape) if window is None else Window(*window)
    beam_fast, beam_slow = geometry.beam_centre
    fast_px, slow_px = beam_fast - window.fast_start, beam_slow - window.slow_start
    cells = lattice.cells
    rx, ry, rz = misset_angles(orientation())
    arguments = [
        "-hkl", str(hkl), "-cell", *(f"{v:g}" for v in CELL), "-misset", f"{rx:.15g}", f"{ry:.15g}", f"{rz:.15g}",
        "-lambda", f"{beam.wavelength:g}", "-distance", f"{geometry.distance:g}", "-pixel", f"{geometry.pixel_size:g}",
        "-detpixels_f", str(window.shape[1]), "-detpixels_s", str(window.shape[0]),
        "-Xbeam", f"{(slow_px - 0.5) * geometry.pixel_size:.12g}",
        "-Ybeam", f"{(fast_px - 0.5) * geometry.pixel_size:.12g}",
        "-gauss_xtal", "-Na", str(cells[0]), "-Nb", str(cells[1]), "-Nc", str(cells[2]), "-oversample", "1",
        "-fluence", f"{beam.fluence:.17g}",
    ]
    if domains > 1:
        arguments += ["-mosaic", f"{spread:g}", "-mosaic_dom", str(domains)]
    if roi_one_pixel:
        arguments += ["-roi", "0", "0", "0", "0"]
    return arguments + ["-nonoise", "-nopgm", "-noprogress", "-floatfile", "float.bin", "-intfile", "int.img"]


def run_nanobragg(binary, arguments, scratch: Path, threads: int, shape=None):
    """Run nanoBragg once in a fresh empty folder under ``scratch``; (wall s, CPU s of the child,
    image or None). The whole process is timed: reading the hkl file, rendering, writing images."""
    scratch.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="run-", dir=scratch))
    environment = dict(os.environ, OMP_NUM_THREADS=str(threads))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([str(binary), *arguments], cwd=folder, env=environment, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if result.returncode != 0 or not (folder / "float.bin").exists():
        raise RuntimeError(f"nanoBragg failed (exit {result.returncode}) in {folder}:\n{result.stdout[-3000:]}")
    image = None
    if shape is not None:
        image = np.fromfile(folder / "float.bin", dtype=np.float32).reshape(shape)
    return wall, cpu, image


def best_nanobragg(binary, arguments, scratch, threads, repeat):
    runs = [run_nanobragg(binary, arguments, scratch, threads) for _ in range(repeat)]
    return min(run[0] for run in runs), min(run[1] for run in runs)


def compare_with_nanobragg(args, beam, table):
    """Time nanoBragg and the CPU kernel on identical inputs in this run (see the module docstring)."""
    binary = Path(args.nanobragg).resolve()
    threads = args.nanobragg_threads
    previous_threads = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    name, distance, domain, spread, shape = COMPARED
    geometry = geometry_of(name, distance)
    quadrant = quadrant_window(geometry, 0)
    timed = lattices_of(domain, spread, shape, 1, np.random.default_rng(1))[0]
    single = timed.replace(mosaic=np.eye(3)[None], blocks=1.0)  # one unrotated domain, as nanoBragg renders it
    assert timed.mosaic.shape[0] == COMPARED_DOMAINS
    cells = "×".join(str(n) for n in timed.cells)
    print()
    print(f"side by side with nanoBragg ({binary}), {threads} OpenMP threads vs {numba.get_num_threads()} numba "
          f"threads (CPU kernel), best of {args.repeat} runs")
    with tempfile.TemporaryDirectory(prefix="xrais-nanobragg-") as scratch:
        scratch = Path(scratch)
        hkl = scratch / "P1.hkl"
        reflections = write_hkl(hkl, table, timed, B_FACTOR)
        print(f"{name}, {distance:g} mm, λ {beam.wavelength} Å, cell {CELL[:3]} Å, gauss_xtal {cells} cells, "
              f"{COMPARED_DOMAINS} domains over {spread}°, B {B_FACTOR:g} Å² folded into {reflections} amplitudes "
              f"of the hkl file (nanoBragg reads it in every run)")

        # equal physics first: one domain, every pixel of the quadrant
        render_bragg(single, table, beam, geometry, window=(0, 8, 0, 8), device="cpu")  # compile, warm up
        arguments = nanobragg_arguments(geometry, quadrant, single, beam, hkl, 1, spread)
        print("nanoBragg, agreement (1 domain):  nanoBragg " + " ".join(arguments))
        _, _, reference = run_nanobragg(binary, arguments, scratch, threads, shape=quadrant.shape)
        for path in ("fast", "exact"):
            image = render_bragg(single, table, beam, geometry, b_factor=B_FACTOR, window=quadrant, path=path,
                                 device="cpu")[Window(*quadrant).slices]
            pearson = np.corrcoef(image.ravel(), reference.ravel())[0, 1]
            lit = int(np.count_nonzero(reference))
            print(f"  agreement, {path:>5} path, 1 domain, quadrant {quadrant.shape[0]}×{quadrant.shape[1]}: "
                  f"Pearson r = {pearson:.6f}, total xrais/nanoBragg = {image.sum() / reference.sum():.6f}, "
                  f"max |Δ| / max = {np.abs(image - reference).max() / reference.max():.2e} "
                  f"({lit} pixels lit in nanoBragg's image)")

        # timings: 25 domains
        render_bragg(timed, table, beam, geometry, window=(0, 8, 0, 8), device="cpu")
        rows = []
        for case, window in (("quadrant", quadrant), ("full frame", None)):
            arguments = nanobragg_arguments(geometry, window, timed, beam, hkl, COMPARED_DOMAINS, spread)
            print(f"nanoBragg, {case} ({COMPARED_DOMAINS} domains):  nanoBragg " + " ".join(arguments))
            fixed = best_nanobragg(binary, nanobragg_arguments(geometry, window, timed, beam, hkl, COMPARED_DOMAINS,
                                                               spread, roi_one_pixel=True),
                                   scratch, threads, args.repeat)
            reference_time = best_nanobragg(binary, arguments, scratch, threads, args.repeat)
            ours = {path: best_time(lambda: render_bragg(timed, table, beam, geometry, b_factor=B_FACTOR,
                                                         window=window, path=path, device="cpu"), args.repeat)
                    for path in ("fast", "exact")}
            size = Window(*window).shape if window is not None else geometry.shape
            rows.append((case, size, reference_time, fixed, ours))

    threads_now = numba.get_num_threads()

    def cell(wall_cpu, n):
        return f"{wall_cpu[0]:7.3f}s [{wall_cpu[1] / n:6.3f}]"

    print(f"wall-clock seconds, [CPU seconds / threads] = the time on an otherwise idle machine; "
          f"nanoBragg's own time is its whole process, 'nB 1 px' a 1-pixel run of the same command (-roi)")
    print(f"{'case':>10} {'pixels':>9} | {'nanoBragg':>17} {'nB 1 px':>17} | {'xrais fast':>17} {'xrais exact':>17} | "
          f"{'nB/fast':>7} {'nB/exact':>8} | idle: {'nB/fast':>7} {'nB/exact':>8}")
    for case, size, reference_time, fixed, ours in rows:
        def ratio(path, idle=False):
            if idle:
                return (reference_time[1] / threads) / (ours[path][1] / threads_now)
            return reference_time[0] / ours[path][0]

        print(f"{case:>10} {size[0]:>4}×{size[1]:<4} | {cell(reference_time, threads)} {cell(fixed, threads)} | "
              f"{cell(ours['fast'], threads_now)} {cell(ours['exact'], threads_now)} | "
              f"{ratio('fast'):6.1f}x {ratio('exact'):7.1f}x | idle: {ratio('fast', True):6.1f}x "
              f"{ratio('exact', True):7.1f}x")
    quadrant_row = rows[0]
    speedup = quadrant_row[2][0] / quadrant_row[4]["fast"][0]
    idle_speedup = (quadrant_row[2][1] / threads) / (quadrant_row[4]["fast"][1] / threads_now)
    print(f"xrais fast path is {speedup:.1f}× faster than nanoBragg on a PILATUS 6M quadrant with "
          f"{COMPARED_DOMAINS} domains (wall clock, same run; {idle_speedup:.1f}× from CPU time / threads)")
    numba.set_num_threads(previous_threads)


if __name__ == "__main__":
    main()
