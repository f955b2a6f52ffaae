"""Metrics written with NumPy: ranks, Spearman, ROC AUC, the paper's resolution accuracy."""
import math

import numpy as np
import pytest

from xrais.training import metrics


def test_average_ranks_share_ties():
    np.testing.assert_array_equal(metrics.average_ranks([10, 20, 20, 5, 20]), [2, 4, 4, 1, 4])


def test_spearman_known_values():
    x = [1, 2, 3, 4, 5]
    assert metrics.spearman(x, [2, 4, 6, 8, 100]) == pytest.approx(1.0)
    assert metrics.spearman(x, [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    # Textbook case: d = rank differences (0, 1, -1, 0, 0) → ρ = 1 − 6·Σd²/(n(n²−1)) = 0.9
    assert metrics.spearman(x, [1, 3, 2, 4, 5]) == pytest.approx(0.9)
    assert math.isnan(metrics.spearman(x, [3, 3, 3, 3, 3])) and math.isnan(metrics.spearman([1], [2]))


def test_roc_auc_known_values():
    assert metrics.roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert metrics.roc_auc([0.5, 0.5], [0, 1]) == pytest.approx(0.5)  # a tie counts half
    assert metrics.roc_auc([0.9, 0.8, 0.1], [1, 1, 0]) == 1.0
    assert math.isnan(metrics.roc_auc([0.2, 0.3], [1, 1]))


def test_against_scipy_on_random_data():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 20, 500), rng.normal(size=500)
    labels = rng.random(500) < 0.3
    assert metrics.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    u = stats.mannwhitneyu(x[labels], x[~labels]).statistic
    assert metrics.roc_auc(x, labels) == pytest.approx(u / (labels.sum() * (~labels).sum()), abs=1e-12)


def test_resolution_accuracy_uses_the_paper_tolerance():
    labels = np.array([0.5, 0.5, 0.5, 0.0])
    predicted = np.array([0.5, 0.569, 0.60, 0.05])
    values = metrics.compute("resolution", predicted, labels, loss_sum=0.4)
    assert values["accuracy"] == 0.75 and values["n"] == 4 and values["loss"] == pytest.approx(0.1)
    assert values["mae"] == pytest.approx((0 + 0.069 + 0.1 + 0.05) / 4)


def test_multilattice_accuracy_and_best_epoch_choice():
    values = metrics.compute("multilattice", [0.9, 0.2, 0.6, 0.4], [1, 0, 0, 0])
    assert values["accuracy"] == 0.75 and values["auc"] == 1.0
    assert metrics.is_better("mae", 0.1, None) and metrics.is_better("mae", 0.1, 0.2)
    assert not metrics.is_better("auc", 0.7, 0.8) and not metrics.is_better("auc", float("nan"), 0.1)


def test_resolution_metrics_by_range_of_the_label():
    labels = np.array([0.0, 0.0, 0.2, 0.25, 0.6, 0.65, 0.9])
    predicted = np.array([0.01, 0.2, 0.2, 0.30, 0.5, 0.64, 0.7])
    rows = metrics.resolution_metrics_by_range(predicted, labels)
    assert [(row["low"], row["high"], row["n"]) for row in rows] == [(0.0, 0.05, 2), (0.05, 0.3, 2), (0.5, 0.7, 2), (0.7, None, 1)]
    blank, low, high, best = rows
    assert blank["accuracy"] == 0.5 and blank["bias"] == pytest.approx(0.105)
    assert low["accuracy"] == 1.0 and low["mae"] == pytest.approx(0.025)
    assert high["accuracy"] == 0.5 and high["bias"] == pytest.approx(-0.055)
    assert best["accuracy"] == 0.0 and best["bias"] == pytest.approx(-0.2)
    # the ranges partition the images: their counts add up to the whole
    assert sum(row["n"] for row in rows) == len(labels)


def test_multilattice_metrics_by_split():
    probability = np.array([0.1, 0.7, 0.2, 0.9, 0.8, 0.6])
    labels = np.array([0, 0, 1, 1, 1, 1])
    splits = np.array([0.0, 0.0, 0.4, 0.5, 2.0, 5.0])
    rows = metrics.multilattice_metrics_by_split(probability, labels, splits)
    assert [(row["label"], row["n"]) for row in rows] == [("one lattice/blank", 2), ("0.3–1.0°", 2), ("1.0–3.0°", 1),
                                                         ("≥ 3.0°", 1)]
    single, small, medium, wide = rows
    assert single["accuracy"] == 0.5 and small["accuracy"] == 0.5 and medium["accuracy"] == wide["accuracy"] == 1.0
    assert single["mean_probability"] == pytest.approx(0.4) and wide["high"] is None
