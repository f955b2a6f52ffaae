"""``open_images``: every supported input (files, globs, folders, NeXus masters, .expt) → frames."""
from __future__ import annotations

import glob
import logging
import os
import re
from typing import Iterable, Iterator, List, Union

from .base import read_head, readers, strip_compression
from .errors import ImageError
from .frame import Frame, FrameError
from .geometry import GeometryOverride

log = logging.getLogger(__name__)

ON_ERROR = ("skip", "yield", "raise")


def expand_inputs(inputs) -> List[str]:
    """Paths from a path, a glob pattern, a folder (its image files, sorted) or a list of these.

    A name that matches nothing is kept, so that reading it reports "no such file".
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    paths: List[str] = []
    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item):
            paths.extend(_image_files_in(item))
        elif any(ch in item for ch in "*?[") and not os.path.exists(item):
            matches = sorted(glob.glob(item))
            paths.extend(matches if matches else [item])
        else:
            paths.append(item)
    return paths


def _image_files_in(folder: str) -> List[str]:
    """Image files in a folder (by suffix), sorted; NeXus data files are reached via their master."""
    suffixes = {suffix for reader in readers() for suffix in reader.suffixes}
    names = sorted(os.listdir(folder))
    lowered = {name.lower() for name in names}
    found = []
    for name in names:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        lower = strip_compression(name.lower())
        if any(lower.endswith(s) for s in suffixes) and not is_nexus_data_file(lower, lowered):
            found.append(path)
    return found


_DATA_FILE = re.compile(r"^(?P<stem>.+?)(_data)?_\d{6}\.(h5|hdf5|nxs)$")


def is_nexus_data_file(name: str, names_in_folder) -> bool:
    """True for the data files of a NeXus master in the same folder, which are read through their
    master: EIGER ``x_data_000001.h5`` (beside ``x_master.h5``) and Diamond ``x_000001.h5``
    (beside ``x.nxs``). Names are compared case-insensitively."""
    name = name.lower()
    match = _DATA_FILE.match(name)
    if not match:
        return False
    stem = match.group("stem")
    names = {n.lower() for n in names_in_folder}
    return "_data_" in name or any(f"{stem}{suffix}" in names for suffix in ("_master.h5", ".nxs", "_master.hdf5", ".h5"))


def identify(path: str):
    """The reader for a file, or an :class:`ImageError` (missing file, unknown format)."""
    if not os.path.exists(path):
        raise ImageError(path, "no such file")
    if os.path.isdir(path):
        raise ImageError(path, "is a folder, not an image file")
    head = read_head(path)
    if not head:
        raise ImageError(path, "file is empty")
    for reader in readers():
        if reader.identify(path, head):
            return reader
    raise ImageError(path, "unknown image format (supported: " + ", ".join(r.name for r in readers()) + ")")


def open_images(inputs: Union[str, os.PathLike, Iterable], geometry=None, on_error: str = "skip") -> Iterator:
    """Frames from image files, globs, folders, NeXus master files and DIALS .expt files.

    geometry: a :class:`~xrais.io.GeometryOverride` (or dict of distance mm, wavelength Å,
    beam_centre (fast, slow) px, pixel_size mm) for headers that are wrong or missing.
    on_error: what to do with a file or frame that cannot be read — "skip" (log a warning and go on
    with the others, the default), "yield" (yield a :class:`FrameError` in its place, logging
    nothing: the caller reports it) or "raise".
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    override = GeometryOverride.coerce(geometry)
    for path in expand_inputs(inputs):
        yield from _frames_of(path, override, on_error)


def _frames_of(path: str, override: GeometryOverride, on_error: str) -> Iterator:
    try:
        reader = identify(path)
        for item in reader.read(path, override):
            if isinstance(item, FrameError):
                yield from _failed(item, on_error)
            else:
                yield item
    except ImageError as exc:
        yield from _failed(FrameError(exc.path, exc.frame, exc.problem), on_error)
    except MemoryError:
        yield from _failed(FrameError(path, None, "not enough memory to read this file"), on_error)


def _failed(error: FrameError, on_error: str) -> Iterator[FrameError]:
    """What ``on_error`` does with a file or frame that cannot be read."""
    if on_error == "raise":
        raise ImageError(error.source, error.message, error.index)
    if on_error == "yield":
        yield error
    else:
        log.warning("%s: %s", error.label, error.message)


def open_image(path, geometry=None) -> Frame:
    """The first frame of one file (raises :class:`ImageError` when it cannot be read)."""
    for frame in open_images([path], geometry=geometry, on_error="raise"):
        return frame
    raise ImageError(path, "file holds no frames")
