"""Helpers of the monitor tests: small detector images, free ports, the programs as real processes,
the HTTP API, and waiting for a condition."""
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np

from xrais.io import Geometry
from xrais.io.cbf import write_cbf

SHAPE = (256, 256)
GEOMETRY = Geometry(distance=120.0, wavelength=1.0, pixel_size=0.172, beam_centre=(128.5, 127.5), shape=SHAPE,
                    detector="PILATUS 6M")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def endpoints():
    """(work, ingest) ZeroMQ endpoints and an HTTP port, all free on loopback."""
    return f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}", free_port()


def image(number: int, seed: int = 0) -> np.ndarray:
    """Poisson background with 40 bright 2×2 spots (so that no quadrant reads as empty)."""
    rng = np.random.default_rng(seed * 100003 + number)
    pixels = rng.poisson(3 + number % 7, SHAPE).astype(np.int32)
    for slow, fast in rng.integers(0, SHAPE[0] - 1, (40, 2)):
        pixels[slow:slow + 2, fast:fast + 2] += 400
    return pixels


def write_image(folder, number: int, prefix: str = "run1_", atomic: bool = True) -> str:
    """A 256×256 miniCBF ``<prefix><number:05d>.cbf``: written under a hidden name and renamed into
    place (atomic), or written in place in two parts, as a slow writer would."""
    path = os.path.join(str(folder), f"{prefix}{number:05d}.cbf")
    hidden = os.path.join(str(folder), f".{prefix}{number:05d}.cbf.tmp")
    write_cbf(hidden, image(number), GEOMETRY)
    if atomic:
        os.replace(hidden, path)
    else:
        with open(hidden, "rb") as handle:
            content = handle.read()
        os.remove(hidden)
        with open(path, "wb") as handle:
            handle.write(content[: len(content) // 2])
            handle.flush()
            time.sleep(0.01)
            handle.write(content[len(content) // 2:])
    return path


def collection_folders(tmp_path, shots: int):
    """(data, shots) folders under ``tmp_path``: an empty one to watch, and one holding ``shots``
    miniCBFs ``shot_00001.cbf``… for ``xrais.monitor publish`` to stream."""
    data, shot_folder = tmp_path / "data", tmp_path / "shots"
    data.mkdir()
    shot_folder.mkdir()
    for k in range(1, shots + 1):
        write_image(shot_folder, k, prefix="shot_")
    return data, shot_folder


def program(role: str, *words: str, env=None, log=None) -> subprocess.Popen:
    """``xrais.monitor <role> words…`` as a child process (its output goes to ``log``)."""
    output = open(log, "ab") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen([sys.executable, "-m", "xrais.command_line.monitor", role, *words],
                                env=dict(os.environ, **(env or {})), stdout=output, stderr=subprocess.STDOUT)
    finally:
        if log:
            output.close()


def stop(process: subprocess.Popen, timeout: float = 30.0) -> int:
    """SIGTERM, then the exit code (killed if it does not stop in time)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"{process.args[3]} did not stop within {timeout} s after SIGTERM")


def get(url: str, headers=None):
    """(HTTP status, decoded JSON or text) of a GET."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, body, kind = response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        status, body, kind = error.code, error.read(), error.headers.get("Content-Type", "")
    return status, json.loads(body) if kind.startswith("application/json") else body.decode()


def api(port: int, path: str):
    status, value = get(f"http://127.0.0.1:{port}{path}")
    assert status == 200, (path, status, value)
    return value


def all_results(port: int, run=None):
    """Every compact row the API gives, paging with since=."""
    rows, since = [], 0
    while True:
        query = f"/api/results?since={since}&limit=500" + (f"&run={urllib.request.quote(run)}" if run else "")
        page = api(port, query)
        rows += page["results"]
        since = page["last_id"]
        if not page["more"]:
            return rows


def wait_for(condition, timeout: float, what: str, interval: float = 0.2, processes=()):
    """The first true value of condition() within timeout seconds (AssertionError naming what
    otherwise, or as soon as one of ``processes`` has exited)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except (OSError, urllib.error.URLError):
            value = None  # a server still starting
        if value:
            return value
        for process in processes:
            if process.poll() is not None:
                raise AssertionError(f"{' '.join(process.args[3:5])} exited ({process.returncode}) "
                                     f"while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def stored_rows(database: str):
    """Every row of the store, read with plain SQLite."""
    connection = sqlite3.connect(database)
    try:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute("SELECT * FROM results ORDER BY id")]
    finally:
        connection.close()


def start_series(folder, stem: str, n_files: int, frames_per_file: int) -> str:
    """The master of an EIGER-style NeXus series (``<stem>_master.h5``) whose data files
    ``<stem>_data_00000k.h5`` do not exist yet (see :func:`add_data_file`); renamed into place."""
    import h5py

    def group(parent, name, nx_class):
        child = parent.create_group(name)
        child.attrs["NX_class"] = nx_class
        return child

    master = os.path.join(str(folder), f"{stem}_master.h5")
    hidden = os.path.join(str(folder), f".{stem}_master.h5.tmp")
    with h5py.File(hidden, "w") as handle:
        entry = group(handle, "entry", "NXentry")
        instrument = group(entry, "instrument", "NXinstrument")
        group(instrument, "beam", "NXbeam").create_dataset("incident_wavelength", data=1.0).attrs["units"] = "angstrom"
        detector = group(instrument, "detector", "NXdetector")
        detector.create_dataset("description", data="EIGER test")
        detector.create_dataset("x_pixel_size", data=75e-6).attrs["units"] = "m"
        detector.create_dataset("detector_distance", data=0.1).attrs["units"] = "m"
        detector.create_dataset("beam_center_x", data=128.5).attrs["units"] = "pixel"
        detector.create_dataset("beam_center_y", data=127.5).attrs["units"] = "pixel"
        data = group(entry, "data", "NXdata")
        for k in range(1, n_files + 1):
            data[f"data_{k:06d}"] = h5py.ExternalLink(f"{stem}_data_{k:06d}.h5", "/entry/data/data")
    os.replace(hidden, master)
    return master


def add_data_file(folder, stem: str, k: int, frames: np.ndarray) -> str:
    """Data file k of a series (uint16 frames), written under a hidden name and renamed into place."""
    import h5py

    path = os.path.join(str(folder), f"{stem}_data_{k:06d}.h5")
    hidden = os.path.join(str(folder), f".{stem}_data_{k:06d}.h5.tmp")
    with h5py.File(hidden, "w") as handle:
        handle.create_group("entry").create_group("data").create_dataset(
            "data", data=frames.astype(np.uint16), chunks=(1,) + frames.shape[1:])
    os.replace(hidden, path)
    return path
