"""CUDA backend (numba-cuda): the per-pixel physics of :mod:`xrais.sim.kernels`, one thread per pixel.

numba.cuda is imported only when this module is (by :func:`xrais.sim.render_bragg` with device
"auto" or "cuda"). Set ``NUMBA_ENABLE_CUDASIM=1`` (before numba.cuda is first imported) to run the
kernel in numba's CUDA simulator on a machine without GPU.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from numba import cuda

from .kernels import make_pixel_function

THREADS_PER_BLOCK = (16, 16)


@functools.lru_cache(maxsize=None)
def cuda_available() -> bool:
    """True when numba-cuda sees a GPU (or its simulator is enabled)."""
    try:
        return bool(cuda.is_available())
    except Exception:  # a broken driver installation counts as no GPU
        return False


@functools.lru_cache(maxsize=None)
def _render_kernel():
    pixel_value = make_pixel_function(cuda.jit(device=True))

    @cuda.jit
    def render(out, s_start, f_start, scale, frame, oversample, sources, polarization, domains, weights,
               lattice_start, lattice_nominal, lattice_chord, axis_lengths, cuts, reciprocal_metric, cells, shape,
               table, origin, b_factor):
        f, s = cuda.grid(2)
        if s < out.shape[0] and f < out.shape[1]:
            out[s, f] = scale * pixel_value(s_start + s, f_start + f, frame, oversample, sources, polarization,
                                            domains, weights, lattice_start, lattice_nominal, lattice_chord,
                                            axis_lengths, cuts, reciprocal_metric, cells, shape, table, origin,
                                            b_factor)

    return render


class _DeviceTableCache:
    """Keeps the last |F|² table on the GPU: a pool structure renders many images in a row."""

    def __init__(self):
        self._host = None
        self._device = None

    def get(self, table: np.ndarray):
        if self._host is not table:
            self._device = None  # free the previous table before uploading the next one
            self._device = cuda.to_device(np.ascontiguousarray(table))
            self._host = table
        return self._device


_table_cache = _DeviceTableCache()


def render_window_cuda(image: np.ndarray, window, scale: float, arguments) -> None:
    """Render ``window`` of ``image`` (float32, modified in place) on the GPU; ``arguments``: a
    :class:`xrais.sim.bragg.KernelArguments`."""
    device_arguments = [cuda.to_device(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else value
                        for value in arguments._replace(table=None)]
    device_arguments[arguments._fields.index("table")] = _table_cache.get(arguments.table)
    rows, cols = window.shape
    out = cuda.device_array((rows, cols), dtype=np.float32)
    blocks = (math.ceil(cols / THREADS_PER_BLOCK[0]), math.ceil(rows / THREADS_PER_BLOCK[1]))
    _render_kernel()[blocks, THREADS_PER_BLOCK](out, window.slow_start, window.fast_start, scale, *device_arguments)
    image[window.slices] = out.copy_to_host()
