"""The feeder: takes frames from a folder and/or an image stream, holds them in a bounded queue,
hands them to the workers that ask for work, and passes every result on to the collector until
the collector confirms it has stored it.

Load balancing is by credit, as in Interceptor (workers ask; the feeder never pushes unasked): a
worker announces how many frames it can hold (``prefetch``), each result it returns makes room
for one more, so fast workers take more frames. Workers send a heartbeat every second; one
silent for ``worker_timeout`` seconds is taken as gone and the frames it held go back to the
front of the queue (as do frames held longer than ``job_timeout``). A result that comes twice is
stored once (the collector's store is keyed by run, image and frame).

Backpressure: at most ``queue_size`` frames wait in memory. With ``overflow="wait"`` (the default)
nothing is dropped: files simply wait on disk, and the stream is not read, so its frames wait in
ZeroMQ's buffers (``hwm`` messages on each side) and then the sender's ``send`` blocks. With
``overflow="skip"`` the oldest queued frame makes room for the newest: it is logged and stored
as a row with status "skipped".
"""
from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import os
import secrets
import socket
import threading
import time
from typing import Any, Deque, Dict, List, Optional

import zmq

from .protocol import (DEFAULT_INGEST, DEFAULT_WORK, MonitorError, ProtocolError, check_image_header, decode,
                       encode, finite, is_loopback_endpoint, require_token, token_matches)
from .sources import FolderWatcher
from .store import RowError, row_key

log = logging.getLogger(__name__)

OVERFLOW_POLICIES = ("wait", "skip")
STATUS_INTERVAL_S = 0.5
ACK_TIMEOUT_S = 3.0
#: Seconds to wait for the collector to say which frames of the folder it has stored already.
STORED_TIMEOUT_S = 10.0
MAX_ROWS_PER_MESSAGE = 500


@dataclasses.dataclass
class Job:
    """One frame to analyse: its key, image number, when it was written or received (Unix s), and
    either a file path or a stream header with its pixel buffer."""

    id: str
    run: str
    image: str
    frame: int
    number: Optional[int]
    since: float
    source: Optional[str] = None
    path: Optional[str] = None
    stream_header: Optional[Dict[str, Any]] = None
    pixels: Any = None

    @property
    def key(self):
        return self.run, self.image, self.frame

    def header(self) -> Dict[str, Any]:
        """The job message's header (see :mod:`xrais.monitor.protocol`)."""
        header = {"type": "job", "job": self.id, "run": self.run, "image": self.image, "frame": self.frame,
                  "number": self.number, "since": self.since, "source": self.source}
        if self.path is not None:
            header["path"] = self.path
        else:
            header["stream"] = self.stream_header
        return header


@dataclasses.dataclass
class _Worker:
    id: str
    routing: bytes
    host: str
    pid: Optional[int]
    last_seen: float
    done: int = 0
    jobs: Dict[str, float] = dataclasses.field(default_factory=dict)  # job id → monotonic s sent


@dataclasses.dataclass
class _InFlight:
    job: Job
    worker: str
    sent: float


class Feeder:
    """Sources → bounded queue → workers → collector. Run with :meth:`run` until ``stop`` is set.

    folder: watched folder (see :class:`~xrais.monitor.sources.FolderWatcher`); stream: endpoint of
    an image stream to connect to (a publisher or detector binds it); work: endpoint the workers
    connect to (bound here); collector: the collector's result endpoint (connected to);
    queue_size: frames held in memory; overflow: "wait" or "skip"; poll: seconds between folder
    scans; settle: see FolderWatcher; hwm: ZeroMQ high-water mark of the stream socket (messages);
    worker_timeout, job_timeout: seconds (see the module text); token: shared secret.
    """

    def __init__(self, folder: Optional[str] = None, stream: Optional[str] = None, work: str = DEFAULT_WORK,
                 collector: str = DEFAULT_INGEST, queue_size: int = 64, overflow: str = "wait",
                 token: Optional[str] = None, poll: float = 0.1, settle: float = 1.0, hwm: int = 16,
                 worker_timeout: float = 5.0, job_timeout: float = 300.0):
        if folder is None and stream is None:
            raise MonitorError("nothing to watch: give a folder, an image stream, or both")
        if overflow not in OVERFLOW_POLICIES:
            raise MonitorError(f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}, got {overflow!r}")
        if queue_size < 1:
            raise MonitorError("the queue must hold at least one frame")
        require_token(f"the work endpoint {work}", is_loopback_endpoint(work), token)
        is_loopback_endpoint(collector)  # checks its form
        if stream is not None:
            is_loopback_endpoint(stream)
        self.watcher = FolderWatcher(folder, settle) if folder is not None else None
        self.stream_endpoint, self.work_endpoint, self.collector_endpoint = stream, work, collector
        self.queue_size, self.overflow, self.token = int(queue_size), overflow, token
        self.poll, self.hwm = float(poll), int(hwm)
        self.worker_timeout, self.job_timeout = float(worker_timeout), float(job_timeout)
        self.id = f"feeder-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.session = secrets.token_hex(4)
        self._job_numbers = itertools.count(1)
        self.backlog: Deque[Job] = collections.deque()   # found on disk, not yet queued
        self.pending: Deque[Job] = collections.deque()   # queued in memory
        self.in_flight: Dict[str, _InFlight] = {}
        self.workers: Dict[str, _Worker] = {}
        self.ready: Deque[str] = collections.deque()     # one entry per job a worker asked for
        self.unacked: "collections.OrderedDict[tuple, list]" = collections.OrderedDict()  # key → [row, sent]
        self.outbox: List[Dict[str, Any]] = []
        self.counts = dict.fromkeys(("received", "analysed", "errors", "skipped", "requeued", "rejected"), 0)
        self.started = time.time()
        self.stored_before: Optional[set] = None  # keys of the folder's frames stored before this feeder started
        self._warned_refused: set = set()

    # -- main loop -------------------------------------------------------------------------------
    def run(self, stop: threading.Event, drain_s: float = 10.0) -> None:
        """Serve until ``stop`` is set, then wait (at most ``drain_s``) for the frames being analysed
        and the results not yet stored."""
        context = zmq.Context()
        try:
            self._open(context)
            log.info("feeder: %s; workers connect to %s; results go to %s; queue of %d frames (overflow=%s)",
                     ", ".join(self._sources()), self.work_endpoint, self.collector_endpoint, self.queue_size,
                     self.overflow)
            next_scan = next_check = next_status = 0.0
            if self.watcher is not None:
                self._ask_stored()
            stored_deadline = time.monotonic() + STORED_TIMEOUT_S
            while not stop.is_set():
                self._step(taking=True)
                now = time.monotonic()
                if self.watcher is not None and self.stored_before is None and now > stored_deadline:
                    log.warning("feeder: the collector did not say which frames it has already: every frame of the "
                                "folder is analysed (none is stored twice)")
                    self.stored_before = set()
                if self.watcher is not None and self.stored_before is not None and now >= next_scan:
                    self._scan()
                    next_scan = now + self.poll
                if now >= next_check:
                    self._check_workers(now)
                    self._resend(now)
                    next_check = now + 0.5
                self._fill_queue()
                self._dispatch()
                self._fill_queue()  # keep the queue full while frames wait on disk
                self._flush_rows()
                if now >= next_status:
                    self._send_status()
                    next_status = now + STATUS_INTERVAL_S
            self._drain(time.monotonic() + drain_s)
        finally:
            context.destroy(linger=2000)

    def _open(self, context: zmq.Context) -> None:
        self.work = context.socket(zmq.ROUTER)
        self.work.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.work.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self.work.setsockopt(zmq.LINGER, 0)
        try:
            self.work.bind(self.work_endpoint)
        except zmq.ZMQError as exc:
            raise MonitorError(f"cannot serve work on {self.work_endpoint}: {exc}") from None
        self.ingest = context.socket(zmq.DEALER)
        self.ingest.setsockopt(zmq.ROUTING_ID, self.id.encode())
        self.ingest.setsockopt(zmq.LINGER, 2000)
        self.ingest.connect(self.collector_endpoint)
        self.poller = zmq.Poller()
        self.poller.register(self.work, zmq.POLLIN)
        self.poller.register(self.ingest, zmq.POLLIN)
        self.stream = None
        if self.stream_endpoint is not None:
            self.stream = context.socket(zmq.PULL)
            self.stream.setsockopt(zmq.RCVHWM, self.hwm)
            self.stream.setsockopt(zmq.LINGER, 0)
            self.stream.connect(self.stream_endpoint)
            self.poller.register(self.stream, zmq.POLLIN)

    def _sources(self) -> List[str]:
        sources = []
        if self.watcher is not None:
            sources.append(f"folder {self.watcher.folder}")
        if self.stream_endpoint is not None:
            sources.append(f"stream {self.stream_endpoint}")
        return sources

    def _step(self, taking: bool) -> None:
        """Wait up to one poll interval for messages and handle them (frames too when ``taking``)."""
        reading_stream = self.stream is not None and taking and (self._room() or self.overflow == "skip")
        if self.stream is not None:
            self.poller.modify(self.stream, zmq.POLLIN if reading_stream else 0)
        events = dict(self.poller.poll(int(1000 * min(self.poll, 0.1))))
        if self.work in events:
            self._read_workers()
        if self.ingest in events:
            self._read_collector()
        if reading_stream and self.stream in events:
            self._read_stream()

    def _drain(self, deadline: float) -> None:
        log.info("feeder: stopping; waiting for %d frame(s) being analysed and %d result(s) to be stored",
                 len(self.in_flight), len(self.unacked))
        next_resend = 0.0
        while (self.in_flight or self.unacked) and time.monotonic() < deadline:
            self._step(taking=False)
            now = time.monotonic()
            self._check_workers(now)
            if now >= next_resend:
                self._resend(now)
                next_resend = now + 0.5
            self._flush_rows()
        self._send_status()
        waiting = len(self.backlog) + len(self.pending)
        if waiting or self.in_flight or self.unacked:
            log.warning("feeder: stopped with %d frame(s) waiting, %d being analysed and %d result(s) not confirmed "
                        "stored (a new feeder on the folder takes its frames again; stream frames are not analysed)",
                        waiting, len(self.in_flight), len(self.unacked))

    # -- sources ---------------------------------------------------------------------------------
    def _room(self) -> bool:
        return len(self.pending) < self.queue_size

    def _new_job(self, **fields) -> Job:
        self.counts["received"] += 1
        return Job(id=f"{self.session}-{next(self._job_numbers)}", **fields)

    def _ask_stored(self) -> None:
        """Ask the collector which frames of the folder it has (a restarted feeder takes only the others)."""
        try:
            self.ingest.send(encode({"type": "stored", "feeder": self.id, "folder": self.watcher.folder}, self.token),
                             zmq.NOBLOCK)
        except zmq.Again:
            pass  # no answer: after STORED_TIMEOUT_S every frame is taken

    def _scan(self) -> None:
        for ref in self.watcher.scan():
            if (ref.run, ref.image, ref.frame) in self.stored_before:
                continue
            self.backlog.append(self._new_job(run=ref.run, image=ref.image, frame=ref.frame, number=ref.number,
                                              since=ref.since, source=ref.path, path=ref.path))

    def _fill_queue(self) -> None:
        while self.backlog and (self._room() or self.overflow == "skip"):
            self._enqueue(self.backlog.popleft())

    def _read_stream(self) -> None:
        while self._room() or self.overflow == "skip":
            try:
                parts = self.stream.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            try:
                header = decode(parts[0].bytes)
                if not token_matches(header, self.token):
                    raise ProtocolError("wrong or missing token")
                run, number = check_image_header(header)
            except ProtocolError as exc:
                self.counts["rejected"] += 1
                log.warning("feeder: refused a message from the stream: %s", exc)
                continue
            header.pop("token", None)
            source = header.get("source") if isinstance(header.get("source"), str) else None
            self._enqueue(self._new_job(run=run, image=str(number), frame=0, number=number, since=time.time(),
                                        source=source, stream_header=header,
                                        pixels=parts[1] if len(parts) > 1 else None))

    def _enqueue(self, job: Job) -> None:
        if not self._room() and self.overflow == "skip":
            self._skip(self.pending.popleft())
        self.pending.append(job)

    def _skip(self, job: Job) -> None:
        self.counts["skipped"] += 1
        log.warning("feeder: skipped %s frame %d (image %s of run %s): the queue of %d frames is full "
                    "(queue.overflow=skip)", job.image, job.frame, job.number, job.run, self.queue_size)
        self._store({"run": job.run, "image": job.image, "frame": job.frame, "number": job.number,
                     "source": job.source, "status": "skipped", "received": job.since, "analysed": None,
                     "worker": None, "result": None,
                     "error": f"not analysed: the queue of {self.queue_size} frames was full (queue.overflow=skip)"})

    # -- workers ---------------------------------------------------------------------------------
    def _read_workers(self) -> None:
        for _ in range(1000):
            try:
                parts = self.work.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            routing = parts[0]
            try:
                header = decode(parts[1]) if len(parts) > 1 else {}
            except ProtocolError as exc:
                log.warning("feeder: ignored a message on the work endpoint: %s", exc)
                continue
            if not token_matches(header, self.token):
                self._refuse(routing, "wrong or missing token")
                continue
            kind = header.get("type")
            if kind in ("hello", "heartbeat", "result"):
                worker = self._worker(routing, header)
                if kind == "heartbeat":
                    self._reconcile(worker, header.get("holding"))
                elif kind == "result":
                    self._result(worker, header)
            elif kind == "bye":
                self._leave(str(header.get("worker")), "left")

    def _refuse(self, routing: bytes, reason: str) -> None:
        if routing not in self._warned_refused:
            self._warned_refused.add(routing)
            log.warning("feeder: refused a worker (%s)", reason)
        try:
            self.work.send_multipart([routing, encode({"type": "refused", "reason": reason})], zmq.NOBLOCK)
        except zmq.ZMQError:
            pass

    def _worker(self, routing: bytes, header: Dict[str, Any]) -> _Worker:
        worker_id = str(header.get("worker") or routing.hex())
        worker = self.workers.get(worker_id)
        now = time.monotonic()
        if worker is None:
            pid = header.get("pid")
            worker = _Worker(worker_id, routing, str(header.get("host", "?")),
                             pid if isinstance(pid, int) else None, now)
            self.workers[worker_id] = worker
            credit = header.get("credit")  # hello and heartbeat say; a result itself makes room for one
            self.ready.extend([worker_id] * (min(credit, 1000) if isinstance(credit, int) else 0))
            log.info("feeder: worker %s joined (%d worker(s))", worker_id, len(self.workers))
        worker.routing, worker.last_seen = routing, now
        return worker

    def _result(self, worker: _Worker, header: Dict[str, Any]) -> None:
        job_id = str(header.get("job"))
        worker.done += 1
        self.ready.append(worker.id)  # the worker has room for one more
        entry = self.in_flight.pop(job_id, None)
        if entry is not None:
            holder = self.workers.get(entry.worker)
            if holder is not None:
                holder.jobs.pop(job_id, None)
        elif any(job.id == job_id for job in self.pending):  # sent back to the queue, then done after all
            self.pending = collections.deque(job for job in self.pending if job.id != job_id)
        elif job_id.startswith(self.session + "-"):
            log.debug("feeder: second result for %s ignored", job_id)
            return
        row = header.get("row")
        if isinstance(row, dict):
            self._store(row)

    def _reconcile(self, worker: _Worker, holding) -> None:
        """Frames sent to a worker that it does not hold (lost on the way) go back to the queue."""
        if not isinstance(holding, list):
            return
        held = {str(job_id) for job_id in holding}
        now = time.monotonic()
        lost = [job_id for job_id, sent in worker.jobs.items()
                if job_id not in held and now - sent > self.worker_timeout]
        self._requeue(lost, f"not received by worker {worker.id}")

    def _leave(self, worker_id: str, why: str) -> None:
        worker = self.workers.pop(worker_id, None)
        if worker is None:
            return
        self.ready = collections.deque(entry for entry in self.ready if entry != worker_id)
        log.info("feeder: worker %s %s after %d frame(s)%s", worker_id, why, worker.done,
                 f"; its {len(worker.jobs)} frame(s) go back to the queue" if worker.jobs else "")
        self._requeue(list(worker.jobs), f"worker {worker_id} {why}")

    def _requeue(self, job_ids: List[str], why: str) -> None:
        jobs = []
        for job_id in job_ids:
            entry = self.in_flight.pop(job_id, None)
            if entry is None:
                continue
            holder = self.workers.get(entry.worker)
            if holder is not None:
                holder.jobs.pop(job_id, None)
            jobs.append(entry.job)
            log.info("feeder: %s frame %d goes back to the queue (%s)", entry.job.image, entry.job.frame, why)
        self.counts["requeued"] += len(jobs)
        self.pending.extendleft(reversed(jobs))

    def _check_workers(self, now: float) -> None:
        for worker in list(self.workers.values()):
            if now - worker.last_seen > self.worker_timeout:
                self._leave(worker.id, f"silent for {now - worker.last_seen:.1f} s: taken as gone")
        overdue = [job_id for job_id, entry in self.in_flight.items() if now - entry.sent > self.job_timeout]
        self._requeue(overdue, f"not analysed within {self.job_timeout:g} s")

    def _dispatch(self) -> None:
        while self.pending and self.ready:
            worker = self.workers.get(self.ready.popleft())
            if worker is None:
                continue  # left since it asked
            job = self.pending.popleft()
            parts = [worker.routing, encode(job.header())]
            if job.pixels is not None:
                parts.append(job.pixels)
            try:
                self.work.send_multipart(parts, zmq.NOBLOCK, copy=False)
            except zmq.ZMQError as exc:
                self.pending.appendleft(job)
                if exc.errno == zmq.EAGAIN:
                    self.ready.append(worker.id)
                    return
                self._leave(worker.id, f"unreachable ({exc})")
                continue
            now = time.monotonic()
            self.in_flight[job.id] = _InFlight(job, worker.id, now)
            worker.jobs[job.id] = now

    # -- collector -------------------------------------------------------------------------------
    def _store(self, row: Dict[str, Any]) -> None:
        try:
            key = row_key(row)
        except RowError as exc:
            log.warning("feeder: dropped a malformed result row (%s)", exc)
            return
        row = finite(row)
        self.unacked[key] = [row, None]
        self.outbox.append(row)

    def _flush_rows(self) -> None:
        if not self.outbox:
            return
        rows, self.outbox = self.outbox, []
        self._send_rows(rows, time.monotonic())

    def _send_rows(self, rows: List[Dict[str, Any]], now: float) -> None:
        for start in range(0, len(rows), MAX_ROWS_PER_MESSAGE):
            batch = rows[start:start + MAX_ROWS_PER_MESSAGE]
            try:
                self.ingest.send(encode({"type": "rows", "feeder": self.id, "rows": batch}, self.token), zmq.NOBLOCK)
            except zmq.Again:
                return  # the collector is away and the buffer is full: sent again later
            for row in batch:
                entry = self.unacked.get(row_key(row))
                if entry is not None:
                    entry[1] = now

    def _resend(self, now: float) -> None:
        """Rows the collector has not confirmed within a few seconds are sent again."""
        due = [row for row, sent in self.unacked.values() if sent is None or now - sent > ACK_TIMEOUT_S]
        if due:
            log.debug("feeder: sending %d unconfirmed result(s) again", len(due))
            self._send_rows(due, now)

    def _read_collector(self) -> None:
        for _ in range(1000):
            try:
                header = decode(self.ingest.recv(zmq.NOBLOCK))
            except zmq.Again:
                return
            except ProtocolError as exc:
                log.warning("feeder: ignored a message from the collector: %s", exc)
                continue
            if header["type"] == "refused":
                raise MonitorError(f"the collector at {self.collector_endpoint} refused this feeder: "
                                   f"{header.get('reason')}")
            if header["type"] == "stored" and self.stored_before is None:
                self.stored_before = {tuple(key) for key in header.get("keys", []) if isinstance(key, list)}
                if self.stored_before:
                    log.info("feeder: %d frame(s) of the folder were analysed before: not again",
                             len(self.stored_before))
            if header["type"] == "ack":
                for key in header.get("keys", []):
                    entry = self.unacked.pop(tuple(key), None) if isinstance(key, list) else None
                    if entry is not None and entry[0].get("status") != "skipped":
                        self.counts["analysed"] += 1
                        self.counts["errors"] += entry[0].get("status") == "error"

    def status(self) -> Dict[str, Any]:
        """Queue, lag and workers (what the collector's /api/status shows)."""
        now, wall = time.monotonic(), time.time()
        waiting = [job.since for job in itertools.chain(self.backlog, self.pending)]
        waiting += [entry.job.since for entry in self.in_flight.values()]
        return dict(self.counts, **{
            "type": "status", "feeder": self.id, "started": self.started, "sources": self._sources(),
            "queue_size": self.queue_size, "overflow": self.overflow, "queued": len(self.pending),
            "waiting_on_disk": len(self.backlog), "in_flight": len(self.in_flight),
            "awaiting_storage": len(self.unacked),
            "oldest_waiting_s": round(max(0.0, wall - min(waiting)), 3) if waiting else None,
            "workers": [{"worker": w.id, "host": w.host, "pid": w.pid, "done": w.done,
                         "jobs": [list(self.in_flight[j].job.key) for j in w.jobs if j in self.in_flight],
                         "last_seen_s": round(now - w.last_seen, 2)} for w in self.workers.values()],
        })

    def _send_status(self) -> None:
        try:
            self.ingest.send(encode(self.status(), self.token), zmq.NOBLOCK)
        except zmq.Again:
            pass

