"""Fuzzing worker, run in a child process by test_io_fuzz.py (a crash in C code — HDF5, CBFlib — must
not take the test run down with it, and must be reported with the file that caused it).

    python io_fuzz_worker.py MANIFEST.json

The manifest names the format, the seed files (real images, or files written from real pixels),
the number of examples and a work folder. Each hypothesis example copies the seeds into the work
folder, mutates one of them (bytes flipped, truncated, header numbers edited, dimension fields
blown up; HDF5 objects edited with h5py), records what it did in ``current.json``, and reads the
result with ``open_images(..., on_error="yield")``. Every outcome must be a Frame or a FrameError
(one clear line); anything else, a hang (> GUARD_SECONDS) or an out-of-memory fails the run. The
summary (outcome counts, peak memory) is written to the manifest's ``report`` path.
"""
import json
import os
import re
import resource
import shutil
import signal
import sys
import traceback

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from xrais.io import Frame, FrameError, open_images

GUARD_SECONDS = 20
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


def main(manifest_path):
    manifest = json.loads(open(manifest_path).read())
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    signal.signal(signal.SIGALRM, _guard)
    name, work = manifest["format"], manifest["work"]
    seeds = {key: open(path, "rb").read() for key, path in manifest["seeds"].items()}
    companions = manifest.get("companions", {})  # files copied unchanged beside the mutated one
    entry_points = manifest.get("entry_points")  # the file(s) read; default: the mutated seed
    counts = {"frame": 0, "error": 0, "examples": 0}

    strategies = {key: _mutations(name, content) for key, content in seeds.items()}
    seed_names = sorted(seeds)
    hdf5 = name == "nexus"

    @settings(max_examples=manifest["examples"], derandomize=True, deadline=None, database=None,
              phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))
    @given(st.data())
    def fuzz(data):
        seed = data.draw(st.sampled_from(seed_names), label="seed")
        use_h5py = hdf5 and data.draw(st.booleans(), label="h5py edit")
        operations = [] if use_h5py else data.draw(strategies[seed], label="mutations")
        edit = data.draw(_hdf5_edits(), label="edit") if use_h5py else None
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        for key, content in seeds.items():
            with open(os.path.join(work, key), "wb") as handle:
                handle.write(_apply(content, operations) if key == seed else content)
        for key, path in companions.items():
            shutil.copy(path, os.path.join(work, key))
        if edit is not None:
            _edit_hdf5(os.path.join(work, seed), edit)
        with open(os.path.join(os.path.dirname(work), "current.json"), "w") as handle:
            json.dump({"seed": seed, "mutations": repr(operations), "edit": repr(edit)}, handle)
        signal.alarm(GUARD_SECONDS)
        try:
            items = list(open_images([os.path.join(work, entry) for entry in entry_points or [seed]], on_error="yield"))
        finally:
            signal.alarm(0)
        for outcome in _check(items):
            counts[outcome] += 1
        counts["examples"] += 1

    try:
        fuzz()
    except BaseException:
        traceback.print_exc()
        sys.exit(1)
    counts["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    with open(manifest["report"], "w") as handle:
        json.dump(counts, handle)


if __name__ == "__main__":
    main(sys.argv[1])
