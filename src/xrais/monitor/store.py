"""Durable storage of results: one SQLite table (WAL mode), one row per image, restart-safe.

The key is (run, image, frame): storing a row whose key is already there changes nothing, so a
result delivered twice (a worker presumed dead that finishes after all, a batch sent again after
a collector restart) is stored once. Row ids only grow: "results since id N" pages through them.
"""
from __future__ import annotations

import json
import pathlib
import sqlite3
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .protocol import finite

STATUSES = ("ok", "error", "skipped")
#: Columns of the compact rows the strip chart and /api/results use.
COMPACT_COLUMNS = ("id", "run", "image", "frame", "number", "status", "d_min", "d_mean", "p_multilattice",
                   "multilattice", "diffraction", "error", "stored", "experimental", "not_analysed")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY,  -- grows: rows are never deleted
    run TEXT NOT NULL,
    image TEXT NOT NULL,
    frame INTEGER NOT NULL,
    number INTEGER,
    source TEXT,
    status TEXT NOT NULL CHECK (status IN ('ok', 'error', 'skipped')),
    d_min REAL,
    d_mean REAL,
    b_factor REAL,
    diffraction INTEGER,
    p_multilattice REAL,
    multilattice INTEGER,
    error TEXT,
    worker TEXT,
    received REAL,
    analysed REAL,
    stored REAL NOT NULL,
    result TEXT,
    experimental TEXT,  -- result fields from experimental models, comma-separated
    not_analysed TEXT,  -- an analysed image's predictors that could not read it, with their reasons
    UNIQUE (run, image, frame)
);
CREATE INDEX IF NOT EXISTS results_by_run ON results (run, id);
"""
_INSERT = """
INSERT INTO results (run, image, frame, number, source, status, d_min, d_mean, b_factor, diffraction,
                     p_multilattice, multilattice, error, worker, received, analysed, stored, result, experimental,
                     not_analysed)
VALUES (:run, :image, :frame, :number, :source, :status, :d_min, :d_mean, :b_factor, :diffraction,
        :p_multilattice, :multilattice, :error, :worker, :received, :analysed, :stored, :result, :experimental,
        :not_analysed)
ON CONFLICT (run, image, frame) DO NOTHING
"""

Key = Tuple[str, str, int]


class RowError(ValueError):
    """A row without a usable key or status."""


def row_key(row: Dict[str, Any]) -> Key:
    """(run, image, frame) of a row, checked."""
    run, image, frame = row.get("run"), row.get("image"), row.get("frame")
    if not isinstance(run, str) or not isinstance(image, str) or not isinstance(frame, int) or isinstance(frame, bool):
        raise RowError(f"row key must be (run text, image text, frame integer), got {(run, image, frame)!r}")
    return run, image, frame


def _columns(row: Dict[str, Any], stored: float) -> Dict[str, Any]:
    """The table's columns for one row received from a feeder."""
    run, image, frame = row_key(row)
    status = row.get("status")
    if status not in STATUSES:
        raise RowError(f"row status must be one of {', '.join(STATUSES)}, got {status!r}")
    result = row.get("result") if isinstance(row.get("result"), dict) else {}

    def number(value):
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def flag(value):
        return None if value is None else int(bool(value))

    number_value = row.get("number")
    experimental = row.get("experimental") if isinstance(row.get("experimental"), list) else None
    return {
        "run": run, "image": image, "frame": frame,
        "number": number_value if isinstance(number_value, int) else None,
        "source": str(row["source"]) if row.get("source") is not None else None,
        "status": status,
        "d_min": number(result.get("d_min")), "d_mean": number(result.get("d_mean")),
        "b_factor": number(result.get("b_factor")), "diffraction": flag(result.get("diffraction")),
        "p_multilattice": number(result.get("p_multilattice")), "multilattice": flag(result.get("multilattice")),
        "error": str(row["error"]) if row.get("error") else None,
        "worker": str(row["worker"]) if row.get("worker") else None,
        "received": number(row.get("received")), "analysed": number(row.get("analysed")),
        "stored": stored,
        "result": json.dumps(finite(result), allow_nan=False) if result else None,
        "experimental": ",".join(str(f) for f in experimental) if experimental else None,
        "not_analysed": str(result["not_analysed"]) if result.get("not_analysed") else None,
    }


class ResultStore:
    """The writing side: one connection, used by one thread (the collector's ingest loop)."""

    def __init__(self, path: str):
        self.path = str(path)
        self.connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=FULL")  # a committed row survives a power cut
        self.connection.executescript(_SCHEMA)
        columns = {row[1] for row in self.connection.execute("PRAGMA table_info(results)")}
        for column in ("experimental", "not_analysed"):  # a store written before the column existed
            if column not in columns:
                self.connection.execute(f"ALTER TABLE results ADD COLUMN {column} TEXT")

    def add(self, rows: Sequence[Dict[str, Any]]) -> Tuple[List[Key], List[str]]:
        """Store rows in one transaction; (keys done with: stored now, stored before, or refused for
        good; problems of the rows refused)."""
        stored = time.time()
        keys, problems, values = [], [], []
        for row in rows:
            try:
                key = row_key(row)
            except RowError as exc:
                problems.append(str(exc))
                continue
            keys.append(key)
            try:
                values.append(_columns(row, stored))
            except RowError as exc:
                problems.append(f"{key}: {exc}")
        if values:
            with self.connection:
                self.connection.execute("BEGIN IMMEDIATE")
                self.connection.executemany(_INSERT, values)
        return keys, problems

    def keys_in_folder(self, folder: str) -> List[Key]:
        """Keys of the rows of the runs of a watched folder (runs named after its files, or the folder)."""
        prefix = folder.rstrip("/") + "/"
        after = prefix[:-1] + chr(ord("/") + 1)  # every text starting with prefix sorts before this
        rows = self.connection.execute("SELECT run, image, frame FROM results WHERE run = ? OR (run >= ? AND run < ?)",
                                       (folder.rstrip("/"), prefix, after))
        return [tuple(row) for row in rows]

    def close(self) -> None:
        self.connection.close()


class StoreReader:
    """The reading side: a fresh read-only connection per call, safe from any thread."""

    def __init__(self, path: str):
        self.uri = pathlib.Path(path).resolve().as_uri() + "?mode=ro"

    def _query(self, sql: str, parameters: Iterable = ()) -> List[sqlite3.Row]:
        connection = sqlite3.connect(self.uri, uri=True)
        try:
            connection.row_factory = sqlite3.Row
            return connection.execute(sql, tuple(parameters)).fetchall()
        finally:
            connection.close()

    def results_since(self, after_id: int = 0, run: Optional[str] = None, limit: int = 1000) -> List[Dict[str, Any]]:
        """Compact rows with id > after_id (of one run, or all), oldest first, at most limit."""
        columns = ", ".join(COMPACT_COLUMNS)
        if run is None:
            rows = self._query(f"SELECT {columns} FROM results WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit))
        else:
            rows = self._query(f"SELECT {columns} FROM results WHERE run = ? AND id > ? ORDER BY id LIMIT ?",
                               (run, after_id, limit))
        return [_compact(row) for row in rows]

    def result(self, run: str, image: str, frame: int) -> Optional[Dict[str, Any]]:
        """The full row of one image (looked up by its key; nothing is read from disk but the store)."""
        rows = self._query("SELECT * FROM results WHERE run = ? AND image = ? AND frame = ?", (run, image, frame))
        return _full(rows[0]) if rows else None

    def result_by_id(self, row_id: int) -> Optional[Dict[str, Any]]:
        rows = self._query("SELECT * FROM results WHERE id = ?", (row_id,))
        return _full(rows[0]) if rows else None

    def totals(self) -> Dict[str, Any]:
        """Rows stored, by status, and the last id."""
        (row,) = self._query("SELECT COUNT(*) AS n, COALESCE(MAX(id), 0) AS last_id, "
                             "SUM(status = 'error') AS errors, SUM(status = 'skipped') AS skipped FROM results")
        return {"stored": row["n"], "last_id": row["last_id"], "errors": row["errors"] or 0,
                "skipped": row["skipped"] or 0}

    def runs(self, limit: int = 50) -> List[Dict[str, Any]]:
        """Summaries of the runs, most recently started first: counts, numbers, resolution, multi-lattice."""
        summaries = []
        for row in self._query(
                "SELECT run, COUNT(*) AS n_images, SUM(status = 'ok') AS n_ok, SUM(status = 'error') AS n_errors, "
                "SUM(status = 'skipped') AS n_skipped, MIN(number) AS first_number, MAX(number) AS last_number, "
                "MIN(d_min) AS best_d_min, AVG(multilattice) AS fraction_multilattice, MIN(stored) AS first_stored, "
                "MAX(stored) AS last_stored, MIN(id) AS first_id, MAX(id) AS last_id, COUNT(d_min) AS n_resolution, "
                "MAX(experimental) AS experimental "
                "FROM results GROUP BY run ORDER BY first_id DESC LIMIT ?", (limit,)):
            summary = dict(row)
            n_resolution = summary.pop("n_resolution")
            summary["median_d_min"] = None
            if n_resolution:
                (median,) = self._query("SELECT d_min FROM results WHERE run = ? AND d_min IS NOT NULL "
                                        "ORDER BY d_min LIMIT 1 OFFSET ?", (row["run"], (n_resolution - 1) // 2))
                summary["median_d_min"] = median["d_min"]
            if summary["fraction_multilattice"] is not None:
                summary["fraction_multilattice"] = round(summary["fraction_multilattice"], 4)
            summaries.append(summary)
        return summaries


def _compact(row: sqlite3.Row) -> Dict[str, Any]:
    values = dict(row)
    for name in ("multilattice", "diffraction"):
        if values.get(name) is not None:
            values[name] = bool(values[name])
    return values


def _full(row: sqlite3.Row) -> Dict[str, Any]:
    values = _compact(row)
    values["result"] = json.loads(values["result"]) if values.get("result") else None
    return values
