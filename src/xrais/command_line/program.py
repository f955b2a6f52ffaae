"""What every xrais program shares, in the DIALS manner: ``-h`` help, ``-c`` configuration,
``key=value`` parameters, a log file, one-line errors and meaningful exit codes, progress bars.

Exit codes: 0 success; 1 some inputs failed or the run failed; 2 bad command line (a
:class:`ParameterError` from the parser or the program — no inputs, say — or a
:class:`~xrais.io.errors.ChoiceError`: an unknown predictor); 130 interrupted. Messages go to stdout, warnings and errors to stderr, all of them to
the log file.
"""
from __future__ import annotations

import datetime
import logging
import os
import shlex
import sys
import textwrap
import time
import traceback
from typing import Callable, List, Optional, Sequence

from ..io.errors import ChoiceError, XraisError
from .params import Namespace, Param, ParameterError, Parameters

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

log = logging.getLogger("xrais")

#: Parameters every program has.
COMMON_PARAMS = (
    Param("output.log", "auto", "log file (auto: <program>.log in the current folder; None: no log file); each run is "
          "appended under a header with its date, time and command line", "path", optional=True),
    Param("verbose", False, "print debugging detail (in the log file also that of the libraries xrais uses)", "bool"),
)


class Program:
    """A command-line program: name, one-paragraph description, usage line, parameters and a
    ``run(params, inputs) -> exit code`` function holding no logic of its own beyond calling the library."""

    def __init__(self, name: str, description: str, usage: str, params: Sequence[Param],
                 run: Callable[[Namespace, List[str]], int], takes_inputs: bool = True):
        self.name = name
        self.description = description
        self.usage = usage
        self.parameters = Parameters(list(params) + list(COMMON_PARAMS))
        self.run = run
        self.takes_inputs = takes_inputs

    def help_text(self) -> str:
        lines = [f"Usage: {self.usage}", "", textwrap.fill(self.description, 96), "", "Parameters:"]
        for p in self.parameters.params:
            lines.append(f"  {p.name} = {p.format(p.default)}  [{p.describe_type()}]")
            lines.extend("      " + line for line in textwrap.wrap(p.help, 88))
        lines += ["", "Options: -h help, -c show the configuration (key = value, usable as a .phil file)"]
        return "\n".join(lines)

    def __call__(self, argv: Optional[Sequence[str]] = None) -> int:
        argv = list(sys.argv[1:] if argv is None else argv)
        if any(a in ("-h", "--help") for a in argv):
            print(self.help_text())
            return EXIT_OK
        show_config = "-c" in argv
        argv = [a for a in argv if a != "-c"]
        try:
            params, inputs = self.parameters.parse(argv)
            if inputs and not self.takes_inputs:
                raise ParameterError(f"unexpected argument: {inputs[0]}")
        except ParameterError as exc:
            return self._usage_error(exc, lambda line: print(line, file=sys.stderr))  # no log yet
        if show_config:
            print(self.parameters.show(params, with_help=True))
            return EXIT_OK
        log_path = params.as_dict()["output.log"]
        if log_path == "auto":
            log_path = f"{self.name}.log"
        try:
            handlers = setup_logging(log_path, params.verbose, run_header=self._run_header(argv))
        except XraisError as exc:
            print(f"{self.name}: error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        try:
            log.info("%s (xrais %s) %s", self.name, _version(), " ".join(argv))
            log.debug("configuration:\n%s", self.parameters.show(params))
            started = time.perf_counter()
            code = self.run(params, inputs)
            log.debug("finished in %.1f s", time.perf_counter() - started)
            return int(code or 0)
        except (ParameterError, ChoiceError) as exc:
            return self._usage_error(exc, log.error)
        except XraisError as exc:
            log.error("%s: error: %s", self.name, exc)
            return EXIT_FAILED
        except KeyboardInterrupt:
            log.error("%s: interrupted", self.name)
            return EXIT_INTERRUPTED
        except Exception as exc:  # report in one line; the traceback goes to the log file
            log.debug("%s", traceback.format_exc())
            where = f" (details in {log_path})" if log_path else ""
            log.error("%s: internal error: %s: %s%s", self.name, type(exc).__name__, exc, where)
            return EXIT_FAILED
        finally:
            for handler in handlers:
                logging.getLogger().removeHandler(handler)
                handler.close()

    def _run_header(self, argv: Sequence[str]) -> str:
        """The lines that start this run's part of the log file."""
        started = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
        return (f"{'=' * 24} {self.name} (xrais {_version()}), {started}, process {os.getpid()} {'=' * 24}\n"
                f"command line: {' '.join([self.name] + [shlex.quote(a) for a in argv])}\n")

    def _usage_error(self, exc: Exception, report: Callable[[str], None]) -> int:
        """Report a bad command line (two lines: the problem, where to look) and give exit code 2."""
        report(f"{self.name}: error: {exc}")
        report(f"Run '{self.name} -h' for the parameters.")
        return EXIT_USAGE

    def main(self, argv: Optional[Sequence[str]] = None) -> None:
        """Console-script entry point."""
        sys.exit(self(argv))


def report_failed_image(label: str, problem: str) -> None:
    """The one report of an image that could not be processed, besides the ``error`` of its
    result: a warning line naming it (stderr and the log file)."""
    log.warning("%s: %s", label, problem)


def setup_logging(log_path: Optional[str], verbose: bool = False, run_header: str = "") -> list:
    """Console (message only: below WARNING on stdout, warnings and errors on stderr) and log file
    handlers on the root logger. The log file is appended to, ``run_header`` first, so that an
    earlier run's log is kept; it holds xrais's own debugging detail, timestamped, but the debug and
    info lines of other libraries (hdf5plugin, numba, matplotlib…) only when ``verbose``."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    console = logging.StreamHandler(sys.stdout)
    console.setLevel(logging.DEBUG if verbose else logging.INFO)
    console.addFilter(lambda record: record.levelno < logging.WARNING)
    problems = logging.StreamHandler(sys.stderr)
    problems.setLevel(logging.WARNING)
    handlers = [console, problems]
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(message)s"))
    if log_path:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
            file_handler = logging.FileHandler(log_path, mode="a", encoding="utf-8")
            file_handler.stream.write(("\n" if file_handler.stream.tell() else "") + run_header)
        except OSError as exc:
            raise XraisError(f"cannot write the log file {log_path}: {exc.strerror}") from None
        file_handler.setLevel(logging.DEBUG)
        if not verbose:
            file_handler.addFilter(_xrais_or_warning)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handlers.append(file_handler)
    for handler in handlers:
        root.addHandler(handler)
    for noisy in ("numba", "matplotlib", "PIL", "h5py", "fabio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handlers


def _xrais_or_warning(record: logging.LogRecord) -> bool:
    """Whether a record goes to the log file without ``verbose``: xrais's own, or a warning or worse."""
    return record.levelno >= logging.WARNING or record.name == "xrais" or record.name.startswith("xrais.")


def _version() -> str:
    from .. import __version__

    return __version__


class Progress:
    """A progress bar on the terminal (stderr); silent when stderr is not a terminal, unless
    the environment sets XRAIS_PROGRESS=1."""

    def __init__(self, total: int, label: str = "", stream=None, enabled: Optional[bool] = None):
        self.total = max(0, int(total))
        self.label = label
        self.stream = stream or sys.stderr
        if enabled is None:
            enabled = os.environ.get("XRAIS_PROGRESS") == "1" or (hasattr(self.stream, "isatty") and self.stream.isatty())
        self.enabled = enabled and self.total > 0
        self.done = 0
        self.started = time.perf_counter()
        self._last_draw = 0.0

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if self.enabled and (now - self._last_draw > 0.2 or self.done >= self.total):
            self._last_draw = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        fraction = min(1.0, self.done / self.total)
        width = 30
        bar = "#" * int(fraction * width) + "." * (width - int(fraction * width))
        remaining = (self.total - self.done) / rate if rate > 0 else float("inf")
        eta = f"{remaining:5.0f}s" if remaining != float("inf") else "    ?"
        self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total} {rate:6.1f}/s ETA {eta}")
        if self.done >= self.total:
            self.stream.write("\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.done < self.total:
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
