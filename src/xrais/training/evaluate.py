"""Metrics of a trained model on any labelled set: simulated shards, or image files with a labels
JSON::

    {"images": [{"image": "file.cbf", "inverse_d": 0.5, "is_multi": 0},
                {"image": "blank.cbf", "d": null},
                {"image": "series.h5", "frame": 3, "d": 2.0}, ...]}

or, as the nanoBragg validation sets write them, one entry per file name
(``{"res_000.cbf.bz2": {"inv_d": 0.38, ...}, ...}``; ``inv_d`` and ``d_A`` are read as ``inverse_d``
and ``d``). Image paths are relative to the JSON file. Resolution labels: ``inverse_d`` (Å⁻¹, ≥ 0), ``d`` (Å,
> 0; null, 0 or inf: no diffraction) or ``b_factor`` (Å², above the label relation's 12 Å²; null or
inf: no diffraction); multi-lattice labels: ``is_multi`` (0/1) or ``n_lattices`` (≥ 0). A label that
is not such a number is an error naming the entry. Each image is conditioned
(:func:`xrais.conditioning.condition`) and its prediction is the mean over the chosen quadrants (all
four, or quadrant 0); an image that cannot be read is reported and left out, and the metrics are
those of the others.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from typing import List, Optional, Sequence

import numpy as np

from ..io import open_images
from ..io.errors import ImageError, XraisError
from ..models.geometry import inverse_d_from_b_factor
from ..conditioning import condition_frame
from ..models.predictor import XraisModel
from ..models.profile import undetermined_sigma
from . import metrics
from .data import DataError, ShardReader, open_shards, validation_mask

SUBSETS = ("all", "validation", "train")
#: Other names of the label fields, in labels files keyed by file name: 1/d (Å⁻¹) and d (Å).
LABEL_ALIASES = {"inv_d": "inverse_d", "d_A": "d"}

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Evaluation:
    """kind: the model's kind; metrics: see :mod:`xrais.training.metrics`; items: per image
    (name, label, prediction[, per-quadrant predictions]); source: what was evaluated; failed:
    images left out because they could not be read (image, frame, error)."""

    kind: str
    metrics: dict
    items: List[dict]
    source: str
    failed: List[dict] = dataclasses.field(default_factory=list)

    def by_range(self) -> List[dict]:
        """Resolution models: the metrics per range of the label 1/d (see
        :func:`xrais.training.metrics.resolution_metrics_by_range`); other kinds: []."""
        if self.kind != "resolution":
            return []
        return metrics.resolution_metrics_by_range([item["prediction"] for item in self.items],
                                                   [item["label"] for item in self.items])

    def by_split(self) -> List[dict]:
        """Multi-lattice models on simulated shards: the metrics per range of the smallest
        misorientation between lattices (see :func:`xrais.training.metrics.multilattice_metrics_by_split`);
        otherwise []."""
        if self.kind != "multilattice" or not self.items or any("split_deg" not in item for item in self.items):
            return []
        return metrics.multilattice_metrics_by_split([item["prediction"] for item in self.items],
                                                     [item["label"] for item in self.items],
                                                     [item["split_deg"] for item in self.items])

    def breakdowns(self) -> dict:
        """The per-range tables that apply: {"by_range": …} (resolution) or {"by_split": …}."""
        tables = {"by_range": self.by_range(), "by_split": self.by_split()}
        return {name: rows for name, rows in tables.items() if rows}

    def table(self) -> str:
        """The metrics as a two-column text table (resolution: then per range of 1/d)."""
        names = [n for n in metrics.METRIC_NAMES[self.kind] + metrics.UNCERTAINTY_METRIC_NAMES if n in self.metrics] + ["n"]
        width = max(len(n) for n in names)
        lines = [f"{'metric':<{width}}  value", f"{'-' * width}  ----------"]
        for name in names:
            value = self.metrics[name]
            lines.append(f"{name:<{width}}  {value:.4f}" if isinstance(value, float) else f"{name:<{width}}  {value}")
        ranges = self.by_range()
        if ranges:
            lines += ["", "label 1/d (Å⁻¹)      n  accuracy     bias      mae"]
            lines += [f"{row['low']:.2f} – {'∞' if row['high'] is None else format(row['high'], '.2f'):<5} {row['n']:>7}  "
                      f"{row['accuracy']:8.3f} {row['bias']:+8.3f} {row['mae']:8.3f}" for row in ranges]
        splits = self.by_split()
        if splits:
            lines += ["", "lattice split (°)        n  accuracy  mean p"]
            lines += [f"{row['label']:<17} {row['n']:>7}  {row['accuracy']:8.3f} {row['mean_probability']:7.3f}"
                      for row in splits]
        return "\n".join(lines)

    def as_dict(self, with_items: bool = True) -> dict:
        payload = {"kind": self.kind, "source": self.source, "metrics": self.metrics, **self.breakdowns()}
        if self.failed:
            payload["failed"] = self.failed
        if with_items:
            payload["items"] = self.items
        return payload


def evaluate_shards(model: XraisModel, inputs: Sequence[str], subset: str = "all", validation_fraction: float = 0.1,
                    seed: int = 0) -> Evaluation:
    """Metrics of ``model`` on shard images: all of them, or the validation/train side of the split
    ``xrais.train`` makes with the same fraction and seed."""
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    shards = open_shards(inputs, model.kind)
    indices = np.arange(len(shards))
    if subset != "all":
        held_out = validation_mask(shards.identity, validation_fraction, seed)
        indices = indices[held_out if subset == "validation" else ~held_out]
    if len(indices) == 0:
        raise DataError(f"no {subset} images in the shards")
    labels = shards.target(model.kind)[indices]
    geometry = shards.geometry()[indices]
    reader = ShardReader(shards)
    with_sigma = model.kind == "resolution" and model.family == "profile"
    predicted = np.empty(len(indices), dtype=np.float32)
    sigma = np.full(len(indices), np.nan, dtype=np.float32)
    for start in range(0, len(indices), model.batch_size):
        stop = min(start + model.batch_size, len(indices))
        images = reader.read_many(indices[start:stop])
        if with_sigma:
            predicted[start:stop], sigma[start:stop] = model.predict_with_sigma(images, geometry[start:stop])
        else:
            predicted[start:stop] = model.predict(images.astype(np.float32), geometry[start:stop])
    items = [{"image": str(shards.identity[i]), "label": float(y), "prediction": float(p)}
             for i, y, p in zip(indices, labels, predicted)]
    if with_sigma:
        for item, value in zip(items, sigma):
            item["sigma"] = float(value)
    if model.kind == "multilattice" and "lattice_split_deg" in shards.labels:
        for item, split in zip(items, shards.labels["lattice_split_deg"][indices]):
            item["split_deg"] = float(split)
    source = f"{len(shards.paths)} shard(s), {subset} images"
    return Evaluation(model.kind, _metrics(model, items), items, source)


def read_labels_json(path: str, kind: str) -> List[dict]:
    """Entries of a labels JSON with absolute ``image`` paths, a ``frame`` and a numeric ``label``."""
    try:
        with open(path, encoding="utf-8") as handle:
            content = json.load(handle)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the labels JSON: {exc}") from None
    entries = content.get("images") if isinstance(content, dict) else None
    if entries is None and isinstance(content, dict) and content and all(isinstance(v, dict) for v in content.values()):
        # one entry per file name, as the nanoBragg validation sets write them: {"a.cbf": {"inv_d": …}, …}
        entries = [{**{LABEL_ALIASES.get(k, k): v for k, v in values.items()}, "image": name}
                   for name, values in content.items()]
    if not isinstance(entries, list) or not entries:
        raise DataError(f'{path}: expected {{"images": [{{"image": "file.cbf", ...}}, ...]}} '
                        f'or {{"file.cbf": {{"inverse_d": ...}}, ...}}')
    folder = os.path.dirname(os.path.abspath(path))
    result = []
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict) or "image" not in entry:
            raise DataError(f"{path}: entry {number} has no 'image'")
        where = f"{path}: entry {number} ({entry['image']})"
        frame = _number(entry.get("frame", 0), "frame", where, _is_count, "a frame number ≥ 0")
        result.append({"image": os.path.join(folder, str(entry["image"])), "frame": int(frame),
                       "label": _label(entry, kind, where)})
    return result


def _label(entry: dict, kind: str, where: str) -> float:
    """The entry's label as the model's target: 0/1 (multi-lattice) or 1/d in Å⁻¹ (0: no diffraction)."""
    if kind == "multilattice":
        if "is_multi" in entry:
            return _number(entry["is_multi"], "is_multi", where, lambda v: v in (0, 1), "0 or 1", allow_bool=True)
        if "n_lattices" in entry:
            lattices = _number(entry["n_lattices"], "n_lattices", where, _is_count, "a whole number ≥ 0")
            return float(lattices > 1)
        raise DataError(f"{where}: no multi-lattice label (is_multi or n_lattices)")
    if "inverse_d" in entry:
        return _number(entry["inverse_d"] or 0.0, "inverse_d", where, lambda v: 0 <= v < math.inf, "a 1/d ≥ 0 (Å⁻¹)")
    if "d" in entry:
        if entry["d"] is None:
            return 0.0
        d = _number(entry["d"], "d", where, lambda v: v >= 0, "a resolution > 0 (Å), or null/0/inf for no diffraction")
        return 0.0 if d == 0 or math.isinf(d) else 1.0 / d
    if "b_factor" in entry:
        if entry["b_factor"] is None:
            return 0.0
        b_factor = _number(entry["b_factor"], "b_factor", where, lambda v: v > -math.inf, "a B factor (Å²)")
        inverse_d = float(inverse_d_from_b_factor(b_factor))
        if not 0.0 <= inverse_d < math.inf:
            raise DataError(f"{where}: b_factor {entry['b_factor']!r} has no resolution by the label relation "
                            f"(B = 4·d² + 12 Å²: B must exceed 12 Å², or be null/inf for no diffraction)")
        return inverse_d
    raise DataError(f"{where}: no resolution label (inverse_d, d or b_factor)")


def _is_count(value: float) -> bool:
    """A whole number ≥ 0 (a frame index, a number of lattices); not inf."""
    return value >= 0 and value.is_integer()


def _number(value, name: str, where: str, valid, expected: str, allow_bool: bool = False) -> float:
    """``value`` as a float when it is a JSON number (true/false only if ``allow_bool``) that ``valid``
    accepts, else a DataError naming the entry."""
    if (isinstance(value, bool) and not allow_bool) or not isinstance(value, (int, float)) \
            or math.isnan(value) or not valid(float(value)):
        raise DataError(f"{where}: {name} {value!r} is not {expected}")
    return float(value)


def evaluate_images(model: XraisModel, labels_json: str, quadrants: Sequence[int] = (0,), geometry=None) -> Evaluation:
    """Metrics of ``model`` on the images a labels JSON lists (see the module docstring).

    quadrants: which quadrants to predict (their mean is the image's prediction; a shell-profile
    model pools them into one profile, and gives the prediction's σ); geometry: a
    :class:`~xrais.io.GeometryOverride` for headers that are wrong or missing.
    """
    entries = read_labels_json(labels_json, model.kind)
    with_sigma = model.kind == "resolution" and model.family == "profile"
    items, predicted, labels, failed = [], [], [], []
    for entry in entries:
        try:
            frame = _frame(entry["image"], entry["frame"], geometry)
            conditioned = condition_frame(frame, quadrants=quadrants)
            if with_sigma:
                (per_quadrant, _), (pooled, sigma) = model.predict_image(conditioned, frame.geometry, pool=True)
            else:
                per_quadrant = model.predict(conditioned, frame.geometry)
        except XraisError as exc:
            log.error("%s", exc)
            failed.append({"image": entry["image"], "frame": entry["frame"], "error": str(exc)})
            continue
        value = float(pooled[0]) if with_sigma else float(np.mean(per_quadrant))
        items.append({"image": entry["image"], "frame": entry["frame"], "label": entry["label"], "prediction": value,
                      "quadrants": {str(q): float(v) for q, v in zip(quadrants, per_quadrant)}})
        if with_sigma:
            items[-1]["sigma"] = float(sigma[0])
        predicted.append(value)
        labels.append(entry["label"])
    if not items:
        raise DataError(f"{labels_json}: none of its {len(entries)} image(s) could be read")
    source = f"{labels_json}, quadrant(s) {','.join(str(q) for q in quadrants)}" + (" pooled" if with_sigma else "")
    if failed:
        source += f", {len(failed)} of {len(entries)} image(s) left out (unreadable)"
    return Evaluation(model.kind, _metrics(model, items), items, source, failed)


def _metrics(model: XraisModel, items: List[dict]) -> dict:
    """The model kind's metrics of evaluated items, with the calibration of σ where items carry one."""
    predicted = [item["prediction"] for item in items]
    labels = [item["label"] for item in items]
    values = metrics.compute(model.kind, predicted, labels)
    if items and all("sigma" in item for item in items):
        values.update(metrics.uncertainty_metrics(predicted, [item["sigma"] for item in items], labels,
                                                   undetermined_sigma(model.card)))
    return values


def _frame(path: str, index: int, geometry: Optional[object]):
    """Frame ``index`` of the file; a single-image file's one image whatever the index (labels
    written with frame 0 for ``x_0003.cbf``, whose image number is 3)."""
    only = None
    for count, frame in enumerate(open_images([path], geometry=geometry, on_error="raise")):
        if frame.index == index:
            return frame
        only = frame if count == 0 and not frame.metadata.get("multi_frame") else None
    if only is not None:
        return only
    raise ImageError(path, f"has no frame {index}")

