"""The Python API: ``xrais.Predictor`` turns images into results, one per image, in input order.

    import xrais
    predictor = xrais.Predictor(predictors=("resolution", "multilattice"), device="auto")
    for result in predictor.predict_iter(["run1/*.cbf"]):
        print(result["image"], result["frame"], result["d_min"], result["p_multilattice"], result["error"])

Inputs: paths, globs, folders, NeXus masters, .expt files (read with :func:`xrais.open_images`),
:class:`xrais.io.Frame` objects, ``(pixels, Geometry)`` pairs, or dxtbx imagesets (in a DIALS
environment). An array is masked by the rules the file readers apply (negative values, the detector
catalogue's trusted maximum, overflow markers; :meth:`xrais.io.Frame.from_pixels` takes a file's own
mask or cut-off). Reading, conditioning and the raw-frame predictors run in a pool of ``nproc``
threads (the kernels release the GIL); the networks run on batches of ``batch_size`` images on
the device. A frame that cannot be read gives a result with its ``error`` and the run goes on.
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import os
import queue
import threading
import time
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import conditioning
from .io import ChoiceError, Frame, FrameError, Geometry, GeometryOverride, ImageError
from .io.base import image_number
from .io.open import expand_inputs, identify
from .plugins import PredictionInput, PredictorPlugin
from .plugins import predictors as installed_predictors
from .plugins.builtin_predictors import MULTILATTICE_THRESHOLD

DEFAULT_PREDICTORS = ("resolution", "multilattice")
#: Keys every result has, in this order, before the predictors' own fields.
BASE_FIELDS = ("image", "frame")
#: After the predictors' fields: the one-line problem of an image that could not be read or that no
#: predictor can analyse, and, where only some cannot, which and why (their fields are null).
STATUS_FIELDS = ("error", "not_analysed")
TIMING_FIELDS = ("read_ms", "condition_ms", "predict_ms")


@dataclasses.dataclass
class _Prepared:
    """One image after reading, conditioning and the raw-frame predictors (or its error)."""

    source: str
    index: int
    ordinal: int = 0
    geometry: Optional[Geometry] = None
    quadrants: Optional[np.ndarray] = None
    fields: Dict[str, Any] = dataclasses.field(default_factory=dict)
    error: Optional[str] = None
    #: Why a predictor cannot analyse this image (its geometry), by predictor name: the others answer.
    problems: Dict[str, str] = dataclasses.field(default_factory=dict)
    read_ms: float = 0.0
    condition_ms: float = 0.0
    frame_predict_ms: float = 0.0


def resolve_predictors(names: Union[str, Sequence[str]]) -> List[PredictorPlugin]:
    """Installed predictor objects for names (a comma-separated string or a sequence)."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    available = installed_predictors()
    unknown = [n for n in names if n not in available]
    installed = ", ".join(sorted(available))
    if unknown:
        raise ChoiceError(f"unknown predictor {', '.join(unknown)}; installed: {installed}")
    if not names:
        raise ChoiceError(f"no predictor chosen; installed: {installed}")
    return [available[n] for n in names]


class Predictor:
    """Runs predictors (built-in and plugins) on images.

    predictors: names (see ``xrais.plugins``), default resolution and multi-lattice;
    device: "auto" (GPU if present), "cpu" or "cuda";
    quadrants: None (default) gives each predictor its own number (its ``quadrants`` attribute:
    resolution all 4, the multi-lattice ResNet quadrant 0 alone, as in the paper; the raw-frame
    predictors, multilattice among them, read the whole frame), or 4 (all) / 1 (quadrant 0) for
    every quadrant predictor;
    multilattice_threshold: p_multilattice above which an image counts as multi-lattice;
    batch_size: images per network batch; nproc: threads reading and conditioning;
    known_cell: the crystal's unit cell (a, b, c Å, α, β, γ °; six numbers or their text) when
    known, in the conventional setting of known_space_group (a symbol: P6122, C2…), for the
    indexing behind multilattice and indexing (:attr:`xrais.lattice.IndexingSettings.known_cell`);
    ValueError, naming the problem, for a cell that is none or a space group without a cell;
    geometry: a :class:`~xrais.io.GeometryOverride` (or dict) for files with wrong headers;
    shard: (rank, size) to process only every size-th image starting at rank (MPI).
    """

    def __init__(self, predictors=DEFAULT_PREDICTORS, device: str = "auto", quadrants: Optional[int] = None,
                 multilattice_threshold: float = MULTILATTICE_THRESHOLD, batch_size: int = 16, nproc: int = 1,
                 known_cell: Optional[Sequence[float]] = None, known_space_group: Optional[str] = None,
                 geometry=None, shard: Tuple[int, int] = (0, 1)):
        if quadrants not in (None, 1, 4):
            raise ValueError(f"quadrants must be None (each predictor's own), 1 or 4, got {quadrants}")
        if not 0.0 <= multilattice_threshold <= 1.0:
            raise ValueError(f"multilattice_threshold must lie between 0 and 1, got {multilattice_threshold}")
        self.settings = {"multilattice_threshold": float(multilattice_threshold)}
        if known_cell is not None or known_space_group is not None:
            from .lattice.cell import check_known_symmetry, parse_cell

            check_known_symmetry(known_cell, known_space_group)  # a cell that is none: ValueError now
            self.settings.update(known_cell=parse_cell(known_cell), known_space_group=known_space_group)
        self.plugins = resolve_predictors(predictors)
        self.device = _resolve_device(device)
        #: Quadrant numbers each predictor is given, by predictor name.
        self.plugin_quadrants = {p.name: _quadrant_numbers(quadrants or p.quadrants) for p in self.plugins
                                 if p.needs == "quadrants"}
        #: Quadrant numbers conditioned for each image (those of every predictor).
        self.quadrant_indices = tuple(sorted({q for numbers in self.plugin_quadrants.values() for q in numbers}))
        self.batch_size = max(1, int(batch_size))
        self.nproc = max(1, int(nproc))
        self.override = GeometryOverride.coerce(geometry)
        self.shard = shard
        self._setup_lock = threading.Lock()
        self._ready = False
        self._experimental: Dict[str, str] = {}

    @property
    def fields(self) -> Tuple[str, ...]:
        """Every key of a result, in order."""
        own = [f for p in self.plugins for f in p.fields]
        return BASE_FIELDS + tuple(dict.fromkeys(own)) + STATUS_FIELDS + TIMING_FIELDS

    def setup(self) -> None:
        """Load the predictors' models (done once, on first use; thread-safe)."""
        with self._setup_lock:
            if not self._ready:
                for plugin in self.plugins:
                    plugin.setup(self.device)
                    notice = plugin.experimental()
                    if notice:
                        self._experimental.update({field: notice for field in plugin.model_fields or plugin.fields})
                self._ready = True

    @property
    def experimental(self) -> Dict[str, str]:
        """Result fields whose predictor's model is experimental, each with the reason (its card's)."""
        self.setup()
        return dict(self._experimental)

    def predict(self, inputs) -> List[Dict[str, Any]]:
        """One result dict per image (see :attr:`fields`), in input order."""
        return list(self.predict_iter(inputs))

    def predict_iter(self, inputs, with_ordinal: bool = False) -> Iterator[Dict[str, Any]]:
        """Results as they are ready, in input order (a generator: suits long runs and live data).

        with_ordinal: yield (n, result) pairs, n counting the input items (before ``shard``
        selection), so that the results of several MPI ranks can be merged in input order.
        """
        self.setup()
        pending: collections.deque = collections.deque()
        in_flight = 2 * self.nproc + self.batch_size
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.nproc) as pool:
            futures: queue.Queue = queue.Queue()
            window = threading.BoundedSemaphore(in_flight)
            stop = threading.Event()
            feeder = threading.Thread(target=self._feed, args=(inputs, pool, window, futures, stop), daemon=True)
            feeder.start()
            batch: List[_Prepared] = []
            try:
                while True:
                    future = futures.get()
                    if future is None:
                        break
                    if isinstance(future, BaseException):
                        raise future
                    prepared_list = future.result()
                    window.release()
                    for prepared in prepared_list:
                        pending.append(prepared)
                        if prepared.error is None:
                            batch.append(prepared)
                        if len(batch) >= self.batch_size:
                            yield from self._flush(pending, batch, with_ordinal)
                            batch = []
                yield from self._flush(pending, batch, with_ordinal)
            finally:
                stop.set()
                while feeder.is_alive():  # unblock a feeder waiting for room, then let it finish
                    try:
                        window.release()
                    except ValueError:
                        pass
                    feeder.join(0.05)

    # -- stages --------------------------------------------------------------------------------
    def _feed(self, inputs, pool, window, futures: "queue.Queue", stop: threading.Event) -> None:
        """Submit every image of the inputs to the pool, in order, at most ``window`` ahead."""
        count = 0
        rank, size = self.shard
        try:
            for kind, item in _input_items(inputs):
                if stop.is_set():
                    return
                mine = count % size == rank
                count += 1
                if not mine:
                    continue
                window.acquire()
                if stop.is_set():
                    return
                ordinal = count - 1
                if kind == "path":
                    futures.put(pool.submit(self._prepare_path, item, ordinal))
                else:
                    futures.put(pool.submit(lambda frame=item, n=ordinal: [self._prepare_frame(frame, n)]))
        except BaseException as exc:  # bad input type, a failing glob…: re-raised in the caller
            futures.put(exc)
        finally:
            futures.put(None)

    def _prepare_path(self, path: str, ordinal: int) -> List[_Prepared]:
        from .io import open_images

        started = time.perf_counter()
        out = []
        for frame in open_images([path], geometry=self.override, on_error="yield"):
            read_ms = 1000.0 * (time.perf_counter() - started)
            prepared = self._prepare_frame(frame, ordinal)
            prepared.read_ms = round(read_ms, 2)
            out.append(prepared)
            started = time.perf_counter()
        return out

    def _prepare_frame(self, frame, ordinal: int) -> _Prepared:
        if isinstance(frame, FrameError):
            index = frame.index if frame.index is not None else image_number(frame.source)
            return _Prepared(frame.source, index, ordinal, error=frame.message)
        if self.override:
            frame = dataclasses.replace(frame, geometry=self.override.apply(frame.geometry))
        prepared = _Prepared(frame.source, frame.index, ordinal, geometry=frame.geometry)
        try:
            for plugin in self.plugins:  # what a predictor cannot analyse gets its one-line reason
                problem = plugin.problem(frame.geometry, self.plugin_quadrants.get(plugin.name, ()))
                if problem:
                    prepared.problems[plugin.name] = problem
            if len(prepared.problems) == len(self.plugins):  # none can: the image's error
                prepared.error = "; ".join(dict.fromkeys(prepared.problems.values()))
                return prepared
            started = time.perf_counter()
            if any(p.needs == "quadrants" and p.name not in prepared.problems for p in self.plugins):
                if frame.geometry.faces_beam:
                    prepared.quadrants = conditioning.condition(frame.pixels, frame.mask, frame.geometry,
                                                                quadrants=self.quadrant_indices)
                else:  # a swung detector: the whole frame, for the predictors that read it
                    prepared.quadrants = conditioning.condition_whole(frame.pixels, frame.mask, frame.geometry)[None]
            prepared.condition_ms = round(1000.0 * (time.perf_counter() - started), 2)
            started = time.perf_counter()
            shared: Dict[str, Any] = {}  # this image's work the raw-frame predictors share (its spots…)
            for plugin in self.plugins:
                if plugin.needs == "frame" and plugin.name not in prepared.problems:
                    prepared.fields.update(plugin.predict([self._input(plugin, prepared, frame, shared)])[0])
            prepared.frame_predict_ms = 1000.0 * (time.perf_counter() - started)
        except Exception as exc:  # one image must not stop the run; the error goes in its row
            prepared.error = f"{type(exc).__name__}: {exc}"
        return prepared

    def _flush(self, pending, batch: List[_Prepared], with_ordinal: bool = False) -> Iterator:
        if batch:
            started = time.perf_counter()
            for plugin in self.plugins:
                if plugin.needs != "quadrants":
                    continue
                analysed = [prepared for prepared in batch if plugin.name not in prepared.problems]
                if not analysed:
                    continue
                try:
                    items = [self._input(plugin, prepared) for prepared in analysed]
                    for prepared, fields in zip(analysed, plugin.predict(items)):
                        prepared.fields.update(fields)
                except Exception as exc:
                    for prepared in analysed:
                        prepared.error = f"{plugin.name}: {type(exc).__name__}: {exc}"
            per_image = 1000.0 * (time.perf_counter() - started) / len(batch)
        while pending:
            prepared = pending.popleft()
            result = self._result(prepared, per_image if batch and prepared.error is None else 0.0)
            yield (prepared.ordinal, result) if with_ordinal else result

    def _input(self, plugin: PredictorPlugin, prepared: _Prepared, frame: Optional[Frame] = None,
               shared: Optional[Dict[str, Any]] = None) -> PredictionInput:
        """What one predictor is given of one image: its own quadrants of those conditioned, and
        the image's ``shared`` work (:class:`PredictionInput`)."""
        numbers = self.plugin_quadrants.get(plugin.name, ())
        quadrants = prepared.quadrants
        if quadrants is not None and numbers != self.quadrant_indices and prepared.geometry.faces_beam:
            quadrants = quadrants[[self.quadrant_indices.index(q) for q in numbers]]
        return PredictionInput(prepared.geometry, quadrants, numbers, frame, self.settings,
                               {} if shared is None else shared)

    def _result(self, prepared: _Prepared, predict_ms: float) -> Dict[str, Any]:
        result: Dict[str, Any] = {"image": prepared.source, "frame": prepared.index}
        for name in self.fields[len(BASE_FIELDS):]:
            result[name] = prepared.fields.get(name)
        result["error"] = prepared.error
        result["not_analysed"] = None if prepared.error or not prepared.problems else "; ".join(
            f"{name}: {problem}" for name, problem in prepared.problems.items())
        result["read_ms"] = prepared.read_ms
        result["condition_ms"] = prepared.condition_ms
        result["predict_ms"] = round(predict_ms + prepared.frame_predict_ms, 2)
        return result


def _quadrant_numbers(count: int) -> Tuple[int, ...]:
    """Quadrant numbers for a count: 4 → all, 1 → quadrant 0 (the one the paper trains on)."""
    if count not in (1, 4):
        raise ValueError(f"a predictor's quadrants must be 1 or 4, got {count}")
    return conditioning.ALL_QUADRANTS if count == 4 else (0,)


def _resolve_device(device: str) -> str:
    if device in (None, "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not str(device).startswith("cuda:"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    return device


def _input_items(inputs) -> Iterator[Tuple[str, Any]]:
    """(kind, item) for every image of the inputs: "path" (a single-image file, read in the pool)
    or "frame" (already read, or read here in order from a multi-frame container)."""
    if isinstance(inputs, (str, os.PathLike, Frame, FrameError)) or _is_imageset(inputs) or _is_array_pair(inputs):
        inputs = [inputs]
    array_count = 0
    for item in inputs:
        if isinstance(item, (str, os.PathLike)):
            for path in expand_inputs([item]):
                yield from _path_items(path)
        elif isinstance(item, (Frame, FrameError)):
            yield "frame", item
        elif _is_array_pair(item):
            pixels, geometry = item
            yield "frame", Frame.from_pixels(pixels, geometry, index=array_count)
            array_count += 1
        elif _is_imageset(item):
            from .io.dxtbx_adapter import frames_from_imageset

            for frame in frames_from_imageset(item):
                yield "frame", frame
        else:
            raise TypeError(f"cannot predict on {type(item).__name__}: give paths, Frames, (pixels, Geometry) pairs "
                            "or dxtbx imagesets")


def _path_items(path: str) -> Iterator[Tuple[str, Any]]:
    """Single-image files are read in the pool; multi-frame containers frame by frame, in order."""
    try:
        reader = identify(path)
    except ImageError as exc:
        yield "frame", FrameError(exc.path, exc.frame, exc.problem)
        return
    if getattr(reader, "multi_frame", False):
        from .io import open_images

        for frame in open_images([path], on_error="yield"):
            yield "frame", frame
    else:
        yield "path", path


def _is_array_pair(item) -> bool:
    return isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Geometry)


def _is_imageset(item) -> bool:
    return hasattr(item, "get_raw_data") and hasattr(item, "get_detector")


#: The result field each summary value is made from (for the experimental notices).
SUMMARY_SOURCES = {"n_diffraction": "diffraction", "median_d_min": "d_min", "median_d_mean": "d_mean",
                   "best_d_min": "d_min", "xrais_b": "b_factor", "fraction_multilattice": "multilattice",
                   "fraction_multilattice_resnet": "multilattice_resnet",
                   "median_n_spots": "n_spots", "n_undetermined": "resolution_undetermined",
                   "n_multilattice_indexed": "multilattice_indexed",
                   "n_multilattice_undetermined": "multilattice_undetermined"}


def summarise(results: Iterable[Dict[str, Any]], reduce: str = "min",
              experimental: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Dataset summary: counts, median resolution (d_min or d_mean), the dataset "XRAIS B" (mean
    over images of each image's lowest-quadrant B, paper section 3.2), fraction of multi-lattice
    images, fraction with diffraction, and (from a model that gives σ) how many images' resolution
    is undetermined. experimental: :attr:`Predictor.experimental`; the summary
    then says, under "experimental", which of its values come from an experimental model and why."""
    results = list(results)
    good = [r for r in results if not r.get("error")]
    key = "d_min" if reduce == "min" else "d_mean"
    summary: Dict[str, Any] = {"n_images": len(results), "n_failed": len(results) - len(good)}
    if any("diffraction" in r and r["diffraction"] is not None for r in good):
        resolutions = [r[key] for r in good if r.get(key) is not None]
        b_factors = [r["b_factor"] for r in good if r.get("b_factor") is not None]
        summary.update({
            "n_diffraction": sum(bool(r.get("diffraction")) for r in good),
            f"median_{key}": round(float(np.median(resolutions)), 3) if resolutions else None,
            "best_d_min": round(float(min(r["d_min"] for r in good if r.get("d_min") is not None)), 3) if resolutions else None,
            "xrais_b": round(float(np.mean(b_factors)), 2) if b_factors else None,
        })
        if any(r.get("resolution_undetermined") is not None for r in good):
            summary["n_undetermined"] = sum(bool(r.get("resolution_undetermined")) for r in good)
    for call in ("multilattice", "multilattice_resnet"):  # of the images that have the call
        if any(call in r for r in good):
            flags = [bool(r[call]) for r in good if r.get(call) is not None]
            summary[f"fraction_{call}"] = round(sum(flags) / len(flags), 4) if flags else None
    if any(r.get("n_spots") is not None for r in good):
        summary["median_n_spots"] = float(np.median([r["n_spots"] for r in good if r.get("n_spots") is not None]))
    if any("multilattice_undetermined" in r for r in good):  # no lattice indexed: no multi-lattice answer
        summary["n_multilattice_undetermined"] = sum(r.get("multilattice_undetermined") is not None for r in good)
    if any("multilattice_indexed" in r for r in good):
        # images with several lattices indexed (those with none found are neither)
        summary["n_multilattice_indexed"] = sum(r.get("multilattice_indexed") is True for r in good)
    caveats = {name: experimental[SUMMARY_SOURCES[name]] for name in summary
               if experimental and SUMMARY_SOURCES.get(name) in experimental}
    if caveats:
        summary["experimental"] = caveats
    return summary
