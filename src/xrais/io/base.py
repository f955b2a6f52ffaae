"""What every image reader shares: the reader interface, the reader registry, geometry checks,
and safe (bounded) file loading."""
from __future__ import annotations

import bz2
import gzip
import importlib
import lzma
import os
import re
import zlib
from typing import Callable, Iterator, List, Optional, Sequence, Tuple, Union

from .errors import GeometryError, ImageError, UnsupportedGeometryError
from .frame import Frame, FrameError
from .geometry import Geometry, GeometryOverride

#: Largest image xrais accepts (pixels): well above any detector (JUNGFRAU 16M ≈ 18.7 M), it keeps
#: a corrupt header from asking for unbounded memory.
MAX_PIXELS = 80_000_000
#: Largest decompressed file (bytes) accepted from a .gz/.bz2/.xz image.
MAX_DECOMPRESSED_BYTES = 1 << 30

COMPRESSED_SUFFIXES = {".gz": gzip, ".bz2": bz2, ".xz": lzma}


class Reader:
    """An image reader. Subclasses set ``name`` and ``suffixes`` and implement ``identify`` and ``read``.

    ``identify(path, head)`` answers quickly from the file name and its first bytes (``head``,
    after decompression for .gz/.bz2/.xz). ``read(path, override)`` yields :class:`Frame` objects,
    or :class:`FrameError` for a single bad frame of a multi-frame file, and raises
    :class:`ImageError` when the whole file is unusable.
    """

    name = "reader"
    suffixes: tuple = ()
    #: True for containers of many frames (NeXus, .expt): consumers then read them frame by frame
    #: in order, rather than handing the whole file to one worker.
    multi_frame = False

    def identify(self, path: str, head: bytes) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def read(self, path: str, override: GeometryOverride) -> Iterator[Union[Frame, FrameError]]:  # pragma: no cover
        raise NotImplementedError


#: Built-in reader modules of this package (each defines ``READER``; None when an optional
#: dependency is missing), in the order they are tried.
BUILTIN_READER_MODULES = ("expt", "nexus", "cbf", "imgcif", "smv", "mccd", "dxtbx_adapter")


def builtin_readers() -> List[Reader]:
    """xrais's own readers, in the order they are tried (the dxtbx fallback last)."""
    found = (importlib.import_module(f"{__package__}.{name}").READER for name in BUILTIN_READER_MODULES)
    return [reader for reader in found if reader is not None]


_reader_source: Callable[[], Sequence[Reader]] = builtin_readers


def set_reader_source(source: Callable[[], Sequence[Reader]]) -> None:
    """Where :func:`readers` gets its ordered list from. The plugin layer (:mod:`xrais.plugins`)
    sets it to the readers of every installed plugin, so that this package imports nothing above it;
    until then the built-in readers are used."""
    global _reader_source
    _reader_source = source


def readers() -> List[Reader]:
    """Image readers in the order they are tried: with the plugin layer loaded (``import xrais``
    loads it), those of third-party plugins, then xrais's own, the dxtbx fallback last."""
    return list(_reader_source())


def strip_compression(path: str) -> str:
    """File name without a .gz/.bz2/.xz suffix."""
    base, ext = os.path.splitext(path)
    return base if ext.lower() in COMPRESSED_SUFFIXES else path


_TRAILING_NUMBER = re.compile(r"^(?P<prefix>.*?)(?P<digits>\d+)$")


def image_template(path: str) -> Tuple[str, Optional[int]]:
    """(name template, image number) of an image file, as dxtbx's templates: the last run of
    digits before the extension(s), ``lyso_1_00017.cbf.gz`` → (``lyso_1_#####.cbf.gz``, 17); a
    name without a number gives (name, None)."""
    name = os.path.basename(path)
    stem = os.path.splitext(strip_compression(name))[0]
    match = _TRAILING_NUMBER.match(stem)
    if not match:
        return name, None
    digits = match.group("digits")
    return match.group("prefix") + "#" * len(digits) + name[len(stem):], int(digits)


def image_number(path: str) -> int:
    """The image number of a single-image file (CBF, SMV, MarCCD…) from its name:
    ``thau_3_2_0003.cbf.bz2`` → 3; 0 for a name without one. (Multi-frame files number their
    frames by their 0-based index in the file instead.)"""
    return image_template(path)[1] or 0


def load_bytes(path: str) -> bytes:
    """Whole file content, decompressed for .gz/.bz2/.xz, bounded by :data:`MAX_DECOMPRESSED_BYTES`."""
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext not in COMPRESSED_SUFFIXES:
            with open(path, "rb") as handle:
                return handle.read()
        module = COMPRESSED_SUFFIXES[ext]
        with module.open(path, "rb") as handle:
            data = handle.read(MAX_DECOMPRESSED_BYTES + 1)
    except OSError as exc:
        raise ImageError(path, f"cannot read file ({_os_problem(exc)})") from None
    except (EOFError, ValueError, lzma.LZMAError, zlib.error) as exc:
        raise ImageError(path, f"corrupt or truncated {ext[1:]} compression ({exc})") from None
    if len(data) > MAX_DECOMPRESSED_BYTES:
        raise ImageError(path, f"decompresses to more than {MAX_DECOMPRESSED_BYTES >> 20} MiB: not an image")
    return data


def read_head(path: str, size: int = 4096) -> bytes:
    """First ``size`` bytes of a file (decompressed for .gz/.bz2/.xz), for format identification."""
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext in COMPRESSED_SUFFIXES:
            with COMPRESSED_SUFFIXES[ext].open(path, "rb") as handle:
                return handle.read(size)
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError as exc:
        raise ImageError(path, f"cannot read file ({_os_problem(exc)})") from None
    except (EOFError, ValueError, lzma.LZMAError, zlib.error) as exc:
        raise ImageError(path, f"corrupt or truncated {ext[1:]} compression ({exc})") from None


def _os_problem(exc: OSError) -> str:
    return exc.strerror or str(exc)


def check_shape(path: str, shape, frame: Optional[int] = None):
    """Validate an image shape (slow, fast) from a header before allocating anything."""
    try:
        shape = tuple(int(v) for v in shape)
    except (TypeError, ValueError):
        raise ImageError(path, f"image dimensions in the header are not integers: {shape!r}", frame) from None
    if len(shape) != 2 or min(shape) < 1:
        raise ImageError(path, f"image dimensions in the header make no sense: {shape}", frame)
    if shape[0] * shape[1] > MAX_PIXELS:
        raise ImageError(path, f"image dimensions in the header are implausibly large: {shape}", frame)
    return shape


REQUIRED_GEOMETRY = ("distance", "wavelength", "pixel_size", "beam_centre")
_OVERRIDE_HINT = {
    "distance": "geometry.distance=<mm>",
    "wavelength": "geometry.wavelength=<Å>",
    "beam_centre": "geometry.beam_centre=<fast>,<slow> (pixels)",
    "pixel_size": "geometry.pixel_size=<mm>",
}


def make_geometry(path: str, fields: dict, override: GeometryOverride, frame: Optional[int] = None) -> Geometry:
    """Geometry from header values plus user overrides, or an :class:`ImageError` that names the
    missing/bad values and the override that would fix them."""
    merged = override.complete({k: v for k, v in fields.items() if v is not None})
    missing = [name for name in REQUIRED_GEOMETRY if merged.get(name) is None]
    if missing:
        hints = ", ".join(_OVERRIDE_HINT[name] for name in missing)
        raise ImageError(path, f"header has no {', '.join(missing)}; give it with {hints}", frame)
    try:
        return Geometry.from_dict(merged)
    except UnsupportedGeometryError as exc:  # right, but not handled: no override fixes it
        raise ImageError(path, str(exc), frame) from None
    except GeometryError as exc:
        raise ImageError(path, f"{exc}; correct it with a geometry override", frame) from None

