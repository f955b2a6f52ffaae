"""Backpressure with a tiny queue and one worker slower than the frames come: the lag shows in the
API, files wait on disk, the image stream is slowed by ZeroMQ's high-water marks, and nothing is
dropped — unless the skip policy is asked for, and then each skipped frame is logged and stored as
such. The worker moves by itself to a new feeder on the same endpoint."""
import logging
import threading

from monitorhelpers import api, collection_folders, endpoints, free_port, program, stop, stored_rows, wait_for, write_image

from xrais.monitor import Collector, Feeder, publish

STREAM_FRAMES = 60
DISK_FRAMES = 20
ASKED_RATE = 500.0   # frames/s: far more than one 4-quadrant worker analyses


def _start(feeder: Feeder):
    stopping = threading.Event()
    thread = threading.Thread(target=feeder.run, args=(stopping,), daemon=True)
    thread.start()
    return stopping, thread


def _publish_in_background(shots, stream, run):
    report = {}
    thread = threading.Thread(target=lambda: report.update(
        sent=publish([str(shots)], bind=stream, rate=ASKED_RATE, run=run, hwm=1)), daemon=True)
    thread.start()
    return thread, report


def _feeder_with_worker(port, feeder: Feeder):
    return [f for f in api(port, "/api/status")["feeders"] if f["feeder"] == feeder.id and f["workers"]]


def test_a_slow_worker_slows_the_stream_and_nothing_is_dropped_unless_skip_is_asked(tmp_path, models_env, caplog):
    caplog.set_level(logging.INFO, logger="xrais.monitor")
    data, shots = collection_folders(tmp_path, STREAM_FRAMES)
    work, ingest, port = endpoints()
    database = str(tmp_path / "monitor.sqlite")
    collector = Collector(database, ingest=ingest, http_port=port)
    collector.start()
    worker = program("worker", f"connect={work}", "quadrants=4", f"output.log={tmp_path / 'worker.log'}",
                     env=models_env, log=tmp_path / "worker.out")
    waiting = Feeder(folder=str(data), stream=f"tcp://127.0.0.1:{free_port()}", work=work, collector=ingest,
                     queue_size=2, hwm=1, overflow="wait")
    stopping, thread = _start(waiting)
    try:
        wait_for(lambda: _feeder_with_worker(port, waiting), 90, "the worker", processes=[worker])
        for k in range(1, DISK_FRAMES + 1):
            write_image(data, k, prefix="disk_")
        publisher, report = _publish_in_background(shots, waiting.stream_endpoint, "burst-wait")

        def lagging():
            lag = api(port, "/api/status")["lag"]
            full = lag["queued"] == 2 and lag["waiting_on_disk"] > 0 and lag["behind"] > 2
            return lag if full and lag["oldest_waiting_s"] > 0 and lag["received"] > lag["analysed"] else None

        lag = wait_for(lagging, 30, "the lag to show", interval=0.1)
        publisher.join(180)
        wait_for(lambda: api(port, "/api/status")["store"]["stored"] == DISK_FRAMES + STREAM_FRAMES, 180,
                 "every frame", processes=[worker])
        rows = stored_rows(database)
        assert all(r["status"] == "ok" for r in rows)
        assert sorted(r["number"] for r in rows if r["run"] == "burst-wait") == list(range(1, STREAM_FRAMES + 1))
        slowed = report["sent"]
        assert slowed.sent == STREAM_FRAMES and slowed.rate < ASKED_RATE / 4, slowed
        stopping.set()
        thread.join(30)
        print(f"\nwait: lag seen {lag}; publisher slowed to {slowed.rate:.0f} frames/s ({ASKED_RATE:.0f} asked)")

        skipping = Feeder(stream=f"tcp://127.0.0.1:{free_port()}", work=work, collector=ingest, queue_size=2, hwm=1,
                          overflow="skip")
        stopping, thread = _start(skipping)
        wait_for(lambda: _feeder_with_worker(port, skipping), 30, "the worker to move to the new feeder")
        caplog.clear()
        publisher, report = _publish_in_background(shots, skipping.stream_endpoint, "burst-skip")
        publisher.join(60)
        wait_for(lambda: len([r for r in stored_rows(database) if r["run"] == "burst-skip"]) == STREAM_FRAMES, 120,
                 "a row for every frame", processes=[worker])
        rows = [r for r in stored_rows(database) if r["run"] == "burst-skip"]
        assert sorted(r["number"] for r in rows) == list(range(1, STREAM_FRAMES + 1))
        skipped = [r for r in rows if r["status"] == "skipped"]
        assert 0 < len(skipped) < STREAM_FRAMES and all(r["status"] == "ok" for r in rows if r not in skipped)
        assert all("queue of 2 frames was full (queue.overflow=skip)" in r["error"] for r in skipped)
        logged = [record.getMessage() for record in caplog.records if "skipped" in record.getMessage()]
        assert len(logged) == len(skipped) and all("burst-skip" in line for line in logged)
        assert wait_for(lambda: api(port, "/api/status")["lag"]["skipped"] == len(skipped), 5, "skipped in the lag")
        print(f"skip: {len(skipped)} of {STREAM_FRAMES} frames skipped; "
              f"publisher at {report['sent'].rate:.0f} frames/s")
    finally:
        stopping.set()
        thread.join(30)
        stop(worker)
        collector.stop()
