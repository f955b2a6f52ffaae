"""Faults during a collection, with the programs as separate processes: a worker killed (SIGKILL)
while it analyses an image, a corrupt file, a faster worker joining mid-run (it takes more
frames), the collector killed and started again, then the feeder replaced — nothing is lost,
nothing is stored twice, earlier results stay, nothing is analysed twice."""
import collections
import os
import signal
import threading
import time

from monitorhelpers import api, endpoints, program, stop, stored_rows, wait_for, write_image

FRAMES = 150
BURST = 60            # frames written at once: the workers are busy with one image after another
FRAME_RATE = 40.0     # frames/s for the others, still being written when the collector is killed
CORRUPT = 75


def _write_collection(folder, done: threading.Event):
    started = time.monotonic()
    for k in range(1, FRAMES + 1):
        time.sleep(max(0.0, started + (k - BURST) / FRAME_RATE - time.monotonic()))
        if k == CORRUPT:
            (folder / f"run1_{k:05d}.cbf").write_bytes(b"###CBF: VERSION 1.5\r\n# Detector: PILATUS 6M\r\n\x00\x01")
        else:
            write_image(folder, k)
    done.set()


def test_killed_worker_corrupt_file_and_restarted_collector_lose_and_repeat_nothing(tmp_path, models_env):
    data = tmp_path / "data"
    data.mkdir()
    work, ingest, port = endpoints()
    database = str(tmp_path / "monitor.sqlite")

    def collector():
        return program("collector", f"database={database}", f"http.port={port}", f"ingest={ingest}",
                       f"output.log={tmp_path / 'collector.log'}", log=tmp_path / "collector.out")

    def worker(n, quadrants=4):
        return program("worker", f"connect={work}", f"quadrants={quadrants}", f"name=q{quadrants}",
                       f"output.log={tmp_path / f'worker{n}.log'}", env=models_env, log=tmp_path / f"worker{n}.out")

    serving = collector()
    feeder = program("feeder", f"folder={data}", f"work={work}", f"collector={ingest}", "worker_timeout=2",
                     "settle=0.5", f"output.log={tmp_path / 'feeder.log'}", log=tmp_path / "feeder.out")
    workers = [worker(1), worker(2)]
    written = threading.Event()
    writer = threading.Thread(target=_write_collection, args=(data, written), daemon=True)
    try:
        wait_for(lambda: api(port, "/api/status")["workers"] == 2, 90, "two workers", processes=[feeder, serving])
        writer.start()
        wait_for(lambda: api(port, "/api/status")["store"]["stored"] >= 20, 60, "20 results", processes=[feeder])

        # SIGKILL a worker in the middle of an image; another worker joins.
        busy = wait_for(lambda: [w for f in api(port, "/api/status")["feeders"] for w in f["workers"] if w["jobs"]],
                        10, "a busy worker")
        victim = next(p for p in workers if p.pid == busy[0]["pid"])
        image_in_flight = tuple(busy[0]["jobs"][0])
        os.kill(victim.pid, signal.SIGKILL)
        workers.append(worker(3, quadrants=1))  # a faster worker joins

        # Kill the collector while frames keep coming, then start it again.
        wait_for(lambda: api(port, "/api/status")["store"]["stored"] >= 60, 60, "60 results", processes=[feeder])
        serving.kill()
        serving.wait()
        before = stored_rows(database)
        time.sleep(1.5)
        serving = collector()

        wait_for(lambda: api(port, "/api/status")["store"]["stored"] >= FRAMES, 120, f"{FRAMES} results",
                 processes=[feeder, serving])
        assert written.is_set()
        status = wait_for(lambda: (lambda s: s if s["lag"]["behind"] == 0 else None)(api(port, "/api/status")), 10,
                          "the feeder's final status")
        rows = stored_rows(database)
        keys = collections.Counter((r["run"], r["image"], r["frame"]) for r in rows)
        assert len(rows) == FRAMES and max(keys.values()) == 1
        assert sorted(r["number"] for r in rows) == list(range(1, FRAMES + 1))
        assert keys[image_in_flight] == 1
        assert rows[:len(before)] == before and len(before) >= 60  # the earlier results are still there
        assert min(r["id"] for r in rows[len(before):]) > max(r["id"] for r in before)
        (corrupt,) = [r for r in rows if r["number"] == CORRUPT]
        assert corrupt["status"] == "error" and "no binary data section" in corrupt["error"]
        assert all(r["status"] == "ok" for r in rows if r["number"] != CORRUPT)
        fast = [r for r in rows if r["worker"].startswith("q1-")]
        since_joined = collections.Counter(r["worker"][:3] for r in rows if r["id"] >= fast[0]["id"])
        assert since_joined["q1-"] > since_joined["q4-"] > 0  # the faster worker asks for more, and gets it
        lag = status["lag"]
        assert lag["requeued"] >= 1 and lag["analysed"] == FRAMES and lag["errors"] == 1 and status["workers"] == 2
        feeder_log = (tmp_path / "feeder.log").read_text()
        assert f"worker {busy[0]['worker']} silent for" in feeder_log and "goes back to the queue" in feeder_log

        # A new feeder on the same folder takes only the frames not stored yet; the workers move to it.
        assert stop(feeder) == 0
        for k in range(FRAMES + 1, FRAMES + 6):
            write_image(data, k)
        feeder = program("feeder", f"folder={data}", f"work={work}", f"collector={ingest}",
                         f"output.log={tmp_path / 'feeder2.log'}", log=tmp_path / "feeder2.out")
        wait_for(lambda: api(port, "/api/status")["store"]["stored"] >= FRAMES + 5, 60, "the new frames",
                 processes=[feeder])
        newest = wait_for(lambda: (lambda f: f if f["analysed"] == 5 else None)(
            max(api(port, "/api/status")["feeders"], key=lambda f: f["started"])), 10, "the new feeder's status")
        assert newest["received"] == 5 and len(stored_rows(database)) == FRAMES + 5
        assert f"{FRAMES} frame(s) of the folder were analysed before" in (tmp_path / "feeder2.log").read_text()
    finally:
        writer.join(30)
        for process in workers:
            stop(process)
        assert stop(feeder) == 0
        stop(serving)
