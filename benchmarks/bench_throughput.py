"""End-to-end throughput: read a CBF file + condition + infer, images per second.

    python benchmarks/bench_throughput.py [--images 60] [--model resolution]

Writes PILATUS 6M (and EIGER 16M) sized miniCBF files with Poisson background and spots into a
temporary folder, then times ``xrais.Predictor`` over them: 1 quadrant and 4 quadrants, with 1 and
2 threads (nproc), and 2 MPI ranks of 1 thread each (``mpiexec -n 2 dials.xrais_resolution``) when
mpiexec is available. Goal on a 2-core machine: ≥ 10 PILATUS 6M images/s with 1 quadrant (the
paper: 20 Hz with 24 CPU cores, < 1 Hz per core). Uses the shipped model unless --model is given.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np


def write_images(folder, detector_name, count, seed=0):
    from xrais.io import Geometry, detectors
    from xrais.io.cbf import write_cbf

    model = detectors.get(detector_name)
    rng = np.random.default_rng(seed)
    geometry = Geometry(distance=250.0, wavelength=0.9795, pixel_size=model.pixel_size,
                        beam_centre=(model.shape[1] / 2 + 5.5, model.shape[0] / 2 - 3.2), shape=model.shape,
                        detector=model.name)
    base = rng.poisson(3.0, model.shape).astype(np.int32)
    base[model.gap_mask()] = -1
    paths = []
    for k in range(count):
        pixels = base.copy()
        spots = rng.integers(0, pixels.size, 3000)
        pixels.flat[spots] = rng.integers(50, 20000, spots.size)
        pixels[model.gap_mask()] = -1
        path = os.path.join(folder, f"{detector_name.replace(' ', '_')}_{k:05d}.cbf")
        write_cbf(path, pixels, geometry)
        paths.append(path)
    return paths


def time_predictor(paths, quadrants, nproc, model):
    import torch

    from xrais.predict import Predictor

    torch.set_num_threads(nproc)
    predictor = Predictor(predictors=(model,), device="cpu", quadrants=quadrants, nproc=nproc, batch_size=8)
    predictor.predict(paths[:4])  # warm-up: model load, JIT
    start = time.perf_counter()
    results = predictor.predict(paths)
    elapsed = time.perf_counter() - start
    assert all(r["error"] is None for r in results)
    per_stage = {k: float(np.median([r[k] for r in results])) for k in ("read_ms", "condition_ms", "predict_ms")}
    return len(paths) / elapsed, per_stage


def time_mpi(paths, quadrants, ranks, folder):
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    mpiexec = mpiexec if os.path.exists(mpiexec) else shutil.which("mpiexec")
    if mpiexec is None:
        return None
    program = os.path.join(os.path.dirname(sys.executable), "dials.xrais_resolution")
    command = [mpiexec, "-n", str(ranks), program, *paths, "mpi=True", f"quadrants={quadrants}", "nproc=1",
               "output.json=mpi.json", "output.plot=None", "output.log=None"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    start = time.perf_counter()
    subprocess.run(command, cwd=folder, env=env, check=True, capture_output=True)
    elapsed = time.perf_counter() - start  # includes start-up (imports, model load) of every rank
    return len(paths) / elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--model", default="resolution")
    args = parser.parse_args()
    print(f"{'detector':<12} {'quadrants':>9} {'mode':<22} {'images/s':>9} {'ms/image':>9}  median read / condition / infer ms")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for detector in ("PILATUS 6M", "EIGER 16M"):
            count = args.images if detector == "PILATUS 6M" else max(10, args.images // 3)
            paths = write_images(folder, detector, count)
            for quadrants in (1, 4):
                for nproc in (1, 2):
                    rate, stages = time_predictor(paths, quadrants, nproc, args.model)
                    mode = f"{nproc} thread(s)"
                    rows.append({"detector": detector, "quadrants": quadrants, "mode": mode, "images_per_s": rate, **stages})
                    print(f"{detector:<12} {quadrants:>9} {mode:<22} {rate:9.1f} {1000 / rate:9.1f}  "
                          f"{stages['read_ms']:.1f} / {stages['condition_ms']:.1f} / {stages['predict_ms']:.1f}")
                rate = time_mpi(paths, quadrants, 2, folder)
                if rate is not None:
                    rows.append({"detector": detector, "quadrants": quadrants, "mode": "2 MPI ranks", "images_per_s": rate})
                    print(f"{detector:<12} {quadrants:>9} {'2 MPI ranks (+start-up)':<22} {rate:9.1f} {1000 / rate:9.1f}")
            for path in paths:
                os.remove(path)
    best = max(r["images_per_s"] for r in rows if r["detector"] == "PILATUS 6M" and r["quadrants"] == 1)
    print(f"\nPILATUS 6M, 1 quadrant, best: {best:.1f} images/s — goal ≥ 10: {'met' if best >= 10 else 'NOT met'}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
