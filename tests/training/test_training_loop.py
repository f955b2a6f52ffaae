"""The training loop on small learnable data: learning, outputs, resume, several processes."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from shardhelpers import make_dataset

import xrais.models as models
from xrais.training import ConfigError, DataError, TrainConfig, open_shards, train, validation_mask
from xrais.training.trainer import DivergedError

TINY = dict(depth=18, width=0.125, threads=1)


def _config(data, output, **settings):
    return TrainConfig(data=[str(data)], output=str(output), **{**TINY, **settings})


def _weights(run_folder):
    return torch.load(os.path.join(run_folder, "checkpoint.pt"), weights_only=True)["model"]


def test_resolution_model_learns_the_ring_radius(resolution_shards, tmp_path):
    """Loss falls and accuracy (within 0.07 Å⁻¹) rises on images whose spot disc encodes 1/d."""
    result = train(_config(resolution_shards, tmp_path / "run", norm="group", batch_size=8, epochs=6))
    history = result.history
    assert [entry["epoch"] for entry in history] == list(range(1, 7))
    first, last = history[0], history[-1]
    assert last["train"]["loss"] < 0.5 * first["train"]["loss"]
    assert last["validation"]["mae"] < 0.5 * first["validation"]["mae"]
    assert last["validation"]["accuracy"] >= first["validation"]["accuracy"] + 0.3
    assert last["validation"]["spearman"] > 0.9
    # Run folder: history, curves, checkpoint, best model in the registry format with its card.
    for name in ("history.json", "curves.png", "checkpoint.pt", "best.pt", "best.json", "best.md"):
        assert (tmp_path / "run" / name).is_file()
    logged = json.loads((tmp_path / "run" / "history.json").read_text())
    assert logged["best_epoch"] == result.best_epoch and len(logged["epochs"]) == 6
    card = models.read_card(result.best_model)
    assert card["training"]["epoch"] == result.best_epoch and card["training"]["training_data"]["images"] == 78
    assert card["training"]["validation_metrics"]["mae"] == pytest.approx(result.best_metrics["mae"])
    assert "CPU" in card["training"]["hardware"]


def test_multilattice_training_and_export(multilattice_shards, tmp_path):
    exported = tmp_path / "registry" / "multilattice-test"
    result = train(_config(multilattice_shards, tmp_path / "run", batch_size=8, epochs=2, export=str(exported)))
    assert set(result.best_metrics) >= {"accuracy", "auc", "loss", "n"}
    model = models.load(str(exported) + ".json")
    assert model.kind == "multilattice" and model.network.architecture.dropout == 0.2  # cpu preset
    probabilities = model.predict(np.zeros((2, 512, 512), np.float32))
    assert probabilities.shape == (2,) and ((probabilities > 0) & (probabilities < 1)).all()


class Interrupt(Exception):
    """Stands for a kill after an epoch's checkpoint."""


def test_resume_after_interruption_equals_uninterrupted_run(resolution_shards, tmp_path):
    settings = dict(batch_size=8, epochs=3, norm="batch", dropout=0.3, schedule="cosine", warmup=1.0, optimizer="sgd",
                    lr=0.01)
    whole = train(_config(resolution_shards, tmp_path / "whole", **settings))

    def stop_after_first_epoch(trainer, entry):
        if entry["epoch"] == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(_config(resolution_shards, tmp_path / "parts", **settings), callbacks=[stop_after_first_epoch])
    with pytest.raises(ConfigError, match="already holds a training run: resume=True"):
        train(_config(resolution_shards, tmp_path / "parts", **settings))
    with pytest.raises(ConfigError, match=r"settings differ .*lr 0.01 → 0.02"):
        train(_config(resolution_shards, tmp_path / "parts", **{**settings, "lr": 0.02}, resume=True))
    resumed = train(_config(resolution_shards, tmp_path / "parts", **settings, resume=True))

    assert [e["epoch"] for e in resumed.history] == [1, 2, 3]
    for a, b in zip(whole.history, resumed.history):
        assert a["train"] == b["train"] and a["validation"] == b["validation"] and a["lr"] == b["lr"]
    final_whole, final_resumed = _weights(tmp_path / "whole"), _weights(tmp_path / "parts")
    for key, value in final_whole.items():
        assert torch.equal(value, final_resumed[key]), key
    assert json.loads((tmp_path / "parts" / "history.json").read_text())["resumed_at"] == [2]


def test_time_limit_and_bad_settings(resolution_shards, tmp_path):
    result = train(_config(resolution_shards, tmp_path / "short", batch_size=8, epochs=5, max_minutes=0.0))
    assert result.epochs_completed == 1
    with pytest.raises(ConfigError, match="onecycle needs warmup"):
        train(_config(resolution_shards, tmp_path / "bad", schedule="onecycle", warmup=2.0))
    with pytest.raises(ConfigError, match="loss for resolution"):
        train(_config(resolution_shards, tmp_path / "bad", loss="bce"))
    with pytest.raises(DataError, match="too few images"):
        train(_config(resolution_shards, tmp_path / "bad", batch_size=500))
    with pytest.raises(DivergedError, match="training diverged in epoch 1"):
        train(_config(resolution_shards, tmp_path / "diverging", batch_size=8, optimizer="sgd", lr=1e30,
                      schedule="constant", warmup=0.0))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


@pytest.fixture(scope="module")
def one_step_data(tmp_path_factory):
    """12 images and a split seed leaving 4–7 training images: one step of a global batch of 4."""
    folder = tmp_path_factory.mktemp("one_step")
    make_dataset(folder, 12, shard_size=12, seed=11)
    identity = open_shards([str(folder)]).identity
    seed = next(s for s in range(1000) if 4 <= (~validation_mask(identity, 0.5, s)).sum() < 8)
    return folder, seed


ONE_STEP = dict(depth=18, width=0.125, norm="group", dropout=0.0, optimizer="sgd", lr=0.2, momentum=0.0,
                weight_decay=0.0, schedule="constant", warmup=0.0, batch_size=4, epochs=1, validation_fraction=0.5)
ONE_STEP_WORDS = ["model.depth=18", "model.width=0.125", "model.norm=group", "model.dropout=0", "optimizer.name=sgd",
                  "optimizer.lr=0.2", "optimizer.momentum=0", "optimizer.weight_decay=0", "schedule.name=constant",
                  "schedule.warmup=0", "batch_size=4", "epochs=1", "data.validation_fraction=0.5", "nproc=1"]


def _compare_with_one_process(one_step_data, tmp_path, run_folder):
    folder, seed = one_step_data
    single = train(TrainConfig(data=[str(folder)], output=str(tmp_path / "single"), seed=seed, threads=1, **ONE_STEP))
    assert single.history[0]["train"]["n"] == 4  # exactly one step
    parallel_history = json.loads((run_folder / "history.json").read_text())["epochs"]
    assert parallel_history[0]["train"]["n"] == 4
    one, two = _weights(tmp_path / "single"), _weights(run_folder)
    initial = models.XraisNet(models.Architecture("resolution", width=0.125, norm="group")).state_dict()
    moved = max(float((one[k] - initial[k]).abs().max()) for k in one if one[k].is_floating_point())
    differ = max(float((one[k] - two[k]).abs().max()) for k in one if one[k].is_floating_point())
    assert moved > 1e-3 and differ < 1e-5
    for split in ("train", "validation"):
        for name, value in single.history[0][split].items():
            assert parallel_history[0][split][name] == pytest.approx(value, rel=1e-4, abs=1e-6), (split, name)


def _launch(command, tmp_path, extra_env=()):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **dict(extra_env)}
    completed = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed


def test_two_processes_torchrun_equal_one_process(one_step_data, tmp_path):
    folder, seed = one_step_data
    _launch([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
             "-m", "xrais.command_line.train", str(folder), "output.directory=ddp", f"data.seed={seed}", *ONE_STEP_WORDS],
            tmp_path)
    _compare_with_one_process(one_step_data, tmp_path, tmp_path / "ddp")


def test_two_processes_mpi_launch_equal_one_process(one_step_data, tmp_path):
    folder, seed = one_step_data
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if not os.path.exists(mpiexec):
        pytest.skip("no mpiexec beside the Python interpreter")
    _launch([mpiexec, "-n", "2", sys.executable, "-m", "xrais.command_line.train", str(folder), "output.directory=mpi",
             f"data.seed={seed}", *ONE_STEP_WORDS], tmp_path, {"MASTER_PORT": _free_port()})
    _compare_with_one_process(one_step_data, tmp_path, tmp_path / "mpi")
