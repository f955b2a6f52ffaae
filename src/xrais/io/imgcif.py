"""imgCIF / full CBF with an axis hierarchy (no PILATUS header): reader.

Used for the CBF files cctbx.xfel writes at XFELs: single-panel detectors (Rayonix MX340 at LCLS)
and multi-panel ones (CS-PAD: 4 arrays of (8, 185, 388) pixels, split by
``_array_structure_list_section`` into 64 ASICs). ``pycbf`` parses the file and decodes the
binary sections (byte-offset, "packed" and the other CBFlib compressions; the MD5 digest is
checked); the geometry is computed here from the imgCIF categories:

* ``_axis``: id, type (translation/rotation), ``depends_on``, ``vector``, ``offset`` (mm);
* axis settings from ``_diffrn_scan_frame_axis`` (angle in degrees, displacement in mm), or
  ``_diffrn_scan_axis`` start values;
* ``_array_structure_list`` (+ ``_section``): which axis set runs along each array index
  (precedence 1 = fast) and which part of the array each panel is;
* ``_array_structure_list_axis``: the displacement of the first pixel and the pixel pitch (mm).

A panel's origin (outer corner of its pixel (0, 0), the dxtbx convention that cctbx.xfel writes
to) is the axis chain evaluated at the first pixel; its fast/slow directions are the chain's
rotations applied to the axes' vectors. The beam travels opposite to the ``source`` axis (imgCIF:
towards −z). Pixels at or below ``_array_intensities.undefined_value`` or at or above ``overload``
are masked. Several panels are assembled onto one flat image (:mod:`xrais.io.assemble`).

CBFlib prints its warnings and errors ("CBFlib: warning input line 1430 …") to the process's
stderr; they are kept off the terminal and go to the log at debug level, and a file CBFlib cannot
parse whole is reported as corrupt or truncated, with CBFlib's first complaint.
"""
from __future__ import annotations

import logging
import math
import os
import re
import sys
import tempfile
import threading
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import pycbf

from . import detectors
from .assemble import PanelGeometry, RawPanels, make_layout, to_frame
from .base import MAX_PIXELS, Reader, image_number, load_bytes, make_geometry, strip_compression
from .errors import ImageError
from .frame import Frame
from .geometry import GeometryOverride

_INTEGER_TYPES = {(1, 1): np.int8, (1, 0): np.uint8, (2, 1): np.int16, (2, 0): np.uint16,
                  (4, 1): np.int32, (4, 0): np.uint32}
_MAX_CHAIN = 64
_CBFLIB_PREFIX = "CBFlib:"

log = logging.getLogger(__name__)


def _cbf(path: str, what: str, call, *args):
    """A pycbf call; pycbf reports every CBFlib error as a plain Exception."""
    try:
        return call(*args)
    except Exception as exc:  # noqa: BLE001 - pycbf raises bare Exception("CBFlib Error(s): ...")
        raise ImageError(path, f"{what}: {str(exc).strip()}") from None


class _CBFlibOutput:
    """Inside ``with``: what C code writes to the process's stderr (file descriptor 2), where CBFlib
    prints, goes to a temporary file instead. CBFlib's lines (:attr:`lines`, also logged at debug
    level on leaving) stay off the terminal; anything else written there meanwhile (another
    thread's log line, a progress bar) is passed on to stderr on leaving. One at a time."""

    _lock = threading.Lock()

    def __init__(self, path: str):
        self.path = path
        self.lines: List[str] = []
        self._passed_on: List[str] = []

    def __enter__(self):
        self._lock.acquire()
        try:
            sys.stderr.flush()
            self._capture = tempfile.TemporaryFile()
            self._saved = os.dup(2)
            os.dup2(self._capture.fileno(), 2)
        except BaseException:
            self._lock.release()
            raise
        return self

    def complaint(self) -> Optional[str]:
        """CBFlib's first error so far (else its first warning), without the "CBFlib:" prefix."""
        self._take()
        errors = [line for line in self.lines if " error " in line]
        first = (errors or self.lines or [None])[0]
        return first[len(_CBFLIB_PREFIX):].strip() if first else None

    def _take(self) -> None:
        """Sort what was captured so far into CBFlib's lines and the rest."""
        self._capture.seek(0)
        text = self._capture.read().decode("latin-1")
        self._capture.seek(0)
        self._capture.truncate()
        for line in text.splitlines(keepends=True):
            if line.startswith(_CBFLIB_PREFIX):
                self.lines.append(line.strip())
            else:
                self._passed_on.append(line)

    def __exit__(self, *exc):
        try:
            self._take()
            os.dup2(self._saved, 2)
            os.close(self._saved)
            self._capture.close()
            if self._passed_on:
                os.write(2, "".join(self._passed_on).encode("latin-1"))
        finally:
            self._lock.release()
        for line in self.lines:
            log.debug("%s: %s", self.path, line)
        return False


def _text(value) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def read_table(path: str, handle, category: str) -> List[Dict[str, Optional[str]]]:
    """Rows of a CIF category as {column: text} (None for null values '.'/'?'); [] if absent."""
    try:
        handle.find_category(category)
    except Exception:  # noqa: BLE001 - CBF_NOTFOUND
        return []
    n_columns = _cbf(path, f"reading _{category}", handle.count_columns)
    n_rows = _cbf(path, f"reading _{category}", handle.count_rows)
    columns = []
    for j in range(n_columns):
        _cbf(path, f"reading _{category}", handle.select_column, j)
        columns.append(_text(_cbf(path, f"reading _{category}", handle.column_name)).lower())
    rows = []
    for r in range(n_rows):
        row = {}
        for j, name in enumerate(columns):
            _cbf(path, f"reading _{category}", handle.select_column, j)
            _cbf(path, f"reading _{category}", handle.select_row, r)
            kind = _text(_cbf(path, f"reading _{category}.{name}", handle.get_typeofvalue))
            if kind == "bnry":
                continue
            value = None if kind == "null" else _text(_cbf(path, f"reading _{category}.{name}", handle.get_value))
            row[name] = value
        rows.append(row)
    return rows


_TEXT_FIELD = "\x00text field"
_CIF_TOKEN = re.compile(r"'[^']*'|\"[^\"]*\"|\S+")


def cif_tables(text: str) -> Dict[str, List[Dict[str, Optional[str]]]]:
    """The CIF categories written as text in ``text`` (a miniCBF header that carries imgCIF
    categories after its PILATUS lines): {category: rows of {column: text}}, names lower case, None
    for null values '.'/'?' (as :func:`read_table`). ``#`` comments and ``;`` text fields are skipped;
    a row may run over several lines."""
    tokens: List[str] = []
    in_text_field = False
    for line in text.splitlines():
        if line.startswith(";"):
            in_text_field = not in_text_field
            if not in_text_field:  # a text field is one value (its text is not needed)
                tokens.append(_TEXT_FIELD)
            continue
        if in_text_field:
            continue
        for token in _CIF_TOKEN.findall(line):
            if token.startswith("#"):
                break
            tokens.append(token[1:-1] if token[0] in "'\"" and len(token) > 1 else token)
    tables: Dict[str, List[Dict[str, Optional[str]]]] = {}

    def split(name):
        category, _, column = name[1:].partition(".")
        return category.lower(), column.lower()

    def value(token):
        return None if token in (".", "?") else token

    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.lower() == "loop_":
            names = []
            i += 1
            while i < len(tokens) and tokens[i].startswith("_"):
                names.append(split(tokens[i]))
                i += 1
            values = []
            while i < len(tokens) and not tokens[i].startswith("_") and tokens[i].lower() != "loop_" \
                    and not tokens[i].lower().startswith("data_"):
                values.append(value(tokens[i]))
                i += 1
            if names and len({category for category, _ in names}) == 1:
                rows = tables.setdefault(names[0][0], [])
                for start in range(0, len(values) - len(names) + 1, len(names)):
                    rows.append({column: values[start + k] for k, (_, column) in enumerate(names)})
        elif token.startswith("_") and i + 1 < len(tokens):
            category, column = split(token)
            rows = tables.setdefault(category, [])
            if not rows:
                rows.append({})
            rows[0][column] = value(tokens[i + 1])
            i += 2
        else:
            i += 1
    return tables


def header_panel(path: str, header: str, shape) -> Optional[Tuple[PanelGeometry, np.ndarray]]:
    """(the detector's panel, the beam direction) from the imgCIF axis categories written in a
    miniCBF header (a hybrid miniCBF + imgCIF header, as Diamond's I19 writes), or None when the
    header has no ``_axis`` category; ``shape``: the image's (slow, fast)."""
    tables = cif_tables(header)
    if not tables.get("axis"):
        return None

    def rows(category):
        return tables.get(category, [])

    axes = _Axes(path, rows)
    structure = rows("array_structure_list")
    spec = _PanelSpec("detector", (structure[0].get("array_id") if structure else None) or "ARRAY1")
    for row in structure:
        spec.index_rows[int(_number(path, row, "index", "_array_structure_list"))] = row
    axis_sets: Dict[str, list] = {}
    for row in rows("array_structure_list_axis"):
        axis_sets.setdefault(row.get("axis_set_id"), []).append(row)
    return _panel_geometry(path, spec, axes, axis_sets, shape), axes.beam_direction()


def _number(path, row, column, what, default=None) -> float:
    value = row.get(column)
    if value is None:
        if default is None:
            raise ImageError(path, f"{what} has no {column}")
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImageError(path, f"{what} {column} = {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ImageError(path, f"{what} {column} = {value!r} is not finite")
    return number


class _Axes:
    """The ``_axis`` hierarchy with this frame's settings: 4×4 homogeneous matrices (mm)."""

    def __init__(self, path: str, rows: Callable[[str], List[Dict[str, Optional[str]]]]):
        """rows: the rows of a category by name (:func:`read_table` on a parsed file, or the tables of
        :func:`cif_tables`)."""
        self.path = path
        self.axes = {}
        for row in rows("axis"):
            if not row.get("id"):
                continue
            what = f"axis {row['id']}"
            vector = np.array([_number(path, row, f"vector[{k}]", what, 0.0) for k in (1, 2, 3)])
            offset = np.array([_number(path, row, f"offset[{k}]", what, 0.0) for k in (1, 2, 3)])
            self.axes[row["id"]] = (row.get("type") or "general", row.get("depends_on"), vector, offset,
                                    row.get("equipment") or "")
        self.settings: Dict[str, float] = {}
        for category, angle, displacement in (("diffrn_scan_axis", "angle_start", "displacement_start"),
                                              ("diffrn_scan_frame_axis", "angle", "displacement")):
            for row in rows(category):
                if row.get("axis_id") in self.axes:
                    kind = self.axes[row["axis_id"]][0]
                    column = angle if kind == "rotation" else displacement
                    self.settings[row["axis_id"]] = _number(path, row, column, f"setting of {row['axis_id']}", 0.0)

    def parent(self, axis_id: str) -> Optional[str]:
        return self.axes[axis_id][1]

    def matrix(self, axis_id: str, extra: float = 0.0) -> np.ndarray:
        kind, _, vector, offset, _ = self.axes[axis_id]
        setting = self.settings.get(axis_id, 0.0) + extra
        matrix = np.identity(4)
        matrix[:3, 3] = offset
        if kind in ("translation", "rotation") and not np.linalg.norm(vector) > 0:
            raise ImageError(self.path, f"axis {axis_id} has no direction vector")
        if kind == "translation":
            matrix[:3, 3] += vector / np.linalg.norm(vector) * setting
        elif kind == "rotation":
            matrix[:3, :3] = _rotation(vector, math.radians(setting))
        return matrix

    def chain(self, axis_id: Optional[str], extras: Dict[str, float]) -> np.ndarray:
        """Product of the axis transformations from ``axis_id`` up to the root."""
        total, seen = np.identity(4), set()
        while axis_id is not None:
            if axis_id not in self.axes:
                raise ImageError(self.path, f"axis {axis_id} is referenced but not defined in _axis")
            if axis_id in seen or len(seen) >= _MAX_CHAIN:
                raise ImageError(self.path, f"the axis hierarchy through {axis_id} loops")
            seen.add(axis_id)
            total = self.matrix(axis_id, extras.get(axis_id, 0.0)) @ total
            axis_id = self.parent(axis_id)
        return total

    def beam_direction(self) -> np.ndarray:
        """Direction the beam travels: opposite to the ``source`` axis (default imgCIF −z)."""
        for _, _, vector, _, equipment in self.axes.values():
            if equipment.lower() == "source" and np.linalg.norm(vector) > 0:
                return -vector / np.linalg.norm(vector)
        return np.array([0.0, 0.0, -1.0])


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    x, y, z = axis / np.linalg.norm(axis)
    c, s, t = math.cos(angle), math.sin(angle), 1 - math.cos(angle)
    return np.array([[t * x * x + c, t * x * y - s * z, t * x * z + s * y],
                     [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
                     [t * x * z - s * y, t * y * z + s * x, t * z * z + c]])


class _Array:
    """One decoded binary array: numpy data (slow…fast), its trusted range."""

    def __init__(self, data: np.ndarray, undefined: Optional[float], overload: Optional[float]):
        self.data, self.undefined, self.overload = data, undefined, overload

    def invalid(self, data: np.ndarray) -> np.ndarray:
        mask = np.zeros(data.shape, dtype=bool)
        if self.undefined is not None:
            mask |= data <= self.undefined
        if self.overload is not None:
            mask |= data >= self.overload
        return mask


def _read_arrays(path: str, handle, complaint: Optional[str] = None) -> Dict[str, _Array]:
    """The decoded arrays; complaint: CBFlib's first complaint while parsing (the file is damaged)."""
    limits = {row.get("array_id"): row for row in read_table(path, handle, "array_intensities")}
    arrays = {}
    try:
        handle.find_category("array_data")
    except Exception:  # noqa: BLE001 - CBF_NOTFOUND
        if complaint:
            raise ImageError(path, f"corrupt or truncated CBF file: no image array (_array_data) where CBFlib "
                                   f"found the file damaged ({complaint})") from None
        raise ImageError(path, "CIF file holds no image array (_array_data): not a diffraction image") from None
    n_rows = _cbf(path, "reading _array_data", handle.count_rows)
    for r in range(n_rows):
        _cbf(path, "reading _array_data", handle.find_column, "array_id")
        _cbf(path, "reading _array_data", handle.select_row, r)
        array_id = _text(_cbf(path, "reading _array_data.array_id", handle.get_value))
        _cbf(path, "reading _array_data", handle.find_column, "data")
        if _text(_cbf(path, f"reading array {array_id}", handle.get_typeofvalue)) != "bnry":
            raise ImageError(path, f"array {array_id} holds no binary data")
        params = _cbf(path, f"reading array {array_id} header", handle.get_integerarrayparameters_wdims_fs)
        elsize, elsigned, elements = int(params[2]), int(params[3]), int(params[5])
        dims = tuple(int(v) for v in params[9:12])  # fast, mid, slow
        if min(dims) < 1 or elements != dims[0] * dims[1] * dims[2] or elements > MAX_PIXELS:
            raise ImageError(path, f"array {array_id} header says {elements} elements of dimensions {dims}: "
                                   "corrupt header")
        dtype = _INTEGER_TYPES.get((elsize, elsigned))
        if dtype is None:
            raise ImageError(path, f"array {array_id} has unsupported {elsize}-byte elements")
        raw = _cbf(path, f"decoding array {array_id} (corrupt or truncated data)", handle.get_integerarray_as_string)
        data = np.frombuffer(raw, dtype=dtype)
        if data.size != elements:
            raise ImageError(path, f"array {array_id} decoded to {data.size} of {elements} elements")
        row = limits.get(array_id, {})
        undefined = _number(path, row, "undefined_value", f"array {array_id}", math.nan)
        overload = _number(path, row, "overload", f"array {array_id}", math.nan)
        arrays[array_id] = _Array(data.reshape(dims[::-1]), None if math.isnan(undefined) else undefined,
                                  None if math.isnan(overload) or overload <= 0 else overload)
    if not arrays:
        raise ImageError(path, "CBF file has no binary image array")
    return arrays


class _PanelSpec:
    """One panel: its array, its part of the array (1-based index ranges), and the rows of
    ``_array_structure_list`` that give its axis sets."""

    def __init__(self, name: str, array_id: str):
        self.name, self.array_id = name, array_id
        self.index_rows: Dict[int, dict] = {}
        self.ranges: Dict[int, Tuple[int, int]] = {}


def _panel_specs(path: str, handle, arrays: Dict[str, _Array]) -> Tuple[List[_PanelSpec], Dict[str, Dict[int, int]]]:
    """The panels (sections, or whole arrays) and, per array, index → precedence (1 = fastest)."""
    specs: Dict[str, _PanelSpec] = {}
    precedences: Dict[str, Dict[int, int]] = {}
    for row in read_table(path, handle, "array_structure_list"):
        array_id = row.get("array_id")
        if array_id not in arrays:
            raise ImageError(path, f"_array_structure_list names array {array_id!r}, which has no data")
        name = row.get("array_section_id") or array_id
        what = f"structure of {name}"
        index = int(_number(path, row, "index", what))
        if (row.get("direction") or "increasing").lower() != "increasing":
            raise ImageError(path, f"panel {name}: decreasing array axes are not supported")
        if name == array_id:
            precedences.setdefault(array_id, {})[index] = int(_number(path, row, "precedence", what))
        specs.setdefault(name, _PanelSpec(name, array_id)).index_rows[index] = row
    for row in read_table(path, handle, "array_structure_list_section"):
        spec = specs.get(row.get("id"))
        if spec is not None:
            what = f"section {spec.name}"
            spec.ranges[int(_number(path, row, "index", what))] = (int(_number(path, row, "start", what)),
                                                                  int(_number(path, row, "end", what)))
    sectioned = {spec.array_id for spec in specs.values() if spec.name != spec.array_id}
    panels = [spec for spec in specs.values() if spec.name != spec.array_id or spec.array_id not in sectioned]
    return panels, precedences


def _panel_data(path: str, spec: _PanelSpec, array: _Array, precedence: Dict[int, int]) -> np.ndarray:
    """The panel's 2-D (slow, fast) part of its array (precedence: array index → 1 = fastest)."""
    data = array.data
    if sorted(precedence.values()) != list(range(1, len(precedence) + 1)) or len(precedence) > data.ndim:
        raise ImageError(path, f"array {spec.array_id}: structure precedences {precedence} do not fit its data")
    slices = [slice(None)] * data.ndim
    for index, (start, end) in spec.ranges.items():
        if index not in precedence:
            raise ImageError(path, f"panel {spec.name}: section of undefined array index {index}")
        axis = data.ndim - precedence[index]
        if not 1 <= start <= end <= data.shape[axis]:
            raise ImageError(path, f"panel {spec.name}: section {start}…{end} outside the array ({data.shape[axis]})")
        slices[axis] = slice(start - 1, end)
    part = data[tuple(slices)]
    if part.ndim > 2 and any(n != 1 for n in part.shape[:-2]):
        raise ImageError(path, f"panel {spec.name}: its {part.ndim}-D part of the array is not one image")
    return part.reshape(part.shape[-2:])


def _panel_geometry(path: str, spec: _PanelSpec, axes: _Axes, axis_sets: Dict[str, list], shape) -> PanelGeometry:
    """Origin, directions and pixel size of a panel from its axis sets (index 1 fast, 2 slow)."""
    by_precedence = {int(_number(path, row, "precedence", spec.name)): row for row in spec.index_rows.values()}
    settings = []
    for order in (1, 2):
        row = by_precedence.get(order)
        set_rows = axis_sets.get((row or {}).get("axis_set_id"), [])
        if len(set_rows) != 1 or set_rows[0].get("axis_id") not in axes.axes:
            raise ImageError(path, f"panel {spec.name} has no single defined axis for array index precedence {order}")
        what = f"axis set of {spec.name}"
        settings.append((set_rows[0]["axis_id"], _number(path, set_rows[0], "displacement", what, 0.0),
                         _number(path, set_rows[0], "displacement_increment", what)))
    (fast_id, fast_start, fast_step), (slow_id, slow_start, slow_step) = settings
    if axes.parent(fast_id) == slow_id:
        inner = fast_id
    elif axes.parent(slow_id) == fast_id:
        inner = slow_id
    else:
        raise ImageError(path, f"unsupported geometry: panel {spec.name} fast and slow axes do not depend on each other")
    origin = axes.chain(inner, {fast_id: fast_start, slow_id: slow_start}) @ np.array([0.0, 0.0, 0.0, 1.0])
    directions = []
    for axis_id, step in ((fast_id, fast_step), (slow_id, slow_step)):
        rotation = axes.chain(axes.parent(axis_id), {fast_id: fast_start, slow_id: slow_start})[:3, :3]
        directions.append(rotation @ axes.axes[axis_id][2] * math.copysign(1.0, step))
    return PanelGeometry(tuple(origin[:3]), tuple(directions[0]), tuple(directions[1]),
                         (abs(fast_step), abs(slow_step)), tuple(shape), spec.name)


def _first(path, handle, category, column) -> Optional[str]:
    rows = read_table(path, handle, category)
    return rows[0].get(column) if rows else None


class _Parsed:
    """A CBF file parsed by pycbf: decoded arrays and the panels they hold."""

    def __init__(self, path: str):
        self.path = path
        self.content = load_bytes(path)  # kept alive while CBFlib reads from it
        self.handle = pycbf.cbf_handle_struct()
        with _CBFlibOutput(path) as cbflib:
            try:
                self.handle.read_buffer(self.content, pycbf.MSG_DIGEST | pycbf.CBF_PARSE_WIDE)
            except Exception as exc:  # noqa: BLE001 - pycbf raises bare Exception("CBFlib Error(s): ...")
                raise ImageError(path, "corrupt or truncated CBF file: CBFlib cannot parse it "
                                       f"({cbflib.complaint() or str(exc).strip()})") from None
            self.arrays = _read_arrays(path, self.handle, cbflib.complaint())
        self.specs, self.precedences = _panel_specs(path, self.handle, self.arrays)

    def panels(self) -> RawPanels:
        names, pixels, masks = [], [], []
        for spec in self.specs:
            array = self.arrays[spec.array_id]
            data = _panel_data(self.path, spec, array, self.precedences.get(spec.array_id, {1: 1, 2: 2}))
            names.append(spec.name)
            pixels.append(data)
            masks.append(array.invalid(data))
        return RawPanels(image_number(self.path), names, pixels, masks)


class ImgCIFReader(Reader):
    name = "imgCIF"
    suffixes = (".cbf",)

    def identify(self, path, head):
        return head.startswith(b"###CBF") or (strip_compression(path).lower().endswith((".cbf", ".cif"))
                                              and b"data_" in head)

    def raw_panels(self, path) -> Iterator[RawPanels]:
        """The file's panels as stored (one frame), for geometry given elsewhere (.expt)."""
        yield _Parsed(path).panels()

    def read(self, path, override: GeometryOverride) -> Iterator[Frame]:
        parsed = _Parsed(path)
        handle = parsed.handle
        wavelength_text = _first(path, handle, "diffrn_radiation_wavelength", "wavelength")
        wavelength = _number(path, {"wavelength": wavelength_text}, "wavelength", "_diffrn_radiation_wavelength",
                             math.nan)
        wavelength = None if math.isnan(wavelength) else wavelength
        name = (_first(path, handle, "diffrn_detector", "type") or _first(path, handle, "diffrn_detector", "detector")
                or "CBF").strip()
        axes = _Axes(path, lambda category: read_table(path, handle, category))
        metadata = {"format": "imgCIF"}
        if not parsed.specs or not axes.axes:
            yield self._without_axes(path, parsed.arrays, wavelength, name, override, metadata)
            return
        axis_sets: Dict[str, list] = {}
        for row in read_table(path, handle, "array_structure_list_axis"):
            axis_sets.setdefault(row.get("axis_set_id"), []).append(row)
        raw = parsed.panels()
        panels = [_panel_geometry(path, spec, axes, axis_sets, data.shape)
                  for spec, data in zip(parsed.specs, raw.pixels)]
        layout = make_layout(path, panels, axes.beam_direction())
        model = detectors.find(name, layout.shape, layout.pixel_size) or (
            detectors.find(name, None, layout.pixel_size) if len(panels) > 1 else None)
        yield to_frame(path, layout, raw.pixels, raw.masks, wavelength, override, model.name if model else name,
                       raw.index, metadata)

    @staticmethod
    def _without_axes(path, arrays, wavelength, name, override, metadata) -> Frame:
        """A single 2-D array without an axis hierarchy: geometry must come from the override."""
        if len(arrays) != 1:
            raise ImageError(path, "CBF file with several arrays and no axis hierarchy")
        array = next(iter(arrays.values()))
        if array.data.ndim == 3 and array.data.shape[0] != 1:
            raise ImageError(path, f"CBF array of shape {array.data.shape} is not one 2-D image")
        data = array.data.reshape(array.data.shape[-2:])
        geometry = make_geometry(path, {"wavelength": wavelength, "shape": data.shape, "detector": name}, override)
        return Frame(data, array.invalid(data), geometry, source=path, index=image_number(path), metadata=metadata)


READER = ImgCIFReader()
