"""Registry: export + load round trip, integrity and architecture checks, names, the predictor."""
import json
import threading

import numpy as np
import pytest
import torch

import xrais.models as models
from xrais.io import Geometry
from xrais.models import Architecture, ModelError, XraisNet

GEOMETRY = {"wavelength": 0.9795, "distance": [250.0, 250.0, 300.0], "pixel_size": [0.172, 0.172, 0.075],
            "downsample": [2, 2, 4]}


@pytest.fixture()
def images():
    return (np.random.default_rng(0).poisson(4.0, (3, 512, 512)) ** 0.5).astype(np.float32)


def _network(kind="resolution", seed=0, **kw):
    torch.manual_seed(seed)
    return XraisNet(Architecture(kind, width=0.125, **kw))


def test_export_and_load_round_trip(tmp_path, images):
    network = _network()
    card_path = models.export(network, tmp_path / "run" / "best", {"recipe": "resolution", "epochs": 2,
                                                                    "validation_metrics": {"accuracy": 0.81}})
    assert card_path == tmp_path / "run" / "best.json"
    card = json.loads(card_path.read_text())
    assert card["kind"] == "resolution" and card["architecture"]["width"] == 0.125 and len(card["sha256"]) == 64
    assert card["weights"] == "best.pt" and card["training"]["epochs"] == 2
    markdown = (tmp_path / "run" / "best.md").read_text()
    assert "ResNet-18, width ×0.125" in markdown and "| accuracy | 0.81 |" in markdown

    loaded = models.load(tmp_path / "run" / "best.pt", device="cpu")
    assert loaded.kind == "resolution" and loaded.name == "best"
    with torch.no_grad():
        expected = network.eval()(torch.from_numpy(images), models.geometry_tensor(GEOMETRY, 3)).numpy()
    # the weights are the same bits; the predictions come from another code path (batched in
    # another order, possibly other threads), so they agree to float32 rounding, not bit for bit
    for key, value in network.state_dict().items():
        assert torch.equal(loaded.network.state_dict()[key], value)
    np.testing.assert_allclose(loaded.predict(images, GEOMETRY), expected, rtol=1e-5, atol=1e-6)


def test_corrupted_weights_are_refused(tmp_path):
    card_path = models.export(_network(), tmp_path / "m.json")
    weights = tmp_path / "m.pt"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"m\.pt: weights file corrupted or changed: sha256"):
        models.load(card_path)


def test_weights_of_another_architecture_are_refused(tmp_path):
    card_path = models.export(_network(), tmp_path / "m")
    card = json.loads(card_path.read_text())
    card["architecture"]["width"] = 0.25  # the file still holds the 0.125-wide network
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"do not fit the architecture .* \(ResNet-18 ×0.25 \(batch norm\)\): .*wrong shape"):
        models.load(card_path)
    card["architecture"]["width"], card["architecture"]["norm"] = 0.125, "group"
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"60 unexpected \(backbone.bn1.running_mean"):  # batch-norm statistics
        models.load(card_path)


def test_missing_files_and_unknown_names(tmp_path):
    card_path = models.export(_network(), tmp_path / "m")
    (tmp_path / "m.pt").unlink()
    with pytest.raises(ModelError, match=r"m\.pt: weights file missing"):
        models.load(card_path)
    with pytest.raises(ModelError, match="no such model description file"):
        models.load(tmp_path / "nothing.json")
    with pytest.raises(ModelError, match="model 'no-such-model' is not available"):
        models.load("no-such-model")
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(ModelError, match="cannot read the model description"):
        models.load(card_path)


def test_register_and_search_folders(tmp_path, monkeypatch, images):
    models.export(_network("multilattice"), tmp_path / "mine" / "cracks")
    models.register("cracks-v1", tmp_path / "mine" / "cracks.pt")
    assert "cracks-v1" in models.available()
    assert models.load("cracks-v1").kind == "multilattice"
    monkeypatch.setenv("XRAIS_MODELS", str(tmp_path / "mine"))
    assert "cracks" in models.available()
    probabilities = models.load("cracks").predict(images)
    assert probabilities.shape == (3,) and ((probabilities > 0) & (probabilities < 1)).all()
    with pytest.raises(ModelError, match="must be letters"):
        models.register("bad name", tmp_path / "mine" / "cracks.json")


def test_geometry_forms_agree():
    g = Geometry(distance=250.0, wavelength=0.9795, pixel_size=0.172, beam_centre=(1, 1), shape=(10, 10), downsample=2)
    expected = torch.tensor([[0.9795, 250.0, 0.172, 2.0]] * 2)
    for form in (g, [g, g], {"wavelength": 0.9795, "distance": 250.0, "pixel_size": 0.172, "downsample": 2},
                 expected.numpy(), expected):
        torch.testing.assert_close(models.geometry_tensor(form, 2), expected)
    with pytest.raises(ValueError, match="must give 3 rows"):
        models.geometry_tensor(expected, 3)


def test_predictor_batches_tensors_and_threads(images):
    model = models.XraisModel(_network(), device="cpu", batch_size=2)
    serial = model.predict(images, GEOMETRY)
    assert serial.shape == (3,) and serial.dtype == np.float32 and (serial >= 0).all()
    from_tensor = model.predict(torch.from_numpy(images)[:, None], GEOMETRY)
    assert isinstance(from_tensor, torch.Tensor)
    np.testing.assert_allclose(from_tensor.numpy(), serial, rtol=1e-5)
    integers = np.floor(images)  # shards store conditioned quadrants as uint16
    np.testing.assert_array_equal(model.predict(integers.astype(np.uint16), GEOMETRY), model.predict(integers, GEOMETRY))
    results = [None] * 4

    def work(k):
        results[k] = model.predict(images, GEOMETRY)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        np.testing.assert_allclose(result, serial, rtol=1e-5)


def test_annotate_adds_commands_and_evaluations_without_touching_the_weights(tmp_path):
    from xrais.models.registry import annotate, export, load, read_card

    network = XraisNet(Architecture("multilattice", depth=18, width=0.125, norm="group"))
    card_path = export(network, tmp_path / "tiny", {"epochs": 2})
    before = (tmp_path / "tiny.pt").read_bytes()
    annotate(card_path, training={"commands": ["xrais.simulate recipe=multilattice n_images=10", "xrais.train data"]},
             evaluation=("test_set", {"source": "data/test (all)", "images": 10, "accuracy": 0.9, "auc": 0.95}))
    card = read_card(card_path)
    assert card["training"]["epochs"] == 2 and card["training"]["commands"][1] == "xrais.train data"
    assert card["evaluations"]["test_set"]["auc"] == 0.95
    text = (tmp_path / "tiny.md").read_text()
    assert "## Evaluation: test_set" in text and "| auc | 0.95 |" in text and "```bash\nxrais.simulate recipe=multilattice n_images=10\nxrais.train data\n```" in text
    assert (tmp_path / "tiny.pt").read_bytes() == before
    load(card_path, device="cpu")  # hash still matches


def test_loading_an_experimental_model_warns_with_its_first_limitation(tmp_path, caplog):
    from xrais.models.registry import annotate, export, load

    card_path = export(_network("multilattice"), tmp_path / "cracks", {"epochs": 1})
    with caplog.at_level("WARNING", logger="xrais.models.registry"):
        load(card_path, device="cpu")
    assert not caplog.records

    annotate(card_path, training={"limitations": "experimental: held-out AUC 0.57, near chance. Needs more data."})
    with caplog.at_level("WARNING", logger="xrais.models.registry"):
        load(card_path, device="cpu")
    (record,) = caplog.records
    message = record.getMessage()
    assert message.startswith("model cracks is experimental: held-out AUC 0.57, near chance (model card: ")
    assert "Needs more data" not in message and str(tmp_path / "cracks.md") in message
