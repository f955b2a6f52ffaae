"""NeXus/NXmx HDF5 (``*_master.h5``, ``*.nxs``): reader.

One :class:`Frame` per image of the series (``index`` counts from 0 across the data files,
``metadata["multi_frame"] = True``). Data come from the entry's NXdata group (``data`` or the
DECTRIS ``data_000001``… links, external files included; HDF5 resolves relative external links
from the master file's folder) and may be compressed with any filter ``hdf5plugin`` provides
(bitshuffle/LZ4 for EIGER). A frame that cannot be read or decompressed becomes a
:class:`FrameError` for that index; the other frames still come.

Geometry (NeXus/McStas frame: beam along +z, lengths converted to mm):

* each NXdetector_module is a panel: its ``data_origin``/``data_size`` hyperslab of the frame (2-D
  frames, or 3-D frames of stacked modules), its origin = the ``depends_on`` chain of
  ``fast_pixel_direction`` (module_offset → detector transformations) applied to the fast axis
  offset; fast/slow directions = the chains' rotations applied to their ``vector``; pixel sizes =
  the values of ``fast_pixel_direction``/``slow_pixel_direction``. One module perpendicular to the
  beam gives the geometry directly; several are assembled (:mod:`xrais.io.assemble`);
* when the modules lack transformations, the NXdetector fields ``detector_distance``,
  ``beam_center_x``/``beam_center_y`` (pixels) and ``x_pixel_size`` are used;
* wavelength: ``incident_wavelength`` of an NXbeam in the entry (scalar, one per frame, or a
  spectrum with ``incident_wavelength_weights`` → its weighted mean).

Damaged bitshuffle/LZ4 and LZ4 chunks make the HDF5 filter plugins read past their buffers (a
crash, not an error), so every such chunk is read raw first and its framing and LZ4 streams are
checked (:func:`check_chunks`) before HDF5 decompresses it; other filters are left to HDF5.

Mask: ``pixel_mask`` nonzero, values above ``saturation_value`` or below ``underload_value``, for
unsigned integer data the type's largest value (DECTRIS's mark for gaps and dead pixels), and for
floating-point data NaN and infinities.
"""
from __future__ import annotations

import functools
import itertools
import math
import os
import re
from typing import Dict, Iterator, List, Optional, Tuple, Union

import h5py
import hdf5plugin  # noqa: F401  (registers bitshuffle/LZ4 and the other HDF5 filters)
import numba
import numpy as np

from . import detectors
from .assemble import Layout, PanelGeometry, RawPanels, make_layout, to_frame
from .base import Reader, check_shape, make_geometry
from .errors import ImageError
from .frame import Frame, FrameError
from .geometry import GeometryOverride

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
BEAM_DIRECTION = (0.0, 0.0, 1.0)
_USERBLOCK_OFFSETS = (0, 512, 1024, 2048)
_LENGTH_MM = {"m": 1e3, "metre": 1e3, "meter": 1e3, "mm": 1.0, "millimetre": 1.0, "millimeter": 1.0,
              "cm": 10.0, "um": 1e-3, "µm": 1e-3, "micron": 1e-3, "microns": 1e-3, "micrometre": 1e-3,
              "micrometer": 1e-3, "nm": 1e-6}
_ANGLE_RAD = {"rad": 1.0, "radian": 1.0, "radians": 1.0, "deg": math.pi / 180, "degree": math.pi / 180,
              "degrees": math.pi / 180}
_WAVELENGTH_A = {"angstrom": 1.0, "angstroms": 1.0, "a": 1.0, "å": 1.0, "nm": 10.0, "pm": 0.01, "m": 1e10}
_DATA_NAME = re.compile(r"^data(_\d+)?$")
_BITSHUFFLE_FILTER, _LZ4_FILTER = 32008, 32004
_BITSHUFFLE_LZ4 = 2  # bitshuffle's compression code (cd_values[4]) for LZ4
_MAX_CHAIN = 64
#: h5py raises these for corrupt or unexpected HDF5 content.
_H5_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError, IndexError, AttributeError)


def _text(value) -> str:
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size else ""
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8", "replace")
    return str(value)


def _nx_class(obj) -> str:
    return _text(obj.attrs.get("NX_class", ""))


def _children(group: h5py.Group, nx_class: str) -> List[h5py.Group]:
    """Sub-groups of one NeXus class (hard or soft links only; external links are not followed)."""
    found = []
    for name in group:
        if isinstance(group.get(name, getlink=True), h5py.ExternalLink):
            continue
        child = group.get(name)
        if isinstance(child, h5py.Group) and _nx_class(child) == nx_class:
            found.append(child)
    return found


def _dataset(group: h5py.Group, name: str) -> Optional[h5py.Dataset]:
    if name not in group:
        return None
    obj = group.get(name)
    return obj if isinstance(obj, h5py.Dataset) else None


def _scale(path, ds: h5py.Dataset, table: Dict[str, float], what: str) -> float:
    units = _text(ds.attrs.get("units", "")).strip()
    if not units:
        raise ImageError(path, f"{ds.name} has no units, which xrais does not guess: give the geometry as "
                               f"parameters (distance=, pixel_size= in mm, beam_centre= in pixels, wavelength= in Å)")
    key = units if units in table else units.lower()
    if key not in table:
        raise ImageError(path, f"{ds.name} has units {units!r}, not a {what} unit xrais knows")
    return table[key]


def _values(path, ds: h5py.Dataset) -> np.ndarray:
    if ds.size > 1_000_000 or ds.dtype.kind not in "iuf":
        raise ImageError(path, f"{ds.name} is not a small numeric field")
    values = np.asarray(ds[()], dtype=float).ravel()
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise ImageError(path, f"{ds.name} holds no finite number")
    return values


def _vector(path, obj, attribute: str) -> Optional[np.ndarray]:
    if attribute not in obj.attrs:
        return None
    try:
        vector = np.asarray(obj.attrs[attribute], dtype=float).ravel()
    except (TypeError, ValueError):
        raise ImageError(path, f"{obj.name}@{attribute} is not numeric") from None
    if vector.shape != (3,) or not np.all(np.isfinite(vector)):
        raise ImageError(path, f"{obj.name}@{attribute} is not a finite 3-vector")
    return vector


def _offset_mm(path, ds: h5py.Dataset) -> np.ndarray:
    """A transformation's ``offset`` attribute in mm (``offset_units``, else its ``units``; DLS
    files give only the latter)."""
    offset = _vector(path, ds, "offset")
    if offset is None:
        return np.zeros(3)
    units = _text(ds.attrs.get("offset_units", ds.attrs.get("units", ""))).strip()
    key = units if units in _LENGTH_MM else units.lower()
    if key not in _LENGTH_MM:
        raise ImageError(path, f"{ds.name}@offset has units {units!r}, not a length unit xrais knows")
    return offset * _LENGTH_MM[key]


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    x, y, z = axis
    c, s, t = math.cos(angle), math.sin(angle), 1 - math.cos(angle)
    return np.array([[t * x * x + c, t * x * y - s * z, t * x * z + s * y],
                     [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
                     [t * x * z - s * y, t * y * z + s * x, t * z * z + c]])


@numba.njit(cache=True, nogil=True)
def _lz4_block_ok(data, start, end, size) -> bool:
    """Whether data[start:end] is one LZ4 block that decodes to exactly ``size`` bytes, every
    literal and match staying inside the input and the output."""
    position, produced = start, 0
    while position < end:
        token = data[position]
        position += 1
        literals = token >> 4
        if literals == 15:
            while True:
                if position >= end:
                    return False
                extra = data[position]
                position += 1
                literals += extra
                if extra != 255:
                    break
        if position + literals > end or produced + literals > size:
            return False
        position += literals
        produced += literals
        if position == end:
            return produced == size
        if position + 2 > end:
            return False
        offset = data[position] | (np.int64(data[position + 1]) << 8)
        position += 2
        if offset == 0 or offset > produced:
            return False
        match = token & 15
        if match == 15:
            while True:
                if position >= end:
                    return False
                extra = data[position]
                position += 1
                match += extra
                if extra != 255:
                    break
        produced += match + 4
        if produced > size:
            return False
    return False


def _big_endian(data: np.ndarray, position: int, n_bytes: int) -> int:
    return int.from_bytes(data[position:position + n_bytes].tobytes(), "big")


def _bitshuffle_lz4_ok(data: np.ndarray, nbytes: int, item_size: int) -> bool:
    """bitshuffle/LZ4 chunk: 8-byte size, 4-byte block size (bytes), then per block a 4-byte
    compressed size and an LZ4 block; the last size % 8 elements are stored as they are."""
    if data.size < 12 or _big_endian(data, 0, 8) != nbytes:
        return False
    block = _big_endian(data, 8, 4) // item_size
    if block <= 0 or block % 8:
        return False
    n_items = nbytes // item_size
    tail = n_items % block
    sizes = [block] * (n_items // block) + ([tail - tail % 8] if tail - tail % 8 else [])
    position = 12
    for items in sizes:
        if position + 4 > data.size:
            return False
        compressed = _big_endian(data, position, 4)
        position += 4
        end = position + compressed
        if end > data.size or not _lz4_block_ok(data, position, end, items * item_size):
            return False
        position += compressed
    return position + (n_items % 8) * item_size <= data.size


def _lz4_ok(data: np.ndarray, nbytes: int) -> bool:
    """HDF5 LZ4 filter chunk: 8-byte size, 4-byte block size, then per block a 4-byte compressed
    size and an LZ4 block (stored as it is when that size equals the block's)."""
    if data.size < 12 or _big_endian(data, 0, 8) != nbytes:
        return False
    block = _big_endian(data, 8, 4)
    if block <= 0:
        return False
    position, remaining = 12, nbytes
    while remaining > 0:
        size = min(block, remaining)
        if position + 4 > data.size:
            return False
        compressed = _big_endian(data, position, 4)
        position += 4
        if position + compressed > data.size:
            return False
        if compressed != size and not _lz4_block_ok(data, position, position + compressed, size):
            return False
        position += compressed
        remaining -= size
    return True


def check_chunks(path: str, dataset: h5py.Dataset, first: Optional[int] = None) -> None:
    """Check the raw bitshuffle/LZ4 or LZ4 chunks of ``dataset`` (those holding frame ``first``
    along axis 0, or all) before HDF5 decompresses them; ImageError if one is damaged."""
    if dataset.chunks is None:
        return
    plist = dataset.id.get_create_plist()
    filters = [plist.get_filter(k) for k in range(plist.get_nfilters())]
    if len(filters) != 1:
        return
    code, _, options, _ = filters[0]
    chunks = dataset.chunks
    nbytes = int(np.prod(chunks)) * dataset.dtype.itemsize
    if code == _BITSHUFFLE_FILTER and len(options) > 4 and options[4] == _BITSHUFFLE_LZ4:
        valid = functools.partial(_bitshuffle_lz4_ok, nbytes=nbytes, item_size=dataset.dtype.itemsize)
    elif code == _LZ4_FILTER:
        valid = functools.partial(_lz4_ok, nbytes=nbytes)
    else:
        return
    ranges = [range(0, n, c) for n, c in zip(dataset.shape, chunks)]
    if first is not None:
        ranges[0] = [first - first % chunks[0]]
    for offset in itertools.product(*ranges):
        try:
            filter_mask, raw = dataset.id.read_direct_chunk(offset)
        except _H5_ERRORS:
            continue  # not stored (fill value) or unreadable: HDF5 reports it on the real read
        if not filter_mask & 1 and not valid(np.frombuffer(raw, dtype=np.uint8)):
            raise ImageError(path, f"damaged compressed chunk at {offset} of {dataset.name}")


class _Transformations:
    """Evaluates NXtransformations ``depends_on`` chains (4×4 homogeneous matrices, mm)."""

    def __init__(self, path: str, handle: h5py.File):
        self.path = path
        self.handle = handle
        self.varies = False  # whether some value differs from frame to frame

    def target(self, obj, reference) -> Optional[h5py.Dataset]:
        reference = _text(reference).strip()
        if reference in ("", "."):
            return None
        base = self.handle if reference.startswith("/") else obj.parent
        target = base.get(reference)
        if not isinstance(target, h5py.Dataset):
            raise ImageError(self.path, f"{obj.name} depends on {reference!r}, which is not a transformation")
        return target

    def matrix(self, ds: h5py.Dataset, frame: int) -> np.ndarray:
        """The transformation of one axis, with the setting of frame ``frame``."""
        kind = _text(ds.attrs.get("transformation_type", "")).strip().lower()
        vector = _vector(self.path, ds, "vector")
        if kind not in ("translation", "rotation") or vector is None or not np.linalg.norm(vector) > 0:
            raise ImageError(self.path, f"{ds.name} is not a translation or rotation with a vector")
        values = _values(self.path, ds)
        self.varies |= values.size > 1 and bool(np.ptp(values) > 0)
        value = values[frame] if frame < values.size else values[0]
        matrix = np.identity(4)
        if kind == "rotation":
            matrix[:3, :3] = _rotation(vector, value * _scale(self.path, ds, _ANGLE_RAD, "angle"))
        else:
            matrix[:3, 3] = vector / np.linalg.norm(vector) * value * _scale(self.path, ds, _LENGTH_MM, "length")
        matrix[:3, 3] += _offset_mm(self.path, ds)
        return matrix

    def chain(self, ds: Optional[h5py.Dataset], frame: int) -> np.ndarray:
        """Product of the transformations from ``ds`` up its ``depends_on`` chain."""
        total = np.identity(4)
        seen = set()
        while ds is not None:
            if ds.name in seen or len(seen) >= _MAX_CHAIN:
                raise ImageError(self.path, f"the depends_on chain through {ds.name} loops")
            seen.add(ds.name)
            total = self.matrix(ds, frame) @ total
            ds = self.target(ds, ds.attrs.get("depends_on", "."))
        return total


class _Module:
    """One NXdetector_module: its hyperslab of the frame and its pixel-direction axes."""

    def __init__(self, path: str, group: h5py.Group, frame_ndim: int, frame_shape):
        self.name = group.name.rsplit("/", 1)[-1]
        origin, size = _dataset(group, "data_origin"), _dataset(group, "data_size")
        if origin is None or size is None:
            raise ImageError(path, f"detector module {group.name} has no data_origin/data_size")
        self.origin = tuple(int(v) for v in _values(path, origin))
        self.size = tuple(int(v) for v in _values(path, size))
        stride = _dataset(group, "data_stride")
        if stride is not None and any(int(v) != 1 for v in _values(path, stride)):
            raise ImageError(path, f"detector module {group.name} has a data_stride, which is not supported")
        if len(self.origin) != frame_ndim or len(self.size) != frame_ndim:
            raise ImageError(path, f"detector module {group.name} data_origin/data_size do not match "
                                   f"the {frame_ndim}-D frames")
        if (any(o < 0 or s < 1 or o + s > n for o, s, n in zip(self.origin, self.size, frame_shape))
                or (frame_ndim == 3 and self.size[0] != 1)):
            raise ImageError(path, f"detector module {group.name} hyperslab {self.origin} + {self.size} "
                                   f"does not fit the frames of shape {tuple(frame_shape)}")
        self.shape = tuple(self.size[-2:])
        self.fast = _dataset(group, "fast_pixel_direction")
        self.slow = _dataset(group, "slow_pixel_direction")

    @property
    def slices(self) -> Tuple[Union[int, slice], ...]:
        lead = (self.origin[0],) if len(self.origin) == 3 else ()
        return lead + tuple(slice(o, o + s) for o, s in zip(self.origin[-2:], self.size[-2:]))

    def has_axes(self) -> bool:
        return all(ds is not None and "vector" in ds.attrs for ds in (self.fast, self.slow))

    def geometry(self, path: str, transformations: _Transformations, frame: int) -> PanelGeometry:
        pixel_sizes, directions, origins = [], [], []
        for ds in (self.fast, self.slow):
            parent = transformations.chain(transformations.target(ds, ds.attrs.get("depends_on", ".")), frame)
            origins.append(parent @ np.append(_offset_mm(path, ds), 1.0))
            directions.append(parent[:3, :3] @ _vector(path, ds, "vector"))
            pixel_sizes.append(float(_values(path, ds)[0]) * _scale(path, ds, _LENGTH_MM, "length"))
        return PanelGeometry(tuple(origins[0][:3]), tuple(directions[0]), tuple(directions[1]),
                             (abs(pixel_sizes[0]), abs(pixel_sizes[1])), self.shape, self.name)


class _Series:
    """The frames of a NeXus file: data blocks, modules, mask rules, wavelengths."""

    def __init__(self, path: str, handle: h5py.File):
        self.path = path
        entry = self._entry(handle)
        instruments = _children(entry, "NXinstrument")
        detectors_found = [d for instrument in instruments for d in _children(instrument, "NXdetector")]
        if not detectors_found:
            raise ImageError(path, "NeXus file has no NXinstrument/NXdetector (a data file? open its master file)")
        self.detector = next((d for d in detectors_found if _children(d, "NXdetector_module")), detectors_found[0])
        self.blocks = self._data_blocks(entry)
        self.transformations = _Transformations(path, handle)
        self.wavelengths = self._wavelengths(entry)
        description = _dataset(self.detector, "description")
        self.detector_name = _text(description[()]).strip() if description is not None else "NeXus"
        self.pixel_mask = _dataset(self.detector, "pixel_mask")
        self.saturation = self._scalar("saturation_value")
        self.underload = self._scalar("underload_value")

    def _entry(self, handle) -> h5py.Group:
        entries = _children(handle, "NXentry")
        if entries:
            return entries[0]
        entry = handle.get("entry")
        if not isinstance(entry, h5py.Group):
            raise ImageError(self.path, "HDF5 file has no NeXus NXentry group (not a NeXus file?)")
        return entry

    def _data_blocks(self, entry) -> List[Tuple[str, h5py.Group]]:
        """(name, group) of each data dataset, in order; opened lazily (external files)."""
        for group in _children(entry, "NXdata") + [self.detector]:
            names = sorted(name for name in group if _DATA_NAME.match(name))
            if names:
                return [(name, group) for name in names]
        raise ImageError(self.path, "NeXus file has no image data (no NXdata 'data' or 'data_NNNNNN' fields)")

    def _scalar(self, name) -> Optional[float]:
        ds = _dataset(self.detector, name)
        if ds is None or ds.size != 1 or ds.dtype.kind not in "iuf":
            return None
        value = float(np.asarray(ds[()]).ravel()[0])
        return value if math.isfinite(value) else None

    def _wavelengths(self, entry) -> Optional[np.ndarray]:
        beams = []
        entry.visititems(lambda name, obj: beams.append(obj)
                         if isinstance(obj, h5py.Group) and _nx_class(obj) == "NXbeam" else None)
        for beam in beams:
            ds = _dataset(beam, "incident_wavelength")
            if ds is None:
                continue
            values = _values(self.path, ds) * _scale(self.path, ds, _WAVELENGTH_A, "wavelength")
            weights = _dataset(beam, "incident_wavelength_weights")
            if weights is not None and values.size > 1:
                weights = _values(self.path, weights)
                if weights.size == values.size and weights.sum() > 0:
                    return np.array([float(values @ weights / weights.sum())])
            return values
        # no NXbeam (NXsas files of areaDetector): the monochromator's wavelength
        monochromators = []
        entry.visititems(lambda name, obj: monochromators.append(obj)
                         if isinstance(obj, h5py.Group) and _nx_class(obj) == "NXmonochromator" else None)
        for monochromator in monochromators:
            ds = _dataset(monochromator, "wavelength")
            if ds is not None:
                return _values(self.path, ds) * _scale(self.path, ds, _WAVELENGTH_A, "wavelength")
        return None

    def wavelength(self, frame: int, n_frames: int) -> Optional[float]:
        """Wavelength (Å) of one frame; None when the file does not say (one, or one per frame)."""
        values = self.wavelengths
        if values is None:
            return None
        if values.size == 1:
            return float(values[0])
        return float(values[frame]) if values.size == n_frames else None

    def open_block(self, name: str, group: h5py.Group) -> h5py.Dataset:
        link = group.get(name, getlink=True)
        try:
            data = group[name]
        except _H5_ERRORS as exc:
            where = f" ({link.filename})" if isinstance(link, h5py.ExternalLink) else ""
            problem = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc  # KeyError quotes its text
            raise ImageError(self.path, f"cannot open image data {name}{where}: {problem}") from None
        if not isinstance(data, h5py.Dataset) or data.ndim not in (2, 3, 4) or data.dtype.kind not in "iuf":
            raise ImageError(self.path, f"image data {name} is neither a stack of numeric frames nor one frame")
        missing = _missing_virtual_sources(self.path, group.file, data)
        if missing:  # HDF5 reads a virtual dataset's absent sources as its fill value: frames of zeros
            raise ImageError(self.path, f"image data {name} is a virtual dataset whose data file "
                                        f"{', '.join(missing)} is missing (beside the master file)")
        return OneFrame(data) if data.ndim == 2 else data

    def invalid(self, pixels: np.ndarray, base: Optional[np.ndarray]) -> np.ndarray:
        mask = np.zeros(pixels.shape, dtype=bool) if base is None else base.copy()
        if self.saturation is not None:
            mask |= pixels > self.saturation
        if self.underload is not None:
            mask |= pixels < self.underload
        if pixels.dtype.kind == "u":
            mask |= pixels == np.iinfo(pixels.dtype).max
        elif pixels.dtype.kind == "f":
            mask |= ~np.isfinite(pixels)
        return mask


class OneFrame:
    """A 2-D image dataset (one frame, as areaDetector's NeXus plugin writes a single image) seen as a
    stack of one: ``shape`` (1, slow, fast), ``block[0]`` the frame. Its chunks are not pre-checked
    (:func:`check_chunks` reads stacks' frame by frame); HDF5 reports a damaged one when read."""

    chunks = None

    def __init__(self, dataset: h5py.Dataset):
        self.dataset = dataset
        self.shape = (1,) + tuple(dataset.shape)
        self.dtype = dataset.dtype
        self.name = dataset.name

    def __getitem__(self, index):
        if index != 0:
            raise IndexError(f"{self.name} holds one frame, not frame {index}")
        return self.dataset[()]


class NexusReader(Reader):
    name = "NeXus"
    multi_frame = True
    suffixes = (".h5", ".nxs", ".hdf5")

    def identify(self, path, head):
        return any(head[offset:offset + 8] == HDF5_SIGNATURE for offset in _USERBLOCK_OFFSETS)

    def read(self, path, override: GeometryOverride) -> Iterator[Union[Frame, FrameError]]:
        yield from self._each_frame(path, override, lambda builder, data, index, n: builder.frame(data, index, n))

    def raw_panels(self, path) -> Iterator[Union[RawPanels, FrameError]]:
        """Each frame's modules as stored, for geometry given elsewhere (.expt)."""
        yield from self._each_frame(path, GeometryOverride(), lambda builder, data, index, n: builder.panels(data, index))

    def _each_frame(self, path, override, make) -> Iterator:
        """make(builder, frame data, index, number of frames) for every frame; a frame that cannot
        be read (or whose geometry fails after the first) becomes a FrameError."""
        try:
            handle = h5py.File(path, "r")
        except _H5_ERRORS as exc:
            raise ImageError(path, f"cannot open HDF5 file ({exc})") from None
        with handle:
            series, blocks = _open_blocks(path, handle)
            n_frames = sum(block.shape[0] for _, block in blocks if not isinstance(block, ImageError))
            index, produced, builder = 0, 0, None
            for name, block in blocks:
                if isinstance(block, ImageError):
                    yield FrameError(path, None, block.problem)
                    continue
                for local in range(block.shape[0]):
                    try:
                        check_chunks(path, block, local)
                        data = np.asarray(block[local])
                    except (ImageError,) + _H5_ERRORS as exc:
                        problem = exc.problem if isinstance(exc, ImageError) else str(exc)
                        yield FrameError(path, index, f"cannot read or decompress frame {local} of {name}: {problem}")
                        index += 1
                        continue
                    try:
                        if builder is None:
                            builder = _FrameBuilder(path, series, data.shape, override)
                        item = make(builder, data, index, n_frames)
                    except (ImageError,) + _H5_ERRORS as exc:
                        problem = exc.problem if isinstance(exc, ImageError) else f"{type(exc).__name__}: {exc}"
                        if not produced:  # the first usable frame fails: the whole file does
                            raise ImageError(path, problem) from None
                        yield FrameError(path, index, problem)
                    else:
                        produced += 1
                        yield item
                    index += 1
            if builder is None and not any(isinstance(block, ImageError) for _, block in blocks):
                raise ImageError(path, "NeXus file holds no frames")


def _missing_virtual_sources(path: str, handle: h5py.File, data: h5py.Dataset) -> List[str]:
    """The files a virtual dataset's sources live in that are not there (relative names from the
    master file's folder), following a source in the same file that is an external link (as
    DECTRIS masters write them)."""
    if not data.is_virtual:
        return []
    folder, missing = os.path.dirname(os.path.abspath(path)), []
    for source in data.virtual_sources():
        name = source.file_name
        if name == ".":
            link = handle.get(source.dset_name, getlink=True)
            name = link.filename if isinstance(link, h5py.ExternalLink) else None
        if name and not os.path.exists(os.path.join(folder, name)) and name not in missing:
            missing.append(name)
    return missing


def _open_blocks(path: str, handle: h5py.File):
    """(series, [(name, data block dataset, or the ImageError saying why it cannot be opened)])."""
    try:
        series = _Series(path, handle)
        blocks = []
        for name, group in series.blocks:
            try:
                blocks.append((name, series.open_block(name, group)))
            except ImageError as exc:
                blocks.append((name, exc))
    except _H5_ERRORS as exc:
        raise ImageError(path, f"unreadable NeXus structure ({type(exc).__name__}: {exc})") from None
    return series, blocks


def _present_blocks(path: str, handle: h5py.File):
    """(series, [(name, dataset)]) of the data blocks that exist, in order, up to the first missing
    one — what can be read of a series a detector is still writing."""
    series, blocks = _open_blocks(path, handle)
    present = []
    for name, block in blocks:
        if isinstance(block, ImageError):
            break
        present.append((name, block))
    return series, present


def count_frames(path: str) -> int:
    """Frames of a NeXus series readable now (data files present, in order, up to the first
    missing one); ImageError when the file is not (yet) a readable NeXus series."""
    try:
        with h5py.File(path, "r") as handle:
            _, blocks = _present_blocks(path, handle)
            return sum(int(block.shape[0]) for _, block in blocks)
    except _H5_ERRORS as exc:
        raise ImageError(path, f"cannot open NeXus series ({type(exc).__name__}: {exc})") from None


def read_frame(path: str, index: int, override: Optional[GeometryOverride] = None) -> Union[Frame, FrameError]:
    """Frame ``index`` (0-based across the data files) of a NeXus series, read alone, with exactly
    the geometry and mask :func:`xrais.open_images` gives it; or a FrameError saying why not."""
    n_frames = 0
    try:
        with h5py.File(path, "r") as handle:
            series, blocks = _present_blocks(path, handle)
            n_frames = sum(int(block.shape[0]) for _, block in blocks)
            first = 0
            for _, block in blocks:
                if index < first + block.shape[0]:
                    local = index - first
                    check_chunks(path, block, local)
                    data = np.asarray(block[local])
                    builder = _FrameBuilder(path, series, data.shape, override or GeometryOverride())
                    return builder.frame(data, index, n_frames)
                first += block.shape[0]
    except ImageError as exc:
        return FrameError(path, index, exc.problem)
    except _H5_ERRORS as exc:
        return FrameError(path, index, f"cannot read frame ({type(exc).__name__}: {exc})")
    return FrameError(path, index, f"frame {index} is not in the series ({n_frames} frames readable)")


class _FrameBuilder:
    """Turns the frames of one series into :class:`Frame` objects (geometry computed once unless
    the transformations change from frame to frame)."""

    def __init__(self, path, series: _Series, frame_shape, override):
        self.path, self.series, self.override = path, series, override
        if len(frame_shape) == 3:
            check_shape(path, (frame_shape[0] * frame_shape[1], frame_shape[2]))
        else:
            check_shape(path, frame_shape)
        self.frame_shape = tuple(frame_shape)
        self.modules = [_Module(path, group, len(frame_shape), frame_shape)
                        for group in _children(series.detector, "NXdetector_module")]
        self.use_axes = bool(self.modules) and all(module.has_axes() for module in self.modules)
        if not self.use_axes and len(frame_shape) != 2:
            raise ImageError(path, "stacked detector modules without fast/slow_pixel_direction axes")
        self.base_mask = self._pixel_mask()
        self.layout: Optional[Layout] = None
        self.detector = series.detector_name

    def _pixel_mask(self) -> Optional[np.ndarray]:
        ds = self.series.pixel_mask
        if ds is None:
            return None
        if tuple(ds.shape) != self.frame_shape or ds.dtype.kind not in "iub":
            raise ImageError(self.path, f"pixel_mask of shape {ds.shape} does not match the frames {self.frame_shape}")
        check_chunks(self.path, ds)
        return np.asarray(ds[()]) != 0

    def _geometry_names(self, pixel_size) -> str:
        shape = self.layout.shape if self.layout is not None else self.frame_shape
        model = detectors.find(self.series.detector_name, shape, pixel_size)
        if model is None and len(self.modules) > 1:
            model = detectors.find(self.series.detector_name, None, pixel_size)
        return model.name if model else self.series.detector_name

    def _check(self, data: np.ndarray, index: int):
        if data.shape != self.frame_shape:
            raise ImageError(self.path, f"frame of shape {data.shape}, expected {self.frame_shape}", index)

    def panels(self, data: np.ndarray, index: int) -> RawPanels:
        self._check(data, index)
        invalid = self.series.invalid(data, self.base_mask)
        if not self.modules:
            return RawPanels(index, ["detector"], [data], [invalid], multi_frame=True)
        return RawPanels(index, [module.name for module in self.modules],
                         [data[module.slices] for module in self.modules],
                         [invalid[module.slices] for module in self.modules], multi_frame=True)

    def frame(self, data: np.ndarray, index: int, n_frames: int) -> Frame:
        wavelength = self.series.wavelength(index, n_frames)
        metadata = {"format": "NeXus", "multi_frame": True}
        if not self.use_axes:
            self._check(data, index)
            return self._from_fields(data, self.series.invalid(data, self.base_mask), wavelength, index, metadata)
        if self.layout is None or self.series.transformations.varies:
            panels = [module.geometry(self.path, self.series.transformations, index) for module in self.modules]
            self.layout = make_layout(self.path, panels, BEAM_DIRECTION, index)
            self.detector = self._geometry_names(panels[0].pixel_size[0])
        raw = self.panels(data, index)
        return to_frame(self.path, self.layout, raw.pixels, raw.masks, wavelength, self.override, self.detector,
                        index, metadata, index)

    def _from_fields(self, data, invalid, wavelength, index, metadata) -> Frame:
        """Geometry from detector_distance, beam_center_x/y and x_pixel_size."""
        detector, path = self.series.detector, self.path

        def length(name):
            ds = _dataset(detector, name)
            return None if ds is None else float(_values(path, ds)[0]) * _scale(path, ds, _LENGTH_MM, "length")

        def plain(name):
            ds = _dataset(detector, name)
            return None if ds is None else float(_values(path, ds)[0])

        override = self.override  # what the user gives is not read (a file may lack its units)
        pixel_size = override.pixel_size if override.pixel_size is not None else length("x_pixel_size")
        beam = (None, None) if override.beam_centre is not None else (plain("beam_center_x"), plain("beam_center_y"))
        geometry = make_geometry(path, {
            "distance": None if override.distance is not None else length("detector_distance"),
            "wavelength": wavelength,
            "pixel_size": pixel_size,
            "beam_centre": beam if None not in beam else None,
            "shape": data.shape,
            "detector": self._geometry_names(pixel_size),
        }, self.override, index)
        if self.series.saturation is None:  # the file gives no cut-off: the catalogue's, as other readers
            limit = detectors.trusted_max_for(geometry.detector, data.shape)
            if limit is not None:
                invalid = invalid | (data > limit)
        return Frame(data, invalid, geometry, source=path, index=index, metadata=metadata)


READER = NexusReader()
