"""xrais.evaluate on shards and on image files listed in a labels JSON; xrais.train's command line."""
import json
import os
import shutil

import numpy as np
import pytest
import torch

import xrais.models as models
from xrais.command_line.evaluate import program as evaluate_program
from xrais.command_line.train import config_from_params, program as train_program
from xrais.conditioning import condition
from xrais.io import Geometry, open_image
from xrais.io.cbf import write_cbf
from xrais.training import evaluate_shards, open_shards, validation_mask


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """An untrained resolution network and a multi-lattice one, in the registry format."""
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    models.export(models.XraisNet(models.Architecture("resolution", width=0.125)), folder / "reso")
    models.export(models.XraisNet(models.Architecture("multilattice", width=0.125)), folder / "multi")
    return folder


def test_evaluate_program_on_shards(resolution_shards, multilattice_shards, model_files, tmp_path, capsys,
                                    monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert evaluate_program([str(resolution_shards), f"model={model_files / 'reso.json'}", "subset=validation",
                             "json=eval.json", "nproc=1"]) == 0
    printed = capsys.readouterr().out
    assert "accuracy" in printed and "spearman" in printed and "label 1/d" in printed
    result = json.loads((tmp_path / "eval.json").read_text())
    assert sum(row["n"] for row in result["by_range"]) == result["metrics"]["n"]
    shards = open_shards([str(resolution_shards)])
    held_out = shards.identity[validation_mask(shards.identity, 0.1, 0)]
    assert result["metrics"]["n"] == len(held_out) and [i["image"] for i in result["items"]] == list(held_out)
    # Predictions are those of the loaded model on the shard images with their geometry.
    model = models.load(model_files / "reso.json")
    direct = evaluate_shards(model, [str(resolution_shards)], subset="validation")
    assert direct.metrics == pytest.approx(result["metrics"], nan_ok=True)
    # output.card= records the metrics and the per-range table in (a copy of) the model's card.
    for suffix in (".pt", ".json"):
        shutil.copy(model_files / f"reso{suffix}", tmp_path / f"reso{suffix}")
    assert evaluate_program([str(resolution_shards), f"model={tmp_path / 'reso.json'}", "subset=validation",
                             "json=carded.json", "output.card=held-out test"]) == 0
    recorded = models.read_card(tmp_path / "reso.json")["evaluations"]["held-out test"]
    assert recorded["by_range"] == result["by_range"] and recorded["n"] == result["metrics"]["n"]
    card_text = (tmp_path / "reso.md").read_text()
    assert "## Evaluation: held-out test" in card_text
    assert card_text.count("\n| 0.") + card_text.count("\n| 1.") >= len(result["by_range"])
    # Multi-lattice shards: accuracy per range of the lattices' misorientation, in the JSON and the card.
    for suffix in (".pt", ".json"):
        shutil.copy(model_files / f"multi{suffix}", tmp_path / f"multi{suffix}")
    assert evaluate_program([str(multilattice_shards), f"model={tmp_path / 'multi.json'}", "json=split.json",
                             "output.card=held-out test"]) == 0
    assert "lattice split" in capsys.readouterr().out
    split = json.loads((tmp_path / "split.json").read_text())
    assert [row["label"] for row in split["by_split"]] == ["one lattice/blank", "0.3–1.0°", "1.0–3.0°"]
    assert sum(row["n"] for row in split["by_split"]) == split["metrics"]["n"] == 64 and "by_range" not in split
    assert "| 0.3–1.0° |" in (tmp_path / "multi.md").read_text()
    # Any labelled shards serve any model: resolution shards carry is_multi too.
    assert evaluate_program([str(resolution_shards), f"model={model_files / 'multi.json'}", "json=multi.json"]) == 0
    assert json.loads((tmp_path / "multi.json").read_text())["metrics"]["n"] == 96


def _write_images(folder):
    """Three 2048×2048 CBFs (2×2 max-pool → four full quadrants) and their labels JSON (b_0002.cbf,
    image number 2, labelled without a frame: a single-image file's one image)."""
    folder.mkdir()
    geometry = Geometry(distance=250.0, wavelength=0.9795, pixel_size=0.172, beam_centre=(1024.0, 1024.0),
                        shape=(2048, 2048), detector="generic")
    rng = np.random.default_rng(1)
    entries = []
    for name, label in (("a.cbf", {"d": 2.0, "is_multi": 1}), ("b_0002.cbf", {"inverse_d": 0.3, "is_multi": 0}),
                        ("blank.cbf", {"d": None, "n_lattices": 0})):
        write_cbf(str(folder / name), rng.poisson(3.0, (2048, 2048)).astype(np.int32), geometry)
        entries.append({"image": name, **label})
    (folder / "labels.json").write_text(json.dumps({"images": entries}))
    return geometry


@pytest.mark.parametrize("quadrants", [1, 4])
def test_evaluate_program_on_labelled_images(model_files, tmp_path, monkeypatch, quadrants):
    monkeypatch.chdir(tmp_path)
    geometry = _write_images(tmp_path / "images")
    assert geometry.downsample == 2
    assert evaluate_program([str(tmp_path / "images"), f"model={model_files / 'reso.json'}", f"quadrants={quadrants}",
                             "json=eval.json"]) == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert [item["label"] for item in result["items"]] == pytest.approx([0.5, 0.3, 0.0])
    assert result["metrics"]["n"] == 3
    model = models.load(model_files / "reso.json")
    frame = open_image(str(tmp_path / "images" / "a.cbf"))
    chosen = (0,) if quadrants == 1 else (0, 1, 2, 3)
    expected = model.predict(condition(frame.pixels, frame.mask, frame.geometry, quadrants=chosen), frame.geometry)
    assert result["items"][0]["prediction"] == pytest.approx(float(np.mean(expected)), rel=1e-5)
    assert len(result["items"][0]["quadrants"]) == len(chosen)

    assert evaluate_program([str(tmp_path / "images" / "labels.json"), f"model={model_files / 'multi.json'}",
                             "json=multi.json"]) == 0
    assert [i["label"] for i in json.loads((tmp_path / "multi.json").read_text())["items"]] == [1.0, 0.0, 0.0]


def test_evaluate_program_reports_bad_labels_in_one_line(model_files, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_images(tmp_path / "images")
    (tmp_path / "images" / "labels.json").write_text(json.dumps({"images": [{"image": "a.cbf", "is_multi": 1}]}))
    assert evaluate_program([str(tmp_path / "images"), f"model={model_files / 'reso.json'}"]) == 1
    assert "entry 0 (a.cbf): no resolution label (inverse_d, d or b_factor)" in capsys.readouterr().err
    assert evaluate_program([str(tmp_path / "images"), "model=not-a-model"]) == 1
    assert "model 'not-a-model' is not available" in capsys.readouterr().err


@pytest.mark.parametrize("model, label, message", [
    ("reso", {"d": -3}, "d -3 is not a resolution > 0 (Å)"),
    ("reso", {"d": "2.0"}, "d '2.0' is not a resolution > 0 (Å)"),
    ("reso", {"inverse_d": -0.5}, "inverse_d -0.5 is not a 1/d ≥ 0"),
    ("reso", {"b_factor": 5.0}, "b_factor 5.0 has no resolution by the label relation"),
    ("reso", {"d": 2.0, "frame": -1}, "frame -1 is not a frame number ≥ 0"),
    ("reso", {"d": 2.0, "frame": float("inf")}, "frame inf is not a frame number ≥ 0"),
    ("multi", {"is_multi": 2}, "is_multi 2 is not 0 or 1"),
])
def test_evaluate_program_refuses_label_values_that_are_not_labels(model_files, tmp_path, capsys, monkeypatch,
                                                                   model, label, message):
    monkeypatch.chdir(tmp_path)
    _write_images(tmp_path / "images")
    (tmp_path / "images" / "labels.json").write_text(json.dumps({"images": [{"image": "a.cbf", **label}]}))
    assert evaluate_program([str(tmp_path / "images"), f"model={model_files / (model + '.json')}",
                             "json=eval.json"]) == 1
    err = capsys.readouterr().err
    assert f"labels.json: entry 0 (a.cbf): {message}" in err and "Traceback" not in err
    assert not (tmp_path / "eval.json").exists()


def test_evaluate_program_leaves_out_unreadable_images_and_keeps_the_others(model_files, tmp_path, capsys,
                                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_images(tmp_path / "images")
    labels = json.loads((tmp_path / "images" / "labels.json").read_text())
    (tmp_path / "images" / "truncated.cbf").write_bytes((tmp_path / "images" / "a.cbf").read_bytes()[:4000])
    labels["images"][1:1] = [{"image": "truncated.cbf", "d": 2.0}, {"image": "missing.cbf", "d": 2.0}]
    (tmp_path / "images" / "labels.json").write_text(json.dumps(labels))
    assert evaluate_program([str(tmp_path / "images"), f"model={model_files / 'reso.json'}", "json=eval.json"]) == 1
    err = capsys.readouterr().err
    assert "truncated.cbf: " in err and "missing.cbf: no such file" in err and "Traceback" not in err
    assert "2 image(s) could not be read and were left out of the metrics" in err
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["metrics"]["n"] == 3 and [os.path.basename(i["image"]) for i in result["items"]] == [
        "a.cbf", "b_0002.cbf", "blank.cbf"]
    assert [os.path.basename(f["image"]) for f in result["failed"]] == ["truncated.cbf", "missing.cbf"]

    labels["images"] = labels["images"][1:3]
    (tmp_path / "images" / "labels.json").write_text(json.dumps(labels))
    assert evaluate_program([str(tmp_path / "images"), f"model={model_files / 'reso.json'}", "json=none.json"]) == 1
    assert "labels.json: none of its 2 image(s) could be read" in capsys.readouterr().err


def test_train_program_parameters(tmp_path, capsys):
    assert train_program(["-h"]) == 0
    help_text = capsys.readouterr().out
    for word in ("preset = cpu", "output.export", "model.norm", "schedule.name", "data.cache", "precision", "resume"):
        assert word in help_text
    params, inputs = train_program.parameters.parse(["data", "model.width=0.5", "lr=0.01", "kind=multilattice",
                                                     "export=resolution", "nproc=2"])
    config = config_from_params(params, inputs)
    assert config.data == ["data"] and config.width == 0.5 and config.lr == 0.01 and config.kind == "multilattice"
    assert config.export == "resolution" and config.threads == 2 and config.depth is None
    resolved = config.resolved("multilattice")
    assert resolved.depth == 18 and resolved.width == 0.5 and resolved.loss == "bce"
    paper = config_from_params(*train_program.parameters.parse(["data", "preset=paper"])).resolved("resolution")
    assert (paper.depth, paper.optimizer, paper.lr, paper.momentum, paper.loss) == (50, "sgd", 6e-3, 0.9, "l1")
