"""Helpers of the simulator tests: reference cases, small structure tables, spot finding and
independent spot prediction (Ewald construction)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from xrais.sim import Beam, DetectorFrame, Lattice, StructureFactors

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
REFERENCE = SHARED / "reference" / "nanobragg"


def load_reference_case(name):
    """(params dict, StructureFactors, reference image) of a nanoBragg reference case."""
    folder = REFERENCE / name
    params = json.loads((folder / "params.json").read_text())
    listing = np.load(folder / "structure_factors.npz")
    structure = StructureFactors.from_amplitudes(listing["h"], listing["k"], listing["l"], listing["F"])
    return params, structure, np.load(folder / "image.npy")


def reference_lattice(params):
    return Lattice(np.array([params["a_vec_A"], params["b_vec_A"], params["c_vec_A"]]), cells=params["Na_Nb_Nc"],
                   shape=params["crystal_shape"].replace("_xtal", ""))


def reference_frame(params):
    return DetectorFrame(np.array(params["pix0_vector_m"]) * 1e3, params["fdet_vector"], params["sdet_vector"],
                         params["pixel_size_mm"], params["image_shape_slow_fast"])


def uniform_structure(extent=40, value=100.0):
    """|F|² = value for every |h|, |k|, |l| ≤ extent except F000 (every spot equally strong)."""
    table = np.full((2 * extent + 1,) * 3, value, dtype=np.float32)
    table[extent, extent, extent] = 0.0
    return StructureFactors(table, (-extent,) * 3)


def random_structure(rng, extent=40):
    """Random |F|² (exponential, Wilson-like) on |h|, |k|, |l| ≤ extent, Friedel symmetric."""
    table = rng.exponential(100.0, size=(2 * extent + 1,) * 3).astype(np.float32)
    table = 0.5 * (table + table[::-1, ::-1, ::-1])
    table[extent, extent, extent] = 0.0
    return StructureFactors(table, (-extent,) * 3)


def find_spots(image, relative_threshold=0.02, size=7):
    """Centroids (fast, slow) in edge-origin pixel coordinates (pixel (s, f) spans [f, f+1) ×
    [s, s+1)) of the local maxima above relative_threshold·max, from a size×size window."""
    half = size // 2
    padded = np.pad(image, half, mode="constant", constant_values=-np.inf)
    local_max = np.lib.stride_tricks.sliding_window_view(padded, (size, size)).max(axis=(2, 3))
    peaks = (image == local_max) & (image > relative_threshold * image.max())
    spots = []
    for s, f in zip(*np.nonzero(peaks)):
        if half <= s < image.shape[0] - half and half <= f < image.shape[1] - half:
            patch = image[s - half:s + half + 1, f - half:f + half + 1].astype(np.float64)
            rows, cols = np.mgrid[-half:half + 1, -half:half + 1]
            spots.append((f + 0.5 + (patch * cols).sum() / patch.sum(), s + 0.5 + (patch * rows).sum() / patch.sum()))
    return np.array(spots).reshape(-1, 2)


def predict_spots(lattice: Lattice, beam: Beam, frame: DetectorFrame, hkl_max=30, excitation=0.01):
    """Ewald construction, independent of the kernels: reflections G = h·a* + k·b* + l·c* with
    | |λG + b̂| − 1 | < λ·excitation (within ``excitation`` Å⁻¹ of the sphere) diffract along
    d̂ = (λG + b̂)/|λG + b̂|. Returns (hkl, detector intersections (fast, slow) in edge-origin
    pixels) of those that hit the detector."""
    grid = np.arange(-hkl_max, hkl_max + 1)
    hkl = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), axis=-1).reshape(-1, 3)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    p = beam.wavelength * (hkl @ lattice.reciprocal_vectors) + np.asarray(beam.direction)
    length = np.linalg.norm(p, axis=1)
    keep = np.abs(length - 1.0) < beam.wavelength * excitation
    hkl, position = hkl[keep], detector_position(frame, p[keep])
    inside = np.all(np.isfinite(position), axis=1)
    inside[inside] &= np.all((position[inside] >= 0) & (position[inside] < frame.shape[::-1]), axis=1)
    return hkl[inside], position[inside]


def pixel_directions(frame: DetectorFrame):
    """Unit vectors from the sample to every pixel centre, shape (slow, fast, 3)."""
    rows = np.arange(frame.shape[0])[:, None, None] + 0.5
    cols = np.arange(frame.shape[1])[None, :, None] + 0.5
    positions = (np.asarray(frame.pix0) + cols * frame.pixel_size * np.asarray(frame.fdet)
                 + rows * frame.pixel_size * np.asarray(frame.sdet))
    return positions / np.linalg.norm(positions, axis=2, keepdims=True)


def detector_position(frame: DetectorFrame, directions):
    """Where rays from the sample along ``directions`` meet the detector: (fast, slow) edge-origin
    pixels (NaN for rays away from it)."""
    directions = np.asarray(directions, dtype=float)
    along = directions @ frame.normal
    with np.errstate(divide="ignore", invalid="ignore"):
        hits = directions * np.where(along > 0, frame.close_distance / along, np.nan)[:, None] - np.asarray(frame.pix0)
    return np.stack([hits @ np.asarray(frame.fdet), hits @ np.asarray(frame.sdet)], axis=1) / frame.pixel_size


def index_spots(spots, lattice: Lattice, beam: Beam, frame: DetectorFrame):
    """Nearest Miller indices of the scattering vector at each spot position (fast, slow)."""
    points = (np.asarray(frame.pix0)[None, :] + spots[:, :1] * frame.pixel_size * np.asarray(frame.fdet)
              + spots[:, 1:] * frame.pixel_size * np.asarray(frame.sdet))
    d = points / np.linalg.norm(points, axis=1)[:, None]
    s = (d - np.asarray(beam.direction)) / beam.wavelength
    return np.rint(s @ lattice.real_vectors.T).astype(int)


def spot_errors(spots, lattice: Lattice, beam: Beam, frame: DetectorFrame):
    """Distance (pixels) from each spot to the Ewald prediction of the reflection it indexes as."""
    hkl = index_spots(spots, lattice, beam, frame)
    p = beam.wavelength * (hkl @ lattice.reciprocal_vectors) + np.asarray(beam.direction)
    return np.linalg.norm(detector_position(frame, p) - spots, axis=1)


def nearest_distances(points, targets):
    """Distance from each point to its nearest target (pixels)."""
    if len(targets) == 0:
        return np.full(len(points), np.inf)
    return np.min(np.linalg.norm(points[:, None, :] - targets[None, :, :], axis=2), axis=1)
