"""Where frames come from: a watched folder of image files, and how images are named (run, number).

:class:`FolderWatcher` reports every frame of a folder once, as soon as it is completely written:

* a miniCBF when its binary section's closing boundary is there, an SMV file when it holds its
  header plus SIZE1 × SIZE2 pixels — so files written in place are taken as soon as they are
  whole, and files renamed into place at once;
* any other image file (compressed, MarCCD…) once its size and modification time have not
  changed for ``settle`` seconds — so is a file that never becomes whole (its read then fails
  and gives an error row);
* a NeXus series (``*_master.h5``, ``*.nxs``): each frame once its data file is there; the
  series is looked at again whenever one of its files changes.

Hidden files (``.name``) and files with other suffixes (``.tmp``, ``.part``) are ignored, so a
writer can write under such a name and rename. The folder is polled (``os.scandir``): inotify
does not see files written by other machines on network file systems.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Dict, List, Optional, Set, Tuple

from ..io.base import image_template, readers, strip_compression
from ..io.errors import ImageError
from ..io.nexus import NexusReader, count_frames
from ..io.open import is_nexus_data_file
from ..io.smv import parse_header
from .protocol import MonitorError

SERIES_SUFFIXES = NexusReader.suffixes

_CBF_END = b"--CIF-BINARY-FORMAT-SECTION----"


@dataclasses.dataclass
class FrameRef:
    """One frame found on disk: its key (run, image, frame), image number, path and when it was
    written (Unix s)."""

    run: str
    image: str
    frame: int
    number: Optional[int]
    path: str
    since: float


def image_suffixes() -> Tuple[str, ...]:
    """Suffixes of the image files the installed readers read (DIALS .expt files excluded)."""
    return tuple(sorted({s for reader in readers() for s in reader.suffixes if s != ".expt"}))


def _series_stem(name: str) -> str:
    lower = name.lower()
    for suffix in ("_master.h5", "_master.hdf5") + SERIES_SUFFIXES:
        if lower.endswith(suffix):
            return name[:-len(suffix)]
    return name


def looks_complete(path: str, size: int) -> bool:
    """True when a miniCBF or SMV file holds all its data (its format says how much)."""
    lower = path.lower()
    try:
        with open(path, "rb") as handle:
            if lower.endswith(".cbf"):
                handle.seek(max(0, size - 64))
                return _CBF_END in handle.read()
            if lower.endswith((".img", ".smv")):
                head = handle.read(4096)
                header_bytes, fields = parse_header(path, head)
                pixel_type = fields.get("TYPE", "unsigned_short").lower()
                item = 2 if "short" in pixel_type else 8 if "double" in pixel_type else 4
                return size >= header_bytes + int(fields["SIZE1"]) * int(fields["SIZE2"]) * item
    except (OSError, ImageError, KeyError, ValueError):
        return False
    return False


@dataclasses.dataclass
class _Series:
    frames_reported: int = 0
    signature: tuple = ()


class FolderWatcher:
    """New frames in one folder (not its sub-folders), each reported once, in name order.

    settle: seconds a file's size and modification time must stay the same before a file whose
    completeness cannot be read from its format is taken.
    """

    def __init__(self, folder: str, settle: float = 1.0):
        self.folder = os.path.abspath(folder)
        if not os.path.isdir(self.folder):
            raise MonitorError(f"folder {self.folder} does not exist (or is not a folder)")
        self.settle = settle
        self.suffixes = image_suffixes()
        self._reported: Set[str] = set()
        self._unchanged_since: Dict[str, Tuple[int, int, float]] = {}  # name → (size, mtime ns, monotonic s)
        self._series: Dict[str, _Series] = {}
        self._unnumbered = 0

    def scan(self) -> List[FrameRef]:
        """Frames that became complete since the last scan."""
        now = time.monotonic()
        with os.scandir(self.folder) as entries:
            names = sorted(entry.name for entry in entries
                           if not entry.name.startswith(".") and entry.is_file() and entry.name not in self._reported)
        present = set(names) | self._reported
        found: List[FrameRef] = []
        for name in names:
            lower = strip_compression(name.lower())
            if not lower.endswith(self.suffixes) or is_nexus_data_file(name, present):
                continue
            if lower.endswith(SERIES_SUFFIXES):
                found.extend(self._series_frames(name, names, present, now))
            else:
                ref = self._whole_file(name, now)
                if ref is not None:
                    found.append(ref)
        return found

    def _settled(self, name: str, stat: os.stat_result, now: float) -> bool:
        """True once the file's size and mtime have stayed the same for ``settle`` seconds."""
        seen = self._unchanged_since.get(name)
        if seen is None or seen[:2] != (stat.st_size, stat.st_mtime_ns):
            self._unchanged_since[name] = (stat.st_size, stat.st_mtime_ns, now)
            return False
        return now - seen[2] >= self.settle

    def _whole_file(self, name: str, now: float) -> Optional[FrameRef]:
        path = os.path.join(self.folder, name)
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            return None
        if not ((stat.st_size > 0 and looks_complete(path, stat.st_size)) or self._settled(name, stat, now)):
            return None
        self._reported.add(name)
        self._unchanged_since.pop(name, None)
        template, number = image_template(name)
        if number is None:
            self._unnumbered += 1
            run, number = self.folder, self._unnumbered
        else:
            run = os.path.join(self.folder, template)
        return FrameRef(run, path, 0, number, path, stat.st_mtime)

    def _series_frames(self, name: str, names: List[str], present: Set[str], now: float) -> List[FrameRef]:
        path = os.path.join(self.folder, name)
        stem = _series_stem(name)
        try:
            stats = [(other, os.stat(os.path.join(self.folder, other))) for other in names
                     if other == name or (other.startswith(stem + "_") and is_nexus_data_file(other, present))]
        except FileNotFoundError:
            return []
        signature = tuple((other, stat.st_size, stat.st_mtime_ns) for other, stat in stats)
        series = self._series.setdefault(name, _Series())
        if signature == series.signature:
            return []
        try:
            available = count_frames(path)
        except ImageError:
            master_stat = dict(stats)[name]
            if not self._settled(name, master_stat, now):
                return []  # probably still being written; an unreadable file gives one error row
            self._reported.add(name)
            del self._series[name]
            return [FrameRef(path, path, 0, 1, path, master_stat.st_mtime)]
        series.signature = signature
        written = max(stat.st_mtime for _, stat in stats)
        new = range(series.frames_reported, available)
        series.frames_reported = max(available, series.frames_reported)
        return [FrameRef(path, path, index, index + 1, path, written) for index in new]
