"""Physics-based simulation of diffraction images (kinematic theory, nanoBragg's physics).

Building blocks, from the crystal to the recorded image:

* :class:`Lattice` (crystal.py): oriented cell, Na×Nb×Nc cells per mosaic domain, lattice-transform
  shape, mosaic domains, number of domains in the crystal; :func:`split_lattice` for multi-lattice
  crystals;
* :class:`StructureFactors` (structure_factors.py): dense P1 |F|² table; from cctbx
  (structures.py, cctbx imported lazily): :func:`random_structure_factors`,
  :func:`structure_factors_from_model`; disk cache :class:`StructurePool` (pool.py);
* :class:`Beam` (beam.py), :class:`DetectorFrame` and :class:`Window` (frame.py);
* :func:`render_bragg` (numba CPU or numba-cuda GPU kernels), :func:`render_background`
  (amorphous materials), :func:`apply_detector_effects` (noise, beamstop, gaps, hot/dead pixels,
  PSF), or all at once :func:`simulate_image` (:func:`simulate_window`: one window's pixels alone,
  with the reflection-driven kernel of reflections.py where it is the cheaper);
* labels.py: the resolution ↔ B-factor relation of the training labels.
"""
from .background import MATERIALS, PARASITIC_MATERIALS, Material, material, render_background, scattering_curve
from .beam import R_E_SQUARED_M2, Beam, fluence_from_photons
from .bragg import FAST_PATH_THRESHOLD, lattice_cuts, render_bragg
from .crystal import (LATTICE_SHAPES, Lattice, axis_angle_rotation, blocks_in_crystal, cells_per_domain,
                      misset_rotation, mosaic_rotations, random_rotation, split_lattice)
from .effects import GAP_VALUE, HOT_PIXEL_VALUE, DetectorEffects, RecordedImage, apply_detector_effects
from .frame import DetectorFrame, Window, quadrant_window
from .labels import b_factor_from_resolution, resolution_from_b_factor
from .pool import StructurePool, cache_folder, model_structure_factors
from .simulate import SimulatedImage, simulate_image, simulate_window
from .structure_factors import StructureFactors
from .structures import PAPER_SPACE_GROUPS, random_structure_factors, structure_factors_from_model

__all__ = [
    "Beam", "DetectorEffects", "DetectorFrame", "FAST_PATH_THRESHOLD", "GAP_VALUE", "HOT_PIXEL_VALUE",
    "LATTICE_SHAPES", "Lattice", "MATERIALS", "Material", "PAPER_SPACE_GROUPS", "PARASITIC_MATERIALS",
    "R_E_SQUARED_M2", "RecordedImage", "SimulatedImage", "StructureFactors", "StructurePool", "Window",
    "apply_detector_effects", "axis_angle_rotation", "b_factor_from_resolution", "blocks_in_crystal",
    "cache_folder", "cells_per_domain", "fluence_from_photons", "lattice_cuts", "material", "misset_rotation",
    "model_structure_factors", "mosaic_rotations", "quadrant_window", "random_rotation", "random_structure_factors",
    "render_background", "render_bragg", "resolution_from_b_factor", "scattering_curve", "simulate_image",
    "simulate_window",
    "split_lattice", "structure_factors_from_model",
]
