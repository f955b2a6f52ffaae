"""Frames of a NeXus series (``*_master.h5``, ``*.nxs``) one at a time, while a detector writes it.

A detector writes the master first, with links to data files that appear one after the other
(EIGER: ``x_master.h5`` → ``x_data_000001.h5``, ``x_data_000002.h5``…). :func:`count_frames`
tells how many frames can be read now (those of the data blocks present, in order, up to the
first missing one); :func:`read_frame` reads one of them without reading the others. Both use
the series and frame builder of :mod:`xrais.io.nexus`, so that geometry and masks are exactly
those of ``xrais.open_images`` (which reads a whole series in one pass).

Data files must appear complete (written elsewhere and renamed into place, as detector file
writers do); HDF5 files still open for writing (SWMR) are not read here.
"""
from __future__ import annotations

from typing import Optional, Union

import h5py
import numpy as np

from ..io.errors import ImageError
from ..io.frame import Frame, FrameError
from ..io.geometry import GeometryOverride
from ..io.nexus import _H5_ERRORS, _FrameBuilder, _Series, check_chunks

SERIES_SUFFIXES = (".h5", ".nxs", ".hdf5")


def _blocks(path: str, handle: h5py.File):
    """(name, dataset) of the data blocks that can be opened, in order, up to the first that cannot."""
    series = _Series(path, handle)
    blocks = []
    for name, group in series.blocks:
        try:
            blocks.append((name, series.open_block(name, group)))
        except ImageError:
            break
    return series, blocks


def count_frames(path: str) -> int:
    """Frames readable now; ImageError when the file is not (yet) a readable NeXus series."""
    try:
        with h5py.File(path, "r") as handle:
            _, blocks = _blocks(path, handle)
            return sum(int(block.shape[0]) for _, block in blocks)
    except _H5_ERRORS as exc:
        raise ImageError(path, f"cannot open NeXus series ({type(exc).__name__}: {exc})") from None


def read_frame(path: str, index: int, override: Optional[GeometryOverride] = None) -> Union[Frame, FrameError]:
    """Frame ``index`` (0-based across the data files) of a series, or a FrameError saying why not."""
    try:
        with h5py.File(path, "r") as handle:
            series, blocks = _blocks(path, handle)
            n_frames = sum(int(block.shape[0]) for _, block in blocks)
            first = 0
            for name, block in blocks:
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
