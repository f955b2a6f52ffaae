"""DIALS experiment lists (``.expt``: ExperimentList JSON): reader, without dxtbx.

Each image set of the list is read once, with the beam and detector of the first experiment that
uses it. Its images (an ``ImageSequence`` template with ``#`` placeholders and the scan's
``image_range``, or an ``ImageSet``/``ImageGrid`` list of files, optionally with
``single_file_indices`` for multi-image files; paths relative to the .expt folder) are read with
the other readers, and take the .expt geometry instead of their headers':

* beam: ``wavelength`` (Å) and ``direction`` (towards the source; the beam travels the other way);
* detector: panels with ``origin``, ``fast_axis``, ``slow_axis`` (mm, lab frame; each panel's frame
  is local to its ``hierarchy`` group and composed as dxtbx does: global = parent orientation ·
  local + parent origin), ``pixel_size`` (fast, slow mm), ``image_size`` (fast, slow) and
  ``trusted_range`` (inclusive [min, max] valid value, the dxtbx convention since 2022; pixels
  outside it are masked, on top of the image reader's own mask).

One flat panel gives the geometry directly (beam centre where the beam meets the panel); several
panels are assembled (:mod:`xrais.io.assemble`) from the image file's panels as stored (imgCIF
sections, NeXus modules), matched by name, else in file order. External mask/gain files of the
image set and the panels' static untrusted rectangles are not applied.
"""
from __future__ import annotations

import json
import os
import re
from typing import Iterator, List, Optional, Tuple, Union

import numpy as np

from . import detectors
from .assemble import Layout, PanelGeometry, RawPanels, make_layout, to_frame
from .base import Reader, load_bytes
from .errors import ImageError
from .frame import Frame, FrameError
from .geometry import GeometryOverride
from .open import identify

_IDENTITY = re.compile(rb'"__id__"\s*:\s*"ExperimentList"')
_TEMPLATE = re.compile(r"#+")
#: Most images one template image set may name (guards against corrupt image ranges).
MAX_IMAGES = 1_000_000


def _number_list(path, value, length, what) -> Tuple[float, ...]:
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ImageError(path, f"{what} is not a list of numbers: {value!r}") from None
    if len(numbers) != length or not all(np.isfinite(numbers)):
        raise ImageError(path, f"{what} must be {length} finite numbers, got {value!r}")
    return numbers


def _item(path, document: dict, key: str, index, required=True) -> Optional[dict]:
    models = document.get(key, [])
    if index is None and not required:
        return None
    if not isinstance(models, list) or not isinstance(index, int) or not 0 <= index < len(models) \
            or not isinstance(models[index], dict):
        raise ImageError(path, f"experiment refers to {key} {index!r}, which the list does not hold")
    return models[index]


def panel_geometries(path: str, detector: dict) -> List[PanelGeometry]:
    """Global panel frames of a dxtbx detector dictionary (hierarchy composed)."""
    panels = detector.get("panels")
    if not isinstance(panels, list) or not panels:
        raise ImageError(path, "detector has no panels")
    frames = [None] * len(panels)

    def local(node, what):
        return (np.array(_number_list(path, node.get("fast_axis"), 3, f"{what} fast_axis")),
                np.array(_number_list(path, node.get("slow_axis"), 3, f"{what} slow_axis")),
                np.array(_number_list(path, node.get("origin"), 3, f"{what} origin")))

    def compose(parent, node, what):
        fast_p, slow_p, origin_p = parent
        normal_p = np.cross(fast_p, slow_p)
        orientation = np.column_stack([fast_p, slow_p, normal_p])
        fast, slow, origin = local(node, what)
        return orientation @ fast, orientation @ slow, orientation @ origin + origin_p

    def walk(node, parent, depth):
        if not isinstance(node, dict) or not isinstance(node.get("children", []), list) or depth > 32:
            raise ImageError(path, "detector hierarchy is malformed")
        frame = compose(parent, node, "hierarchy group")
        for child in node.get("children", []):
            if isinstance(child, dict) and "panel" in child:
                index = child["panel"]
                if not isinstance(index, int) or not 0 <= index < len(panels) or not isinstance(panels[index], dict):
                    raise ImageError(path, f"detector hierarchy names panel {index!r}, which does not exist")
                frames[index] = compose(frame, panels[index], f"panel {index}")
            else:
                walk(child, frame, depth + 1)

    identity = (np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), np.zeros(3))
    if "hierarchy" in detector:
        walk(detector["hierarchy"], identity, 0)
    geometries = []
    for index, panel in enumerate(panels):
        if not isinstance(panel, dict):
            raise ImageError(path, f"panel {index} is not a dictionary")
        fast, slow, origin = frames[index] if frames[index] is not None else compose(identity, panel, f"panel {index}")
        pixel_size = _number_list(path, panel.get("pixel_size"), 2, f"panel {index} pixel_size")
        image_size = _number_list(path, panel.get("image_size"), 2, f"panel {index} image_size")
        geometries.append(PanelGeometry(tuple(origin), tuple(fast), tuple(slow), pixel_size,
                                        (int(image_size[1]), int(image_size[0])), str(panel.get("name") or index)))
    return geometries


class _Model:
    """Beam and detector of an experiment: layout, wavelength and trusted ranges."""

    def __init__(self, path: str, beam: dict, detector: dict):
        self.path = path
        direction = np.array(_number_list(path, beam.get("direction"), 3, "beam direction"))
        (self.wavelength,) = _number_list(path, [beam.get("wavelength")], 1, "beam wavelength")
        self.panels = panel_geometries(path, detector)
        self.layout: Layout = make_layout(path, self.panels, -direction)
        self.trusted = []
        for index, panel in enumerate(detector["panels"]):
            low, high = _number_list(path, panel.get("trusted_range", (0, 0)), 2, f"panel {index} trusted_range")
            self.trusted.append((low, high) if high > low else None)
        pixel_size = self.layout.pixel_size
        model = detectors.find(None, self.layout.shape, pixel_size) if len(self.panels) == 1 else None
        self.detector = model.name if model else "DIALS"

    def untrusted(self, pixels: List[np.ndarray], masks: List[np.ndarray]) -> List[np.ndarray]:
        out = []
        for data, mask, limits in zip(pixels, masks, self.trusted):
            mask = np.asarray(mask, dtype=bool)
            if limits is not None:
                mask = mask | (data < limits[0]) | (data > limits[1])
            out.append(mask)
        return out

    def override_for_reader(self) -> GeometryOverride:
        """The .expt geometry for an image reader, so that it needs nothing from its header."""
        return GeometryOverride(distance=self.layout.distance, wavelength=self.wavelength,
                                beam_centre=self.layout.beam_centre, pixel_size=self.layout.pixel_size)


def _images(path: str, folder: str, imageset: dict,
            scan: Optional[dict]) -> Iterator[Union[Tuple[str, Optional[int]], FrameError]]:
    """(image file, frame index in that file or None for all) of an image set, in order; a run
    of missing template images becomes one FrameError."""
    kind = imageset.get("__id__")
    if kind in ("ImageSet", "ImageGrid"):
        images = imageset.get("images")
        indices = imageset.get("single_file_indices")
        if not isinstance(images, list) or not all(isinstance(name, str) for name in images):
            raise ImageError(path, f"{kind} has no list of image files")
        if indices is not None and (not isinstance(indices, list) or len(indices) != len(images)
                                    or not all(isinstance(i, int) and i >= 0 for i in indices)):
            raise ImageError(path, f"{kind} single_file_indices do not match its images")
        for k, name in enumerate(images):
            yield os.path.join(folder, name), (indices[k] if indices is not None else None)
        return
    if kind not in ("ImageSequence", "ImageSweep"):
        raise ImageError(path, f"unsupported image set type {kind!r}")
    template = imageset.get("template")
    if not isinstance(template, str) or not template:
        raise ImageError(path, f"{kind} has no template")
    template = os.path.join(folder, template)
    placeholders = _TEMPLATE.findall(os.path.basename(template))
    if not placeholders:
        indices = imageset.get("single_file_indices")
        if indices is not None and (not isinstance(indices, list)
                                    or not all(isinstance(i, int) and i >= 0 for i in indices)):
            raise ImageError(path, f"{kind} single_file_indices are not frame numbers")
        for index in indices if indices is not None else [None]:
            yield template, index
        return
    width = len(placeholders[-1])
    head, tail = template.rsplit("#" * width, 1)
    image_range = (scan or {}).get("image_range")
    if image_range is None:
        raise ImageError(path, f"{kind} template {template} has no scan image_range")
    first, last = (int(v) for v in _number_list(path, image_range, 2, "scan image_range"))
    if first < 0 or last < first or last - first >= MAX_IMAGES:
        raise ImageError(path, f"scan image_range {image_range} makes no sense")
    directory = os.path.dirname(head) or "."
    present = set(os.listdir(directory)) if os.path.isdir(directory) else set()
    missing_from = None
    for number in range(first, last + 2):
        name = f"{head}{number:0{width}d}{tail}" if number <= last else None
        if name is not None and os.path.basename(name) not in present:
            missing_from = number if missing_from is None else missing_from
            continue
        if missing_from is not None:
            yield FrameError(f"{head}{'#' * width}{tail}", None,
                             f"images {missing_from}…{number - 1} of the template do not exist")
            missing_from = None
        if name is not None:
            yield name, None


class ExptReader(Reader):
    name = "DIALS .expt"
    multi_frame = True
    suffixes = (".expt",)

    def identify(self, path, head):
        return bool(_IDENTITY.search(head))

    def read(self, path, override: GeometryOverride) -> Iterator[Union[Frame, FrameError]]:
        try:
            document = json.loads(load_bytes(path))
        except (ValueError, RecursionError) as exc:
            raise ImageError(path, f"not a readable experiment list (JSON: {exc})") from None
        if not isinstance(document, dict) or not isinstance(document.get("experiment"), list):
            raise ImageError(path, "experiment list has no 'experiment' list")
        folder = os.path.dirname(os.path.abspath(path))
        done = set()
        for experiment in document["experiment"]:
            if not isinstance(experiment, dict):
                raise ImageError(path, "experiment entry is not a dictionary")
            imageset_index = experiment.get("imageset")
            imageset = _item(path, document, "imageset", imageset_index)
            if imageset_index in done:
                continue
            done.add(imageset_index)
            model = _Model(path, _item(path, document, "beam", experiment.get("beam")),
                           _item(path, document, "detector", experiment.get("detector")))
            scan = _item(path, document, "scan", experiment.get("scan"), required=False)
            for item in _images(path, folder, imageset, scan):
                if isinstance(item, FrameError):
                    yield item
                else:
                    yield from self._frames_of(path, item[0], item[1], model, override)

    def _frames_of(self, path, image, wanted: Optional[int], model: _Model, override) -> Iterator:
        """Frames of one image file (all, or only frame ``wanted``) with the .expt geometry."""
        try:
            reader = identify(image)
            if len(model.panels) == 1:
                items = reader.read(image, model.override_for_reader())
                convert = self._from_frame
            elif hasattr(reader, "raw_panels"):
                items = reader.raw_panels(image)
                convert = self._from_panels
            else:
                raise ImageError(image, f"the .expt describes {len(model.panels)} panels but {reader.name} "
                                        "images hold one")
            for item in items:
                if isinstance(item, FrameError):
                    yield item
                elif wanted is None or item.index == wanted:
                    yield convert(image, item, model, override, path)
        except ImageError as exc:
            yield FrameError(exc.path, exc.frame if exc.frame is not None else wanted, exc.problem)

    @staticmethod
    def _from_frame(image, frame: Frame, model: _Model, override, path) -> Frame:
        raw = RawPanels(frame.index, [model.panels[0].name], [frame.pixels], [frame.mask])
        return ExptReader._from_panels(image, raw, model, override, path, frame.metadata)

    @staticmethod
    def _from_panels(image, raw: RawPanels, model: _Model, override, path, metadata=None) -> Frame:
        names = [panel.name for panel in model.panels]
        if len(raw.pixels) != len(names):
            raise ImageError(image, f"image holds {len(raw.pixels)} panels, the .expt detector {len(names)}", raw.index)
        if set(names) <= set(raw.names) and len(set(raw.names)) == len(raw.names):
            order = [raw.names.index(name) for name in names]
            pixels, masks = [raw.pixels[k] for k in order], [raw.masks[k] for k in order]
        else:
            pixels, masks = raw.pixels, raw.masks
        metadata = dict(metadata or {}, expt=path)
        if raw.multi_frame:
            metadata["multi_frame"] = True
        return to_frame(image, model.layout, pixels, model.untrusted(pixels, masks), model.wavelength, override,
                        model.detector, raw.index, metadata, raw.index)


READER = ExptReader()
