"""The shell-profile representation (xrais.models.profile) and its network: the geometry of the
shells, what the features measure, and that the network reads the decay rate of the spots'
intensity, not their brightness."""
import hashlib
import json
import math

import numpy as np
import pytest
import torch

from xrais.models import profile
from xrais.models.geometry import radius_from_inverse_d
from xrais.models.predictor import XraisModel
from xrais.models.registry import export, load
from xrais.sim.labels import b_factor_from_resolution
from xrais.training.profile import FeatureSet, ProfileTraining, predict_features, score, train_profile

SIZE = 512
ROWS, COLS = np.mgrid[0:SIZE, 0:SIZE]
GEOMETRY = dict(wavelength=0.9795, distance=200.0, pixel_size=0.172, downsample=2)


def test_shells_follow_braggs_law():
    """A pixel is in shell floor(s / width) with s = 2 sin θ / λ of its centre: pixels inside the
    ring of d = 2 Å (radius from the label geometry) have s < 0.5 Å⁻¹, those outside s > 0.5."""
    s = profile.shell_s_grid((SIZE, SIZE), **GEOMETRY)
    radius = radius_from_inverse_d(0.5, **GEOMETRY)
    centre = np.hypot(ROWS + 0.5, COLS + 0.5)
    assert np.all(s[centre < radius - 1e-6] < 0.5) and np.all(s[centre > radius + 1e-6] > 0.5)
    # θ from the far corner: tan 2θ = r / D exactly
    r = math.hypot(SIZE - 0.5, SIZE - 0.5) * 2 * 0.172
    assert s[-1, -1] == pytest.approx(2 * math.sin(0.5 * math.atan(r / 200.0)) / 0.9795, rel=1e-12)


def test_histogram_counts_every_pixel_once():
    rng = np.random.default_rng(0)
    quadrant = rng.poisson(5.0, (SIZE, SIZE))
    histogram, area = profile.shell_histogram(quadrant, **GEOMETRY)
    s = profile.shell_s_grid((SIZE, SIZE), **GEOMETRY)
    assert area.sum() == np.count_nonzero(s < profile.S_MAX)
    assert np.array_equal(histogram.sum(axis=1), area)
    shell = 20
    inside = np.floor(s * profile.N_SHELLS / profile.S_MAX) == shell
    assert np.array_equal(histogram[shell], np.bincount(quadrant[inside], minlength=256)[:256])


def test_spot_channels_count_the_pixels_the_definition_names():
    """Each spot channel, shell by shell, from a plain count: of the covered pixels (values 1–254),
    the background b is the median value, and a pixel counts at threshold E_k when v ≥ b + 3 and
    v² − b² ≥ E_k; the channel is log10(count / covered + 10⁻⁵) + 5. Histograms of every kind:
    empty shells, all-hot shells, backgrounds high enough that no value is significant."""
    rng = np.random.default_rng(7)
    values = np.arange(profile.N_VALUES)
    for trial in range(8):
        histogram = rng.poisson(rng.uniform(0, 30, (profile.N_SHELLS, 1)) * np.exp(-values / rng.uniform(2, 120)))
        histogram[rng.integers(0, profile.N_SHELLS, 8)] = 0
        histogram[rng.integers(0, profile.N_SHELLS, 3), 255] += 50
        histogram[rng.integers(0, profile.N_SHELLS, 3), 240:] += 5
        area = histogram.sum(axis=1) + rng.integers(0, 50, profile.N_SHELLS)
        features = profile.profile_features(histogram, area)
        for shell in range(profile.N_SHELLS):
            pixels = np.repeat(values, histogram[shell])
            covered = pixels[(pixels > 0) & (pixels < 255)]
            background = int(np.sort(covered)[(len(covered) - 1) // 2]) if len(covered) else 0
            assert features[2, shell] == pytest.approx(background / 16.0)
            for k, energy in enumerate(profile.thresholds()):
                count = sum(1 for v in covered if v >= background + profile.SIGNIFICANCE and v * v - background ** 2 >= energy)
                expected = math.log10(count / max(len(covered), 1) + profile.LOG_FLOOR) - math.log10(profile.LOG_FLOOR)
                assert features[3 + k, shell] == pytest.approx(expected, abs=1e-6), (trial, shell, k)


def test_values_are_binned_by_their_whole_part_clamped_to_the_range():
    """A conditioned value's bin is its whole part, 0–255: negative values, NaN and −inf read 0;
    255 and above, +inf included, read 255; any dtype (big-endian, float16 and uint64 converted)."""
    values = np.array([np.nan, -1.0, -0.0, 0.5, 1.0, 254.9999, 255.0, 1e30, np.inf, -np.inf])
    counts = profile.value_histogram(values)
    assert counts[0] == 5 and counts[1] == 1 and counts[254] == 1 and counts[255] == 3 and counts.sum() == 10
    integers = np.array([0, 7, 300, 255, 254])
    for dtype in (np.uint8, np.uint16, np.int32, np.int64, np.uint64, np.float16, ">f4", ">i4"):
        expected = np.bincount(np.clip(integers.astype(dtype).astype(np.int64), 0, 255), minlength=256)
        np.testing.assert_array_equal(profile.value_histogram(integers.astype(dtype)), expected)
    quadrant = np.full((SIZE, SIZE), np.nan, dtype=np.float32)
    histogram, area = profile.shell_histogram(quadrant, **GEOMETRY)
    assert np.array_equal(histogram[:, 0], area)  # NaN pixels counted in bin 0 of their shell


def test_features_are_symmetric_under_transposition():
    quadrant = np.random.default_rng(1).poisson(4.0, (SIZE, SIZE))
    quadrant[100:103, 40:43] = 60
    a = profile.profile_features(*profile.shell_histogram(quadrant, **GEOMETRY))
    b = profile.profile_features(*profile.shell_histogram(quadrant.T, **GEOMETRY))
    assert np.allclose(a, b)


def wilson_quadrant(rng, inverse_d, scale, background=2.0, geometry=GEOMETRY):
    """A conditioned quadrant of Bragg spots (one pixel each, 1 % of pixels) whose mean peak photons
    fall as scale·exp(−B s²/2) with B = 4d² + 12 (the label relation), exponentially distributed
    (Wilson statistics), on a Poisson background; floor(√counts) as conditioning gives."""
    s = profile.shell_s_grid((SIZE, SIZE), **geometry)
    b_factor = b_factor_from_resolution(1.0 / inverse_d)
    mean = scale * np.exp(-0.5 * b_factor * s ** 2)
    spots = rng.random((SIZE, SIZE)) < 0.01
    counts = rng.poisson(background, (SIZE, SIZE)) + rng.poisson(spots * rng.exponential(mean))
    return np.floor(np.sqrt(np.minimum(counts, 65535))).astype(np.uint16)


def test_spot_channels_end_where_the_intensity_falls_below_each_threshold():
    """Without noise in the spots' strength, the last shell with spot pixels above E_k is where
    scale·exp(−B s²/2) falls below what a spot pixel above E_k needs; an 8× brighter crystal moves
    each contour to the threshold 8× higher (4 steps of 2^0.75)."""
    rng = np.random.default_rng(2)
    s = profile.shell_s_grid((SIZE, SIZE), **GEOMETRY)
    inverse_d, scale = 0.5, 4000.0
    b_factor = b_factor_from_resolution(1.0 / inverse_d)

    def last_shell(scale_, k):
        image = np.full((SIZE, SIZE), 1.0)
        spots = rng.random((SIZE, SIZE)) < 0.02
        image[spots] += scale_ * np.exp(-0.5 * b_factor * s[spots] ** 2)
        quadrant = np.floor(np.sqrt(image)).astype(np.uint16)
        features = profile.profile_features(*profile.shell_histogram(quadrant, **GEOMETRY))
        present = np.flatnonzero(features[3 + k] > 0)
        return present.max() if present.size else -1

    width = profile.S_MAX / profile.N_SHELLS
    background = 1  # √-units: every non-spot pixel holds 1 photon
    for k in (0, 4, 8):
        # a spot pixel needs v ≥ b + SIGNIFICANCE and v² − b² ≥ E_k, v = ⌊√(1 + I)⌋
        v_min = max(background + profile.SIGNIFICANCE, math.ceil(math.sqrt(profile.thresholds()[k] + background ** 2)))
        expected = math.sqrt(2.0 * math.log(scale / (v_min ** 2 - 1)) / b_factor)
        assert abs((last_shell(scale, k) + 0.5) * width - expected) <= 2 * width, k
        if v_min > background + profile.SIGNIFICANCE:  # the threshold, not the significance, decides
            assert last_shell(scale * 8, k + 4) == pytest.approx(last_shell(scale, k), abs=1)


def wilson_set(rng, n):
    """Features of n Wilson quadrants: 1/d uniform on 0.2–0.7 Å⁻¹, the scale log-uniform over two
    decades independently of it, background 0.5–8 photons."""
    features, globals_, target, scales = [], [], [], []
    for _ in range(n):
        inverse_d = rng.uniform(0.2, 0.7)
        scale = math.exp(rng.uniform(math.log(300.0), math.log(30000.0)))
        quadrant = wilson_quadrant(rng, inverse_d, scale, background=rng.uniform(0.5, 8.0))
        features.append(profile.profile_features(*profile.shell_histogram(quadrant, **GEOMETRY)))
        globals_.append(profile.global_inputs(**GEOMETRY))
        target.append(inverse_d)
        scales.append(scale)
    return FeatureSet(np.stack(features), np.stack(globals_), np.array(target, np.float32), {"scale": np.array(scales)})


@pytest.fixture(scope="module")
def wilson_model():
    torch.manual_seed(0)
    rng = np.random.default_rng(3)
    train, test = wilson_set(rng, 500), wilson_set(rng, 150)
    network = train_profile(train, None, recipe=ProfileTraining(epochs=40, batch_size=64, seed=0))
    return network, test


def test_network_reads_the_decay_rate_whatever_the_brightness(wilson_model):
    """Trained on 500 Wilson quadrants whose brightness spans two decades independently of B, the
    network reads 1/d within 0.07 Å⁻¹ on most held-out ones, as well for dim crystals as for bright
    ones; a predictor from the brightness alone (the spot pixels above the lowest threshold) cannot."""
    network, test = wilson_model
    mean, sigma = predict_features(network, test)
    error = np.abs(mean - test.target)
    dim = test.labels["scale"] < np.median(test.labels["scale"])
    assert np.mean(error <= 0.07) >= 0.8
    assert np.mean(error[dim] <= 0.07) >= 0.7 and np.mean(error[~dim] <= 0.07) >= 0.7
    # the brightness alone: the best straight line from the total spot-pixel fraction to 1/d
    brightness = test.features[:, 3].sum(axis=1)
    fit = np.polyval(np.polyfit(brightness, test.target, 1), brightness)
    assert np.mean(np.abs(fit - test.target) <= 0.07) < np.mean(error <= 0.07) - 0.2


def test_sigma_is_calibrated_on_held_out_images(wilson_model):
    network, test = wilson_model
    result = score(predict_features(network, test), test.target)
    assert 0.5 <= result["within_1sigma"] <= 0.95
    assert result["within_2sigma"] >= 0.85


def test_registry_round_trip_and_pooled_prediction(tmp_path, wilson_model):
    """A profile model written in the registry format loads back as the same network; pooling a
    frame's quadrants gives one estimate with a σ no larger than the quadrants' own."""
    network, _ = wilson_model
    card_path = export(network, tmp_path / "profile_model", {"undetermined_sigma": 0.05})
    model = load(str(card_path), device="cpu")
    assert model.family == "profile" and json.loads(card_path.read_text())["architecture"]["family"] == "profile"
    rng = np.random.default_rng(4)
    quadrants = np.stack([wilson_quadrant(rng, 0.45, 5000.0) for _ in range(4)])
    mean, sigma = model.predict_with_sigma(quadrants, GEOMETRY)
    direct = XraisModel(network, {}, device="cpu").predict_with_sigma(quadrants, GEOMETRY)
    assert np.allclose(mean, direct[0], atol=1e-5) and np.allclose(sigma, direct[1], atol=1e-5)
    pooled_mean, pooled_sigma = model.predict_with_sigma(quadrants, GEOMETRY, pooled=True)
    assert pooled_mean.shape == (1,) and abs(pooled_mean[0] - 0.45) <= 0.07
    assert pooled_sigma[0] <= sigma.max() + 1e-6
    assert np.allclose(model.predict(quadrants, GEOMETRY), mean, atol=1e-6)


def test_nonsensical_geometry_is_refused():
    with pytest.raises(ValueError, match="nonsensical geometry"):
        profile.shell_histogram(np.zeros((SIZE, SIZE)), wavelength=0.0, distance=200.0, pixel_size=0.172, downsample=2)


def test_an_estimate_past_the_detectors_reach_is_brought_back_and_uncertain():
    """A quadrant whose data end at s ≈ 0.3 Å⁻¹ (zero padding beyond) cannot show a resolution past
    it: an estimate of 0.5 Å⁻¹ comes back to the reach, with σ at least the 0.2 Å⁻¹ it overshot."""
    quadrant = np.random.default_rng(5).poisson(4.0, (SIZE, SIZE)) + 1
    s = profile.shell_s_grid((SIZE, SIZE), **GEOMETRY)
    quadrant[s >= 0.3] = 0
    features = profile.profile_features(*profile.shell_histogram(quadrant, **GEOMETRY))[None]
    assert profile.reach(features)[0] == pytest.approx(0.3, abs=profile.S_MAX / profile.N_SHELLS)
    mean, sigma = profile.within_reach(np.array([0.5]), np.array([0.02]), features)
    assert mean[0] == pytest.approx(profile.reach(features)[0]) and sigma[0] >= 0.5 - mean[0] - 1e-6
    mean, sigma = profile.within_reach(np.array([0.2]), np.array([0.02]), features)
    assert mean[0] == pytest.approx(0.2) and sigma[0] == pytest.approx(0.02)


def test_whole_frame_profile_equals_the_pooled_quadrants_on_a_facing_detector(shared_data):
    """The whole-frame path a swung detector takes (conditioned from pixel (0, 0), 1/d of each block
    from the geometry, shell areas of the four facing quadrants) reads a measured frame cut to the
    four quadrants' footprint as the pooled quadrants do: the same histogram to the few pixels whose
    shell the half-pixel beam offset moves, the same 1/d and σ to 0.005 Å⁻¹."""
    import dataclasses

    from xrais import models
    from xrais.conditioning import beam_split, condition, condition_whole, whole_inverse_d
    from xrais.io import open_image
    from xrais.models.profile import shell_histogram, whole_shell_histogram

    frame = open_image(shared_data / "thaumatin_grid" / "thau_3_2_0003.cbf.bz2")
    n = frame.geometry.downsample
    split_slow, split_fast = beam_split(frame.geometry)
    rows = slice(split_slow - 512 * n, split_slow + 512 * n)
    cols = slice(split_fast - 512 * n, split_fast + 512 * n)
    assert rows.start >= 0 and cols.start >= 0
    pixels, mask = frame.pixels[rows, cols], frame.mask[rows, cols]
    geometry = dataclasses.replace(frame.geometry, shape=pixels.shape, beam_centre=(
        frame.geometry.beam_centre[0] - cols.start, frame.geometry.beam_centre[1] - rows.start))
    quadrants = condition(pixels, mask, geometry)
    fields = (geometry.wavelength, geometry.distance, geometry.pixel_size, n)
    pooled = sum(shell_histogram(q, *fields)[0] for q in quadrants)
    whole = condition_whole(pixels, mask, geometry)
    histogram, area = whole_shell_histogram(whole, whole_inverse_d(geometry), *fields)
    assert np.abs(histogram - pooled).sum() < 0.01 * pooled.sum()
    np.testing.assert_allclose(area, sum(shell_histogram(q, *fields)[1] for q in quadrants), rtol=0.01)
    model = models.load("resolution", device="cpu")
    (_, (mean, sigma)) = model.predict_image(quadrants, geometry, pool=True, per_quadrant=False)
    whole_mean, whole_sigma = model.predict_whole(whole, whole_inverse_d(geometry), geometry)
    assert abs(whole_mean - float(mean[0])) < 0.005 and abs(whole_sigma - float(sigma[0])) < 0.005


def test_several_members_pool_as_the_mixture_of_their_gaussians(tmp_path):
    """Two Wilson-trained networks pooled: the mean of their means, σ² the mean of their σ² plus
    the variance of their means (so σ grows where they disagree); a model written by one network
    before models had members loads as member 0 and answers as before."""
    rng = np.random.default_rng(5)
    train, test = wilson_set(rng, 200), wilson_set(rng, 40)
    architecture = profile.ProfileArchitecture(members=2)
    pooled = train_profile(train, test, architecture, ProfileTraining(epochs=6, batch_size=64, seed=2))
    assert isinstance(pooled.best_epoch, list) and len(pooled.best_epoch) == 2
    features, globals_ = torch.from_numpy(test.features), torch.from_numpy(test.globals)
    with torch.inference_mode():
        (m0, s0), (m1, s1) = (member(features, globals_) for member in pooled.members)
        mean, sigma = pooled(features, globals_)
    assert not torch.allclose(m0, m1)  # seeds 2 and 3: two different networks
    assert torch.allclose(mean, ((m0 + m1) / 2).clamp_min(0.0), atol=1e-6)
    assert torch.allclose(sigma ** 2, (s0 ** 2 + s1 ** 2) / 2 + ((m0 - m1) / 2) ** 2, rtol=1e-4)
    assert torch.all(sigma >= torch.minimum(s0, s1))
    # one network's weights as written before members: convolutions.* and head.* at the top
    single = profile.ProfileNet(profile.ProfileArchitecture())
    single.members[0].load_state_dict(pooled.members[0].state_dict())
    legacy = {key[len("members.0."):]: value for key, value in single.state_dict().items()}
    card_path = export(single, tmp_path / "legacy", {})
    torch.save(legacy, tmp_path / "legacy.pt")
    card = json.loads(card_path.read_text())
    card["sha256"] = hashlib.sha256((tmp_path / "legacy.pt").read_bytes()).hexdigest()
    card_path.write_text(json.dumps(card))
    with torch.inference_mode():
        again, _ = load(str(card_path), device="cpu").network(features, globals_)
    assert torch.allclose(again, m0.clamp_min(0.0), atol=1e-6)
