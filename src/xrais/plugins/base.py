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
    an image counts as multi-lattice; ``known_cell`` and ``known_space_group``: the crystal's cell
    when the user knows it, for indexing), and ``shared``: one dict per image that every predictor's
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

    #: For ``needs = "quadrants"``: whether it also reads the whole conditioned frame that a detector
    #: not facing the beam (a swung one, which has no beam-centred quadrants) is given as instead
    #: (:func:`xrais.conditioning.condition_whole`, one array in ``quadrants``).
    reads_whole_frames: bool = False

    def problem(self, geometry: Geometry, quadrant_indices: Tuple[int, ...]) -> Optional[str]:
        """Why this predictor cannot analyse an image of this geometry (one line), or None; asked
        before the image is conditioned, and the image's result then carries it as its error. The
        default: a quadrant predictor that does not read whole frames cannot analyse a swung detector."""
        if self.needs == "quadrants" and not geometry.faces_beam and not self.reads_whole_frames:
            return swung_problem(geometry, self.name)
        return None

    def experimental(self) -> Optional[str]:
        """Why this predictor's numbers cannot yet be relied on (its model card's limitations begin
        "experimental:"), or None; asked after :meth:`setup`."""
        return None

    def predict(self, batch: Sequence[PredictionInput]) -> List[Dict[str, object]]:  # pragma: no cover
        """One dict per input, with (at least) this predictor's ``fields``."""
        raise NotImplementedError


def swung_problem(geometry: Geometry, name: str) -> str:
    """The one-line reason a quadrant predictor gives for a detector that does not face the beam."""
    return (f"detector tilted {geometry.tilt_deg:.1f}° to the beam (a 2θ arm): the {name} predictor reads "
            "beam-centred quadrants, which a swung detector does not have")
