"""The monitor's parts on real files: the folder watcher (whole files only, once each, NeXus series
as their data files appear), the stream format, reading a job's frame, and the store."""
import os
import time

import numpy as np
import pytest
import zmq
from monitorhelpers import GEOMETRY, SHAPE, add_data_file, image, start_series, write_image

from xrais.command_line.monitor import main as monitor_main
from xrais.io import GeometryError, open_images
from xrais.io.frame import Frame, FrameError
from xrais.io.smv import write_smv
from xrais.monitor.protocol import (ProtocolError, check_image_header, decode, encode, image_header,
                                    is_loopback_endpoint, pixels_from_message)
from xrais.monitor.publisher import stream_pixels
from xrais.monitor.sources import FolderWatcher, image_template
from xrais.monitor.store import ResultStore, StoreReader
from xrais.monitor.worker import load_frame


def test_files_are_taken_once_and_only_when_whole(tmp_path):
    watcher = FolderWatcher(tmp_path, settle=0.3)
    whole = write_image(tmp_path, 1)
    content = open(whole, "rb").read()
    os.remove(whole)
    (tmp_path / "run1_00002.cbf").write_bytes(content[:5000])  # a writer half-way through
    (tmp_path / ".run1_00003.cbf").write_bytes(content)        # hidden: still being written
    (tmp_path / "run1_00004.cbf.part").write_bytes(content)
    (tmp_path / "notes.txt").write_text("not an image")
    assert watcher.scan() == []
    with open(tmp_path / "run1_00002.cbf", "ab") as handle:
        handle.write(content[5000:])
    (ref,) = watcher.scan()
    assert (ref.run, ref.image, ref.frame, ref.number) == \
        (str(tmp_path / "run1_#####.cbf"), str(tmp_path / "run1_00002.cbf"), 0, 2)
    assert ref.since == pytest.approx(os.stat(ref.path).st_mtime)
    assert watcher.scan() == []  # once only

    # SMV: whole when it holds HEADER_BYTES + SIZE1 × SIZE2 pixels.
    write_smv(str(tmp_path / "smv.tmp"), image(5).astype(np.uint16), GEOMETRY)
    smv = (tmp_path / "smv.tmp").read_bytes()
    (tmp_path / "scan_007.img").write_bytes(smv[:-100])
    assert watcher.scan() == []
    (tmp_path / "scan_007.img").write_bytes(smv)
    assert [r.number for r in watcher.scan()] == [7]

    # No completeness in the format (a corrupt file, a compressed one, no number): taken once
    # unchanged for `settle` seconds.
    (tmp_path / "run1_00009.cbf").write_bytes(b"###CBF: VERSION 1.5\n")
    (tmp_path / "overview.cbf").write_bytes(content)
    assert [r.image for r in watcher.scan()] == [str(tmp_path / "overview.cbf")]  # whole: its trailer is there
    assert watcher.scan() == []
    time.sleep(0.4)
    (ref,) = watcher.scan()
    assert ref.image == str(tmp_path / "run1_00009.cbf")


def test_image_names_give_run_templates_and_numbers():
    assert image_template("/data/lyso_1_00017.cbf.gz") == ("lyso_1_#####.cbf.gz", 17)
    assert image_template("x_0001.cbf.bz2") == ("x_####.cbf.bz2", 1)
    assert image_template("overview.cbf") == ("overview.cbf", None)


def test_a_nexus_series_gives_its_frames_as_data_files_appear(tmp_path):
    watcher = FolderWatcher(tmp_path, settle=0.3)
    master = start_series(tmp_path, "ser", n_files=3, frames_per_file=2)
    assert watcher.scan() == []  # no data yet
    frames = np.stack([image(k) for k in range(6)]).astype(np.uint16)
    add_data_file(tmp_path, "ser", 1, frames[0:2])
    first = watcher.scan()
    assert [(r.run, r.image, r.frame, r.number) for r in first] == [(master, master, 0, 1), (master, master, 1, 2)]
    assert watcher.scan() == []
    add_data_file(tmp_path, "ser", 2, frames[2:4])
    add_data_file(tmp_path, "ser", 3, frames[4:6])
    assert [r.frame for r in watcher.scan()] == [2, 3, 4, 5]

    # A worker reads one frame of the series: the same pixels and geometry as xrais's reader.
    expected = list(open_images([master], on_error="raise"))[3]
    frame = load_frame({"path": master, "frame": 3}, None)
    assert isinstance(frame, Frame) and frame.index == 3
    np.testing.assert_array_equal(frame.pixels, frames[3])
    assert frame.geometry == expected.geometry
    missing = load_frame({"path": master, "frame": 6}, None)
    assert isinstance(missing, FrameError) and "not in the series" in missing.message


def test_stream_frames_round_trip_and_bad_ones_become_errors():
    pixels = image(3)
    pixels[10, 20] = -1
    header = decode(encode(image_header("series 7", 12, GEOMETRY, pixels.dtype, "a.cbf"), token="secret"))
    assert header["token"] == "secret" and check_image_header(header) == ("series 7", 12)
    values, geometry = pixels_from_message(header, pixels.tobytes())
    np.testing.assert_array_equal(values, pixels)
    assert geometry == GEOMETRY.replace(detector="PILATUS 6M")

    from xrais.io.geometry import two_theta_axes

    fast_axis, slow_axis = two_theta_axes(25.0)  # a swung detector keeps its orientation on the wire
    swung = GEOMETRY.replace(fast_axis=fast_axis, slow_axis=slow_axis)
    _, received = pixels_from_message(decode(encode(image_header("s", 1, swung, pixels.dtype))), pixels.tobytes())
    assert received.tilt_deg == pytest.approx(25.0) and received.beam_centre == swung.beam_centre

    job = {"run": "series 7", "image": "12", "frame": 0, "source": "a.cbf", "stream": header}
    frame = load_frame(job, zmq.Frame(pixels.tobytes()))
    assert frame.mask[10, 20] and frame.mask.sum() == 1 and frame.source == "a.cbf"

    with pytest.raises(ProtocolError, match="expected 262144"):
        pixels_from_message(header, pixels.tobytes()[:-4])
    with pytest.raises(ProtocolError, match="not a numeric"):
        pixels_from_message(dict(header, dtype="<U4"), pixels.tobytes())
    with pytest.raises(GeometryError):
        pixels_from_message(dict(header, geometry=dict(header["geometry"], distance=0.0)), pixels.tobytes())
    with pytest.raises(ProtocolError, match="'image' number"):
        check_image_header(dict(header, image=-1))
    broken = load_frame(dict(job, stream=dict(header, dtype="<i2")), zmq.Frame(pixels.tobytes()))
    assert isinstance(broken, FrameError) and "unusable stream frame" in broken.message


def test_publisher_marks_invalid_pixels_negative():
    pixels = image(1).astype(np.uint16)
    mask = np.zeros(SHAPE, bool)
    mask[0, :3] = True
    sent = stream_pixels(Frame(pixels, mask, GEOMETRY, "a.cbf"))
    assert sent.dtype == np.int32 and (sent[0, :3] == -1).all() and (sent[1] == pixels[1]).all()


def test_endpoints_on_loopback_or_not():
    assert is_loopback_endpoint("tcp://127.0.0.1:5556") and is_loopback_endpoint("tcp://[::1]:5556")
    assert is_loopback_endpoint("ipc:///tmp/x") and is_loopback_endpoint("tcp://localhost:1")
    assert not is_loopback_endpoint("tcp://*:5556") and not is_loopback_endpoint("tcp://0.0.0.0:5556")
    assert not is_loopback_endpoint("tcp://eth0:5556")


def _row(number, status="ok", d_min=2.0, run="r1"):
    result = {"d_min": d_min, "d_mean": d_min + 0.1, "p_multilattice": 0.25, "multilattice": False,
              "diffraction": True, "inverse_d_quadrants": [float("nan"), 0.5], "error": None}
    return {"run": run, "image": f"/data/x_{number:05d}.cbf", "frame": 0, "number": number, "status": status,
            "error": "boom" if status == "error" else None, "worker": "w1", "received": 1.0, "analysed": 2.0,
            "result": result if status == "ok" else {"error": "boom"}}


def test_store_keeps_each_image_once_across_restarts(tmp_path):
    database = str(tmp_path / "results.sqlite")
    store = ResultStore(database)
    keys, problems = store.add([_row(1, d_min=1.5), _row(2, d_min=2.5), _row(3, "error"),
                                {"run": "r1", "image": 5, "frame": 0}])
    assert len(keys) == 3 and len(problems) == 1 and "row key" in problems[0]
    assert store.add([_row(1, d_min=9.9)])[0] == [("r1", "/data/x_00001.cbf", 0)]  # acknowledged, not stored again
    store.close()
    store = ResultStore(database)  # a restarted collector
    store.add([_row(4, d_min=3.5, run="r2")])
    reader = StoreReader(database)
    rows = reader.results_since(0)
    assert [(r["id"], r["number"], r["status"]) for r in rows] == \
        [(1, 1, "ok"), (2, 2, "ok"), (3, 3, "error"), (4, 4, "ok")]
    assert rows[0]["d_min"] == 1.5 and rows[0]["multilattice"] is False
    assert [r["id"] for r in reader.results_since(2, run="r1")] == [3]
    full = reader.result("r1", "/data/x_00001.cbf", 0)
    assert full["result"]["inverse_d_quadrants"] == [None, 0.5] and full["worker"] == "w1"
    assert reader.result_by_id(3)["error"] == "boom" and reader.result("r1", "/etc/passwd", 0) is None
    runs = {r["run"]: r for r in reader.runs()}
    assert list(runs) == ["r2", "r1"]  # newest first
    assert runs["r1"]["n_images"] == 3 and runs["r1"]["n_errors"] == 1 and runs["r1"]["best_d_min"] == 1.5
    assert runs["r1"]["median_d_min"] == 1.5 and runs["r1"]["fraction_multilattice"] == 0.0
    assert reader.totals() == {"stored": 4, "last_id": 4, "errors": 1, "skipped": 0}
    store.close()


def test_the_store_keeps_which_numbers_are_experimental(tmp_path):
    """A worker's rows name the fields from experimental models; the compact rows and the run
    summaries carry them to the page; a store written before that column existed is upgraded."""
    import sqlite3

    database = str(tmp_path / "old.sqlite")
    old = sqlite3.connect(database)
    old.execute("CREATE TABLE results (id INTEGER PRIMARY KEY, run TEXT NOT NULL, image TEXT NOT NULL, "
                "frame INTEGER NOT NULL, number INTEGER, source TEXT, status TEXT NOT NULL, d_min REAL, d_mean REAL, "
                "b_factor REAL, diffraction INTEGER, p_multilattice REAL, multilattice INTEGER, error TEXT, "
                "worker TEXT, received REAL, analysed REAL, stored REAL NOT NULL, result TEXT, "
                "UNIQUE (run, image, frame))")
    old.execute("INSERT INTO results (run, image, frame, status, stored) VALUES ('r0', '/data/a.cbf', 0, 'ok', 1.0)")
    old.commit()
    old.close()
    store = ResultStore(database)
    store.add([dict(_row(1), experimental=["multilattice", "p_multilattice"]), _row(2, run="r2")])
    reader = StoreReader(database)
    rows = {r["number"]: r for r in reader.results_since(0)}
    assert rows[1]["experimental"] == "multilattice,p_multilattice" and rows[2]["experimental"] is None
    runs = {r["run"]: r for r in reader.runs()}
    assert runs["r1"]["experimental"] == "multilattice,p_multilattice" and runs["r2"]["experimental"] is None
    assert runs["r0"]["n_images"] == 1
    store.close()


def test_the_program_names_its_subcommands(capsys, tmp_path):
    assert monitor_main([]) == 2 and "Subcommands: run, collector, feeder, worker, publish" in capsys.readouterr().err
    assert monitor_main(["nope"]) == 2 and "unknown subcommand 'nope'" in capsys.readouterr().err
    assert monitor_main(["worker", "-h"]) == 0 and "connect = tcp://127.0.0.1:5556" in capsys.readouterr().out
    assert monitor_main(["run", "output.log=None"]) == 1 and "nothing to watch" in capsys.readouterr().err
    assert monitor_main(["run", f"folder={tmp_path / 'absent'}", "output.log=None"]) == 1
    assert monitor_main(["publish", "rate=-1"]) == 2
