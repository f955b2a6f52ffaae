"""What a predictor plugin is: a name, the fields it adds to each result, the input it needs, and
a batched ``predict``."""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..io.frame import Frame
from ..io.geometry import Geometry

NEEDS = ("quadrants", "frame")


@dataclasses.dataclass
class PredictionInput:
    """One image handed to predictors: its geometry, its conditioned quadrants (float32
    (Q, 512, 512), quadrant numbers in ``quadrant_indices``) and — for predictors that need it —
    the raw frame — the run's settings (``multilattice_threshold``: the probability above which
    an image counts as multi-lattice), and ``shared``: one dict per image that every predictor's
    input for that image holds, where predictors keep work others reuse (the frame's spots…)."""

    geometry: Geometry
    quadrants: Optional[np.ndarray]
    quadrant_indices: Tuple[int, ...]
    frame: Optional[Frame] = None
    settings: Dict[str, Any] = dataclasses.field(default_factory=dict)
    shared: Dict[str, Any] = dataclasses.field(default_factory=dict)


class PredictorPlugin:
    """Base class of predictors. Subclasses set ``name``, ``description``, ``fields``, ``needs`` and
    ``quadrants`` and implement :meth:`predict`; heavy set-up (loading a network) belongs in :meth:`setup`,
    which is called once, before the first batch, with the device chosen by the user."""

    name: str = ""
    description: str = ""
    fields: Tuple[str, ...] = ()
    needs: str = "quadrants"
    #: Quadrants per image it is given unless the user chooses (``quadrants=1`` or ``4``): 4 (all)
    #: or 1 (quadrant 0). The one place each predictor's default is set (see the built-in ones).
    quadrants: int = 4
    #: The fields a model makes, which its card's "experimental" notice applies to (None: all).
    model_fields: Optional[Tuple[str, ...]] = None

    def setup(self, device: str) -> None:
        """Prepare for predictions on ``device`` ("cpu" or "cuda"); default: nothing to do."""

    def problem(self, geometry: Geometry, quadrant_indices: Tuple[int, ...]) -> Optional[str]:
        """Why this predictor cannot analyse an image of this geometry (one line), or None; asked
        before the image is conditioned, and the image's result then carries it as its error."""
        return None

    def experimental(self) -> Optional[str]:
        """Why this predictor's numbers cannot yet be relied on (its model card's limitations begin
        "experimental:"), or None; asked after :meth:`setup`."""
        return None

    def predict(self, batch: Sequence[PredictionInput]) -> List[Dict[str, object]]:  # pragma: no cover
        """One dict per input, with (at least) this predictor's ``fields``."""
        raise NotImplementedError
