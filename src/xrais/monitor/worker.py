"""A worker: asks a feeder for frames, runs the Predictor on them, sends the results back.

The worker connects (DEALER) to the feeder's work endpoint and says how many frames it can hold
(``prefetch``); the feeder sends at most that many, and one more for each result. The network
thread keeps the socket, sends a heartbeat every ``heartbeat`` seconds (with the frames it holds)
and passes frames to the compute thread, which reads them (files from the shared file system, or
stream pixels from the message), runs the Predictor on the batch it holds, and hands back one row
per frame. A frame that cannot be read gives a row with status "error". Workers may start and stop
at any time; on stop a worker finishes its batch and gives back the frames it had not started.
"""
from __future__ import annotations

import logging
import os
import queue
import secrets
import socket
import threading
import time
from typing import Any, Dict, List, Optional, Tuple, Union

import zmq

from ..io.errors import GeometryError
from ..io.frame import Frame, FrameError
from ..io.open import open_images
from ..predict import Predictor
from .protocol import DEFAULT_WORK, MonitorError, ProtocolError, decode, encode, finite, pixels_from_message
from ..io.nexus import NexusReader, read_frame

SERIES_SUFFIXES = NexusReader.suffixes

log = logging.getLogger(__name__)

Job = Tuple[Dict[str, Any], Optional[zmq.Frame]]


def load_frame(header: Dict[str, Any], pixels: Optional[zmq.Frame]) -> Union[Frame, FrameError]:
    """The frame a job names: a file (frame ``frame`` of a series) or the pixels of a stream frame."""
    path, index = header.get("path"), int(header.get("frame") or 0)
    if path is not None:
        if index or path.lower().endswith(SERIES_SUFFIXES):
            return read_frame(path, index)
        for item in open_images([path], on_error="yield"):
            return item
        return FrameError(path, None, "file holds no frames")
    source = header.get("source") or f"{header.get('run')}:{header.get('image')}"
    try:
        values, geometry = pixels_from_message(header.get("stream") or {},
                                               pixels.buffer if pixels is not None else None)
    except (ProtocolError, GeometryError) as exc:
        return FrameError(source, None, f"unusable stream frame: {exc}")
    return Frame.from_pixels(values, geometry, source=source, index=index)


class Worker:
    """Serves one feeder until ``stop`` is set (see the module text).

    predictor: the :class:`~xrais.predict.Predictor` to run; connect: the feeder's work endpoint;
    prefetch: frames held at once (also the batch size); heartbeat: seconds between heartbeats;
    token: shared secret; name: prefix of the worker id (default the host name).
    """

    def __init__(self, predictor: Predictor, connect: str = DEFAULT_WORK, prefetch: int = 1, heartbeat: float = 1.0,
                 token: Optional[str] = None, name: Optional[str] = None):
        if prefetch < 1:
            raise MonitorError("prefetch must be at least 1")
        self.predictor, self.connect, self.prefetch = predictor, connect, int(prefetch)
        self.heartbeat, self.token = float(heartbeat), token
        self.id = f"{name or socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
        self.analysed = 0

    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set (:class:`MonitorError` if the feeder refuses this worker)."""
        self.predictor.setup()  # load the models before asking for work
        context = zmq.Context()
        jobs: "queue.Queue[Optional[Job]]" = queue.Queue()
        holding: Dict[str, Job] = {}
        try:
            feeder = context.socket(zmq.DEALER)
            feeder.setsockopt(zmq.ROUTING_ID, self.id.encode())
            feeder.setsockopt(zmq.LINGER, 2000)
            feeder.connect(self.connect)
            results = context.socket(zmq.PAIR)
            results.bind(f"inproc://results-{self.id}")
            compute = threading.Thread(target=self._compute, args=(context, jobs), name="xrais-monitor-compute",
                                       daemon=True)
            compute.start()
            self._send(feeder, {"type": "hello", "credit": self.prefetch})
            log.info("worker %s: asking %s for frames (%d at a time) on %s", self.id, self.connect, self.prefetch,
                     self.predictor.device)
            poller = zmq.Poller()
            poller.register(feeder, zmq.POLLIN)
            poller.register(results, zmq.POLLIN)
            next_heartbeat = 0.0
            while not stop.is_set():
                events = dict(poller.poll(int(250 * self.heartbeat)))
                if feeder in events:
                    self._take_jobs(feeder, jobs, holding)
                if results in events:
                    self._return_results(feeder, results, holding)
                if time.monotonic() >= next_heartbeat:
                    self._send(feeder, {"type": "heartbeat", "credit": self.prefetch - len(holding),
                                        "holding": list(holding)})
                    next_heartbeat = time.monotonic() + self.heartbeat
            self._leave(feeder, results, jobs, holding, compute)
        finally:
            jobs.put(None)  # ends the compute thread if it is still waiting (a refused worker)
            context.destroy(linger=2000)

    def _send(self, feeder, header: Dict[str, Any]) -> None:
        header.update(worker=self.id, host=socket.gethostname(), pid=os.getpid())
        try:
            feeder.send(encode(header, self.token), zmq.NOBLOCK)
        except zmq.Again:  # the feeder has been away long enough to fill the buffer: it will not want this
            log.debug("worker %s: feeder away, %s message dropped", self.id, header["type"])

    def _take_jobs(self, feeder, jobs: "queue.Queue", holding: Dict[str, Job]) -> None:
        while True:
            try:
                parts = feeder.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            try:
                header = decode(parts[0].bytes)
            except ProtocolError as exc:
                log.warning("worker %s: ignored a message from the feeder: %s", self.id, exc)
                continue
            if header["type"] == "refused":
                raise MonitorError(f"the feeder at {self.connect} refused this worker: {header.get('reason')}")
            if header["type"] == "job" and isinstance(header.get("job"), str):
                job = (header, parts[1] if len(parts) > 1 else None)
                holding[header["job"]] = job
                jobs.put(job)

    def _return_results(self, feeder, results, holding: Dict[str, Job]) -> None:
        while True:
            try:
                message = decode(results.recv(zmq.NOBLOCK))
            except zmq.Again:
                return
            holding.pop(message["job"], None)
            self.analysed += 1
            self._send(feeder, message)

    def _leave(self, feeder, results, jobs: "queue.Queue", holding: Dict[str, Job], compute: threading.Thread) -> None:
        """Finish the batch being analysed, give the other frames back, say goodbye."""
        while True:
            try:
                jobs.get_nowait()
            except queue.Empty:
                break
        jobs.put(None)
        while compute.is_alive():
            compute.join(0.1)
            self._return_results(feeder, results, holding)
        self._return_results(feeder, results, holding)
        self._send(feeder, {"type": "bye"})
        log.info("worker %s: stopped after %d frame(s)", self.id, self.analysed)

    # -- compute thread --------------------------------------------------------------------------
    def _compute(self, context: zmq.Context, jobs: "queue.Queue") -> None:
        results = context.socket(zmq.PAIR)
        results.connect(f"inproc://results-{self.id}")
        try:
            while True:
                job = jobs.get()
                if job is None:
                    return
                batch = [job]
                while len(batch) < self.prefetch:
                    try:
                        more = jobs.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        jobs.put(None)
                        break
                    batch.append(more)
                for header, row in self.analyse(batch):
                    results.send(encode({"type": "result", "job": header["job"], "row": row}))
        finally:
            results.close(linger=0)

    def analyse(self, batch: List[Job]) -> List[Tuple[Dict[str, Any], Dict[str, Any]]]:
        """(job header, result row) for every job of a batch, in order."""
        frames, read_ms = [], []
        for header, pixels in batch:
            started = time.perf_counter()
            frames.append(load_frame(header, pixels))
            read_ms.append(round(1000.0 * (time.perf_counter() - started), 2))
        try:
            results = self.predictor.predict(frames)
        except Exception as exc:  # a failing predictor must not stop the worker: every frame gets the error
            log.exception("worker %s: predictor failed", self.id)
            results = [{"error": f"{type(exc).__name__}: {exc}"} for _ in frames]
        experimental = sorted(self.predictor.experimental)  # result fields from experimental models
        rows = []
        for (header, _), result, milliseconds in zip(batch, results, read_ms):
            result["read_ms"] = milliseconds
            rows.append((header, {
                "run": header["run"], "image": header["image"], "frame": header["frame"],
                "number": header.get("number"),
                "source": header.get("source"), "status": "error" if result.get("error") else "ok",
                "error": result.get("error"), "worker": self.id, "received": header.get("since"),
                "analysed": time.time(), "result": finite(result),
                "experimental": experimental,
            }))
        return rows
