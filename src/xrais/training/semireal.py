"""Semi-real two-lattice images: a measured frame plus a copy of it turned about the beam.

A rotation of the crystal by θ about the beam axis maps the Ewald sphere onto itself: every
reflection stays in diffracting condition, and its spot on a flat detector normal to the beam turns
by θ about the beam centre. So a measured frame of one crystal plus a copy of itself turned by θ
about the beam centre, in the detector plane, is the frame of two crystals θ apart — with real
spots, real background, real noise and the real detector — a physically valid second lattice
whose misorientation is known exactly. Made this way:

* the copy is taken nearest-pixel (each output pixel reads the input pixel that the inverse
  rotation brings it to);
* binomially thinned to a weight w of 0.3–1 (each recorded photon kept with probability w: the
  second crystal diffracts w times as strongly, with Poisson statistics intact);
* where the copy reads a masked pixel or falls outside the detector, it adds nothing (the second
  crystal's spots are lost there, as in a gap); the frame's own masked pixels stay masked.

Approximations: the polarization factor and the beam-stop shadow turn with the copy (both smooth or
masked), and a detector tilted from the beam, or with non-square pixels, would need the full
geometry (:func:`turned_copy` refuses neither: use frames of detectors normal to the beam).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np

from ..io.frame import Frame


def turned_copy(frame: Frame, angle_deg: float, weight: float, rng: np.random.Generator,
                gain: float = 1.0) -> Frame:
    """``frame`` plus a copy of it turned by ``angle_deg`` about its beam centre in the detector
    plane (counter-clockwise from the fast towards the slow axis), thinned to ``weight`` (0–1): a
    frame of two lattices ``angle_deg`` apart (module docstring). ``gain``: counts per photon, so
    that the thinning acts on photons (the CS-PAD's ADU: 25). Pixels are returned as float64; the
    mask is the frame's; metadata records the construction."""
    if not 0.0 < weight <= 1.0:
        raise ValueError(f"weight must be in (0, 1], got {weight}")
    pixels = np.asarray(frame.pixels, dtype=np.float64)
    slow_size, fast_size = pixels.shape
    beam_fast, beam_slow = frame.geometry.beam_centre
    # output pixel centre (fast + 0.5, slow + 0.5) ← input position turned back by the angle
    fast, slow = np.meshgrid(np.arange(fast_size) + 0.5 - beam_fast, np.arange(slow_size) + 0.5 - beam_slow)
    cos, sin = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    source_fast = np.floor(cos * fast + sin * slow + beam_fast).astype(np.int64)
    source_slow = np.floor(-sin * fast + cos * slow + beam_slow).astype(np.int64)
    inside = (source_fast >= 0) & (source_fast < fast_size) & (source_slow >= 0) & (source_slow < slow_size)
    copy = np.zeros_like(pixels)
    values = pixels[source_slow[inside], source_fast[inside]]
    valid = ~frame.mask[source_slow[inside], source_fast[inside]]
    photons = np.where(valid, np.rint(np.clip(values, 0.0, None) / gain), 0).astype(np.int64)
    copy[inside] = rng.binomial(photons, weight) * gain
    combined = np.where(frame.mask, pixels, pixels + copy)
    metadata = dict(frame.metadata, semireal=dict(angle_deg=float(angle_deg), weight=float(weight),
                                                  source=frame.source))
    return dataclasses.replace(frame, pixels=combined, metadata=metadata,
                               source=f"{frame.source} + copy turned {angle_deg:g}°")


def semireal_pairs(frame: Frame, angles_deg, weights, seed: int = 0, gain: Optional[float] = None):
    """(angle, weight, frame) for every angle × weight: :func:`turned_copy` of ``frame``, each
    thinning drawn from its own generator (seed, angle index, weight index); ``gain`` None: the
    detector catalogue's for the frame's detector."""
    from ..io.detectors import noise_for

    gain = noise_for(frame.geometry.detector, frame.geometry.shape)[0] if gain is None else gain
    for i, angle in enumerate(angles_deg):
        for j, weight in enumerate(weights):
            rng = np.random.default_rng([seed, i, j])
            yield angle, weight, turned_copy(frame, angle, weight, rng, gain)
