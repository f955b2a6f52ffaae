"""Training from a stream of images simulated while training: fresh images every epoch, a fixed
validation set, exact resume, the same run split over two processes."""
import json
import sys

import pytest
import torch

from xrais.training import ConfigError, TrainConfig, train
from xrais.training.stream import StreamDataset, StreamSampler, StreamSettings

from test_training_loop import _launch, _weights

SMALL = dict(depth=18, width=0.125, norm="group", dropout=0.0, optimizer="sgd", lr=0.05, momentum=0.0,
             weight_decay=0.0, schedule="constant", warmup=0.0, threads=1, workers=1)


@pytest.fixture(scope="module")
def structures(tmp_path_factory):
    return str(tmp_path_factory.mktemp("structures"))


def _stream(structures, **changes):
    settings = dict(recipe="resolution", seed=3, images_per_epoch=8, validation_images=4, pool_size=1,
                    cache=structures, detector="PILATUS 2M")
    return StreamSettings(**{**settings, **changes})


def test_every_epoch_trains_on_fresh_images_unless_replayed(structures):
    def items(settings, epoch, rank=0, world_size=1):
        sampler = StreamSampler(settings, rank, world_size, seed=1, augment=True)
        sampler.set_epoch(epoch)
        return list(sampler)

    fresh = _stream(structures)
    numbers = [sorted(number for number, _ in items(fresh, epoch)) for epoch in (1, 2, 3)]
    assert numbers == [list(range(4, 12)), list(range(12, 20)), list(range(20, 28))]  # after the 4 validation images
    assert 0 < sum(flip for _, flip in items(fresh, 1)) < 8
    replayed = _stream(structures, replay=2)
    assert sorted(n for n, _ in items(replayed, 2)) == list(range(4, 12))
    halves = items(fresh, 2, 0, 2) + items(fresh, 2, 1, 2)
    assert sorted(halves) == sorted(items(fresh, 2))  # two processes share the epoch's images
    image, geometry, target = StreamDataset(fresh, "resolution", 8)[(4, False)]
    assert image.shape == (512, 512) and image.max() > 0 and geometry.shape == (4,) and target >= 0


class Interrupt(Exception):
    pass


def test_stream_run_resumes_exactly_and_records_its_images(structures, tmp_path):
    settings = dict(batch_size=4, epochs=2, **SMALL)
    whole = train(TrainConfig(data=[], output=str(tmp_path / "whole"), stream=_stream(structures), **settings))
    assert [e["train"]["n"] for e in whole.history] == [8, 8] and whole.history[0]["validation"]["n"] == 4

    def stop_after_first_epoch(trainer, entry):
        if entry["epoch"] == 1:
            raise Interrupt

    parts = dict(data=[], output=str(tmp_path / "parts"), **settings)
    with pytest.raises(Interrupt):
        train(TrainConfig(stream=_stream(structures), **parts), callbacks=[stop_after_first_epoch])
    with pytest.raises(ConfigError, match="settings differ .*stream"):
        train(TrainConfig(stream=_stream(structures, seed=4), resume=True, **parts))
    resumed = train(TrainConfig(stream=_stream(structures), resume=True, **parts))
    for a, b in zip(whole.history, resumed.history):  # the same code path run twice: the same numbers
        assert a["train"] == b["train"] and a["validation"] == b["validation"]
    final_whole, final_resumed = _weights(tmp_path / "whole"), _weights(tmp_path / "parts")
    for key, value in final_whole.items():
        assert torch.equal(value, final_resumed[key]), key
    card = json.loads((tmp_path / "whole" / "best.json").read_text())
    assert card["training"]["training_data"]["source"] == "stream"
    assert card["training"]["training_data"]["images"] == 8 * card["training"]["epoch"]


def test_stream_settings_that_make_no_sense_are_refused(structures, tmp_path):
    with pytest.raises(ConfigError, match="either on shards or on a stream"):
        train(TrainConfig(data=[str(tmp_path)], output=str(tmp_path / "a"), stream=_stream(structures)))
    with pytest.raises(ConfigError, match="stream.detector: unknown detector 'nope'"):
        train(TrainConfig(data=[], output=str(tmp_path / "b"), stream=_stream(structures, detector="nope")))
    with pytest.raises(ConfigError, match="multi-lattice model cannot learn from the resolution recipe"):
        train(TrainConfig(data=[], output=str(tmp_path / "c"), kind="multilattice", stream=_stream(structures)))


def test_two_processes_on_a_stream_equal_one_process(structures, tmp_path):
    """torchrun, 2 processes, one step of a global batch of 4: each rank simulates its half of the
    epoch's images and validates on its half of the validation images; the result is the one
    process's (to float rounding: the gradients are averaged in another order)."""
    words = ["stream.recipe=resolution", "stream.seed=3", "stream.images_per_epoch=4", "stream.validation_images=4",
             "stream.detector=PILATUS 2M", "structures.pool_size=1", f"structures.cache={structures}",
             "model.depth=18", "model.width=0.125", "model.norm=group", "model.dropout=0", "optimizer.name=sgd",
             "optimizer.lr=0.2", "optimizer.momentum=0", "optimizer.weight_decay=0", "schedule.name=constant",
             "schedule.warmup=0", "batch_size=4", "epochs=1", "nproc=1", "data.workers=0"]
    _launch([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
             "-m", "xrais.command_line.train", "output.directory=ddp", *words], tmp_path)
    _launch([sys.executable, "-m", "xrais.command_line.train", "output.directory=single", *words], tmp_path)
    one, two = _weights(tmp_path / "single"), _weights(tmp_path / "ddp")
    assert max(float((one[k] - two[k]).abs().max()) for k in one if one[k].is_floating_point()) < 1e-5
    single = json.loads((tmp_path / "single" / "history.json").read_text())["epochs"][0]
    parallel = json.loads((tmp_path / "ddp" / "history.json").read_text())["epochs"][0]
    assert parallel["train"]["n"] == single["train"]["n"] == 4
    assert parallel["validation"]["n"] == single["validation"]["n"] == 4
    for split in ("train", "validation"):
        for name, value in single[split].items():
            assert parallel[split][name] == pytest.approx(value, rel=1e-4, abs=1e-6), (split, name)
