"""The decay fit (xrais.decay): a Wilson slope of the spots' mean intensity against s² = 1/d²."""
import numpy as np
import pytest

from xrais.decay import CALIBRATION, fit_decay, fit_intensities, shell_means, weighted_line
from xrais.spotfinder import ICE_RINGS_A, SpotList, on_ice_ring


def wilson_spots(b_factor, n, seed=0, s_squared_range=(0.01, 0.25), scale=1e4):
    """(s², intensities) of n reflections: Wilson statistics (acentric: exponential intensities about
    ⟨I⟩ = scale·exp(−B·s²/2)), s² uniform, none on an ice ring."""
    rng = np.random.default_rng(seed)
    s_squared = rng.uniform(*s_squared_range, 4 * n)
    s_squared = s_squared[~on_ice_ring(1.0 / np.sqrt(s_squared))][:n]
    return s_squared, rng.exponential(scale * np.exp(-0.5 * b_factor * s_squared))


@pytest.mark.parametrize("b_factor", [20.0, 45.0, 80.0])
def test_recovers_the_b_factor_of_wilson_intensities(b_factor):
    s_squared, intensity = wilson_spots(b_factor, 800, seed=int(b_factor))
    fit = fit_intensities(s_squared, intensity, np.zeros(len(s_squared), bool))
    error = 2.0 * fit.slope_error
    assert abs(fit.apparent_b - b_factor) < 3.0 * error and error < 0.1 * b_factor
    assert fit.n_spots == 800 and fit.s_max == pytest.approx(np.sqrt(s_squared.max()))


def test_the_error_shrinks_as_the_square_root_of_the_spots():
    errors = []
    for n in (200, 3200):
        runs = [fit_intensities(*wilson_spots(40.0, n, seed=k), np.zeros(n, bool)) for k in range(20)]
        errors.append(np.std([fit.apparent_b for fit in runs]))
        # the fits' own error describes their scatter (within a factor of 2)
        assert 0.5 < np.mean([2.0 * fit.slope_error for fit in runs]) / errors[-1] < 2.0
    assert 2.0 < errors[0] / errors[1] < 8.0  # √16 = 4


def test_missing_weak_spots_flatten_the_slope():
    """The spot finder misses spots under its threshold: the outer shells' mean rises and B_app
    falls below B, which the calibration corrects."""
    s_squared, intensity = wilson_spots(60.0, 4000, seed=3)
    everything = fit_intensities(s_squared, intensity, np.zeros(len(s_squared), bool))
    found = intensity > 300.0
    thresholded = fit_intensities(s_squared[found], intensity[found], np.zeros(found.sum(), bool))
    assert thresholded.apparent_b < everything.apparent_b - 10.0


def test_ice_ring_spots_are_left_out():
    s_squared, intensity = wilson_spots(30.0, 500, seed=4)
    ice_s_squared = np.repeat(1.0 / np.square(ICE_RINGS_A[:3]), 30)
    ice = np.concatenate([np.zeros(len(s_squared), bool), np.ones(len(ice_s_squared), bool)])
    with_ice = fit_intensities(np.concatenate([s_squared, ice_s_squared]),
                               np.concatenate([intensity, np.full(len(ice_s_squared), 1e6)]), ice)
    without = fit_intensities(s_squared, intensity, np.zeros(len(s_squared), bool))
    assert with_ice.apparent_b == pytest.approx(without.apparent_b, rel=1e-9)
    assert with_ice.n_spots == 500


def test_too_few_spots_give_no_fit():
    s_squared, intensity = wilson_spots(30.0, 19)
    assert fit_intensities(s_squared, intensity, np.zeros(19, bool)) is None
    same_shell = fit_intensities(np.full(40, 0.1), np.ones(40), np.zeros(40, bool))
    assert same_shell is None


def test_spot_lists_are_fitted_from_their_d():
    s_squared, intensity = wilson_spots(30.0, 300, seed=6)
    n = len(s_squared)
    spots = SpotList(fast=np.zeros(n), slow=np.zeros(n), intensity=intensity, sigma=np.sqrt(intensity),
                     size=np.full(n, 5), d=1.0 / np.sqrt(s_squared), on_ice_ring=np.zeros(n, bool))
    fit = fit_decay(spots)
    direct = fit_intensities(s_squared, intensity, np.zeros(n, bool))
    assert fit.apparent_b == pytest.approx(direct.apparent_b, rel=1e-9)
    offset, scale, _ = CALIBRATION
    assert fit.b_factor == pytest.approx(offset + scale * fit.apparent_b)
    assert fit.b_factor_error >= 2.0 * abs(scale) * fit.slope_error


def test_weighted_line_against_its_definition():
    rng = np.random.default_rng(7)
    x = np.linspace(0.0, 1.0, 12)
    weights = rng.uniform(1, 30, 12)
    y = 2.0 - 3.0 * x + rng.normal(0, 1, 12) / np.sqrt(weights)
    slope, intercept, error = weighted_line(x, y, weights)
    (expected_slope, expected_intercept), covariance = np.polyfit(x, y, 1, w=np.sqrt(weights), cov=True)
    assert slope == pytest.approx(expected_slope) and intercept == pytest.approx(expected_intercept)
    assert error == pytest.approx(np.sqrt(covariance[0, 0]), rel=1e-6)


def test_shells_hold_equal_populations():
    s_squared = np.arange(100, dtype=float) + 1.0
    x, y, n = shell_means(s_squared, np.ones(100), spots_per_shell=20)
    assert list(n) == [20] * 5 and list(x) == [10.5, 30.5, 50.5, 70.5, 90.5] and np.allclose(y, 0.0)


def test_decay_predictor_on_the_shipped_example_images():
    """xrais's own simulated images with their label B: the decay predictor's B within its error,
    a blank image (a dozen spots of noise) without a fit."""
    import json
    from importlib import resources

    import xrais

    folder = resources.files("xrais.examples")
    labels = {e["image"]: e for e in json.loads((folder / "examples.json").read_text())["images"]}
    names = ["example_resolution_1.cbf.gz", "example_resolution_2.cbf.gz"]
    results = xrais.Predictor(predictors=("decay",), nproc=1).predict([str(folder / n) for n in names])
    bright, blank = results
    assert labels[names[1]]["blank"] == 1
    assert abs(bright["b_factor_decay"] - labels[names[0]]["b_factor"]) < 2.0 * bright["b_factor_decay_error"]
    assert bright["d_min_decay"] == pytest.approx(1.0 / bright["inverse_d_decay"], rel=1e-3)
    assert blank["b_factor_decay"] is None and blank["d_min_decay"] is None and blank["decay_undetermined"]


def test_decay_result_gives_no_resolution_below_one_angstrom():
    from xrais.decay import DecayFit
    from xrais.plugins.builtin_predictors import decay_result

    def fit(b, error):
        return DecayFit(slope=-b / 2, slope_error=error / 2, apparent_b=b, b_factor=b, b_factor_error=error,
                        n_spots=100, n_shells=5, s_max=0.5)

    near_twelve = decay_result(fit(13.0, 1.0))
    assert near_twelve["d_min_decay"] is None and near_twelve["decay_undetermined"]
    low_resolution = decay_result(fit(112.0, 5.0))  # d = 5 Å
    assert low_resolution["d_min_decay"] == pytest.approx(5.0)
    assert low_resolution["inverse_d_decay_sigma"] == pytest.approx(5.0 / (8 * 125.0), rel=1e-3)
    assert not low_resolution["decay_undetermined"]
