"""Bragg scattering of crystal lattices onto a detector: the entry point to the kernels."""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence, Union

import numpy as np

from ..io.geometry import Geometry
from .beam import R_E_SQUARED_M2, Beam
from .crystal import Lattice, as_lattice_list
from .frame import DetectorFrame, Window, as_detector_frame, resolve_window
from .kernels import GAUSS_WIDTH, SHAPE_CODES, TOPHAT_RADIUS_SQUARED, coprime_stride, empty_cuts, render_window_cpu
from .reflections import index_limits, largest_scattering_vector, lattice_reach, render_reflections_cpu
from .structure_factors import StructureFactors

#: Default relative threshold of the fast path: lattice-transform terms with
#: F_latt² < threshold·F_latt(0)² are skipped.
FAST_PATH_THRESHOLD = 1e-10
PATHS = ("fast", "exact", "reflections")
DEVICES = ("auto", "cpu", "cuda")


def lattice_cuts(lattice: Lattice, threshold: float = FAST_PATH_THRESHOLD) -> np.ndarray:
    """Largest |h − h0|, |k − k0|, |l − l0| (fractional indices) at which the lattice transform of
    ``lattice`` still has F_latt² ≥ threshold·F_latt(0)²; infinite for shapes without a finite
    reach ("square" and "round" have side lobes everywhere)."""
    cells = np.asarray(lattice.cells, dtype=float)
    axis_lengths = np.linalg.norm(lattice.real_vectors, axis=1)
    if lattice.shape in ("square", "round"):
        return empty_cuts()
    exponent_limit = 0.5 * GAUSS_WIDTH * math.log(1.0 / threshold)  # F_latt² ∝ exp(−2x/0.63) < threshold
    if lattice.shape == "gauss_hkl":
        return math.sqrt(exponent_limit) / cells
    total = float(np.prod(cells))
    if lattice.shape == "gauss":
        return axis_lengths * math.sqrt(exponent_limit) / total
    return axis_lengths * math.sqrt(TOPHAT_RADIUS_SQUARED) / total * (1.0 + 1e-9)  # tophat: exact edge


def render_bragg(lattices: Union[Lattice, Sequence[Lattice]], structure: StructureFactors, beam: Beam,
                 detector: Union[DetectorFrame, Geometry], *, b_factor: float = 0.0, window=None,
                 oversample: int = 1, path: str = "fast", device: str = "auto",
                 threshold: float = FAST_PATH_THRESHOLD) -> np.ndarray:
    """Expected Bragg photons per pixel, float32 (slow, fast) of the detector shape; zero outside
    ``window``.

    lattices: one :class:`Lattice` or several (multi-lattice; they must share cell, cells per domain
    and shape); structure: |F|² table; beam: wavelength, fluence, sources; detector: a
    :class:`DetectorFrame` or an xrais :class:`Geometry`; b_factor: Debye–Waller B (Å²) applied to
    |F|² as exp(−2B·stol²); window: a :class:`Window` (or None for the whole detector);
    oversample: sub-pixels per pixel edge; path: "fast" (the pixel kernel, skipping terms whose
    lattice transform is below ``threshold`` of its peak), "exact" (the pixel kernel, every term,
    as nanoBragg) or "reflections" (the fast path's terms, visited per reflection: see
    :mod:`xrais.sim.reflections`; always on the CPU, one thread; shapes without a finite reach
    take the pixel kernel);
    device: "auto" (CUDA when available), "cpu" or "cuda".
    """
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if oversample < 1:
        raise ValueError(f"oversample must be ≥ 1, got {oversample}")
    frame = as_detector_frame(detector)
    window = resolve_window(window, frame.shape)
    image = np.zeros(frame.shape, dtype=np.float32)
    if window.size == 0 or beam.fluence == 0.0:
        return image
    lattices = as_lattice_list(lattices)
    scale = R_E_SQUARED_M2 * beam.fluence
    if path == "reflections":
        image[window.slices] = render_bragg_window(lattices, structure, beam, frame, window, b_factor=b_factor,
                                                   oversample=oversample, threshold=threshold, kernel="reflections")
        return image
    arguments = kernel_arguments(lattices, structure, beam, frame, b_factor, oversample,
                                 "exact" if path == "exact" else "fast", threshold)
    if _use_cuda(device):
        from .cuda_kernel import render_window_cuda

        render_window_cuda(image, window, scale, arguments)
    else:
        render_window_cpu(image, window.slow_start, window.slow_stop, window.fast_start, window.fast_stop,
                          coprime_stride(window.shape[0]), scale, *arguments)
    return image


#: Reciprocal-lattice nodes within one reach sphere above which the pixel kernel is the cheaper
#: one for :func:`render_bragg_window`: the lattice transforms' tails then overlap and cover most
#: pixels, and visiting them node by node costs more than pixel by pixel (measured on both recipes:
#: the reflection kernel is 1–9× faster below 0.15, 1.2–3× slower above 0.25).
CROWDING_LIMIT = 0.2


def lattice_crowding(lattice: Lattice, threshold: float = FAST_PATH_THRESHOLD) -> float:
    """Number of reciprocal-lattice nodes in a sphere of the lattice transform's reach
    (:func:`~xrais.sim.reflections.lattice_reach`): (4/3)π·reach³·V_cell; inf without a finite reach."""
    reach = lattice_reach(lattice.shape, lattice.real_vectors, lattice.cells, threshold)
    return 4.0 / 3.0 * math.pi * reach ** 3 * abs(float(np.linalg.det(lattice.real_vectors)))


def render_bragg_window(lattices: Sequence[Lattice], structure: StructureFactors, beam: Beam, frame: DetectorFrame,
                        window, *, b_factor: float = 0.0, oversample: int = 1,
                        threshold: float = FAST_PATH_THRESHOLD, kernel: str = "auto") -> np.ndarray:
    """Expected Bragg photons of the pixels of ``window`` only, float32 (window shape), on the CPU.

    kernel: "reflections" (:mod:`xrais.sim.reflections`), "pixels" (the pixel kernel's fast path;
    the same terms either way, but for terms below the threshold), or "auto": the cheaper for
    these lattices, the reflection kernel
    when their transforms' reach holds fewer than :data:`CROWDING_LIMIT` nodes. Shapes without a
    finite reach ("square", "round") always take the pixel kernel.
    """
    if kernel not in ("auto", "reflections", "pixels"):
        raise ValueError(f"kernel must be 'auto', 'reflections' or 'pixels', got {kernel!r}")
    window = Window(*window)
    out = np.zeros(window.shape, dtype=np.float64)
    if window.size == 0 or beam.fluence == 0.0:
        return out.astype(np.float32)
    arguments = kernel_arguments(lattices, structure, beam, frame, b_factor, oversample, "fast", threshold)
    scale = R_E_SQUARED_M2 * beam.fluence
    crowding = lattice_crowding(lattices[0], threshold)
    if math.isfinite(crowding) and (kernel == "reflections" or (kernel == "auto" and crowding < CROWDING_LIMIT)):
        reach = lattice_reach(lattices[0].shape, lattices[0].real_vectors, lattices[0].cells, threshold)
        reciprocals = np.linalg.inv(arguments.domains).transpose(0, 2, 1).copy()
        limits = index_limits(lattices[0].real_vectors, arguments.table, arguments.origin,
                              largest_scattering_vector(arguments.frame, arguments.sources, window), reach)
        render_reflections_cpu(out, window.slow_start, window.fast_start, scale, arguments.frame,
                               arguments.oversample, arguments.sources, arguments.polarization, arguments.domains,
                               reciprocals, arguments.weights, arguments.cuts, reach, arguments.reciprocal_metric,
                               arguments.cells, arguments.shape, arguments.table, arguments.origin,
                               arguments.b_factor, limits)
        return out.astype(np.float32)
    # the pixel kernel on a frame moved so that the window's first pixel is its pixel (0, 0)
    packed = arguments.frame.copy()
    packed[0:3] += packed[12] * (window.slow_start * packed[6:9] + window.fast_start * packed[3:6])
    image = np.zeros(window.shape, dtype=np.float32)
    render_window_cpu(image, 0, window.shape[0], 0, window.shape[1], coprime_stride(window.shape[0]), scale, packed,
                      *arguments[1:])
    return image


class KernelArguments(NamedTuple):
    """The kernels' physics arguments, in the order of ``pixel_value`` after (s, f)."""

    frame: np.ndarray
    oversample: int
    sources: np.ndarray
    polarization: np.ndarray
    domains: np.ndarray
    weights: np.ndarray
    lattice_start: np.ndarray
    lattice_nominal: np.ndarray
    lattice_chord: np.ndarray
    axis_lengths: np.ndarray
    cuts: np.ndarray
    reciprocal_metric: np.ndarray
    cells: np.ndarray
    shape: int
    table: np.ndarray
    origin: np.ndarray
    b_factor: float


def kernel_arguments(lattices, structure, beam, frame, b_factor, oversample, path, threshold) -> KernelArguments:
    """Pack the physics for the kernels (float64 arrays; the table stays float32)."""
    reference = lattices[0]
    for lattice in lattices[1:]:
        same_cell = np.allclose(np.linalg.norm(lattice.real_vectors, axis=1),
                                np.linalg.norm(reference.real_vectors, axis=1), rtol=1e-9)
        if not same_cell or lattice.cells != reference.cells or lattice.shape != reference.shape:
            raise ValueError("lattices rendered together must share cell, cells per domain and shape; "
                             "render different crystals separately and add the images")
    sources = beam.sources()
    steps = sources.shape[0] * oversample * oversample
    domains = np.concatenate([lattice.domain_vectors() for lattice in lattices]).astype(np.float64)
    weights = np.concatenate([np.full(lattice.mosaic.shape[0], lattice.blocks / (lattice.mosaic.shape[0] * steps))
                              for lattice in lattices])
    lattice_start = np.cumsum([0] + [lattice.mosaic.shape[0] for lattice in lattices]).astype(np.int64)
    nominal = np.stack([lattice.real_vectors for lattice in lattices]).astype(np.float64)
    chords = np.array([lattice.largest_mosaic_chord() for lattice in lattices], dtype=np.float64)
    reciprocal = reference.reciprocal_vectors
    cuts = lattice_cuts(reference, threshold) if path == "fast" else empty_cuts()
    return KernelArguments(
        frame.as_array(), int(oversample), sources, beam.polarization_array(), domains, weights, lattice_start,
        nominal, chords, np.linalg.norm(reference.real_vectors, axis=1), np.asarray(cuts, dtype=np.float64),
        reciprocal @ reciprocal.T, np.asarray(reference.cells, dtype=np.float64), SHAPE_CODES[reference.shape],
        np.asarray(structure.intensities), np.asarray(structure.origin, dtype=np.int64), float(b_factor))


def _use_cuda(device: str) -> bool:
    if device == "cpu":
        return False
    try:
        from .cuda_kernel import cuda_available
    except ImportError:  # numba-cuda not installed
        available = False
    else:
        available = cuda_available()
    if device == "cuda" and not available:
        raise RuntimeError("device='cuda' but numba-cuda sees no CUDA GPU (pip install numba-cuda; check the driver)")
    return available
