"""xrais's own predictors, registered through the ``xrais`` entry-point group like any plugin:

* ``resolution``: the shipped geometry-aware ResNet → per-quadrant 1/d, d, B;
* ``multilattice``: the shipped ResNet classifier → probability of several lattices;
* ``spots``: the classical baseline (dispersion-threshold spot finding, as DIALS) → spot count and
  a spot-based resolution estimate.
"""
from __future__ import annotations

import threading
from typing import List, Optional, Sequence

import numpy as np

from .base import PredictionInput, PredictorPlugin
from .hookspecs import hookimpl

#: Below this 1/d (Å⁻¹) an image (or quadrant) is reported as "no diffraction" (d > 20 Å).
DIFFRACTION_THRESHOLD_INVERSE_D = 1.0 / 20.0
#: Default multi-lattice decision threshold on the probability (``multilattice_threshold``).
MULTILATTICE_THRESHOLD = 0.5


def _d_or_none(inverse_d: float) -> Optional[float]:
    return None if inverse_d < DIFFRACTION_THRESHOLD_INVERSE_D else round(float(1.0 / inverse_d), 4)


class _NetworkPredictor(PredictorPlugin):
    """A predictor backed by a registry model (loaded once, on first use, thread-safely)."""

    model_name = ""

    def __init__(self, model_name: Optional[str] = None):
        self.model_name = model_name or self.model_name
        self._model = None
        self._lock = threading.Lock()
        self._device = "auto"

    def setup(self, device: str) -> None:
        with self._lock:
            if self._model is None or str(self._model.device) != str(device):
                from .. import models

                self._model = models.load(self.model_name, device=device)

    def experimental(self) -> Optional[str]:
        from ..models.registry import experimental_notice

        return experimental_notice(self.model.card)

    @property
    def model(self):
        if self._model is None:
            self.setup(self._device)
        return self._model

    def _per_quadrant(self, batch: Sequence[PredictionInput]) -> List[np.ndarray]:
        """Model outputs for every quadrant of every image, split back per image."""
        stacked = np.concatenate([item.quadrants for item in batch])
        geometries = [item.geometry for item in batch for _ in item.quadrant_indices]
        values = np.asarray(self.model.predict(stacked, geometries), dtype=float)
        return np.split(values, np.cumsum([len(item.quadrant_indices) for item in batch])[:-1])


class ResolutionPredictor(_NetworkPredictor):
    name = "resolution"
    description = "resolution (1/d, d, B) per quadrant from the shipped geometry-aware ResNet"
    fields = ("d_min", "d_mean", "d_quadrants", "inverse_d_quadrants", "inverse_d_spread", "b_factor", "diffraction")
    model_name = "resolution"
    #: All four, as in the paper's resolution results: d_min is the best quadrant's, and the
    #: spread between quadrants is an uncertainty.
    quadrants = 4

    def predict(self, batch):
        from ..models import b_factor_from_inverse_d

        results = []
        for values in self._per_quadrant(batch):
            values = np.clip(values, 0.0, None)
            best = float(values.max())
            mean = float(values.mean())
            diffraction = best >= DIFFRACTION_THRESHOLD_INVERSE_D
            results.append({
                "d_min": _d_or_none(best),
                "d_mean": _d_or_none(mean) if diffraction else None,
                "d_quadrants": [_d_or_none(v) for v in values],
                "inverse_d_quadrants": [round(float(v), 5) for v in values],
                "inverse_d_spread": round(float(values.std()), 5),
                "b_factor": round(float(b_factor_from_inverse_d(best)), 2) if diffraction else None,
                "diffraction": bool(diffraction),
            })
        return results


class MultilatticePredictor(_NetworkPredictor):
    name = "multilattice"
    description = "probability that the image holds several lattices, from the shipped ResNet classifier"
    fields = ("p_multilattice", "p_multilattice_quadrants", "multilattice")
    model_name = "multilattice"
    #: Quadrant 0 alone, as the paper and the model card (trained and evaluated on one quadrant per
    #: image); the mean over four quadrants is another, untested, number.
    quadrants = 1

    def predict(self, batch):
        results = []
        for item, values in zip(batch, self._per_quadrant(batch)):
            p = float(values.mean())
            results.append({
                "p_multilattice": round(p, 4),
                "p_multilattice_quadrants": [round(float(v), 4) for v in values],
                "multilattice": bool(p > item.settings.get("multilattice_threshold", MULTILATTICE_THRESHOLD)),
            })
        return results


class SpotsPredictor(PredictorPlugin):
    name = "spots"
    description = "classical baseline: dispersion-threshold spot finding (as DIALS) and a spot-based resolution"
    fields = ("n_spots", "n_spots_no_ice", "d_min_spots")
    needs = "frame"

    def predict(self, batch):
        from ..spotfinder import analyse_image

        results = []
        for item in batch:
            analysis = analyse_image(item.frame.pixels, item.frame.mask, item.frame.geometry)
            results.append({
                "n_spots": analysis.n_spots,
                "n_spots_no_ice": analysis.n_spots_no_ice,
                "d_min_spots": None if analysis.d_min is None else round(analysis.d_min, 4),
            })
        return results


@hookimpl
def xrais_predictors():
    return [ResolutionPredictor(), MultilatticePredictor(), SpotsPredictor()]
