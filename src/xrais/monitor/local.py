"""``xrais.monitor run``: the whole service on one machine — collector, feeder and workers as child
processes of one command (the same programs as ``xrais.monitor collector|feeder|worker``).

The children run in their own process groups: on Ctrl-C or SIGTERM this process stops them in
order — workers (each finishes its frame), then the feeder (it waits for the last results to be
stored), then the collector. If the collector or the feeder exits, everything stops (exit 1). A
worker that exits after running at least ``RESTART_AFTER_S`` seconds is started again; one that
exits sooner is not (it would fail again: its log says why), and frames wait for other workers.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional

log = logging.getLogger(__name__)

MONITOR_MODULE = "xrais.command_line.monitor"
RESTART_AFTER_S = 30.0
STOP_TIMEOUT_S = 20.0


@dataclasses.dataclass
class Child:
    """One program of the service: its role (collector, feeder, worker), a label and its key=value words."""

    role: str
    label: str
    args: List[str]
    process: Optional[subprocess.Popen] = None
    started: float = 0.0

    def start(self, env: Dict[str, str]) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", MONITOR_MODULE, self.role, *self.args], env=env,
                                        start_new_session=True)
        self.started = time.monotonic()


class LocalMonitor:
    """Starts, watches and stops the children; ``env`` is their environment (the token travels there)."""

    def __init__(self, collector_args: List[str], feeder_args: List[str], worker_args: List[List[str]],
                 env: Optional[Dict[str, str]] = None):
        self.children = [Child("collector", "collector", collector_args), Child("feeder", "feeder", feeder_args)]
        self.children += [Child("worker", f"worker {n}", args) for n, args in enumerate(worker_args, 1)]
        self.env = dict(os.environ if env is None else env)

    def run(self, stop: threading.Event) -> int:
        """Run until ``stop`` is set (0) or the collector or feeder exits (1)."""
        for child in self.children:
            child.start(self.env)
        try:
            while not stop.wait(0.2):
                for child in list(self.children):
                    code = child.process.poll()
                    if code is None:
                        continue
                    if child.role != "worker":
                        log.error("monitor: the %s exited with code %d: stopping", child.label, code)
                        return 1
                    self._worker_exited(child, code)
            return 0
        finally:
            self._stop_all()

    def _worker_exited(self, child: Child, code: int) -> None:
        ran = time.monotonic() - child.started
        if ran >= RESTART_AFTER_S:
            log.warning("monitor: %s exited with code %d after %.0f s: starting it again", child.label, code, ran)
            child.start(self.env)
            return
        log.error("monitor: %s exited with code %d %.1f s after starting: not started again (its log says why)",
                  child.label, code, ran)
        self.children.remove(child)
        if not any(c.role == "worker" for c in self.children):
            log.warning("monitor: no worker left: frames wait until workers join (xrais.monitor worker connect=...)")

    def _stop_all(self) -> None:
        for role in ("worker", "feeder", "collector"):
            group = [c for c in self.children if c.role == role and c.process is not None and c.process.poll() is None]
            for child in group:
                child.process.terminate()
            for child in group:
                try:
                    child.process.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    log.warning("monitor: %s did not stop within %.0f s: killed", child.label, STOP_TIMEOUT_S)
                    child.process.kill()
                    child.process.wait()
