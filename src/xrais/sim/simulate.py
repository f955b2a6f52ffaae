"""One simulated image: Bragg scattering of zero or more lattices + amorphous background + detector."""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import numpy as np

from ..io.geometry import Geometry
from .background import IceRings, Layer, render_background, render_ice
from .beam import Beam
from .bragg import FAST_PATH_THRESHOLD, render_bragg, render_bragg_window
from .crystal import as_lattice_list
from .effects import DetectorEffects, record_window
from .frame import Window, as_detector_frame, resolve_window
from .structure_factors import StructureFactors


class SimulatedImage(NamedTuple):
    """pixels: recorded image, float32 (slow, fast); mask: True where invalid; expected: noise-free
    photons (Bragg + scaled background), float32; window: the rendered pixels (zero elsewhere).
    From :func:`simulate_window`, the three arrays hold the window's pixels only."""

    pixels: np.ndarray
    mask: np.ndarray
    expected: np.ndarray
    window: Window


def simulate_image(geometry: Geometry, beam: Beam, rng: np.random.Generator, *, lattices=None,
                   structure: Optional[StructureFactors] = None, b_factor: float = 0.0,
                   background: Sequence[Layer] = (), photons: Optional[float] = None,
                   background_scale: float = 1.0, ice: Optional[IceRings] = None,
                   effects: DetectorEffects = DetectorEffects(), window=None,
                   oversample: int = 1, path: str = "fast", device: str = "auto",
                   threshold: float = FAST_PATH_THRESHOLD) -> SimulatedImage:
    """Render and record one image on the detector of ``geometry``.

    lattices: a :class:`~xrais.sim.crystal.Lattice`, several (multi-lattice), or None for a blank
    image (background, noise and masks only); structure: their |F|² table; b_factor: Å²;
    background: (material, thickness mm) layers, scaled by ``background_scale``; photons: incident
    photons through the background layers (required with layers); ice: crystalline ice's rings
    (:class:`~xrais.sim.background.IceRings`, smooth or spotty), scaled as the background; effects: noise and detector
    defects; window: pixels to render (e.g. :func:`~xrais.sim.frame.quadrant_window`), None for the
    whole detector; oversample, path, device, threshold: see :func:`~xrais.sim.bragg.render_bragg`.
    """
    window = resolve_window(window, geometry.shape)
    part = simulate_window(geometry, beam, rng, window, lattices=lattices, structure=structure, b_factor=b_factor,
                           background=background, photons=photons, background_scale=background_scale, ice=ice,
                           effects=effects, oversample=oversample, path=path, device=device, threshold=threshold)
    return on_whole_detector(part, geometry.shape)


def simulate_window(geometry: Geometry, beam: Beam, rng: np.random.Generator, window, *, lattices=None,
                    structure: Optional[StructureFactors] = None, b_factor: float = 0.0,
                    background: Sequence[Layer] = (), photons: Optional[float] = None,
                    background_scale: float = 1.0, ice: Optional[IceRings] = None,
                    effects: DetectorEffects = DetectorEffects(),
                    oversample: int = 1, path: str = "reflections", device: str = "auto",
                    threshold: float = FAST_PATH_THRESHOLD) -> SimulatedImage:
    """:func:`simulate_image` of the pixels of ``window`` only: pixels, mask and expected have the
    window's shape. path "reflections" (the default) renders the Bragg scattering of the window
    alone with the cheaper CPU kernel for the crystal (:func:`~xrais.sim.bragg.render_bragg_window`),
    so that no array of the whole detector is made; the other paths and ``device`` are
    :func:`~xrais.sim.bragg.render_bragg`'s. Other arguments as :func:`simulate_image`."""
    window = resolve_window(window, geometry.shape)
    frame = as_detector_frame(geometry)
    if lattices is not None:
        if structure is None:
            raise ValueError("lattices need a structure-factor table")
        if path == "reflections":
            expected = render_bragg_window(as_lattice_list(lattices), structure, beam, frame, window,
                                           b_factor=b_factor, oversample=oversample, threshold=threshold)
        else:
            expected = render_bragg(lattices, structure, beam, geometry, b_factor=b_factor, window=window,
                                    oversample=oversample, path=path, device=device,
                                    threshold=threshold)[window.slices]
    else:
        expected = np.zeros(window.shape, dtype=np.float32)
    if (background or ice is not None) and photons is None:
        raise ValueError("background layers and ice need the number of incident photons")
    if background:
        expected += np.float32(background_scale) * render_background(background, beam, frame, photons=photons,
                                                                     window=window, window_only=True)
    if ice is not None and ice.thickness_um > 0:
        expected += np.float32(background_scale) * render_ice(ice, beam, frame, photons=photons, window=window)
    recorded = record_window(expected, geometry, window, effects, rng)
    return SimulatedImage(recorded.pixels, recorded.mask, expected, window)


def on_whole_detector(image: SimulatedImage, shape) -> SimulatedImage:
    """A window's :class:`SimulatedImage` placed on a whole detector of ``shape``: 0 and masked
    outside the window."""
    pixels = np.zeros(shape, dtype=image.pixels.dtype)
    mask = np.ones(shape, dtype=bool)
    expected = np.zeros(shape, dtype=image.expected.dtype)
    rows, columns = image.window.slices
    pixels[rows, columns] = image.pixels
    mask[rows, columns] = image.mask
    expected[rows, columns] = image.expected
    return SimulatedImage(pixels, mask, expected, image.window)
