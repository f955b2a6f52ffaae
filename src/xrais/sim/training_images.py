"""One training image from its recipe parameters: render the quadrant the method trains on, record
it on the detector, condition it (uint16, 512×512) and label it."""
from __future__ import annotations

import dataclasses
from typing import Dict, NamedTuple, Optional

import numpy as np

from .. import conditioning
from ..io import detectors
from ..io.geometry import Geometry
from .background import IceRings
from .beam import Beam, fluence_from_photons
from .crystal import Lattice, blocks_in_crystal, cells_per_domain, mosaic_rotations, rotation_exposure
from .effects import DetectorEffects
from .frame import MOSFLM_FAST, MOSFLM_SLOW, Window, quadrant_window
from .pool import StructurePool
from .recipes import ImageSpec
from .simulate import SimulatedImage, on_whole_detector, simulate_image, simulate_window

#: Largest conditioned value stored (uint16 holds √(2³²)); real values stay far below.
CONDITIONED_MAX = 65535
#: Relative lattice-transform threshold of training images: terms with F_latt² below 1e-5 of the
#: peak are left out, which loses a few 1e-5 of the Bragg photons (measured on both recipes;
#: tests/sim/test_sim_training_path.py) and renders 2–4× faster than the reference 1e-10.
TRAINING_THRESHOLD = 1e-5


class TrainingImage(NamedTuple):
    """conditioned: uint16 (512, 512) quadrant; labels: named label columns; geometry: of the
    full detector, as the image's header records it (:func:`header_geometry`); raw: the recorded
    detector image (pixels, mask) when asked for, else None."""

    conditioned: np.ndarray
    labels: Dict[str, object]
    geometry: Geometry
    raw: Optional[SimulatedImage]


def spec_geometry(spec: ImageSpec) -> Geometry:
    """Detector geometry of a training image (flat, ⊥ beam; catalogue shape and pixel size)."""
    model = detectors.get(spec.detector)
    return Geometry(distance=spec.distance_mm, wavelength=spec.wavelength_A, pixel_size=model.pixel_size,
                    beam_centre=spec.beam_centre_px, shape=model.shape, detector=model.name)


def header_geometry(spec: ImageSpec) -> Geometry:
    """The geometry a training image's header records: the true one (:func:`spec_geometry`) with
    the recipe's header errors (beam centre, distance) added."""
    true = spec_geometry(spec)
    fast, slow = spec.header_beam_error_px
    return dataclasses.replace(true, distance=true.distance + spec.header_distance_error_mm,
                               beam_centre=(true.beam_centre[0] + fast, true.beam_centre[1] + slow))


#: Spindle axes of rotation frames (:attr:`ImageSpec.spindle`) in the simulator's lab frame: the
#: detector's fast and slow axes (:data:`xrais.sim.frame.MOSFLM_FAST`, ``MOSFLM_SLOW``).
SPINDLE_AXES = {"fast": MOSFLM_FAST, "slow": MOSFLM_SLOW}


def spec_lattices(spec: ImageSpec, pool: StructurePool, rng: np.random.Generator):
    """(lattices, structure) of a training image, or (None, None) for a blank one.

    The crystal volume is shared among the lattices (Dirichlet weights), so several lattices do not
    simply mean more scattering.
    """
    if spec.blank:
        return None, None
    structure = pool.get(spec.structure_index)
    cells = cells_per_domain(structure.cell, spec.domain_size_um * 1e4)
    volume = spec.crystal_size_um ** 3
    weights = rng.dirichlet([4.0] * spec.n_lattices) if spec.n_lattices > 1 else np.ones(1)
    spindle = SPINDLE_AXES[spec.spindle]

    def domains():  # each lattice's own mosaic domains, turned through the rotation wedge
        return rotation_exposure(mosaic_rotations(spec.mosaic_spread_deg, spec.mosaic_domains, rng),
                                 spec.rotation_wedge_deg, spindle, rng)

    first = Lattice.from_cell(structure.cell, orientation=np.reshape(spec.orientation, (3, 3)), cells=cells,
                              mosaic=domains(), blocks=blocks_in_crystal(volume * weights[0], structure.cell, cells))
    lattices = [first]
    for rotation, weight in zip(spec.lattice_rotations, weights[1:]):
        lattices.append(first.rotated(np.reshape(rotation, (3, 3))).replace(
            mosaic=domains(), blocks=blocks_in_crystal(volume * weight, structure.cell, cells)))
    return lattices, structure


def render_training_image(spec: ImageSpec, pool: StructurePool, device: str = "cpu", keep_raw: bool = False,
                          whole_detector: bool = False, reference: bool = False) -> TrainingImage:
    """Simulate, record and condition one training image (quadrant ``spec.quadrant``).

    By default only the quadrant's pixels are rendered and recorded (:func:`simulate_window`, the
    reflection-driven Bragg kernel at :data:`TRAINING_THRESHOLD`). reference: the pixel kernel's
    fast path at :data:`~xrais.sim.bragg.FAST_PATH_THRESHOLD` on whole-detector arrays (the
    simulator before the reflection kernel; ``device`` applies to it), to check the default
    against; whole_detector: render every pixel (slower; for inspection images), not only the
    quadrant.
    """
    rng = np.random.default_rng([spec.seed, spec.index, 1_000_003])
    geometry = spec_geometry(spec)
    beam = Beam(wavelength=spec.wavelength_A, fluence=fluence_from_photons(spec.photons, spec.beam_size_um * 1e-3),
                divergence=spec.divergence_mrad, dispersion=spec.bandwidth_fraction,
                dispersion_steps=3 if spec.bandwidth_fraction > 0 else 1)
    lattices, structure = spec_lattices(spec, pool, rng)
    background = [("air", spec.air_path_mm), ("water", spec.water_um * 1e-3), (spec.parasitic, spec.parasitic_um * 1e-3)]
    effects = DetectorEffects(beamstop_radius=spec.beamstop_radius_mm, beamstop_arm_width=spec.beamstop_radius_mm * 0.5,
                              beamstop_arm_angle=float(rng.uniform(0.0, 360.0)), hot_pixels=spec.n_hot_pixels,
                              dead_pixels=spec.n_dead_pixels, psf_fwhm=spec.psf_fwhm_px,
                              read_noise=spec.read_noise_photons)
    window = Window.full(geometry.shape) if whole_detector else quadrant_window(geometry, spec.quadrant)
    ice = IceRings(spec.ice_um, spec.ice_spots_per_ring, spec.ice_spot_width_deg, spec.ice_smooth_fraction,
                   seed=int(rng.integers(2 ** 31))) if spec.ice_um > 0 else None
    scene = dict(lattices=lattices, structure=structure, b_factor=spec.b_factor, background=background,
                 photons=spec.photons, background_scale=spec.background_scale, ice=ice, effects=effects)
    if reference:
        image = simulate_image(geometry, beam, rng, window=window, device=device, **scene)
        origin = (0, 0)
    else:
        image = simulate_window(geometry, beam, rng, window, threshold=TRAINING_THRESHOLD, **scene)
        origin = (window.slow_start, window.fast_start)
    counts = recorded_counts(image.pixels, image.mask)
    quadrant = conditioning.condition(counts, image.mask, geometry, quadrants=spec.quadrant, origin=origin)[0]
    conditioned = np.minimum(quadrant, CONDITIONED_MAX).astype(np.uint16)
    raw = None
    if keep_raw:
        raw = image._replace(pixels=counts) if reference else on_whole_detector(image._replace(pixels=counts),
                                                                                geometry.shape)
    return TrainingImage(conditioned, spec.label_columns(), header_geometry(spec), raw)


def recorded_counts(pixels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Integer counts as a detector writes them (int32): rounded, ≥ 0 where valid, −1 in masked gaps."""
    counts = np.rint(pixels).astype(np.int32)
    np.maximum(counts, 0, out=counts, where=~mask)
    return counts

