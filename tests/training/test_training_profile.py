"""``xrais.train model.family=profile``: the shell-profile resolution network trained from shards or
from a stream, written in the registry format with its σ, and evaluated with its calibration."""
import json

import numpy as np
import pytest

from xrais.command_line.evaluate import program as evaluate_program
from xrais.command_line.train import program as train_program
from xrais.models import load
from xrais.training.data import open_shards, validation_mask
from xrais.training.profile import FeatureSet, stream_features
from xrais.training.stream import StreamSettings


def test_train_from_shards_writes_a_model_with_sigma(resolution_shards, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert train_program([str(resolution_shards), "model.family=profile", "epochs=8", "output.directory=run",
                          "output.log=None", "data.validation_fraction=0.25"]) == 0
    card = json.loads((tmp_path / "run" / "best.json").read_text())
    assert card["architecture"]["family"] == "profile" and card["kind"] == "resolution"
    assert card["training"]["undetermined_sigma"] > 0 and "within_1sigma" in card["training"]["validation_metrics"]
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [entry["epoch"] for entry in history] == list(range(1, 9))
    # the validation side is the one xrais.train's split holds out (by image identity)
    shards = open_shards([str(resolution_shards)], "resolution")
    held_out = validation_mask(shards.identity, 0.25, 0)
    assert len(FeatureSet.load(str(tmp_path / "run" / "features_validation.npz"))) == held_out.sum()
    model = load(str(tmp_path / "run" / "best.json"), device="cpu")
    assert model.family == "profile"
    assert evaluate_program([str(resolution_shards), "model=run/best.json", "output.json=e.json", "output.log=None"]) == 0
    metrics = json.loads((tmp_path / "e.json").read_text())["metrics"]
    assert 0.0 <= metrics["within_1sigma"] <= metrics["within_2sigma"] <= 1.0 and metrics["n"] == 96
    # a second run in the same folder reuses the features it computed
    mtime = (tmp_path / "run" / "features_train.npz").stat().st_mtime_ns
    assert train_program([str(resolution_shards), "model.family=profile", "epochs=1", "output.directory=run",
                          "output.log=None", "data.validation_fraction=0.25"]) == 0
    assert (tmp_path / "run" / "features_train.npz").stat().st_mtime_ns == mtime


def test_profile_family_refuses_a_multilattice_model(multilattice_shards, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = train_program([str(multilattice_shards), "model.family=profile", "kind=multilattice", "output.log=None"])
    err = capsys.readouterr().err
    assert code != 0 and "model.family=profile is a resolution network" in err and "Traceback" not in err


def test_stream_features_are_the_simulated_images_features(tmp_path):
    """Features made in the simulation workers equal those of the same (seed, index) images read
    back from the stream dataset in this process."""
    from xrais.models.profile import profile_features, shell_histogram
    from xrais.training.stream import StreamDataset

    settings = StreamSettings(recipe="resolution", seed=5, images_per_epoch=2, validation_images=1, pool_size=1,
                              cache=str(tmp_path), detector="PILATUS 2M")
    data = stream_features(settings, 1, 2, workers=0)
    assert data.features.shape[0] == 2 and np.all(np.isfinite(data.features))
    image, geometry, target = StreamDataset(settings, "resolution", 3)[2]
    expected = profile_features(*shell_histogram(image.numpy(), float(geometry[0]), float(geometry[1]),
                                                 float(geometry[2]), int(geometry[3])))
    assert np.allclose(data.features[1], expected) and data.target[1] == pytest.approx(float(target))


def test_undetermined_limit_leaves_determined_answers_right():
    """The σ limit chosen on validation images: the largest at which 90 % of those it leaves
    determined are within 0.07 Å⁻¹ — here the estimates with σ ≤ 0.05 are right and those above
    are off by 0.1, so 0.05 (or the last limit before the wrong ones bring the share under 90 %)."""
    from xrais.training.profile import UNDETERMINED_GRID, calibrated_undetermined_sigma

    rng = np.random.default_rng(3)
    sigma = rng.uniform(0.01, 0.1, 4000)
    target = rng.uniform(0.1, 0.8, 4000)
    mean = target + np.where(sigma <= 0.05, 0.01, 0.1)
    limit = calibrated_undetermined_sigma((mean, sigma), target)
    determined = sigma <= limit
    assert np.mean(np.abs(mean - target)[determined] <= 0.07) >= 0.9
    assert 0.05 <= limit < 0.06 and limit in UNDETERMINED_GRID
    # every estimate right: the largest limit of the grid; none right: the smallest
    assert calibrated_undetermined_sigma((target, sigma), target) == UNDETERMINED_GRID[-1]
    assert calibrated_undetermined_sigma((target + 0.2, sigma), target) == UNDETERMINED_GRID[0]


def test_train_several_members_and_refuse_members_for_a_resnet(resolution_shards, tmp_path, monkeypatch, capsys):
    """model.members=2: two networks trained apart (each at its own best epoch), written as one model
    that pools them; the ResNet family has no members and says so."""
    monkeypatch.chdir(tmp_path)
    assert train_program([str(resolution_shards), "model.family=profile", "model.members=2", "epochs=4",
                          "output.directory=run", "output.log=None", "data.validation_fraction=0.25"]) == 0
    card = json.loads((tmp_path / "run" / "best.json").read_text())
    assert card["architecture"]["members"] == 2 and len(card["training"]["epoch"]) == 2
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [entry["member"] for entry in history] == [0] * 4 + [1] * 4
    assert len(load(str(tmp_path / "run" / "best.json"), device="cpu").network.members) == 2
    code = train_program([str(resolution_shards), "model.members=2", "output.log=None", "output.directory=run2"])
    err = capsys.readouterr().err
    assert code != 0 and "model.members is the shell-profile network's" in err and "Traceback" not in err


def test_feature_gap_names_the_channel_in_which_the_measured_frames_differ(tmp_path):
    """The same simulated quadrants seen with 400 more background photons in every pixel (a higher
    background, as a measured frame's air and solvent scatter may give): the background channel is
    the one furthest from the simulated images, above them; the same images give no gap at all."""
    from xrais.models.profile import N_CHANNELS, profile_features, shell_histogram
    from xrais.training.profile import channel_names, feature_gap
    from xrais.training.stream import StreamDataset

    settings = StreamSettings(recipe="resolution", seed=7, images_per_epoch=6, validation_images=0, pool_size=1,
                              cache=str(tmp_path), detector="PILATUS 2M")
    stream = StreamDataset(settings, "resolution", 6)
    simulated, measured = [], []
    for index in range(6):
        image, geometry, _ = stream[index]
        values = image.numpy()
        brighter = np.where(values > 0, np.floor(np.sqrt(values.astype(np.float64) ** 2 + 400.0)), 0.0)
        fields = (float(geometry[0]), float(geometry[1]), float(geometry[2]), int(geometry[3]))
        simulated.append(profile_features(*shell_histogram(values, *fields)))
        measured.append(profile_features(*shell_histogram(brighter.astype(values.dtype), *fields)))
    as_set = lambda rows: FeatureSet(np.stack(rows), np.zeros((len(rows), 3), np.float32),  # noqa: E731
                                     np.zeros(len(rows), np.float32), {})
    same = feature_gap(as_set(simulated), as_set(simulated))
    assert len(same) == N_CHANNELS and [row["name"] for row in same] == channel_names()
    assert all(row["mean_abs_z"] == 0.0 for row in same)
    gap = feature_gap(as_set(measured), as_set(simulated))
    background = gap[2]
    assert background["mean_abs_z"] == max(row["mean_abs_z"] for row in gap[:3])
    assert background["mean_abs_z"] > 1.0 and all(shell["z"] > 0 for shell in background["largest"])
    with pytest.raises(ValueError, match="at least two simulated"):
        feature_gap(as_set(measured), as_set(simulated[:1]))
