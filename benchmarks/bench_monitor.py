"""Live monitoring speed: sustained frames/s and the latency from file written to result visible
in the API, through ``xrais.monitor run`` (collector, feeder, local workers) on this machine.

    python benchmarks/bench_monitor.py [--workers 2] [--frames 400] [--shape 2527,2463] [--quadrants 4]
    python benchmarks/bench_monitor.py --tiny --frames 200 --shape 256,256     # a quick check, tiny random models

Images: miniCBFs of the given shape (default PILATUS 6M, 0.172 mm pixels), Poisson background and
spots, encoded once and written under a hidden name then renamed into the watched folder, as a
detector's file writer does. Two phases:

1. burst: every frame written at once; sustained rate = frames / (last result stored − first
   frame written), and the steady rate between the first and last result stored;
2. paced: frames written at ``--paced`` of the burst rate (default 50 %); latency of each frame =
   the time its row was committed to the store (from then on the API serves it) − the time its file
   was renamed into place (one clock: same machine); median, p99 and maximum.

Models: the installed ones (``XRAIS_MODELS`` or the shipped weights), or ``--tiny`` random ones.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

from xrais.io import Geometry
from xrais.io.cbf import write_cbf


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def api(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.loads(response.read())


def wait_for(condition, timeout: float, what: str, monitor: subprocess.Popen):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if monitor.poll() is not None:
            raise SystemExit(f"xrais.monitor run exited ({monitor.returncode}) while waiting for {what}")
        try:
            value = condition()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def encoded_images(folder: str, shape, count: int = 8):
    """``count`` distinct miniCBF files as bytes (written once, reused under new names)."""
    ns, nf = shape
    geometry = Geometry(distance=250.0, wavelength=0.9795, pixel_size=0.172, beam_centre=(nf / 2 + 0.3, ns / 2 - 0.7),
                        shape=shape, detector="PILATUS 6M")
    rng = np.random.default_rng(0)
    blobs = []
    for k in range(count):
        pixels = rng.poisson(2.0, shape).astype(np.int32)
        spots = rng.integers(0, [ns, nf], size=(200, 2))
        pixels[spots[:, 0], spots[:, 1]] += rng.integers(50, 5000, 200)
        path = os.path.join(folder, f"template_{k}.cbf")
        write_cbf(path, pixels, geometry)
        with open(path, "rb") as handle:
            blobs.append(handle.read())
        os.remove(path)
    return blobs


def write_frames(folder: str, prefix: str, blobs, numbers, rate: float):
    """Write frames (renamed into place) at ``rate`` frames/s (0: at once); their Unix write times."""
    written = {}
    started = time.monotonic()
    for k, number in enumerate(numbers):
        if rate > 0:
            time.sleep(max(0.0, started + k / rate - time.monotonic()))
        hidden = os.path.join(folder, f".{prefix}{number:05d}.cbf")
        with open(hidden, "wb") as handle:
            handle.write(blobs[number % len(blobs)])
        os.replace(hidden, os.path.join(folder, f"{prefix}{number:05d}.cbf"))
        written[number] = time.time()
    return written


def stored_rows(port: int, run: str, count: int, monitor, timeout: float):
    """Rows of one run once ``count`` are stored (paging through the API)."""
    def complete():
        rows, since = [], 0
        while True:
            page = api(port, f"/api/results?run={urllib.request.quote(run)}&since={since}&limit=10000")
            rows += page["results"]
            since = page["last_id"]
            if not page["more"]:
                return rows if len(rows) >= count else None
    return wait_for(complete, timeout, f"{count} results of {run}", monitor)


def tiny_models(folder: str) -> str:
    import torch

    from xrais import models

    for seed, kind in enumerate(("resolution", "multilattice")):
        torch.manual_seed(seed)
        network = models.XraisNet(models.Architecture(kind, depth=18, width=0.125, norm="group"))
        models.export(network, os.path.join(folder, "models", kind))
    return os.path.join(folder, "models")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="local worker processes")
    parser.add_argument("--frames", type=int, default=400, help="frames per phase")
    parser.add_argument("--shape", default="2527,2463", help="image shape slow,fast (default PILATUS 6M)")
    parser.add_argument("--quadrants", type=int, default=4, choices=(1, 4))
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--nproc", type=int, default=1, help="threads per worker")
    parser.add_argument("--paced", type=float, default=0.5, help="paced phase rate as a fraction of the burst rate")
    parser.add_argument("--tiny", action="store_true", help="tiny random models (checks the benchmark, not speed)")
    arguments = parser.parse_args()
    shape = tuple(int(n) for n in arguments.shape.split(","))

    with tempfile.TemporaryDirectory(prefix="bench_monitor_") as scratch:
        data = os.path.join(scratch, "data")
        os.mkdir(data)
        env = dict(os.environ, OMP_NUM_THREADS=str(arguments.nproc))
        if arguments.tiny:
            env["XRAIS_MODELS"] = tiny_models(scratch)
        blobs = encoded_images(scratch, shape)
        port = free_port()
        command = [sys.executable, "-m", "xrais.command_line.monitor", "run", f"folder={data}",
                   f"workers={arguments.workers}", f"http.port={port}", f"work=tcp://127.0.0.1:{free_port()}",
                   f"ingest=tcp://127.0.0.1:{free_port()}", f"database={os.path.join(scratch, 'monitor.sqlite')}",
                   f"quadrants={arguments.quadrants}", f"device={arguments.device}", f"nproc={arguments.nproc}",
                   "queue.size=1000000", f"output.log={os.path.join(scratch, 'run.log')}"]
        monitor = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=scratch)
        try:
            wait_for(lambda: api(port, "/api/status")["workers"] == arguments.workers, 300, "the workers", monitor)
            burst_numbers = range(1, arguments.frames + 1)
            written = write_frames(data, "burst_", blobs, burst_numbers, rate=0)
            rows = stored_rows(port, os.path.join(data, "burst_#####.cbf"), arguments.frames, monitor, 3600)
            stored = sorted(r["stored"] for r in rows)
            sustained = arguments.frames / (stored[-1] - min(written.values()))
            steady = (len(stored) - 1) / (stored[-1] - stored[0])
            errors = sum(r["status"] != "ok" for r in rows)

            rate = arguments.paced * steady
            paced_numbers = range(1, arguments.frames + 1)
            written = write_frames(data, "paced_", blobs, paced_numbers, rate=rate)
            rows = stored_rows(port, os.path.join(data, "paced_#####.cbf"), arguments.frames, monitor, 3600)
            latency = np.array([r["stored"] - written[r["number"]] for r in rows]) * 1000.0
            paced_stored = [r["stored"] for r in rows]
            paced = (len(rows) - 1) / (max(paced_stored) - min(paced_stored))
            errors += sum(r["status"] != "ok" for r in rows)
        finally:
            monitor.terminate()
            monitor.wait(60)

    print(f"xrais.monitor run: {arguments.workers} worker(s), {shape[0]}x{shape[1]} miniCBF, "
          f"{arguments.quadrants} quadrant(s), device {arguments.device}, {arguments.nproc} thread(s)/worker, "
          f"{'tiny random' if arguments.tiny else 'installed'} models, {os.cpu_count()} CPU cores")
    print(f"{'phase':<8}{'frames':>8}{'written/s':>11}{'frames/s':>10}{'latency median':>16}{'p99':>10}{'max':>10}")
    print(f"{'burst':<8}{arguments.frames:>8}{'at once':>11}{sustained:>10.1f}{'':>16}{'':>10}{'':>10}"
          f"   (steady {steady:.1f} frames/s between first and last result)")
    print(f"{'paced':<8}{arguments.frames:>8}{rate:>11.1f}{paced:>10.1f}"
          f"{np.median(latency):>13.0f} ms{np.percentile(latency, 99):>7.0f} ms{latency.max():>7.0f} ms")
    if errors:
        print(f"warning: {errors} frame(s) gave an error row")


if __name__ == "__main__":
    main()
