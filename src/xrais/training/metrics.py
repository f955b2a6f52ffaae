"""Metrics of resolution and multi-lattice predictions (NumPy only).

Resolution (paper Figure 6A): accuracy = fraction of images whose predicted 1/d is within
0.07 Å⁻¹ of the label; MAE (Å⁻¹); Spearman rank correlation. Multi-lattice (Figure 6B): accuracy
of the rounded probability; ROC AUC. Both include the mean training loss when given.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional

import numpy as np

#: Paper's tolerance for a "correct" resolution prediction (Å⁻¹).
RESOLUTION_TOLERANCE = 0.07

#: Metric names of each kind of model, in display order; which way is better; the default
#: metric that selects the best epoch.
METRIC_NAMES = {
    "resolution": ("loss", "accuracy", "mae", "spearman"),
    "multilattice": ("loss", "accuracy", "auc"),
}
HIGHER_IS_BETTER = {"loss": False, "accuracy": True, "mae": False, "spearman": True, "auc": True}
DEFAULT_SELECTION = {"resolution": "mae", "multilattice": "auc"}


def average_ranks(values) -> np.ndarray:
    """Ranks 1..n of ``values``, ties sharing the mean of their ranks."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    boundaries = np.flatnonzero(np.diff(sorted_values)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(values)]))
    group_rank = (starts + ends + 1) / 2.0  # mean of 1-based ranks start+1 .. end
    ranks = np.empty(len(values), dtype=float)
    ranks[order] = np.repeat(group_rank, ends - starts)
    return ranks


def spearman(x, y) -> float:
    """Spearman rank correlation (ties: average ranks); NaN if either side is constant or n < 2."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2:
        return math.nan
    rx, ry = average_ranks(x), average_ranks(y)
    rx -= rx.mean()
    ry -= ry.mean()
    norm = math.sqrt(float(np.dot(rx, rx)) * float(np.dot(ry, ry)))
    return float(np.dot(rx, ry) / norm) if norm > 0 else math.nan


def roc_auc(scores, labels) -> float:
    """Area under the ROC curve (Mann–Whitney U with average ranks); NaN without both classes."""
    scores = np.asarray(scores, dtype=float)
    positive = np.asarray(labels) > 0.5
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = average_ranks(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def resolution_metrics(predicted, labels) -> Dict[str, float]:
    """accuracy (fraction within 0.07 Å⁻¹), mae (Å⁻¹), spearman, n."""
    predicted, labels = np.asarray(predicted, dtype=float), np.asarray(labels, dtype=float)
    error = np.abs(predicted - labels)
    n = len(labels)
    return {"accuracy": float(np.mean(error <= RESOLUTION_TOLERANCE)) if n else math.nan,
            "mae": float(error.mean()) if n else math.nan,
            "spearman": spearman(predicted, labels), "n": n}


RESOLUTION_RANGES = (0.0, 0.05, 0.3, 0.5, 0.7, math.inf)  # 1/d (Å⁻¹); below 0.05 (d > 20 Å): no diffraction


def resolution_metrics_by_range(predicted, labels, edges=RESOLUTION_RANGES) -> List[Dict[str, float]]:
    """Per range of the label 1/d (Å⁻¹, [low, high)): n, accuracy (within 0.07 Å⁻¹), bias (mean of
    prediction − label, Å⁻¹; negative: resolution underestimated) and mae. Empty ranges are left out;
    an open upper end is ``high: None`` (JSON has no infinity)."""
    predicted, labels = np.asarray(predicted, dtype=float), np.asarray(labels, dtype=float)
    rows = []
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (labels >= low) & (labels < high)
        if inside.any():
            error = predicted[inside] - labels[inside]
            rows.append({"low": low, "high": None if math.isinf(high) else high, "n": int(inside.sum()),
                         "accuracy": float(np.mean(np.abs(error) <= RESOLUTION_TOLERANCE)),
                         "bias": float(error.mean()), "mae": float(np.abs(error).mean())})
    return rows


#: An error of 1/d (Å⁻¹) beyond which a prediction is wrong, not merely inaccurate: one that a model
#: must flag as undetermined rather than report.
LARGE_ERROR = 0.15
#: Metric names of the uncertainty of a resolution model that gives one (σ of 1/d), in display order.
UNCERTAINTY_METRIC_NAMES = ("within_1sigma", "within_2sigma", "undetermined", "accuracy_determined",
                            "large_error_unflagged")


def uncertainty_metrics(predicted, sigma, labels, undetermined_sigma: float) -> Dict[str, float]:
    """Calibration of a resolution model's σ (Å⁻¹): fractions of errors within 1σ and 2σ (0.68
    and 0.95 if Gaussian and calibrated), the fraction reported undetermined (σ above
    ``undetermined_sigma``), the accuracy of the others, and how many errors beyond
    :data:`LARGE_ERROR` are not flagged undetermined."""
    predicted, sigma, labels = (np.asarray(v, dtype=float) for v in (predicted, sigma, labels))
    error = np.abs(predicted - labels)
    flagged = sigma > undetermined_sigma
    determined = ~flagged
    return {"within_1sigma": float(np.mean(error <= sigma)), "within_2sigma": float(np.mean(error <= 2 * sigma)),
            "undetermined": float(np.mean(flagged)),
            "accuracy_determined": float(np.mean(error[determined] <= RESOLUTION_TOLERANCE)) if determined.any()
            else math.nan,
            "large_error_unflagged": int(np.sum((error > LARGE_ERROR) & determined))}


#: Misorientation ranges (degrees, [low, high)) of the multi-lattice breakdown; 0 is one lattice.
SPLIT_RANGES = (0.0, 0.3, 1.0, 3.0, math.inf)


def multilattice_metrics_by_split(probability, labels, splits, edges=SPLIT_RANGES) -> List[Dict[str, float]]:
    """Per range of the smallest misorientation between lattices (degrees; 0 with one lattice):
    a label ("one lattice/blank", "0.3–1.0°", "≥ 3.0°"), n, accuracy (probability rounded at 0.5
    against the label) and the mean probability. Empty ranges are left out; an open upper end is
    ``high: None``."""
    probability, labels = np.asarray(probability, dtype=float), np.asarray(labels, dtype=float)
    splits = np.asarray(splits, dtype=float)
    rows = []
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (splits >= low) & (splits < high)
        if inside.any():
            label = ("one lattice/blank" if low == 0.0 else f"≥ {low:.1f}°" if math.isinf(high)
                     else f"{low:.1f}–{high:.1f}°")
            rows.append({"label": label, "low": low, "high": None if math.isinf(high) else high, "n": int(inside.sum()),
                         "accuracy": float(np.mean((probability[inside] >= 0.5) == (labels[inside] > 0.5))),
                         "mean_probability": float(probability[inside].mean())})
    return rows


def multilattice_metrics(probability, labels) -> Dict[str, float]:
    """accuracy (probability rounded at 0.5), auc, n."""
    probability, labels = np.asarray(probability, dtype=float), np.asarray(labels, dtype=float)
    n = len(labels)
    return {"accuracy": float(np.mean((probability >= 0.5) == (labels > 0.5))) if n else math.nan,
            "auc": roc_auc(probability, labels), "n": n}


def compute(kind: str, predicted, labels, loss_sum: Optional[float] = None) -> Dict[str, float]:
    """Metrics of one kind of model; ``loss`` = loss_sum / n when a summed loss is given."""
    metrics = resolution_metrics(predicted, labels) if kind == "resolution" else multilattice_metrics(predicted, labels)
    if loss_sum is not None:
        metrics["loss"] = float(loss_sum) / metrics["n"] if metrics["n"] else math.nan
    return metrics


def is_better(name: str, value: float, best: Optional[float]) -> bool:
    """True when ``value`` of metric ``name`` beats ``best`` (None: nothing yet; NaN never wins)."""
    if value is None or math.isnan(value):
        return False
    if best is None or math.isnan(best):
        return True
    return value > best if HIGHER_IS_BETTER[name] else value < best
