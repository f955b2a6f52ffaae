"""Multi-lattice evidence of an indexed still: numbers that say how well one lattice explains its spots.

:func:`index_lattices` answers "how many lattices" with thresholds; a split crystal of 0.3–1° often
indexes as one lattice whose fit is poorer in telling ways. These features measure that, each free
of the overall scale and of how many spots there are (a quadrant and a whole detector give the same
values for the same crystal):

* ``fraction_first``, ``fraction_other``, ``fraction_unindexed``: shares of the spots indexed by the
  first lattice, by further ones, by none;
* ``n_lattices``: lattices found (0–3);
* ``rms_first``: RMS of r·t − round over the first lattice's spots (whole numbers; the tolerance when
  no lattice is found);
* ``loose_share``: of the first lattice's spots, the share off their node by more than half the
  tolerance (a second lattice a little turned puts its spots there);
* ``outer_excess``: mean |r·t − round| of the first lattice's outer half of spots (by |r|) over its
  inner half, minus 1: a rotation moves a spot in proportion to |r|, so a split grows the error
  outwards much faster than the centroid and excitation errors of one lattice do;
* ``shared_hkl``: share of the first lattice's spots whose Miller index another of its spots also
  has (each reflection is one spot of one lattice; two lattices a little apart light it twice);
* ``close_pairs``: share of all spots whose nearest neighbour (Å⁻¹) is closer than half the first
  lattice's shortest node spacing (no two nodes of one lattice are);
* ``log_misorientation``: ln(1 + the smallest angle, degrees, from the first lattice to a further
  one of the same cell; 90° when their cells differ, 0 with one lattice);
* ``tangential_median_deg``, ``tangential_p90_deg``: over the first lattice's outer half of spots,
  the offset of each spot from its node, r − h·B, less its component along the Ewald sphere's
  normal at the spot, over |r|, in degrees (median, 90th percentile), B the first lattice's cell
  fitted to the tangential offsets (:func:`tangential_cell`; the ``split_…`` features measure from
  it too). A still's spot lies on the sphere and its node off it by the excitation error, so one
  lattice's offsets are along the normal (and grow outwards: what ``outer_excess`` cannot tell from
  a split); a second lattice turned by α moves its nodes by ≈ α·|r| in every direction, so the
  tangential offset over |r| reads α;
* ``nn_spread``: the 10th over the 50th percentile of the spots' nearest-neighbour distances, found
  lattice or not (one lattice's spots keep their distance, ≥ its node spacing; a second lattice
  puts spots beside the first's: a low ratio);
* ``split_explained``, ``split_separation``: the structure of the first lattice's offsets, free of
  their size. A split crystal indexed as one lattice (or as one of its lattices, the other's spots
  caught within the tolerance) puts its spots at ±ω of one rotation from the nodes: offsets
  rᵢ − nodeᵢ ≈ sᵢ·ω × nodeᵢ, sᵢ = ±1, two populations. A loose single crystal (mosaic spread,
  rotation wedge, beam divergence) scatters its spots about its nodes in one population, their
  rotations spread continuously. Fitted to the tangential offsets over |r| (radians) by alternating
  least squares (:func:`two_sided_rotation`): the share of the offsets' variance the two-sided
  rotation explains, and |ω| over the RMS of what it leaves — the split's half-angle in units of
  the crystal's own spread (physics: a 0.3° split inside a 0.5° spread is not detectable; the
  same split in a 0.02° spread is);
* ``split_pairing``: of the first lattice's spots, the share whose nearest neighbour (in reciprocal
  space, so on the detector) lies on the other side of that two-sided rotation. A split crystal
  lights each reflection twice, once per lattice, the two spots side by side and off the mean
  lattice's node in opposite senses: neighbours disagree (→ 1). A single crystal's offsets — its
  mosaic spread, a detector or geometry error — vary smoothly over the detector, so neighbours
  agree, whatever the offsets' size or pattern (→ 0–0.5: spots turned ±0.5° about the beam on
  either half of the detector, which a two-sided rotation explains half as well as a split's,
  pair up with 0.04).
"""
from __future__ import annotations

import itertools
import math
from typing import Dict

import numpy as np

from .indexing import IndexingResult, IndexingSettings, nearest_neighbour_distances, nearest_neighbours

FEATURE_NAMES = ("fraction_first", "fraction_other", "fraction_unindexed", "n_lattices", "rms_first",
                 "loose_share", "outer_excess", "shared_hkl", "close_pairs", "log_misorientation",
                 "tangential_median_deg", "tangential_p90_deg", "nn_spread", "split_explained", "split_separation",
                 "split_pairing")


def shortest_node_spacing(real_vectors: np.ndarray) -> float:
    """Shortest distance (Å⁻¹) between two nodes of the reciprocal lattice of the cell (rows, Å)."""
    reciprocal = np.linalg.inv(np.asarray(real_vectors, float)).T
    steps = np.array([h for h in itertools.product(range(-1, 2), repeat=3) if any(h)])
    return float(np.linalg.norm(steps @ reciprocal, axis=1).min())


def tangential_offsets_deg(vectors: np.ndarray, miller: np.ndarray, real_vectors: np.ndarray,
                           projectors=None) -> np.ndarray:
    """For spots r (Å⁻¹, the lab frame of :func:`xrais.spotfinder.scattering_vectors`) indexed as
    ``miller`` by the cell ``real_vectors``: |offset from the node, tangential to the Ewald sphere|
    / |r|, in degrees (the sphere's normal from :func:`_tangential_basis`; spots at r·b ≈ 0 are
    left out). projectors: :func:`tangential_projectors` of ``vectors``, when made already."""
    usable, projector = tangential_projectors(vectors) if projectors is None else projectors
    vectors, miller = vectors[usable], miller[usable]
    tangential = np.einsum("nij,nj->ni", projector[usable], vectors - miller @ np.linalg.inv(real_vectors).T)
    return np.degrees(np.linalg.norm(tangential, axis=1) / np.linalg.norm(vectors, axis=1))


def _tangential_basis(vectors: np.ndarray):
    """(usable spots, unit normals of the Ewald sphere at them). The normal at a spot is
    s₁ = r + s₀, with |s₁| = |s₀| = 1/λ, so 1/λ = −|r|²/(2 r·b) (b the beam direction) comes from r
    itself; spots at r·b ≈ 0 are not usable."""
    from ..spotfinder import LAB_BEAM

    along_beam = vectors @ LAB_BEAM
    usable = along_beam < -1e-6
    inverse_wavelength = -np.einsum("ij,ij->i", vectors[usable], vectors[usable]) / (2.0 * along_beam[usable])
    normal = vectors[usable] + inverse_wavelength[:, None] * LAB_BEAM[None, :]
    return usable, normal / np.linalg.norm(normal, axis=1, keepdims=True)


def tangential_projectors(vectors: np.ndarray):
    """(usable spots, (n, 3, 3) projectors I − n̂n̂ᵀ off the Ewald sphere's normal at every spot:
    :func:`_tangential_basis`; zero where not usable). Made once per frame and handed to the
    tangential features (any subset of spots takes its rows)."""
    usable, normal = _tangential_basis(vectors)
    projector = np.zeros((len(vectors), 3, 3))
    projector[usable] = np.eye(3)[None] - normal[:, :, None] * normal[:, None, :]
    return usable, projector


def tangential_cell(vectors: np.ndarray, miller: np.ndarray, real_vectors: np.ndarray,
                    projectors=None) -> np.ndarray:
    """The cell (rows, Å) whose nodes h·B best fit spots r (Å⁻¹) indexed as ``miller`` in the
    directions along the Ewald sphere: B (rows a*, b*, c*) minimising Σ |Pᵢ(rᵢ − h·B)|² / |rᵢ|², Pᵢ
    the projector off the sphere's normal at rᵢ (:func:`tangential_projectors`; ``projectors``, when
    made already); a linear least-squares
    problem in B's nine numbers. The indexing fits the cell on the whole offsets, excitation errors
    along the normal included: a still's or a rotation frame's nodes lie off the sphere by those,
    unevenly, and that fit turns the cell by up to tenths of a degree about where the spots sit on
    the sphere (the measured EIGER2 thaumatin frame: 0.6°, every spot on one side). The tangential
    features measure offsets from this cell, so that a turn of the whole lattice is not read as a
    split. ``real_vectors`` is returned where fewer than 5 usable spots, or their Miller indices,
    cannot fix B."""
    usable, projector = tangential_projectors(vectors) if projectors is None else projectors
    vectors, miller, projector = vectors[usable], np.asarray(miller, float)[usable], projector[usable]
    if len(vectors) < 5 or np.linalg.matrix_rank(miller) < 3:
        return real_vectors
    weight = 1.0 / np.einsum("ij,ij->i", vectors, vectors)  # 1/|r|²
    # node = Hᵢ x with x = B.ravel() (row-major): node[j] = Σₖ hₖ B[k, j]
    design = np.einsum("nk,ij->nikj", miller, np.eye(3)).reshape(len(miller), 3, 9)
    projected = np.einsum("nij,njk->nik", projector, design)
    normal_matrix = np.einsum("n,nji,njk->ik", weight, design, projected)
    right = np.einsum("n,nji,nj->i", weight, projected, vectors)
    if np.linalg.cond(normal_matrix) > 1e12:
        return real_vectors
    reciprocal = np.linalg.solve(normal_matrix, right).reshape(3, 3)
    return np.linalg.inv(reciprocal).T


def two_sided_rotation(vectors: np.ndarray, miller: np.ndarray, real_vectors: np.ndarray,
                       iterations: int = 12) -> tuple:
    """(explained share, separation, ω in radians) of the model rᵢ − nodeᵢ ≈ sᵢ·ω × nodeᵢ (sᵢ = ±1),
    fitted to the spots' offsets from their nodes tangential to the Ewald sphere, each over |r|
    (module docstring, ``split_explained`` and ``split_separation``). Alternating least squares:
    for ω the signs sᵢ = sign(offsetᵢ · ω × nodeᵢ); for the signs ω by linear least squares;
    started from the direction that explains most of the offsets whatever their signs. (0, 0, 0)
    with fewer than 6 spots."""
    return _two_sided(vectors, miller, real_vectors, iterations)[:3]


def _two_sided(vectors, miller, real_vectors, iterations: int = 12, projectors=None) -> tuple:
    """:func:`two_sided_rotation`'s (explained, separation, ω) and the signs sᵢ of the spots it
    used (None with fewer than 6) and which those are (boolean over ``vectors``): the signs give
    ``split_pairing``. projectors: :func:`tangential_projectors` of ``vectors``, when made already."""
    usable, projector = tangential_projectors(vectors) if projectors is None else projectors
    vectors, miller, projector = vectors[usable], miller[usable], projector[usable]
    if len(vectors) < 6:
        return 0.0, 0.0, np.zeros(3), None, usable
    nodes = miller @ np.linalg.inv(real_vectors).T
    radius = np.linalg.norm(vectors, axis=1)[:, None]
    offsets = np.einsum("nij,nj->ni", projector, vectors - nodes) / radius
    skew = np.zeros((len(nodes), 3, 3))  # ω × q = −[q]× ω
    skew[:, 0, 1], skew[:, 0, 2], skew[:, 1, 2] = nodes[:, 2], -nodes[:, 1], nodes[:, 0]
    skew -= skew.transpose(0, 2, 1)
    design = -np.einsum("nij,njk->nik", projector, skew) / radius[:, :, None]  # offsetᵢ ≈ sᵢ·designᵢ ω
    pulled = np.einsum("nji,nj->ni", design, offsets)  # designᵢᵀ offsetᵢ
    normal_matrix = np.einsum("nji,njk->ik", design, design)
    _, eigenvectors = np.linalg.eigh(pulled.T @ pulled)
    direction = eigenvectors[:, -1]
    omega = direction * np.abs(pulled @ direction).sum() / max(direction @ normal_matrix @ direction, 1e-30)
    for _ in range(iterations):
        signs = np.sign(pulled @ omega)
        signs[signs == 0] = 1.0
        omega = np.linalg.lstsq(normal_matrix, (signs[:, None] * pulled).sum(0), rcond=None)[0]
    signs = np.where(pulled @ omega >= 0, 1.0, -1.0)
    residual = offsets - signs[:, None] * np.einsum("nij,j->ni", design, omega)
    total = float(np.square(offsets).sum())
    left = float(np.square(residual).sum())
    explained = 1.0 - left / total if total > 0 else 0.0
    rms = math.sqrt(left / len(offsets))
    return explained, float(np.linalg.norm(omega) / rms) if rms > 0 else 0.0, omega, signs, usable


def lattice_evidence(result: IndexingResult, settings: IndexingSettings = IndexingSettings()) -> Dict[str, float]:
    """The features of :data:`FEATURE_NAMES` of an indexing result (its spots and lattices)."""
    vectors = result.vectors
    features = dict.fromkeys(FEATURE_NAMES, 0.0)
    features["fraction_unindexed"] = 1.0
    features["rms_first"] = settings.tolerance
    features["nn_spread"] = 1.0
    if len(vectors) < 3:
        return features
    nearest = nearest_neighbour_distances(vectors) if result.nearest is None else result.nearest
    features["nn_spread"] = float(np.percentile(nearest, 10) / max(np.percentile(nearest, 50), 1e-12))
    if not result.lattices:
        return features
    first = result.lattices[0]
    mine = first.indexed
    error = np.abs(vectors[mine] @ first.real_vectors.T - first.miller[mine]).max(axis=1)
    radius = np.linalg.norm(vectors[mine], axis=1)
    outer = radius > np.median(radius)
    inner_error = error[~outer].mean() if (~outer).any() else 0.0
    _, counts = np.unique(first.miller[mine], axis=0, return_counts=True)
    angles = [90.0 if math.isnan(angle) else angle for angle in result.misorientation_deg()]
    projectors = tangential_projectors(vectors[mine])  # once: every tangential feature takes its rows
    cell = tangential_cell(vectors[mine], first.miller[mine], first.real_vectors, projectors)
    tangential = tangential_offsets_deg(vectors[mine][outer], first.miller[mine][outer], cell,
                                        (projectors[0][outer], projectors[1][outer]))
    explained, separation, _, signs, usable = _two_sided(vectors[mine], first.miller[mine], cell, projectors=projectors)
    pairing = 0.0 if signs is None else float(np.mean(signs != signs[nearest_neighbours(vectors[mine][usable])]))
    features.update(
        fraction_first=result.fraction_indexed,
        fraction_other=result.fraction_other_lattices,
        fraction_unindexed=1.0 - result.fraction_indexed_all,
        n_lattices=float(result.n_lattices),
        rms_first=first.rms_fractional,
        loose_share=float((error > 0.5 * settings.tolerance).mean()),
        outer_excess=float(error[outer].mean() / inner_error - 1.0) if outer.any() and inner_error > 0 else 0.0,
        shared_hkl=float(counts[counts > 1].sum() / mine.sum()),
        close_pairs=float((nearest < 0.5 * shortest_node_spacing(first.real_vectors)).mean()),
        log_misorientation=math.log1p(min(angles)) if angles else 0.0,
        tangential_median_deg=float(np.median(tangential)) if len(tangential) else 0.0,
        tangential_p90_deg=float(np.percentile(tangential, 90)) if len(tangential) else 0.0,
        split_explained=explained,
        split_separation=separation,
        split_pairing=pairing,
    )
    return features
