"""Example xrais plugin: an ice-ring detector working on the raw frame."""
from __future__ import annotations

import numpy as np

from xrais.plugins import PredictorPlugin, hookimpl

#: Strongest hexagonal-ice powder rings (Å).
ICE_RINGS_A = (3.897, 3.669, 3.441, 2.671, 2.249)
THRESHOLD = 0.2


class IceRings(PredictorPlugin):
    name = "ice_rings"
    description = "ice-ring score from the raw frame (median in ice annuli vs neighbouring annuli)"
    fields = ("ice_ring_score", "ice_rings")
    needs = "frame"

    def predict(self, batch):
        return [self._one(item.frame) for item in batch]

    def _one(self, frame):
        g = frame.geometry
        ss, ff = np.indices(frame.pixels.shape, sparse=True)
        radius = np.hypot(ff + 0.5 - g.beam_centre[0], ss + 0.5 - g.beam_centre[1])
        inverse_d = g.inverse_d_at(radius)
        valid = ~frame.mask
        score = 0.0
        for d in ICE_RINGS_A:
            centre, half = 1.0 / d, 0.004
            ring = valid & (np.abs(inverse_d - centre) < half)
            beside = valid & (np.abs(inverse_d - centre) > 2 * half) & (np.abs(inverse_d - centre) < 4 * half)
            if ring.sum() < 100 or beside.sum() < 100:
                continue
            around = float(np.median(frame.pixels[beside]))
            if around > 0:
                score = max(score, float(np.median(frame.pixels[ring])) / around - 1.0)
        return {"ice_ring_score": round(score, 4), "ice_rings": bool(score > THRESHOLD)}


@hookimpl
def xrais_predictors():
    return [IceRings()]
