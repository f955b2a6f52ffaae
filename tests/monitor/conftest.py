"""Fixtures of the monitor tests: tiny real networks in the registry format (as tests/test_predict.py),
reachable by child processes through XRAIS_MODELS."""
import pytest
import torch

from xrais import models, plugins


def _tiny(kind, seed):
    torch.manual_seed(seed)
    return models.XraisNet(models.Architecture(kind, depth=18, width=0.125, norm="group"))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Folder of a tiny random 'resolution' model (the multi-lattice predictor's lattice-evidence
    network, a few hundred weights, is the shipped one)."""
    folder = tmp_path_factory.mktemp("models")
    models.export(_tiny("resolution", 0), folder / "resolution")
    return folder


@pytest.fixture()
def models_env(tiny_models, monkeypatch):
    """XRAIS_MODELS for this process and its children (as a dict to pass to child processes too)."""
    monkeypatch.setenv("XRAIS_MODELS", str(tiny_models))
    plugins.predictors.cache_clear()
    yield {"XRAIS_MODELS": str(tiny_models), "OMP_NUM_THREADS": "1"}
    plugins.predictors.cache_clear()
