"""Metrics of a trained model on any labelled set: simulated shards, or image files with a labels
JSON::

    {"images": [{"image": "file.cbf", "inverse_d": 0.5, "is_multi": 0},
                {"image": "blank.cbf", "d": null},
                {"image": "series.h5", "frame": 3, "d": 2.0}, ...]}

Image paths are relative to the JSON file. Resolution labels: ``inverse_d`` (Å⁻¹), ``d`` (Å; null,
0 or inf: no diffraction) or ``b_factor`` (Å²); multi-lattice labels: ``is_multi`` (0/1) or
``n_lattices``. Each image is conditioned (:func:`xrais.conditioning.condition`) and its prediction
is the mean over the chosen quadrants (all four, or quadrant 0).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import List, Optional, Sequence

import numpy as np

from ..io import open_images
from ..io.errors import ImageError
from ..models.geometry import inverse_d_from_b_factor
from ..models.predictor import XraisModel
from . import metrics
from .data import DataError, ShardReader, open_shards, validation_mask

SUBSETS = ("all", "validation", "train")


@dataclasses.dataclass
class Evaluation:
    """kind: the model's kind; metrics: see :mod:`xrais.training.metrics`; items: per image
    (name, label, prediction[, per-quadrant predictions]); source: what was evaluated."""

    kind: str
    metrics: dict
    items: List[dict]
    source: str

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
        names = [n for n in metrics.METRIC_NAMES[self.kind] if n in self.metrics] + ["n"]
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
    predicted = np.empty(len(indices), dtype=np.float32)
    for start in range(0, len(indices), model.batch_size):
        stop = min(start + model.batch_size, len(indices))
        images = reader.read_many(indices[start:stop]).astype(np.float32)
        predicted[start:stop] = model.predict(images, geometry[start:stop])
    items = [{"image": str(shards.identity[i]), "label": float(y), "prediction": float(p)}
             for i, y, p in zip(indices, labels, predicted)]
    if model.kind == "multilattice" and "lattice_split_deg" in shards.labels:
        for item, split in zip(items, shards.labels["lattice_split_deg"][indices]):
            item["split_deg"] = float(split)
    source = f"{len(shards.paths)} shard(s), {subset} images"
    return Evaluation(model.kind, metrics.compute(model.kind, predicted, labels), items, source)


def read_labels_json(path: str, kind: str) -> List[dict]:
    """Entries of a labels JSON with absolute ``image`` paths, a ``frame`` and a numeric ``label``."""
    try:
        with open(path, encoding="utf-8") as handle:
            content = json.load(handle)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the labels JSON: {exc}") from None
    entries = content.get("images") if isinstance(content, dict) else None
    if not isinstance(entries, list) or not entries:
        raise DataError(f'{path}: expected {{"images": [{{"image": "file.cbf", ...}}, ...]}}')
    folder = os.path.dirname(os.path.abspath(path))
    result = []
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict) or "image" not in entry:
            raise DataError(f"{path}: entry {number} has no 'image'")
        image = os.path.join(folder, entry["image"])
        result.append({"image": image, "frame": int(entry.get("frame", 0)), "label": _label(entry, kind, path, number)})
    return result


def _label(entry: dict, kind: str, path: str, number: int) -> float:
    where = f"{path}: entry {number} ({entry['image']})"
    if kind == "multilattice":
        if "is_multi" in entry:
            return float(bool(entry["is_multi"]))
        if "n_lattices" in entry:
            return float(int(entry["n_lattices"]) > 1)
        raise DataError(f"{where}: no multi-lattice label (is_multi or n_lattices)")
    if "inverse_d" in entry:
        return float(entry["inverse_d"] or 0.0)
    if "d" in entry:
        d = entry["d"]
        return 0.0 if d is None or d == 0 or math.isinf(float(d)) else 1.0 / float(d)
    if "b_factor" in entry:
        return float(inverse_d_from_b_factor(entry["b_factor"]))
    raise DataError(f"{where}: no resolution label (inverse_d, d or b_factor)")


def evaluate_images(model: XraisModel, labels_json: str, quadrants: Sequence[int] = (0,), geometry=None) -> Evaluation:
    """Metrics of ``model`` on the images a labels JSON lists (see the module docstring).

    quadrants: which quadrants to predict (their mean is the image's prediction); geometry: a
    :class:`~xrais.io.GeometryOverride` for headers that are wrong or missing.
    """
    entries = read_labels_json(labels_json, model.kind)
    items, predicted, labels = [], [], []
    for entry in entries:
        frame = _frame(entry["image"], entry["frame"], geometry)
        per_quadrant = model.predict_frame(frame, quadrants)
        value = float(np.mean(per_quadrant))
        items.append({"image": entry["image"], "frame": entry["frame"], "label": entry["label"], "prediction": value,
                      "quadrants": {str(q): float(v) for q, v in zip(quadrants, per_quadrant)}})
        predicted.append(value)
        labels.append(entry["label"])
    source = f"{labels_json}, quadrant(s) {','.join(str(q) for q in quadrants)}"
    return Evaluation(model.kind, metrics.compute(model.kind, predicted, labels), items, source)


def _frame(path: str, index: int, geometry: Optional[object]):
    for frame in open_images([path], geometry=geometry, on_error="raise"):
        if frame.index == index:
            return frame
    raise ImageError(path, f"has no frame {index}")

