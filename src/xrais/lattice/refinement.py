"""The frame's geometry refined with its first lattice, as DIALS refines before it judges what is indexed.

A header's beam centre is right to a pixel or so and its distance to a few tenths of a per cent:
enough to move a spot's scattering vector r by as much as a crystal turned by 0.05–0.2° would (a
radial shift Δρ on the detector turns r along the Ewald sphere by ≈ Δρ·cos²2θ/D). Without
refinement a single crystal's spots then sit off its nodes as a split crystal's do, and the
lattice evidence reads "several lattices" (the measured frames of
``shared/reference/multilattice-measured-frames.md``).

:func:`refine_geometry` moves the beam centre (two shifts in the detector plane, mm) and the distance
(mm), together with the lattice's reciprocal basis (nine numbers), by damped Gauss–Newton
(Levenberg–Marquardt) least squares on the spots' offsets from their nodes **tangential to the
Ewald sphere**: a still's spot lies on the sphere and its node off it by the excitation error,
along the sphere's normal, which no geometry explains; what moves a spot along the sphere is the
geometry or the lattice's orientation and cell. Weak restraints (a beam shift of
:attr:`GeometryRefinementSettings.beam_sigma_mm`, a distance change of
:attr:`GeometryRefinementSettings.distance_sigma` of it, each cost what one spot of the starting
scatter costs) keep frames of few spots from drifting far.

All vectors in the lab frame of :func:`xrais.spotfinder.scattering_vectors` (beam along +x, a flat
detector ⊥ the beam), mapped from detector positions as it maps them (:func:`xrais.spotfinder.vectors_at`).
"""
from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Tuple

import numpy as np

from ..spotfinder import LAB_BEAM as BEAM, LAB_FAST as FAST, LAB_SLOW as SLOW, vectors_at

if TYPE_CHECKING:  # indexing calls this module
    from .indexing import IndexedLattice



@dataclasses.dataclass(frozen=True)
class GeometryRefinementSettings:
    """beam_sigma_mm: restraint on each beam-centre shift (mm); distance_sigma: restraint on the
    distance change (fraction of the distance); min_spots: fewest indexed spots refined on (fewer:
    nothing refined); cycles: most damped Gauss–Newton cycles."""

    beam_sigma_mm: float = 0.5
    distance_sigma: float = 0.01
    min_spots: int = 15
    cycles: int = 20


@dataclasses.dataclass
class GeometryRefinement:
    """The refined geometry's changes (beam-centre shift along the detector's fast and slow axes,
    mm; distance change, mm: the true beam centre is the header's plus the shift), the spots'
    scattering vectors recomputed with it (Å⁻¹, all spots, input order), the lattice's refined
    real-space cell vectors (rows, Å) and the RMS tangential offset of its spots from their nodes
    (Å⁻¹) before and after."""

    beam_shift_mm: Tuple[float, float]
    distance_shift_mm: float
    vectors: np.ndarray
    real_vectors: np.ndarray
    rms_tangential_before: float
    rms_tangential_after: float

    def beam_shift_px(self, pixel_size_mm: float) -> Tuple[float, float]:
        return self.beam_shift_mm[0] / pixel_size_mm, self.beam_shift_mm[1] / pixel_size_mm


def detector_positions(vectors: np.ndarray, distance_mm: float, wavelength_a: float) -> np.ndarray:
    """(n, 2) positions (mm along the fast and slow axes, from the beam centre) at which scattering
    vectors r (Å⁻¹) meet a flat detector ⊥ the beam at ``distance_mm``: s₁ = r + s₀, |s₀| = 1/λ
    (:func:`xrais.spotfinder.vectors_at`'s inverse)."""
    s1 = np.asarray(vectors, float) + BEAM[None, :] / wavelength_a
    along = distance_mm / (s1 @ BEAM)
    return np.stack([(s1 @ FAST) * along, (s1 @ SLOW) * along], axis=1)


def sphere_normals(vectors: np.ndarray, wavelength_a: float) -> np.ndarray:
    """(n, 3) unit normals of the Ewald sphere at scattering vectors r (Å⁻¹): along s₁ = r + s₀."""
    normal = vectors + BEAM[None, :] / wavelength_a
    return normal / np.linalg.norm(normal, axis=1, keepdims=True)


def tangential_offsets(vectors: np.ndarray, nodes: np.ndarray, wavelength_a: float) -> np.ndarray:
    """(n, 3) offsets r − node (Å⁻¹) less their component along the Ewald sphere's normal at r
    (the direction of s₁ = r + s₀: :func:`sphere_normals`)."""
    normal = sphere_normals(vectors, wavelength_a)
    offset = vectors - nodes
    return offset - np.einsum("ij,ij->i", offset, normal)[:, None] * normal


def refine_geometry(vectors: np.ndarray, lattice: IndexedLattice, distance_mm: float, wavelength_a: float,
                    settings: GeometryRefinementSettings = GeometryRefinementSettings()) -> GeometryRefinement:
    """Beam centre, distance and the lattice refined together on the tangential offsets of the
    lattice's indexed spots (module docstring); ``vectors``: every spot's scattering vector (n, 3;
    Å⁻¹) as the header's geometry maps it, ``lattice`` their first lattice. With fewer than
    ``settings.min_spots`` indexed spots, nothing is refined (zero shifts, the vectors as given)."""
    vectors = np.asarray(vectors, float)
    mine = lattice.indexed
    reciprocal = np.linalg.inv(lattice.real_vectors).T  # rows a*, b*, c* (Å⁻¹)
    positions = detector_positions(vectors, distance_mm, wavelength_a)
    miller = lattice.miller[mine].astype(float)

    def moved_at(parameters: np.ndarray) -> np.ndarray:
        """The indexed spots' scattering vectors with the beam shifted and the distance changed."""
        return vectors_at(positions[mine] - parameters[:2][None, :], distance_mm + parameters[2], wavelength_a)

    def residuals(parameters: np.ndarray) -> np.ndarray:
        moved = moved_at(parameters)
        offsets = tangential_offsets(moved, miller @ parameters[3:].reshape(3, 3), wavelength_a)
        return (offsets / np.linalg.norm(moved, axis=1, keepdims=True)).ravel()

    start = np.concatenate([[0.0, 0.0, 0.0], reciprocal.ravel()])
    before = residuals(start)
    rms_before = float(np.sqrt(np.mean(np.square(before)) * 3)) if len(before) else math.nan
    if mine.sum() < settings.min_spots:
        return GeometryRefinement((0.0, 0.0), 0.0, vectors, lattice.real_vectors, rms_before, rms_before)
    # restraints: a shift of one σ costs what one spot of the starting scatter does
    weight = max(rms_before, 1e-9) / np.array([settings.beam_sigma_mm, settings.beam_sigma_mm,
                                                settings.distance_sigma * distance_mm])

    def objective(parameters):
        return np.concatenate([residuals(parameters), weight * parameters[:3]])

    geometry_steps = np.array([1e-3, 1e-3, 1e-3 * distance_mm / 100.0])  # mm

    def jacobian_at(parameters: np.ndarray, current: np.ndarray) -> np.ndarray:
        """Forward differences for the three geometry parameters; the residuals are linear in
        the basis B (offset r − h·B), so its nine columns are exact: −hₖ·P[:, l]/|r| for Bₖₗ,
        P the projector off the sphere's normal at r."""
        geometry = [(objective(parameters + step * unit) - current) / step
                     for step, unit in zip(geometry_steps, np.eye(len(parameters))[:3])]
        moved = moved_at(parameters)
        normal = sphere_normals(moved, wavelength_a)
        projector = np.eye(3)[None] - normal[:, :, None] * normal[:, None, :]
        basis = -np.einsum("ik,ial,i->iakl", miller, projector, 1.0 / np.linalg.norm(moved, axis=1))
        basis = np.concatenate([basis.reshape(-1, 9), np.zeros((3, 9))])  # the restraints hold no basis
        return np.concatenate([np.stack(geometry, axis=1), basis], axis=1)

    parameters, damping = start, 1e-3
    current = objective(parameters)
    for _ in range(settings.cycles):
        jacobian = jacobian_at(parameters, current)
        normal = jacobian.T @ jacobian
        gradient = jacobian.T @ current
        improved = False
        for _ in range(8):
            try:
                delta = np.linalg.solve(normal + damping * np.diag(np.diag(normal) + 1e-30), -gradient)
            except np.linalg.LinAlgError:
                break
            trial = objective(parameters + delta)
            if trial @ trial < current @ current:
                parameters, current, damping, improved = parameters + delta, trial, damping / 3.0, True
                break
            damping *= 10.0
        if not improved or np.abs(delta[:3]).max() < 1e-5:
            break
    shift, change = parameters[:2], float(parameters[2])
    refined = vectors_at(positions - shift[None, :], distance_mm + change, wavelength_a)
    after = residuals(parameters)
    return GeometryRefinement((float(shift[0]), float(shift[1])), change, refined,
                              np.linalg.inv(parameters[3:].reshape(3, 3)).T,
                              rms_before, float(np.sqrt(np.mean(np.square(after)) * 3)))
