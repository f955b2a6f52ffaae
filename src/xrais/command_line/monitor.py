"""xrais.monitor: live analysis of every image as it is collected (see :mod:`xrais.monitor`).

    xrais.monitor run folder=/data/run1 workers=2 http.port=8080        # everything on one machine
    xrais.monitor collector database=beamline.sqlite http.host=0.0.0.0 token=...
    xrais.monitor feeder folder=/data/run1 work=tcp://0.0.0.0:5556 collector=tcp://monitor:5557 token=...
    xrais.monitor worker connect=tcp://beamline:5556 device=cuda token=...
    xrais.monitor publish /data/run1 rate=100 bind=tcp://127.0.0.1:5555  # a test image stream
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Dict, List, Optional, Sequence

from .. import monitor
from ..monitor.protocol import resolve_token
from .common import (KNOWN_SYMMETRY_PARAMS, MULTILATTICE_THRESHOLD_PARAM, QUADRANTS_PARAM, known_symmetry,
                     quadrants_choice)
from .params import Param, ParameterError
from .program import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Program

log = logging.getLogger(__name__)

_TOKEN = Param("token", None, f"shared secret; required to serve on other interfaces than 127.0.0.1 (default: the "
                              f"{monitor.TOKEN_ENV} environment variable)", "str", optional=True)
_COLLECTOR_PARAMS = (
    Param("database", "xrais_monitor.sqlite", "SQLite file of the results (created if missing; earlier results are "
                                              "kept)", "path"),
    Param("http.host", "127.0.0.1", "address the page and API are served on (0.0.0.0: every interface; needs a token)"),
    Param("http.port", monitor.DEFAULT_HTTP_PORT, "HTTP port (0: any free port)", "int", minimum=0, maximum=65535),
    Param("ingest", monitor.DEFAULT_INGEST, "ZeroMQ endpoint the collector receives results on (bound)"),
)
_FEEDER_PARAMS = (
    Param("folder", None, "folder to watch for new image files (CBF, SMV, NeXus series…)", "path", optional=True),
    Param("stream", None, "ZeroMQ endpoint of an image stream to connect to (a detector or xrais.monitor publish "
                          "binds it), e.g. tcp://127.0.0.1:5555", "str", optional=True),
    Param("work", monitor.DEFAULT_WORK, "ZeroMQ endpoint the workers connect to (bound)"),
    Param("queue.size", 64, "frames held in memory waiting for a worker", "int", minimum=1),
    Param("queue.overflow", "wait", "when the queue is full: wait (nothing dropped: files wait on disk, the stream "
                                    "is slowed) or skip (the oldest queued frame is skipped, logged and recorded)",
          "choice", choices=("wait", "skip")),
    Param("poll", 0.1, "seconds between looks at the folder", "float", minimum=0.01),
    Param("settle", 1.0, "seconds a file must stay unchanged before it is taken when its format does not tell "
                         "whether it is complete", "float", minimum=0.0),
    Param("hwm", 16, "ZeroMQ high-water mark of the stream socket (frames buffered before the sender is slowed)",
          "int", minimum=1),
    Param("worker_timeout", 5.0, "seconds without a heartbeat after which a worker is taken as gone and its frames "
                                 "go back to the queue", "float", minimum=0.5),
    Param("job_timeout", 300.0, "seconds after which a frame still being analysed goes back to the queue", "float",
          minimum=1.0),
)
_WORKER_PARAMS = (
    Param("predictors", ("resolution", "multilattice"), "predictors to run (see xrais.plugins)", "strs"),
    QUADRANTS_PARAM,
    MULTILATTICE_THRESHOLD_PARAM,
    Param("device", "auto", "where the networks run: auto (GPU if present), cpu, cuda", "choice",
          choices=("auto", "cpu", "cuda")),
    Param("nproc", 1, "CPU threads per worker (reading, conditioning, torch)", "int", minimum=1),
    Param("prefetch", 1, "frames a worker holds at once (also its batch size; more suits a GPU)", "int", minimum=1),
) + KNOWN_SYMMETRY_PARAMS


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT (Ctrl-C) or SIGTERM, so that every component stops cleanly."""
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    return stop


# -- collector ----------------------------------------------------------------------------------
def run_collector(params, inputs) -> int:
    stop = stop_on_signals()
    collector = monitor.Collector(params.database, ingest=params.ingest, http_host=params.http.host,
                                  http_port=params.http.port, token=resolve_token(params.token))
    collector.start()
    stop.wait()
    collector.stop()
    log.info("collector: stopped")
    return EXIT_OK


# -- feeder -------------------------------------------------------------------------------------
def _feeder(params, collector: str) -> "monitor.Feeder":
    return monitor.Feeder(folder=params.folder, stream=params.stream, work=params.work, collector=collector,
                          queue_size=params.queue.size, overflow=params.queue.overflow,
                          token=resolve_token(params.token), poll=params.poll, settle=params.settle, hwm=params.hwm,
                          worker_timeout=params.worker_timeout, job_timeout=params.job_timeout)


def run_feeder(params, inputs) -> int:
    stop = stop_on_signals()
    _feeder(params, params.collector).run(stop)
    return EXIT_OK


# -- worker -------------------------------------------------------------------------------------
def run_worker(params, inputs) -> int:
    from ..predict import Predictor

    stop = stop_on_signals()
    if params.device in ("cpu", "auto"):
        import torch

        torch.set_num_threads(params.nproc)
    predictor = Predictor(predictors=params.predictors, device=params.device,
                          quadrants=quadrants_choice(params.quadrants),
                          multilattice_threshold=params.multilattice_threshold, batch_size=params.prefetch,
                          nproc=params.nproc, **known_symmetry(params))
    monitor.Worker(predictor, connect=params.connect, prefetch=params.prefetch, token=resolve_token(params.token),
                   name=params.name).run(stop)
    return EXIT_OK


# -- publish ------------------------------------------------------------------------------------
def run_publish(params, inputs) -> int:
    if not inputs:
        raise ParameterError("no input images given (files, folders, globs or NeXus masters)")
    stop = stop_on_signals()
    report = monitor.publish(inputs, bind=params.bind, rate=params.rate, run=params.run,
                             token=resolve_token(params.token), hwm=params.hwm, stop=stop)
    return EXIT_OK if report.sent else EXIT_FAILED


# -- run: everything on one machine -------------------------------------------------------------
def _words(values: Dict[str, object]) -> List[str]:
    """key=value words for a child program (None values left out)."""
    words = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, tuple):
            value = ",".join(str(v) for v in value)
        words.append(f"{key}={value}")
    return words


def run_everything(params, inputs) -> int:
    token = resolve_token(params.token)
    known_symmetry(params)  # the workers' cell, checked before any process starts
    _feeder(params, params.ingest)  # checks the feeder's configuration before any process starts
    monitor.Collector(params.database, ingest=params.ingest, http_host=params.http.host, http_port=params.http.port,
                      token=token)  # and the collector's
    log_path = params.as_dict()["output.log"]
    log_folder = os.path.dirname(os.path.abspath("xrais.monitor.run.log" if log_path in (None, "auto") else log_path))

    def log_word(name: str) -> str:
        return f"output.log={os.path.join(log_folder, name + '.log')}" if log_path is not None else "output.log=None"

    collector = _words({"database": os.path.abspath(params.database), "http.host": params.http.host,
                        "http.port": params.http.port, "ingest": params.ingest}) + [log_word("xrais.monitor.collector")]
    feeder = _words({"folder": os.path.abspath(params.folder) if params.folder else None, "stream": params.stream,
                     "work": params.work, "collector": params.ingest, "queue.size": params.queue.size,
                     "queue.overflow": params.queue.overflow, "poll": params.poll, "settle": params.settle,
                     "hwm": params.hwm, "worker_timeout": params.worker_timeout, "job_timeout": params.job_timeout,
                     }) + [log_word("xrais.monitor.feeder")]
    workers = [_words({"connect": params.work, "predictors": params.predictors, "quadrants": params.quadrants,
                       "multilattice_threshold": params.multilattice_threshold, "device": params.device,
                       "nproc": params.nproc, "prefetch": params.prefetch,
                       "known_symmetry.unit_cell": params.known_symmetry.unit_cell,
                       "known_symmetry.space_group": params.known_symmetry.space_group})
               + [log_word(f"xrais.monitor.worker.{n}")] for n in range(1, params.workers + 1)]
    env = dict(os.environ)
    if token:
        env[monitor.TOKEN_ENV] = token  # not on the command lines, where other users could read it
    host = "127.0.0.1" if params.http.host in ("0.0.0.0", "::") else params.http.host
    log.info("monitor: collector, feeder and %d worker(s) starting; page at http://%s:%d/ (Ctrl-C stops)",
             params.workers, host, params.http.port)
    return monitor.LocalMonitor(collector, feeder, workers, env).run(stop_on_signals())


# -- programs -----------------------------------------------------------------------------------
collector_program = Program(
    "xrais.monitor.collector",
    "Store every result of the monitor in SQLite (one row per image, restart-safe) and serve the live strip chart "
    "page and the JSON API (results since an id, one image, run summaries, health and lag).",
    "xrais.monitor collector [database=xrais_monitor.sqlite] [http.port=8080] [key=value ...]",
    _COLLECTOR_PARAMS + (_TOKEN,), run_collector, takes_inputs=False)

feeder_program = Program(
    "xrais.monitor.feeder",
    "Take frames from a watched folder (files once completely written; NeXus series frame by frame) and/or a ZeroMQ "
    "image stream, queue them (bounded), hand them to the workers that ask for work, and pass the results to the "
    "collector.",
    "xrais.monitor feeder folder=/data/run1 | stream=tcp://host:5555 [collector=tcp://host:5557] [key=value ...]",
    _FEEDER_PARAMS + (Param("collector", monitor.DEFAULT_INGEST, "the collector's result endpoint (connected to)"),
                      _TOKEN), run_feeder, takes_inputs=False)

worker_program = Program(
    "xrais.monitor.worker",
    "Ask a feeder for frames and run the predictors on them (CPU or GPU); start as many as needed, on this machine "
    "or others (they need to see the watched folder at the same path); they may join and leave at any time.",
    "xrais.monitor worker [connect=tcp://host:5556] [device=cuda] [key=value ...]",
    (Param("connect", monitor.DEFAULT_WORK, "the feeder's work endpoint"),
     Param("name", None, "prefix of the worker's id (default: the host name)", "str", optional=True))
    + _WORKER_PARAMS + (_TOKEN,), run_worker, takes_inputs=False)

publish_program = Program(
    "xrais.monitor.publish",
    "Send the frames of image files as a ZeroMQ image stream (the monitor's stream format) at a set frame rate, "
    "to test a monitor; sending slows down when the receiver cannot keep up.",
    "xrais.monitor publish <images|folders|globs|master.h5> [rate=10] [bind=tcp://127.0.0.1:5555] [key=value ...]",
    (Param("bind", monitor.DEFAULT_STREAM, "ZeroMQ endpoint to send on (bound; the feeder connects)"),
     Param("rate", 10.0, "frames per second (0: as fast as the receiver takes them)", "float", minimum=0.0),
     Param("run", None, "run (series) id of the frames (default: from the file names)", "str", optional=True),
     Param("hwm", 16, "frames buffered before sending blocks", "int", minimum=1), _TOKEN),
    run_publish)

run_program = Program(
    "xrais.monitor.run",
    "Run the whole monitor on one machine: collector, feeder and local workers as processes. Results are stored in "
    "the database and shown live at http://127.0.0.1:<http.port>/. More workers, on other machines, may connect to "
    "the work endpoint.",
    "xrais.monitor run folder=/data/run1 [workers=2] [http.port=8080] [key=value ...]",
    (Param("workers", 2, "local worker processes", "int", minimum=0),) + _FEEDER_PARAMS + _COLLECTOR_PARAMS
    + _WORKER_PARAMS + (_TOKEN,), run_everything, takes_inputs=False)

PROGRAMS = {"run": run_program, "collector": collector_program, "feeder": feeder_program, "worker": worker_program,
            "publish": publish_program}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``xrais.monitor <run|collector|feeder|worker|publish> [key=value ...]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        stream = sys.stdout if argv else sys.stderr  # without a subcommand: a usage error
        print(__doc__.strip(), file=stream)
        print("\nSubcommands: " + ", ".join(PROGRAMS) + "; 'xrais.monitor <subcommand> -h' lists its parameters.",
              file=stream)
        return EXIT_OK if argv else EXIT_USAGE
    program = PROGRAMS.get(argv[0])
    if program is None:
        print(f"xrais.monitor: error: unknown subcommand {argv[0]!r} (one of {', '.join(PROGRAMS)})", file=sys.stderr)
        return EXIT_USAGE
    return program(argv[1:])


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":  # python -m xrais.command_line.monitor <subcommand> … (as xrais.monitor)
    run()
