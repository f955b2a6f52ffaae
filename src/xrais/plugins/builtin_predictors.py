"""xrais's own predictors, registered through the ``xrais`` entry-point group like any plugin:

* ``resolution``: the shipped shell-profile network (:mod:`xrais.models.profile`) → the image's 1/d
  with its σ (its analysable quadrants pooled into one profile), flagged undetermined when σ is
  too large, and each quadrant's own 1/d, d, B (``ResolutionPredictor("resolution_resnet")``
  serves the paper's ResNet, also shipped, instead);
* ``multilattice``: the shipped lattice-evidence network → probability of several lattices, from
  how well one lattice indexes the frame's spots (:mod:`xrais.lattice`); none when no lattice
  indexes;
* ``multilattice_resnet``: the paper's ResNet classifier on the conditioned quadrant, kept for
  comparison;
* ``spots``: the classical baseline (dispersion-threshold spot finding, as DIALS) → spot count and
  a spot-based resolution estimate;
* ``decay``: the classical resolution peer from the physics of the label: the fall of the spots'
  intensity with 1/d² (a per-image Wilson fit, :mod:`xrais.decay`) → B with its error, and the
  resolution B = 4·d² + 12 gives;
* ``indexing``: the classical multi-lattice baseline (the spots indexed by a 1-D FFT basis search,
  or with the run's known cell, lattice after lattice, :mod:`xrais.lattice`) → lattices indexed, the
  fraction of spots the first indexes, its cell, the further lattices' misorientation.

``spots``, ``decay``, ``indexing`` and ``multilattice`` find one image's spots once, and index them once, between
them (:func:`frame_spots`, :func:`frame_indexing`).
"""
from __future__ import annotations

import functools
import threading
from typing import List, Optional, Sequence

import numpy as np

from .base import PredictionInput, PredictorPlugin
from .hookspecs import hookimpl

#: Below this 1/d (Å⁻¹) an image (or quadrant) is reported as "no diffraction" (d > 20 Å).
DIFFRACTION_THRESHOLD_INVERSE_D = 1.0 / 20.0
#: Default multi-lattice decision threshold on the probability (``multilattice_threshold``).
MULTILATTICE_THRESHOLD = 0.5


#: A quadrant holds a Bragg spot only if at least this many of its conditioned pixels stand
#: :data:`BRAGG_MARGIN` above its typical value (hot and overloaded pixels, √ ≥ 255, left out).
MIN_BRAGG_PIXELS = 3
#: Conditioned (√ photon) units above the median of a quadrant's non-zero pixels: background
#: Poisson noise of any level does not reach it (4·10⁻¹⁴ of PILATUS 6M pixels at 20 photons).
BRAGG_MARGIN = 3


def bragg_pixel_count(quadrant: np.ndarray) -> int:
    """Conditioned pixels of one quadrant standing :data:`BRAGG_MARGIN` or more above the median
    of its non-zero pixels (values ≥ 255, from hot or overloaded pixels, not counted).

    Pure Poisson noise, from 0.05 to 50 photons per pixel, has none on a whole PILATUS 6M frame;
    the blank frames of the real thaumatin scan 9–111 per quadrant, the weakest real image here
    (EIGER2, 1.1 % transmission) 5–8, frames with diffraction hundreds to tens of thousands.
    """
    from ..models.profile import value_histogram

    histogram = value_histogram(quadrant)
    nonzero = histogram[1:255]
    if nonzero.sum() == 0:
        return 0
    median = 1 + int(np.searchsorted(np.cumsum(nonzero), 0.5 * nonzero.sum()))
    return int(histogram[min(255, median + BRAGG_MARGIN):255].sum())


def _d_or_none(inverse_d: float) -> Optional[float]:
    if inverse_d != inverse_d:  # a quadrant left out (NaN)
        return None
    return None if inverse_d < DIFFRACTION_THRESHOLD_INVERSE_D else round(float(1.0 / inverse_d), 4)


def _rounded(value: float, digits: int) -> Optional[float]:
    return None if value != value else round(float(value), digits)


def _extent_text(extent) -> str:
    """A quadrant's image extent (slow, fast) as fast×slow, the way image sizes are written."""
    return f"{extent[1]}×{extent[0]}"


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

    @property
    def min_quadrant_extent(self) -> int:
        """Downsampled pixels of image data, each way, a quadrant must hold for the model to read it:
        its card's ``min_quadrant_extent``, the smallest it has been shown to read (0 if the card does
        not say). On less (a small array, a beam near the edge) a network answers for the zero
        padding: Poisson noise of 100×100 pixels read as d_min 4.7 Å. The ResNet cards say 320 (the
        resolution training set's smallest is a PILATUS 2M quadrant with the beam 12 mm off centre,
        334); the shell-profile card 60: it reads simulated PILATUS 300K and EIGER 1M quadrants of 170
        pixels and more, and PILATUS 100K quadrants of 60–170, as well as the larger detectors' (its
        card's evidence)."""
        return int(self.model.card.get("training", {}).get("min_quadrant_extent", 0))

    def analysable(self, geometry, quadrant: int) -> bool:
        """Whether a quadrant of an image of this geometry holds enough image data for the model."""
        from ..conditioning import quadrant_extent

        return min(quadrant_extent(geometry, quadrant)) >= self.min_quadrant_extent

    @property
    def reads_whole_frames(self) -> bool:
        """A shell-profile model reads a whole frame's shells (a swung detector's); a ResNet cannot."""
        return self.model.family == "profile"

    def problem(self, geometry, quadrant_indices):
        if not geometry.faces_beam:
            return super().problem(geometry, quadrant_indices)
        if any(self.analysable(geometry, q) for q in quadrant_indices):
            return None
        from ..conditioning import quadrant_extent

        largest = max((quadrant_extent(geometry, q) for q in quadrant_indices), key=min)
        return (f"image too small to analyse: {geometry.shape[1]}×{geometry.shape[0]} pixels with the beam at "
                f"({geometry.beam_centre[0]:g}, {geometry.beam_centre[1]:g}) leave at most {_extent_text(largest)} "
                f"pixels of image in quadrant{'s' if len(quadrant_indices) > 1 else ''} "
                f"{', '.join(map(str, quadrant_indices))} after the {geometry.downsample}×{geometry.downsample} "
                f"max-pool; "
                f"the {self.name} model needs {self.min_quadrant_extent}×{self.min_quadrant_extent}")

    def experimental(self) -> Optional[str]:
        from ..models.registry import experimental_notice

        return experimental_notice(self.model.card)

    @property
    def model(self):
        if self._model is None:
            self.setup(self._device)
        return self._model

    def _per_quadrant(self, batch: Sequence[PredictionInput]) -> List[np.ndarray]:
        """Model outputs for every quadrant of every image, split back per image; NaN for the
        quadrants with too little image data (see :attr:`min_quadrant_extent`)."""
        stacked = np.concatenate([item.quadrants for item in batch])
        geometries = [item.geometry for item in batch for _ in item.quadrant_indices]
        values = np.asarray(self.model.predict(stacked, geometries), dtype=float)
        usable = np.array([self.analysable(item.geometry, q) for item in batch for q in item.quadrant_indices])
        values[~usable] = np.nan
        return np.split(values, np.cumsum([len(item.quadrant_indices) for item in batch])[:-1])


class ResolutionPredictor(_NetworkPredictor):
    name = "resolution"
    description = "resolution (1/d, d, B, with σ) of each image and quadrant from the shipped resolution model"
    fields = ("d_min", "d_mean", "d_quadrants", "inverse_d_quadrants", "inverse_d_spread", "b_factor", "diffraction",
              "inverse_d", "inverse_d_sigma", "resolution_undetermined")
    model_name = "resolution"
    #: All four, as in the paper's resolution results: a shell-profile model pools them into one
    #: profile (d_min is its estimate); for a ResNet model d_min is the best quadrant's, and the
    #: spread between quadrants is an uncertainty.
    quadrants = 4

    @property
    def undetermined_sigma(self) -> float:
        """σ of 1/d (Å⁻¹) above which a shell-profile model's estimate is reported as undetermined
        (``resolution_undetermined``): its card's ``undetermined_sigma``, chosen on xrais's held-out
        simulations (see the model card), else :data:`xrais.models.profile.UNDETERMINED_SIGMA`."""
        from ..models.profile import undetermined_sigma

        return undetermined_sigma(self.model.card)

    def predict(self, batch):
        if self.model.family == "profile":
            return [self._profile_result(item) for item in batch]
        results = []
        for item, values in zip(batch, self._per_quadrant(batch)):
            values = np.clip(values, 0.0, None)
            values[_spotless(item.quadrants) & ~np.isnan(values)] = 0.0
            best = float(np.nanmax(values))
            results.append(_resolution_result(values, best, None, self.undetermined_sigma))
        return results

    def _profile_result(self, item: PredictionInput) -> dict:
        """One image: the pooled profile of its analysable quadrants, and each quadrant's own (a
        swung detector: the profile of its whole frame, no quadrants)."""
        if not item.geometry.faces_beam:
            return self._whole_result(item)
        usable = np.array([self.analysable(item.geometry, q) for q in item.quadrant_indices])
        (means, _), pooled = self.model.predict_image(item.quadrants, item.geometry, pool=usable)
        values = np.clip(np.asarray(means, dtype=float), 0.0, None)
        values[~usable] = np.nan
        spotless = _spotless(item.quadrants)
        values[spotless & usable] = 0.0
        if (spotless | ~usable).all():
            return _resolution_result(values, 0.0, None, self.undetermined_sigma)
        mean, sigma = pooled
        return _resolution_result(values, max(0.0, float(mean[0])), float(sigma[0]), self.undetermined_sigma)

    def _whole_result(self, item: PredictionInput) -> dict:
        """A detector that does not face the beam: the profile of the whole conditioned frame
        (``item.quadrants[0]``), its pixels' 1/d from the geometry; no per-quadrant values. Reported
        undetermined whatever its σ: no swung frame of known resolution has yet shown the model right
        on them (its card), so the number is given as a hint, not as a determined answer."""
        from ..conditioning import whole_inverse_d

        whole = item.quadrants[0]
        values = np.full(len(item.quadrant_indices), np.nan)
        if bragg_pixel_count(whole) < MIN_BRAGG_PIXELS:
            return _resolution_result(values, 0.0, None, self.undetermined_sigma)
        mean, sigma = self.model.predict_whole(whole, whole_inverse_d(item.geometry), item.geometry)
        return _resolution_result(values, max(0.0, mean), sigma, 0.0)


def _spotless(quadrants: np.ndarray) -> np.ndarray:
    """Per quadrant: whether it holds no spot above its noise (:func:`bragg_pixel_count`). Such a
    quadrant shows no diffraction, whatever a network reads into it (none was shown near-empty frames)."""
    return np.array([bragg_pixel_count(q) < MIN_BRAGG_PIXELS for q in quadrants])


def _resolution_result(values: np.ndarray, inverse_d: float, sigma: Optional[float], limit: float) -> dict:
    """The resolution predictor's fields from per-quadrant 1/d ``values`` (NaN: left out), the
    image's 1/d (Å⁻¹) and its σ (None: the model gives none)."""
    from ..models import b_factor_from_inverse_d

    diffraction = inverse_d >= DIFFRACTION_THRESHOLD_INVERSE_D
    read = values[np.isfinite(values)]  # none for a swung detector's whole frame
    mean = float(read.mean()) if len(read) else inverse_d
    return {
        "d_min": _d_or_none(inverse_d),
        "d_mean": _d_or_none(mean) if diffraction else None,
        "d_quadrants": [_d_or_none(v) for v in values],
        "inverse_d_quadrants": [_rounded(v, 5) for v in values],
        "inverse_d_spread": round(float(read.std()), 5) if len(read) else None,
        "b_factor": round(float(b_factor_from_inverse_d(inverse_d)), 2) if diffraction else None,
        "diffraction": bool(diffraction),
        "inverse_d": round(float(inverse_d), 5),
        "inverse_d_sigma": None if sigma is None or not diffraction else round(sigma, 5),
        "resolution_undetermined": None if sigma is None else bool(diffraction and sigma > limit),
    }


class MultilatticeResnetPredictor(_NetworkPredictor):
    name = "multilattice_resnet"
    description = "probability of several lattices from the paper's ResNet classifier on the conditioned quadrant"
    fields = ("p_multilattice_resnet", "p_multilattice_resnet_quadrants", "multilattice_resnet")
    model_name = "multilattice_resnet"
    #: Quadrant 0 alone, as the paper and the model card (trained and evaluated on one quadrant per
    #: image); the mean over four quadrants is another, untested, number.
    quadrants = 1

    def predict(self, batch):
        results = []
        for item, values in zip(batch, self._per_quadrant(batch)):
            p = float(np.nanmean(values))
            results.append({
                "p_multilattice_resnet": round(p, 4),
                "p_multilattice_resnet_quadrants": [_rounded(v, 4) for v in values],
                "multilattice_resnet": bool(p > _threshold(item)),
            })
        return results


def _threshold(item: PredictionInput) -> float:
    return item.settings.get("multilattice_threshold", MULTILATTICE_THRESHOLD)


def frame_spots(item: PredictionInput):
    """The frame's dispersion-threshold spots (:func:`xrais.spotfinder.find_spots`, default
    settings), found once per image for every predictor that asks."""
    if "spots" not in item.shared:
        from ..spotfinder import find_spots

        item.shared["spots"] = find_spots(item.frame.pixels, item.frame.mask, item.frame.geometry)
    return item.shared["spots"]


def frame_indexing(item: PredictionInput):
    """The frame's lattices (:func:`xrais.lattice.index_lattices` of :func:`frame_spots` off the ice
    rings, the geometry refined with the first), indexed once per image for every predictor that asks."""
    if "indexing" not in item.shared:
        from ..lattice import index_spots

        item.shared["indexing"] = index_spots(frame_spots(item), item.frame.geometry, item_indexing_settings(item))
    return item.shared["indexing"]


def item_indexing_settings(item: PredictionInput):
    """The indexing settings of an image (:func:`indexing_settings`), with the run's known cell
    (``known_cell``, ``known_space_group`` in its settings) when it gives one."""
    return indexing_settings(item.settings.get("known_cell"), item.settings.get("known_space_group"))


@functools.lru_cache(maxsize=8)
def indexing_settings(known_cell: Optional[tuple] = None, known_space_group: Optional[str] = None):
    """The indexing settings of the predictors (:func:`frame_indexing`), which
    :func:`no_lattice_reason` explains a frame's missing lattice by: the defaults, with the known
    cell (a, b, c Å, α, β, γ °) and space group when given."""
    from ..lattice import IndexingSettings

    return IndexingSettings(known_cell=None if known_cell is None else tuple(float(v) for v in known_cell),
                            known_space_group=known_space_group)


class SpotsPredictor(PredictorPlugin):
    name = "spots"
    description = "classical baseline: dispersion-threshold spot finding (as DIALS) and a spot-based resolution"
    fields = ("n_spots", "n_spots_no_ice", "d_min_spots")
    needs = "frame"

    def predict(self, batch):
        from ..spotfinder import analyse_image

        results = []
        for item in batch:
            analysis = analyse_image(item.frame.pixels, item.frame.mask, item.frame.geometry, spots=frame_spots(item))
            results.append({
                "n_spots": analysis.n_spots,
                "n_spots_no_ice": analysis.n_spots_no_ice,
                "d_min_spots": None if analysis.d_min is None else round(analysis.d_min, 4),
            })
        return results


class DecayPredictor(PredictorPlugin):
    name = "decay"
    description = ("classical resolution peer: the fall of the spots' intensity with 1/d² (a per-image Wilson fit) "
                   "→ B and the resolution B = 4·d² + 12 gives")
    fields = ("b_factor_decay", "b_factor_decay_error", "d_min_decay", "inverse_d_decay", "inverse_d_decay_sigma",
              "decay_undetermined")
    needs = "frame"

    def predict(self, batch):
        from ..decay import fit_decay

        return [decay_result(fit_decay(frame_spots(item))) for item in batch]


#: B (Å²) at or below which the decay fit gives no resolution: d = 1 Å by B = 4·d² + 12.
DECAY_MIN_B = 16.0


def decay_resolution(b_factor: float, b_factor_error: float):
    """(1/d Å⁻¹, its σ) of a decay fit's B and error (Å²), or (None, None): 1/d by the label relation
    B = 4·d² + 12, σ from B's error by the relation's slope, d(1/d)/dB = −1/(8·d³); a B of
    :data:`DECAY_MIN_B` or less (d ≤ 1 Å, beyond any label; near 12 Å² the relation sends d to 0)
    gives none."""
    from ..models import inverse_d_from_b_factor

    if not b_factor > DECAY_MIN_B:
        return None, None
    inverse_d = float(inverse_d_from_b_factor(b_factor))
    return inverse_d, b_factor_error * inverse_d ** 3 / 8.0


def decay_result(fit) -> dict:
    """The decay predictor's fields from a :class:`xrais.decay.DecayFit` (None: no fit), 1/d and σ by
    :func:`decay_resolution`; no resolution, or a σ above
    :data:`xrais.models.profile.UNDETERMINED_SIGMA`, is undetermined, as the network's estimates are."""
    from ..models.profile import UNDETERMINED_SIGMA

    if fit is None:
        return {"b_factor_decay": None, "b_factor_decay_error": None, "d_min_decay": None, "inverse_d_decay": None,
                "inverse_d_decay_sigma": None, "decay_undetermined": True}
    inverse_d, sigma = decay_resolution(fit.b_factor, fit.b_factor_error)
    return {"b_factor_decay": round(fit.b_factor, 2), "b_factor_decay_error": round(fit.b_factor_error, 2),
            "d_min_decay": None if inverse_d is None else round(1.0 / inverse_d, 4),
            "inverse_d_decay": None if inverse_d is None else round(inverse_d, 5),
            "inverse_d_decay_sigma": None if sigma is None else round(sigma, 5),
            "decay_undetermined": bool(sigma is None or sigma > UNDETERMINED_SIGMA)}


class IndexingPredictor(PredictorPlugin):
    name = "indexing"
    description = ("classical multi-lattice baseline: the spots indexed (1-D FFT basis search, as DIALS fft1d, or "
                   "the known cell oriented), lattice after lattice")
    fields = ("n_lattices_indexed", "fraction_indexed", "fraction_other_lattices", "cell_indexed",
              "lattice_misorientation_deg", "multilattice_indexed")
    needs = "frame"

    def predict(self, batch):
        results = []
        for item in batch:
            indexing = frame_indexing(item)
            found = indexing.n_lattices > 0
            results.append({
                "n_lattices_indexed": indexing.n_lattices,
                "fraction_indexed": round(indexing.fraction_indexed, 4),
                "fraction_other_lattices": round(indexing.fraction_other_lattices, 4),
                "cell_indexed": [round(v, 2) for v in indexing.lattices[0].cell] if found else None,
                "lattice_misorientation_deg": [_rounded(v, 2) for v in indexing.misorientation_deg()],
                # None: no lattice found (too few spots, or none that index), multi-lattice or not unknown
                "multilattice_indexed": bool(indexing.n_lattices > 1) if found else None,
            })
        return results


class MultilatticePredictor(PredictorPlugin):
    name = "multilattice"
    description = ("probability that the image holds several lattices, from the shipped lattice-evidence network: "
                   "how well one lattice indexes the frame's spots (none when no lattice indexes)")
    fields = ("p_multilattice", "multilattice", "multilattice_undetermined")
    needs = "frame"
    model_name = "multilattice"

    def __init__(self, model_name: Optional[str] = None):
        self.model_name = model_name or self.model_name
        self._network = None
        self._card = None
        self._lock = threading.Lock()

    def setup(self, device: str) -> None:
        """Load the lattice-evidence network (tiny: it runs on the CPU whatever the device)."""
        with self._lock:
            if self._network is None:
                from ..models.registry import load_network

                from ..models.evidence import EvidenceNet
                from ..models.registry import ModelError

                network, card = load_network(self.model_name)
                if not isinstance(network, EvidenceNet):
                    raise ModelError(f"{card['path']}: the {self.name} predictor reads a lattice-evidence model "
                                     f"(family evidence), not a {card['architecture'].get('family', 'resnet')} "
                                     f"network; quadrant classifiers run as multilattice_resnet")
                self._network, self._card = network, card
                self._network.eval()

    def experimental(self) -> Optional[str]:
        from ..models.registry import experimental_notice

        self.setup("cpu")
        return experimental_notice(self._card)

    def predict(self, batch):
        from ..lattice import lattice_evidence

        self.setup("cpu")
        results = []
        for item in batch:
            indexing = frame_indexing(item)
            # the evidence of several lattices is how well one explains the spots: none found, no answer
            p = float(self._network.probability([lattice_evidence(indexing)])[0]) if indexing.n_lattices else None
            results.append({"p_multilattice": None if p is None else round(p, 4),
                            "multilattice": None if p is None else bool(p > _threshold(item)),
                            "multilattice_undetermined": None if p is not None else
                            no_lattice_reason(indexing, item_indexing_settings(item))})
        return results


def no_lattice_reason(indexing, settings=None) -> str:
    """Why a frame's spots gave no lattice, and so no multi-lattice answer: one sentence.
    settings: the indexing's (:func:`item_indexing_settings`; the defaults when None)."""
    from ..lattice.indexing import CHANCE_INDEXED_KNOWN_CELL, CHANCE_INDEXED_KNOWN_CELL_PAIRS, first_lattice_least

    settings = settings or indexing_settings()
    n = indexing.n_spots if indexing.kept is None else len(indexing.kept)  # searched: ice-ring spots too
    if n < settings.min_spots:
        return f"no lattice indexed: {n} spots, fewer than the {settings.min_spots} a search needs"
    if settings.known_cell is not None:
        least = [first_lattice_least(n, settings, table) / n
                 for table in (CHANCE_INDEXED_KNOWN_CELL, CHANCE_INDEXED_KNOWN_CELL_PAIRS)]
        cell = ", ".join(f"{v:g}" for v in settings.known_cell)
        return (f"no lattice indexed: no orientation of the known cell ({cell}) indexes more than {least[0]:.0%} of "
                f"the {n} spots from the basis search's vectors, nor {least[1]:.0%} from spot pairs (what each search "
                "finds by chance in spots of no crystal, or too few)")
    least = first_lattice_least(n, settings) / n
    return (f"no lattice indexed: no lattice of the {n} spots indexes more than {least:.0%} of them "
            "(what a lattice found by chance in spots of no crystal would)")


@hookimpl
def xrais_predictors():
    return [ResolutionPredictor(), MultilatticePredictor(), MultilatticeResnetPredictor(), SpotsPredictor(),
            DecayPredictor(), IndexingPredictor()]
