"""Reader fuzzing, in one place for the CI test (tests/io/test_io_fuzz.py, 730 files) and the long
run outside CI (scripts/fuzz_readers.py, ``make fuzz``, 10,000 files per format): the seed corpus,
the mutations, the worker that reads mutated files, and the driver that runs the worker.

Seeds are real images, or files written from real pixels where no real file of the format exists
(``build_corpus``). Each hypothesis example copies the seeds into a work folder, mutates one of them
(bytes flipped, truncated, header numbers edited, dimension fields blown up; HDF5 objects edited
with h5py), records what it did in ``current.json`` and reads the result with
``open_images(..., on_error="yield")``. Every outcome must be a Frame or a FrameError (one clear
line that is not an out-of-memory); anything else is a failure, and so is a read that takes more
than ``GUARD_SECONDS`` (SIGALRM).

The worker runs in a child process under a 6 GiB address-space cap (``RLIMIT_AS``), so that a crash
or a hang in C code (HDF5, CBFlib) is reported with the file that caused it instead of taking the
caller down:

    python io_fuzz_worker.py MANIFEST.json

It writes one JSON line per example to the manifest's ``log`` (outcome, seconds, peak resident
memory) and a failing example's files to ``failures/<index>/``. ``fuzz_format`` runs it, kills it
when one example makes no progress for ``HANG_SECONDS`` (a hang that SIGALRM cannot break), and
restarts it after a crash or a hang from the next example (the same hypothesis seed generates the
same examples again; those already read are only drawn).
"""
import gzip
import json
import os
import pathlib
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
import traceback

import numpy as np
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from xrais.io import Frame, FrameError, Geometry, open_image, open_images

GUARD_SECONDS = 20
HANG_SECONDS = 60
ADDRESS_SPACE = 6 << 30
WEIRD_NUMBERS = ["0", "-1", "1", "-0.0", "1e308", "-1e308", "nan", "inf", "2147483647", "4294967295",
                 "9223372036854775807", "99999999999", "123456", "0.0001", "", "x"]
HEADER_LIMITS = {"smv": 4096, "minicbf": 6000, "imgcif": 60000, "expt": 10 ** 6, "mccd": 0, "nexus": 0}
MCCD_FIELDS = ([1104, 1108, 1112, 1128, 1140, 1144, 1148, 1664, 1668, 1672, 1692, 1720, 1764, 1768, 1772, 1796,
                1800, 1932, 4, 8] + [18 + 12 * k for k in range(11)])  # MarCCD header; TIFF IFD offset, count, values
NEXUS_EDITS = {  # h5py object path → candidate replacement values
    "/entry/instrument/detector/transformations/translation": [0.0, -0.2, 1e30, np.nan, [0.1, 0.2, 0.3]],
    "/entry/instrument/beam/incident_wavelength": [0.0, -1.0, np.inf, [1.0] * 7, "text"],
    "/entry/instrument/detector/module/data_size": [[2 ** 31 - 1, 2 ** 31 - 1], [0, 0], [1, 1, 1], [-5, 3]],
    "/entry/instrument/detector/module/data_origin": [[10 ** 9, 0], [-1, -1], [5]],
    "/entry/instrument/detector/module/fast_pixel_direction": [0.0, -7.5e-5, 1e6, np.nan],
    "/entry/instrument/detector/saturation_value": [0, -1, 2 ** 31 - 1],
    "/entry/instrument/detector/ARRAY_D0M1/data_size": [[1, 10 ** 6, 10 ** 6], [2, 64, 128]],
    "/entry/instrument/detector/ARRAY_D0M1/data_origin": [[7, 0, 0], [0, -3, 0]],
}
JSON_VALUES = [None, 0, -1, 1e308, 10 ** 12, "text", [], {}, [1, 2], [0.0, 0.0, 0.0], [[1]], {"panel": 99}, True]
NEXUS_ATTRIBUTES = ["vector", "offset", "depends_on", "units", "transformation_type", "offset_units", "NX_class"]
WEIRD_ATTRIBUTES = [[0.0, 0.0, 0.0], [np.nan, 1, 0], [1.0, 2.0], "/entry/instrument/detector", ".", "furlong",
                    "rotation", "m", "NXdetector_module", 42]


def _guard(signum, frame):
    raise TimeoutError(f"reading took more than {GUARD_SECONDS} s")


def _number_spans(content: bytes, limit: int):
    """(start, end) of the numbers in the first ``limit`` bytes (text headers)."""
    return [m.span() for m in re.finditer(rb"-?\d+(\.\d+)?([eE][-+]?\d+)?", content[:limit])]


def _mutations(name: str, content: bytes):
    size = len(content)
    spans = _number_spans(content, HEADER_LIMITS[name])
    flip = st.tuples(st.just("flip"), st.integers(0, size - 1), st.integers(0, 255))
    header_flip = st.tuples(st.just("flip"), st.integers(0, min(size, 4096) - 1), st.integers(0, 255))
    truncate = st.tuples(st.just("truncate"), st.integers(0, size - 1), st.just(0))
    options = [flip, header_flip, truncate]
    if spans:
        options.append(st.tuples(st.just("number"), st.sampled_from(spans), st.sampled_from(WEIRD_NUMBERS)))
    if name == "expt":
        paths = _json_paths(json.loads(content))
        json_edit = st.tuples(st.just("json"), st.sampled_from(paths), st.sampled_from(JSON_VALUES))
        return st.lists(st.one_of(options + [json_edit] * 3), min_size=1, max_size=3)
    if name == "mccd":
        options.append(st.tuples(st.just("field"), st.sampled_from(MCCD_FIELDS),
                                 st.sampled_from([0, 1, 2 ** 31 - 1, 2 ** 32 - 1, 65535, 4096, 10 ** 6])))
    return st.lists(st.one_of(options), min_size=1, max_size=3)


def _json_paths(node, prefix=()):
    """Key paths to every value of a JSON document."""
    paths = [prefix]
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        paths.extend(_json_paths(child, prefix + (key,)))
    return paths


def _json_edit(content: bytes, path, value) -> bytes:
    """The JSON document with the value at ``path`` replaced (the whole document for ()); unchanged
    when an earlier edit removed that path."""
    document = json.loads(content)
    if not path:
        return json.dumps(value).encode()
    node = document
    try:
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    except (KeyError, IndexError, TypeError):
        return content
    return json.dumps(document).encode()


def _apply(content: bytes, operations) -> bytes:
    for _, path, value in [op for op in operations if op[0] == "json"]:
        content = _json_edit(content, path, value)
    operations = [op for op in operations if op[0] != "json"]
    data = bytearray(content)
    for kind, where, value in sorted(operations, key=lambda op: -(op[1][0] if isinstance(op[1], tuple) else op[1])):
        if kind == "flip" and where < len(data):
            data[where] = value
        elif kind == "truncate":
            del data[where:]
        elif kind == "number" and where[1] <= len(data):
            data[where[0]:where[1]] = value.encode()
        elif kind == "field" and where + 4 <= len(data):
            data[where:where + 4] = value.to_bytes(4, "little")
    return bytes(data)


def _edit_hdf5(path, edit):
    import h5py

    kind, target, value = edit
    with h5py.File(path, "r+") as handle:
        if target not in handle:
            return
        if kind == "value":
            obj = handle[target]
            attrs = dict(obj.attrs)
            del handle[target]
            new = handle.create_dataset(target, data=value)
            new.attrs.update(attrs)
        elif kind == "attribute":
            name, attribute_value = value
            handle[target].attrs[name] = attribute_value
        elif kind == "delete":
            del handle[target]


def _hdf5_edits():
    value = st.sampled_from(sorted(NEXUS_EDITS)).flatmap(
        lambda target: st.tuples(st.just("value"), st.just(target), st.sampled_from(NEXUS_EDITS[target])))
    attribute = st.tuples(st.just("attribute"), st.sampled_from(sorted(NEXUS_EDITS)),
                          st.tuples(st.sampled_from(NEXUS_ATTRIBUTES), st.sampled_from(WEIRD_ATTRIBUTES)))
    targets = sorted(NEXUS_EDITS) + ["/entry/data", "/entry/instrument/beam"]
    delete = st.tuples(st.just("delete"), st.sampled_from(targets), st.none())
    return st.one_of(value, attribute, delete)


WORKER = pathlib.Path(__file__).resolve()


def build_corpus(folder: pathlib.Path, shared_data: pathlib.Path, adsc_image: pathlib.Path) -> dict:
    """Per format: the seed files (mutated), companions (copied beside them unchanged) and, where
    they are not the mutated seed, the files read. Files that no real image provides are written
    into ``folder`` from the real pixels of ``adsc_image``."""
    from iohelpers import write_eiger, write_jungfrau
    from xrais.io.mccd import write_mccd
    from xrais.io.smv import write_smv

    real_pixels = open_image(adsc_image).pixels
    i03 = folder / "i03.cbf"
    i03.write_bytes(gzip.decompress((shared_data / "image_examples" / "DLS_I03_smargon_0001.cbf.gz").read_bytes()))
    mccd = folder / "rayonix.mccd"
    write_mccd(str(mccd), real_pixels[640:1664, 640:1664], Geometry(
        distance=180.0, wavelength=1.1, pixel_size=0.08854, beam_centre=(512.5, 510.0), shape=(1024, 1024)), bias=10)
    frames = np.stack([real_pixels[1000 + 50 * k:1256 + 50 * k, 1000:1256] for k in range(3)]).astype(np.uint16)
    mask = np.zeros((256, 256), np.uint32)
    mask[3, 4] = 1
    write_eiger(str(folder / "e_master.h5"), frames, beam_px=(128.0, 120.5), pixel_mask=mask)
    modules = np.stack([real_pixels[:128, :256], real_pixels[200:328, :256]])[None].repeat(2, axis=0).astype(np.int32)
    write_jungfrau(str(folder / "jf.h5"), modules, [(-100.0, 64.0), (-100.0, -70.0)])
    rayonix = shared_data / "rayonix340" / "hit-20181213155134902.cbf"
    real_model = json.loads((rayonix.parent / "experiments_000.json").read_text())
    real_model["imageset"][0]["images"] = [str(rayonix)]
    (folder / "real.expt").write_text(json.dumps(real_model, indent=2))
    small = Geometry(distance=200.0, wavelength=1.0, pixel_size=0.1, beam_centre=(60.0, 50.0), shape=(100, 120))
    for number in (1, 2):
        write_smv(str(folder / f"img_{number:05d}.img"), real_pixels[:100, 120 * number:120 * (number + 1)], small)
    sweep = json.loads(json.dumps(real_model))
    sweep["imageset"] = [{"__id__": "ImageSequence", "template": "img_#####.img"}]
    sweep["scan"] = [{"image_range": [1, 2]}]
    sweep["experiment"][0]["scan"] = 0
    panel = sweep["detector"][0]["panels"][0]
    panel.update(origin=[-6.0, 5.0, -200.0], pixel_size=[0.1, 0.1], image_size=[120, 100])
    (folder / "sweep.expt").write_text(json.dumps(sweep, indent=2))
    # the real-world header variants of ../shared/data/reader_cases (issue 34): a NUL-padded SMV
    # header, pixel-unit (electron) SMV beam centres, swung (2θ) miniCBF detectors, one 2-D NeXus frame
    cases = shared_data / "reader_cases"
    for name in ("snc_newhead_00001.img", "TIMEPIX_SU_512-stdgoni_0001.img", "l-cyst_01_00001.cbf",
                 "ximg2700_00001.cbf"):
        (folder / name).write_bytes(gzip.decompress((cases / (name + ".gz")).read_bytes()))
    return {
        "smv": {"seeds": {"adsc.img": str(adsc_image), **{name: str(folder / name) for name in
                                                           ("snc_newhead_00001.img", "TIMEPIX_SU_512-stdgoni_0001.img")}}},
        "minicbf": {"seeds": {"i03.cbf": str(i03),
                              "i03.cbf.gz": str(shared_data / "image_examples" / "DLS_I03_smargon_0001.cbf.gz"),
                              **{name: str(folder / name) for name in ("l-cyst_01_00001.cbf", "ximg2700_00001.cbf")}}},
        "imgcif": {"seeds": {"cspad.cbf": str(shared_data / "thermolysin_cspad" / "idx-20130301060858401.cbf"),
                             "rayonix.cbf": str(rayonix)}},
        "mccd": {"seeds": {"rayonix.mccd": str(mccd)}},
        "nexus": {"seeds": {**{name: str(folder / name) for name in
                               ("e_master.h5", "e_data_000001.h5", "e_data_000002.h5", "jf.h5")},
                            "AgBehenate_228.hdf5": str(cases / "AgBehenate_228.hdf5")},
                  "entry_points": ["e_master.h5", "jf.h5", "AgBehenate_228.hdf5"]},
        "expt": {"seeds": {"real.expt": str(folder / "real.expt"), "sweep.expt": str(folder / "sweep.expt")},
                 "companions": {name: str(folder / name) for name in ("img_00001.img", "img_00002.img")}},
    }


def _check(items):
    """Every item is a valid Frame or a one-line FrameError that is not an out-of-memory."""
    outcomes = []
    for item in items:
        if isinstance(item, Frame):
            assert item.pixels.ndim == 2 and item.mask.dtype == bool and item.mask.shape == item.pixels.shape
            g = item.geometry
            assert all(np.isfinite(v) for v in (g.distance, g.wavelength, g.pixel_size, *g.beam_centre))
            outcomes.append("frame")
        else:
            assert isinstance(item, FrameError), f"unexpected item {item!r}"
            assert "\n" not in item.message and item.message, f"bad message {item.message!r}"
            assert "not enough memory" not in item.message, f"unbounded memory: {item.message}"
            outcomes.append("error")
    return outcomes


def _keep_failure(work: str, destination: pathlib.Path, example: dict, details: str) -> str:
    """Copy a failing example's files (and what was done to them) to ``destination``; its path."""
    shutil.rmtree(destination, ignore_errors=True)
    shutil.copytree(work, destination)
    (destination / "example.json").write_text(json.dumps(example, indent=2))
    (destination / "details.txt").write_text(details)
    return str(destination)


def main(manifest_path):
    """The worker: read the manifest's examples and log each outcome (see the module docstring)."""
    manifest = json.loads(pathlib.Path(manifest_path).read_text())
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    signal.signal(signal.SIGALRM, _guard)
    name, work = manifest["format"], manifest["work"]
    current = os.path.join(os.path.dirname(work), "current.json")
    seeds = {key: open(path, "rb").read() for key, path in manifest["seeds"].items()}
    companions = manifest.get("companions", {})  # files copied unchanged beside the mutated one
    entry_points = manifest.get("entry_points")  # the file(s) read; default: the mutated seed
    skip = manifest.get("skip", 0)  # examples read by an earlier worker: drawn, not read
    strategies = {key: _mutations(name, content) for key, content in seeds.items()}
    seed_names = sorted(seeds)
    hdf5 = name == "nexus"
    drawn = [0]
    log = open(manifest["log"], "a", buffering=1)

    @settings(max_examples=manifest["examples"], derandomize=manifest.get("random_seed") is None, deadline=None,
              database=None, phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))
    @given(st.data())
    def fuzz(data):
        seed_name = data.draw(st.sampled_from(seed_names), label="seed")
        use_h5py = hdf5 and data.draw(st.booleans(), label="h5py edit")
        operations = [] if use_h5py else data.draw(strategies[seed_name], label="mutations")
        edit = data.draw(_hdf5_edits(), label="edit") if use_h5py else None
        index, drawn[0] = drawn[0], drawn[0] + 1
        if index < skip:
            return
        example = {"index": index, "seed": seed_name, "mutations": repr(operations), "edit": repr(edit)}
        with open(current, "w") as handle:
            json.dump(example, handle)
        record = dict(example)
        start = time.perf_counter()
        try:  # any exception, from the mutation on, is what the fuzzing is looking for
            shutil.rmtree(work, ignore_errors=True)
            os.makedirs(work)
            for key, content in seeds.items():
                with open(os.path.join(work, key), "wb") as handle:
                    handle.write(_apply(content, operations) if key == seed_name else content)
            for key, path in companions.items():
                shutil.copy(path, os.path.join(work, key))
            if edit is not None:
                _edit_hdf5(os.path.join(work, seed_name), edit)
            start = time.perf_counter()
            signal.alarm(GUARD_SECONDS)
            try:
                items = list(open_images([os.path.join(work, entry) for entry in entry_points or [seed_name]],
                                         on_error="yield"))
            finally:
                signal.alarm(0)
            outcomes = _check(items)
            record.update(frames=outcomes.count("frame"), errors=outcomes.count("error"))
        except Exception as exc:
            record["failure"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
            record["files"] = _keep_failure(work, pathlib.Path(manifest["failures"]) / f"{index:06d}", example,
                                            traceback.format_exc())
        record["seconds"] = time.perf_counter() - start
        record["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        log.write(json.dumps(record) + "\n")

    if manifest.get("random_seed") is not None:
        fuzz = seed(manifest["random_seed"])(fuzz)
    # The unmutated seeds once, untimed (first imports, caches), so that the slowest read is a mutation's.
    list(open_images([manifest["seeds"][entry] for entry in entry_points or seed_names], on_error="yield"))
    fuzz()
    log.close()


def _watch(process: subprocess.Popen, current: pathlib.Path, errors: pathlib.Path):
    """None when the worker finished its examples; otherwise how it stopped (a crash, or a hang:
    the current example unfinished after HANG_SECONDS, which it is killed for)."""
    while True:
        try:
            status = process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            if current.exists() and time.time() - current.stat().st_mtime > HANG_SECONDS:
                process.kill()
                process.wait()
                return f"hang: no result after {HANG_SECONDS} s (SIGALRM did not interrupt it)"
            continue
        if status == 0:
            return None
        if status < 0:
            return f"crash: the worker died of signal {-status}"
        return f"the worker failed (exit status {status}): {(errors.read_text().strip().splitlines() or ['no output'])[-1]}"


def fuzz_format(name: str, corpus: dict, examples: int, folder: pathlib.Path, random_seed=None) -> dict:
    """Read ``examples`` mutated files of the format ``name`` (``corpus`` is build_corpus()[name])
    in worker processes, with work files, logs and failing examples under ``folder``.

    ``random_seed`` None: hypothesis's fixed derandomised sequence (CI); an integer: that seed.
    Returns the summary: examples, frames, errors (clean FrameErrors), failures (each with its
    example, problem and the folder its files were kept in), slowest (seconds and example of the
    slowest read) and peak_rss_mib (largest resident memory of a worker, MiB).
    """
    folder.mkdir(parents=True, exist_ok=True)
    current, log, errors = folder / "current.json", folder / "log.jsonl", folder / "worker.err"
    log.unlink(missing_ok=True)
    manifest = dict(corpus, format=name, examples=examples, random_seed=random_seed, work=str(folder / "work"),
                    log=str(log), failures=str(folder / "failures"))
    stopped = []  # examples that crashed or hung the worker
    skip = 0
    while skip < examples:
        manifest["skip"] = skip
        (folder / "manifest.json").write_text(json.dumps(manifest))
        current.unlink(missing_ok=True)
        with open(errors, "w") as stream:
            process = subprocess.Popen([sys.executable, str(WORKER), str(folder / "manifest.json")],
                                       stdout=stream, stderr=stream)
            problem = _watch(process, current, errors)
        if problem is None:
            break
        if not current.exists():
            raise RuntimeError(f"{name}: the fuzzing worker stopped before its first example: {problem}")
        example = json.loads(current.read_text())
        files = _keep_failure(manifest["work"], folder / "failures" / f"{example['index']:06d}", example,
                              f"{problem}\n\nthe worker's output, last part:\n{errors.read_text()[-6000:]}")
        stopped.append(dict(example, failure=problem, files=files))
        skip = example["index"] + 1
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    read = [record for record in records if "failure" not in record]
    slowest = max(records, key=lambda record: record["seconds"], default=None)
    return {
        "format": name,
        "examples": len(records) + len(stopped),
        "frames": sum(record["frames"] for record in read),
        "errors": sum(record["errors"] for record in read),
        "failures": sorted([record for record in records if "failure" in record] + stopped,
                           key=lambda record: record["index"]),
        "slowest": slowest and {"seconds": slowest["seconds"], "seed": slowest["seed"],
                                "mutations": slowest["mutations"], "edit": slowest["edit"]},
        "peak_rss_mib": max((record["peak_rss_mib"] for record in records), default=0),
    }


if __name__ == "__main__":
    main(sys.argv[1])
