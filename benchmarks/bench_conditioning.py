"""Conditioning and reading speed, one CPU core.

    python benchmarks/bench_conditioning.py [--repeat 20]

Prints per-frame times (median of repeats) for PILATUS 6M and EIGER 16M sized frames: conditioning
with all 4 quadrants and with 1 quadrant (numba path and torch path), and reading a miniCBF file
with xrais (whole open_image, and the byte-offset decode alone) against fabio's own reader.
Goals (issue: foundation): ≤ 15 ms for PILATUS 6M (4 quadrants) and ≤ 40 ms for EIGER 16M.
"""
import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import fabio  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from xrais import conditioning, open_image  # noqa: E402
from xrais.io import Geometry, detectors  # noqa: E402
from xrais.io.base import load_bytes  # noqa: E402
from xrais.io.cbf import decode_binary, split_cbf, write_cbf  # noqa: E402

GOALS_MS = {"PILATUS 6M": 15.0, "EIGER 16M": 40.0}


def timed(function, repeat):
    function()  # warm-up (JIT compile / cache load)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def synthetic_frame(model, rng):
    """Poisson background with bright spots, module gaps at −1 (as the detectors write them)."""
    pixels = rng.poisson(8.0, model.shape).astype(np.int32)
    spots = rng.integers(0, pixels.size, 4000)
    pixels.flat[spots] = rng.integers(100, 50000, spots.size)
    pixels[model.gap_mask()] = -1
    geometry = Geometry(distance=250.0, wavelength=0.9795, pixel_size=model.pixel_size,
                        beam_centre=(model.shape[1] / 2 + 3.3, model.shape[0] / 2 - 7.6), shape=model.shape,
                        detector=model.name)
    return pixels, geometry


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    print(f"{'detector':<12} {'operation':<44} {'ms/frame':>9}  note")
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("PILATUS 6M", "EIGER 16M"):
            model = detectors.get(name)
            pixels, geometry = synthetic_frame(model, rng)
            mask = pixels < 0
            out = np.empty((4, 512, 512), np.float32)
            t4 = timed(lambda: conditioning.condition(pixels, mask, geometry, out=out), args.repeat)
            t1 = timed(lambda: conditioning.condition(pixels, mask, geometry, quadrants=0, out=out[:1]), args.repeat)
            tensor, tmask = torch.from_numpy(pixels), torch.from_numpy(mask)
            tt4 = timed(lambda: conditioning.condition(tensor, tmask, geometry), max(3, args.repeat // 4))
            goal = GOALS_MS[name]
            print(f"{name:<12} {'condition, 4 quadrants (numba)':<44} {t4:9.2f}  goal ≤ {goal:g} ms: "
                  f"{'met' if t4 <= goal else 'NOT met'} ({goal / t4:.1f}x margin)")
            print(f"{name:<12} {'condition, 1 quadrant (numba)':<44} {t1:9.2f}")
            print(f"{name:<12} {'condition, 4 quadrants (torch CPU)':<44} {tt4:9.2f}  numba is {tt4 / t4:.1f}x faster")
            path = os.path.join(tmp, name.replace(" ", "_") + ".cbf")
            write_cbf(path, pixels, geometry)
            t_open = timed(lambda: open_image(path), args.repeat)
            t_fabio = timed(lambda: fabio.open(path).data, args.repeat)
            content = load_bytes(path)
            _, fields, binary = split_cbf(path, content)
            t_decode = timed(lambda: decode_binary(path, fields, binary), args.repeat)
            print(f"{name:<12} {'read CBF: xrais.open_image (pixels+mask+geom)':<44} {t_open:9.2f}  "
                  f"fabio.open {t_fabio:.2f} ms → {t_fabio / t_open:.1f}x")
            print(f"{name:<12} {'read CBF: byte-offset decode alone':<44} {t_decode:9.2f}")


if __name__ == "__main__":
    main()
