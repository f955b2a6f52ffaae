"""End to end on loopback: ``xrais.monitor run`` (collector, feeder, two worker processes) on a folder
written at a set frame rate — miniCBFs renamed into place or written in place, a NeXus series
whose data files appear one by one — and an image stream from ``xrais.monitor publish`` at the
same time. Every frame gets exactly one result, in the store and in the API."""
import collections
import time

import numpy as np
from monitorhelpers import (add_data_file, all_results, api, collection_folders, endpoints, free_port, image, program,
                            start_series, stop, stored_rows, wait_for, write_image)

FOLDER_FRAMES = 500
FRAME_RATE = 100.0        # frames/s written into the folder
STREAM_FRAMES = 60
SERIES_FILES, FRAMES_PER_FILE = 3, 4


def test_a_collection_through_two_workers_gives_every_frame_exactly_one_result(tmp_path, models_env):
    data, shots = collection_folders(tmp_path, STREAM_FRAMES)
    work, ingest, port = endpoints()
    stream = f"tcp://127.0.0.1:{free_port()}"
    database = str(tmp_path / "monitor.sqlite")
    monitor = program("run", f"folder={data}", f"stream={stream}", "workers=2", f"http.port={port}", f"work={work}",
                      f"ingest={ingest}", f"database={database}", "quadrants=1", f"output.log={tmp_path / 'run.log'}",
                      env=models_env, log=tmp_path / "run.out")
    publisher = None
    try:
        wait_for(lambda: api(port, "/api/status")["workers"] == 2, 90, "two workers", processes=[monitor])
        publisher = program("publish", str(shots), f"bind={stream}", "rate=40", "run=stream-run",
                            f"output.log={tmp_path / 'publish.log'}", env=models_env)
        master = start_series(data, "series", SERIES_FILES, FRAMES_PER_FILE)
        series_frames = np.stack([image(k, seed=1) for k in range(SERIES_FILES * FRAMES_PER_FILE)])
        started = time.monotonic()
        for k in range(1, FOLDER_FRAMES + 1):
            time.sleep(max(0.0, started + k / FRAME_RATE - time.monotonic()))
            write_image(data, k, atomic=k % 5 != 0)
            if k % 150 == 0:
                n = k // 150
                add_data_file(data, "series", n, series_frames[(n - 1) * FRAMES_PER_FILE:n * FRAMES_PER_FILE])
        writing = time.monotonic() - started
        total = FOLDER_FRAMES + STREAM_FRAMES + SERIES_FILES * FRAMES_PER_FILE
        wait_for(lambda: api(port, "/api/status")["store"]["stored"] >= total, 120, f"{total} results",
                 processes=[monitor])
        finished = time.monotonic() - started
        status = wait_for(lambda: (lambda s: s if s["lag"]["behind"] == 0 and s["lag"]["received"] == total else None)(
            api(port, "/api/status")), 10, "the feeder's final status")
        assert publisher.wait(30) == 0

        rows = stored_rows(database)
        keys = collections.Counter((r["run"], r["image"], r["frame"]) for r in rows)
        assert len(rows) == total and max(keys.values()) == 1
        # p_multilattice is null on these frames: their 40 spots, put at random, index no lattice
        assert all(r["status"] == "ok" and r["d_min"] is not None and r["multilattice"] is None for r in rows)
        by_run = collections.defaultdict(list)
        for r in rows:
            by_run[r["run"]].append(r["number"])
        assert sorted(by_run[str(data / "run1_#####.cbf")]) == list(range(1, FOLDER_FRAMES + 1))
        assert sorted(by_run["stream-run"]) == list(range(1, STREAM_FRAMES + 1))
        assert sorted(by_run[master]) == list(range(1, SERIES_FILES * FRAMES_PER_FILE + 1))
        assert len({r["worker"] for r in rows}) == 2  # both workers took frames

        served = all_results(port)
        assert [(r["id"], r["run"], r["image"], r["frame"]) for r in served] == \
            [(r["id"], r["run"], r["image"], r["frame"]) for r in rows]
        one = api(port, f"/api/image?run={master}&image={master}&frame=5")
        assert one["number"] == 6 and one["result"]["frame"] == 5 and len(one["result"]["d_quadrants"]) == 1
        runs = {r["run"]: r for r in api(port, "/api/runs")["runs"]}
        assert runs["stream-run"]["n_images"] == STREAM_FRAMES and runs[master]["n_ok"] == 12
        assert status["health"] == "ok" and status["lag"]["analysed"] == total and status["lag"]["queued"] == 0
        print(f"\n{total} frames: folder written in {writing:.1f} s ({FOLDER_FRAMES / writing:.0f} frames/s), "
              f"all stored {finished:.1f} s after the first was written")
    finally:
        if publisher is not None:
            stop(publisher)
        assert stop(monitor) == 0
