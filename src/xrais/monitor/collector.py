"""The collector: stores every result durably and serves them over HTTP, with the live strip chart.

Feeders connect (DEALER) to the collector's result endpoint (ROUTER): each batch of rows is
stored in one SQLite transaction, then acknowledged; each feeder's status (queue, lag, workers)
is kept in memory for ``/api/status``.

HTTP (``ThreadingHTTPServer``: one thread per connection, so many viewers at once), all GET,
JSON unless stated:

* ``/`` — the strip chart page (HTML); ``/static/<name>`` — its script and style sheet, served
  from the package (no other file is ever read);
* ``/api/results?since=ID&run=RUN&limit=N`` — compact rows with id > ID, oldest first
  (``{"results": [...], "last_id": ..., "more": bool}``);
* ``/api/results/ID`` and ``/api/image?run=RUN&image=IMAGE&frame=F`` — one image's full row,
  looked up in the store by id or by key (an image path in a request is never opened);
* ``/api/runs`` — run summaries; ``/api/status`` — health, lag (received, analysed, queued,
  waiting on disk, in flight, oldest waiting age), workers.

With a token configured every request needs it: header ``X-Xrais-Token: TOKEN`` (or
``Authorization: Bearer TOKEN``) or query ``?token=TOKEN``; the page opened with ``/?token=TOKEN``
gets it as an HttpOnly, SameSite=Strict cookie for its script, style and API calls. Without a
token, the collector serves on loopback only.
"""
from __future__ import annotations

import hmac
import http.cookies
import http.server
import importlib.resources
import json
import logging
import sqlite3
import threading
import time
import urllib.parse
from typing import Any, Dict, Optional, Tuple

import zmq

from .protocol import (DEFAULT_HTTP_PORT, DEFAULT_INGEST, MonitorError, ProtocolError, decode, encode, finite,
                       is_loopback_endpoint, is_loopback_host, require_token, token_matches)
from .store import ResultStore, StoreReader

log = logging.getLogger(__name__)

#: Cookie the page gets when opened with ?token=, so that its script, style and API calls carry the token.
TOKEN_COOKIE = "xrais_monitor_token"
#: A feeder whose status is older than this (s) is shown as not live.
FEEDER_TIMEOUT_S = 5.0
#: Feeders not heard from for this long (s) are forgotten.
FEEDER_FORGET_S = 3600.0
_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                  ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml"}
_PAGE_POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


class _Recent:
    """A query's answer, computed at most once every ``seconds`` whatever the number of viewers."""

    def __init__(self, query, seconds: float):
        self.query, self.seconds = query, seconds
        self.answers: Dict[tuple, Tuple[float, Any]] = {}
        self.lock = threading.Lock()

    def __call__(self, *arguments):
        with self.lock:
            when, answer = self.answers.get(arguments, (-float("inf"), None))
            if time.monotonic() - when > self.seconds:
                answer = self.query(*arguments)
                self.answers[arguments] = (time.monotonic(), answer)
            return answer


def _static_files() -> Dict[str, Tuple[bytes, str]]:
    """The page's files shipped in the package: name → (content, content type)."""
    files = {}
    for entry in importlib.resources.files("xrais.monitor").joinpath("static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in _CONTENT_TYPES:
            files[entry.name] = (entry.read_bytes(), _CONTENT_TYPES[suffix])
    return files


class Collector:
    """Result endpoint + store + HTTP server. :meth:`start` binds and serves in background threads.

    database: SQLite file (created if missing; earlier results are kept); ingest: result endpoint
    (bound); http_host, http_port: where the page and API are served (port 0: any free port);
    token: shared secret (required to serve on other interfaces than loopback).
    """

    def __init__(self, database: str, ingest: str = DEFAULT_INGEST, http_host: str = "127.0.0.1",
                 http_port: int = DEFAULT_HTTP_PORT, token: Optional[str] = None):
        require_token(f"the HTTP server on {http_host}", is_loopback_host(http_host), token)
        require_token(f"the result endpoint {ingest}", is_loopback_endpoint(ingest), token)
        self.database, self.ingest_endpoint, self.token = str(database), ingest, token
        self.http_host, self.http_port = http_host, int(http_port)
        self.reader = StoreReader(self.database)
        self.totals = _Recent(self.reader.totals, 1.0)  # scans of the whole table, shared by all viewers
        self.runs = _Recent(self.reader.runs, 2.0)
        self.static = _static_files()
        self.feeders: Dict[str, Tuple[Dict[str, Any], float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> None:
        """Open the store, bind the result endpoint and the HTTP server, serve in threads."""
        try:
            self.store = ResultStore(self.database)
        except sqlite3.Error as exc:
            raise MonitorError(f"cannot open the database {self.database}: {exc}") from None
        self.context = zmq.Context()
        self.ingest = self.context.socket(zmq.ROUTER)
        self.ingest.setsockopt(zmq.LINGER, 1000)
        try:
            self.ingest.bind(self.ingest_endpoint)
        except zmq.ZMQError as exc:
            self.context.destroy(linger=0)
            raise MonitorError(f"cannot receive results on {self.ingest_endpoint}: {exc}") from None
        try:
            self.server = _Server((self.http_host, self.http_port), _Handler, self)
        except OSError as exc:
            self.context.destroy(linger=0)
            raise MonitorError(f"cannot serve HTTP on {self.http_host}:{self.http_port}: {exc.strerror}") from None
        self._threads = [threading.Thread(target=self._ingest_loop, name="xrais-monitor-ingest", daemon=True),
                         threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                          name="xrais-monitor-http", daemon=True)]
        for thread in self._threads:
            thread.start()
        log.info("collector: results stored in %s; feeders send to %s; page and API at %s", self.database,
                 self.ingest_endpoint, self.url)

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        for thread in self._threads:
            thread.join(5)
        self.server.server_close()
        self.context.destroy(linger=1000)
        self.store.close()

    # -- results in --------------------------------------------------------------------------
    def _ingest_loop(self) -> None:
        while not self._stop.is_set():
            if not self.ingest.poll(200):
                continue
            for _ in range(1000):
                try:
                    routing, data = self.ingest.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                except ValueError:  # not two parts
                    continue
                self._handle(routing, data)

    def _handle(self, routing: bytes, data: bytes) -> None:
        try:
            header = decode(data)
        except ProtocolError as exc:
            log.warning("collector: ignored a message: %s", exc)
            return
        if not token_matches(header, self.token):
            log.warning("collector: refused a feeder without the right token")
            self.ingest.send_multipart([routing, encode({"type": "refused", "reason": "wrong or missing token"})])
            return
        if header["type"] == "rows" and isinstance(header.get("rows"), list):
            rows = [row for row in header["rows"] if isinstance(row, dict)]
            keys, problems = self.store.add(rows)
            for problem in problems:
                log.warning("collector: refused a row: %s", problem)
            self.ingest.send_multipart([routing, encode({"type": "ack", "keys": [list(key) for key in keys]})])
        elif header["type"] == "stored" and isinstance(header.get("folder"), str):
            keys = self.store.keys_in_folder(header["folder"])
            self.ingest.send_multipart([routing, encode({"type": "stored", "keys": [list(key) for key in keys]})])
        elif header["type"] == "status" and isinstance(header.get("feeder"), str):
            now = time.monotonic()
            with self._lock:
                self.feeders[header["feeder"]] = (header, now)
                for feeder, (_, seen) in list(self.feeders.items()):
                    if now - seen > FEEDER_FORGET_S:
                        del self.feeders[feeder]

    # -- status --------------------------------------------------------------------------------
    def status(self) -> Dict[str, Any]:
        """Health, lag summed over the live feeders, each feeder's status, store totals."""
        now = time.monotonic()
        with self._lock:
            known = list(self.feeders.values())
        feeders = []
        for header, seen in known:
            entry = {k: v for k, v in header.items() if k not in ("type", "token")}
            entry.update(age_s=round(now - seen, 2), live=now - seen < FEEDER_TIMEOUT_S)
            feeders.append(entry)
        live = [f for f in feeders if f["live"]]
        lag = {name: sum(int(f.get(name) or 0) for f in live)
               for name in ("received", "analysed", "errors", "skipped", "requeued", "rejected", "queued",
                            "waiting_on_disk", "in_flight", "awaiting_storage")}
        ages = [f["oldest_waiting_s"] for f in live if f.get("oldest_waiting_s") is not None]
        lag["oldest_waiting_s"] = max(ages) if ages else None
        lag["behind"] = lag["received"] - lag["analysed"] - lag["skipped"]
        workers = sum(len(f.get("workers") or []) for f in live)
        health = "ok" if live and workers else "no workers" if live else "no feeder"
        return {"health": health, "time": time.time(), "workers": workers, "lag": lag, "store": self.totals(),
                "feeders": feeders}

    def authorised(self, headers, query: Dict[str, list]) -> bool:
        """True without a token, or when the request carries it (header, query or the page's cookie)."""
        if not self.token:
            return True
        given = headers.get("X-Xrais-Token") or ""
        authorization = headers.get("Authorization") or ""
        if not given and authorization.startswith("Bearer "):
            given = authorization[len("Bearer "):]
        if not given and query.get("token"):
            given = query["token"][0]
        if not given and headers.get("Cookie"):
            cookie = http.cookies.SimpleCookie()
            try:
                cookie.load(headers["Cookie"])
            except http.cookies.CookieError:
                return False
            given = cookie[TOKEN_COOKIE].value if TOKEN_COOKIE in cookie else ""
        return hmac.compare_digest(given.encode(), self.token.encode())


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, handler, collector: Collector):
        self.collector = collector
        super().__init__(address, handler)


class _BadRequest(ValueError):
    pass


def _integer(query: Dict[str, list], name: str, default: int, low: int, high: int) -> int:
    values = query.get(name)
    if not values:
        return default
    try:
        value = int(values[0])
    except ValueError:
        raise _BadRequest(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise _BadRequest(f"{name} must be between {low} and {high}")
    return value


def _text(query: Dict[str, list], name: str, required: bool = False) -> Optional[str]:
    values = query.get(name)
    if not values:
        if required:
            raise _BadRequest(f"{name} is required")
        return None
    return values[0]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "xrais-monitor"
    sys_version = ""

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        log.debug("http %s: %s", self.address_string(), format % args)

    def do_HEAD(self):
        self.do_GET(head=True)

    def do_GET(self, head: bool = False):
        collector = self.server.collector
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if not collector.authorised(self.headers, query):
            return self._json(401, {"error": "this monitor needs its token (X-Xrais-Token header or ?token=)"}, head)
        try:
            if url.path in ("/", "/index.html"):
                cookie = {}
                if collector.token and query.get("token"):
                    cookie["Set-Cookie"] = f"{TOKEN_COOKIE}={collector.token}; Path=/; HttpOnly; SameSite=Strict"
                return self._file("index.html", head, cookie)
            if url.path.startswith("/static/"):
                return self._file(url.path[len("/static/"):], head)
            if url.path == "/api/results":
                since = _integer(query, "since", 0, 0, 2**63 - 1)
                limit = _integer(query, "limit", 1000, 1, 10000)
                rows = collector.reader.results_since(since, _text(query, "run"), limit)
                return self._json(200, {"results": rows, "last_id": rows[-1]["id"] if rows else since,
                                        "more": len(rows) == limit}, head)
            if url.path.startswith("/api/results/"):
                row_id = url.path[len("/api/results/"):]
                row = collector.reader.result_by_id(int(row_id)) if row_id.isdigit() else None
                return self._found(row, head)
            if url.path == "/api/image":
                row = collector.reader.result(_text(query, "run", True), _text(query, "image", True),
                                              _integer(query, "frame", 0, 0, 2**31 - 1))
                return self._found(row, head)
            if url.path == "/api/runs":
                return self._json(200, {"runs": collector.runs(_integer(query, "limit", 50, 1, 1000))}, head)
            if url.path == "/api/status":
                return self._json(200, collector.status(), head)
        except _BadRequest as exc:
            return self._json(400, {"error": str(exc)}, head)
        return self._json(404, {"error": "not found"}, head)

    def do_POST(self):
        self._json(405, {"error": "read-only: only GET and HEAD"})

    do_PUT = do_DELETE = do_PATCH = do_POST

    def _found(self, row, head: bool):
        if row is None:
            return self._json(404, {"error": "no such result in the store"}, head)
        return self._json(200, row, head)

    def _file(self, name: str, head: bool, extra: Optional[Dict[str, str]] = None):
        entry = self.server.collector.static.get(name)
        if entry is None:
            return self._json(404, {"error": "not found"}, head)
        content, content_type = entry
        self._send(200, content, content_type, head, dict(extra or {}, **{"Content-Security-Policy": _PAGE_POLICY}))

    def _json(self, code: int, value: Any, head: bool = False):
        body = json.dumps(finite(value), allow_nan=False, separators=(",", ":")).encode()
        self._send(code, body, "application/json", head)

    def _send(self, code: int, body: bytes, content_type: str, head: bool, extra: Optional[Dict[str, str]] = None):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)
