"""xrais.train: train a resolution or multi-lattice model on simulated shards, or on a stream of
images simulated while it trains.

One process: ``xrais.train data/resolution output.directory=runs/res``; the shell-profile
resolution network: ``xrais.train data/resolution model.family=profile``; from a stream:
``xrais.train stream.recipe=resolution stream.images_per_epoch=5000 epochs=10``. Several GPUs or nodes:
``torchrun --nproc_per_node=4 -m xrais.command_line.train ...`` or ``mpirun -n 8 xrais.train ...``.
"""
from __future__ import annotations

import logging
import os
import sys

from ..models.profile import ProfileArchitecture
from ..training import TrainConfig, launch_environment, train
from ..training.config import ConfigError
from ..training.profile import ProfileConfig, ProfileTraining, fit
from ..training.stream import StreamSettings
from .params import Param
from .program import EXIT_OK, Program, Progress

log = logging.getLogger(__name__)

PARAMS = (
    Param("kind", "auto", "model to train: resolution, multilattice, or auto (from the shards' recipe)", "choice",
          choices=("auto", "resolution", "multilattice")),
    Param("preset", "cpu", "defaults for every setting left at None: cpu (compact ResNet-18 x0.25, AdamW, one-cycle; "
          "fits a 2-core CPU) or paper (Table 2: ResNet-50/34, SGD)", "choice", choices=("cpu", "paper")),
    Param("output.directory", "xrais_run", "run folder: checkpoint.pt, history.json, curves.png, best.pt/.json/.md", "path"),
    Param("output.export", None, "at the end, also write the best model under this registry name (e.g. resolution: "
          "the shipped weights folder) or path", "str", optional=True),
    Param("resume", False, "continue the run in output.directory from its last checkpoint (after a kill or a crash)", "bool"),
    Param("model.family", "resnet", "network: resnet (the paper's ResNet on conditioned quadrants) or profile (resolution "
          "only: the shell-profile network on the per-shell histogram of each quadrant in 1/d, with a σ; its features "
          "are computed once and the epochs go over them; the model.* settings below are the ResNet's)", "choice",
          choices=("resnet", "profile")),
    Param("model.members", 1, "model.family=profile: networks trained apart (seeds data.seed, data.seed + 1, …) and "
          "pooled as the mixture of their Gaussians", "int", minimum=1),
    Param("model.depth", None, "ResNet depth (None: preset)", "int", choices=("18", "34", "50"), optional=True),
    Param("model.width", None, "channel multiplier, e.g. 0.25 for 16/32/64/128 channels (None: preset)", "float",
          minimum=0.01, optional=True),
    Param("model.norm", None, "normalisation: batch (SyncBatchNorm on several GPUs) or group (batch-independent; "
          "use it for several CPU processes) (None: preset)", "choice", choices=("batch", "group"), optional=True),
    Param("model.dropout", None, "dropout probability after FC1 (None: preset)", "float", minimum=0, maximum=0.99,
          optional=True),
    Param("model.features", None, "ResNet output features, the paper's 1000 (None: 1000 x width)", "int", minimum=1,
          optional=True),
    Param("model.hidden", 100, "FC1 outputs", "int", minimum=1),
    Param("model.input_scale", 1.0 / 16.0, "multiplier of the conditioned values inside the network", "float", minimum=1e-9),
    Param("model.coordinates", None, "give the network each pixel's distance from the beam as a second input channel "
          "(None: preset; cpu: multi-lattice yes, resolution no; paper: no)", "bool", optional=True),
    Param("optimizer.name", None, "sgd or adamw (None: preset)", "choice", choices=("sgd", "adamw"), optional=True),
    Param("optimizer.lr", None, "(peak) learning rate (None: preset)", "float", minimum=1e-12, optional=True),
    Param("optimizer.momentum", None, "SGD momentum, or AdamW beta1 (None: preset)", "float", minimum=0, maximum=1,
          optional=True),
    Param("optimizer.weight_decay", None, "weight decay (None: preset)", "float", minimum=0, optional=True),
    Param("loss", None, "resolution loss on 1/d: l1 (MAE) or mse; multi-lattice: bce (None: preset)", "choice",
          choices=("l1", "mse", "bce"), optional=True),
    Param("schedule.name", None, "learning-rate schedule: constant, cosine or onecycle (None: preset)", "choice",
          choices=("constant", "cosine", "onecycle"), optional=True),
    Param("schedule.warmup", None, "warm-up: epochs (constant, cosine) or fraction of the run (onecycle) (None: preset)",
          "float", minimum=0, optional=True),
    Param("epochs", None, "number of epochs (None: preset)", "int", minimum=1, optional=True),
    Param("batch_size", None, "global batch size, split over the processes (None: preset)", "int", minimum=1, optional=True),
    Param("max_minutes", None, "stop after the epoch that passes this wall time (minutes)", "float", minimum=0,
          optional=True),
    Param("clip_grad", 0.0, "gradient norm limit (0: none)", "float", minimum=0),
    Param("select", "auto", "validation metric picking the best epoch (auto: mae for resolution, auc for multilattice)",
          "choice", choices=("auto", "loss", "accuracy", "mae", "spearman", "auc")),
    Param("data.validation_fraction", 0.1, "fraction of images held out for validation (by image identity)", "float",
          minimum=0.001, maximum=0.999),
    Param("data.seed", 0, "seed of the split, the shuffling, the augmentation and the initial weights", "int"),
    Param("data.cache", "auto", "hold the decoded images in memory: auto (when they fit), yes, no", "choice",
          choices=("auto", "yes", "no")),
    Param("data.augment", True, "randomly transpose images (the beam stays at [0, 0])", "bool"),
    Param("data.workers", None, "data-loading processes per training process (None: 0 on CPUs, up to 8 on GPUs)", "int",
          minimum=0, optional=True),
    Param("precision", "auto", "auto (bf16/fp16 autocast on GPUs, fp32 on CPUs), fp32, fp16, bf16", "choice",
          choices=("auto", "fp32", "fp16", "bf16")),
    Param("channels_last", True, "NHWC memory layout (faster on CPUs and tensor-core GPUs)", "bool"),
    Param("nproc", None, "torch threads per process (None: the node's cores / processes; with a stream: 1)", "int",
          minimum=1, optional=True),
    Param("stream.recipe", None, "train on images simulated while training, from this recipe (resolution or "
          "multilattice), instead of shards: every training image a fresh (seed, index), no shards written; "
          "data.workers are the simulation processes (None: one per core)", "choice",
          choices=("resolution", "multilattice"), optional=True),
    Param("stream.seed", 0, "recipe seed of the stream (image i is drawn from (seed, i) alone)", "int", minimum=0),
    Param("stream.images_per_epoch", 2000, "training images per epoch", "int", minimum=1),
    Param("stream.validation_images", 200, "validation images: the stream's first ones, simulated when the run starts "
          "(and again, identically, when it resumes)", "int", minimum=1),
    Param("stream.replay", 1, "epochs each training image is used for (1: every image fresh)", "int", minimum=1),
    Param("stream.detector", None, "simulate every image on this catalogue detector (None: the recipe's mix)", "str",
          optional=True),
    Param("structures.pool_size", 40, "stream: random protein-like structures in the pool (as xrais.simulate)", "int",
          minimum=1),
    Param("structures.seed", 0, "stream: seed of the structure pool", "int", minimum=0),
    Param("structures.cache", None, "stream: structure cache folder (default $XRAIS_CACHE/structures or "
          "~/.cache/xrais)", "path", optional=True),
)


def config_from_params(params, inputs) -> TrainConfig:
    """The :class:`TrainConfig` of the command line."""
    p = params
    if p.model.members != 1:
        raise ConfigError("model.members is the shell-profile network's (model.family=profile)")
    return TrainConfig(
        data=list(inputs), output=p.output.directory, kind=None if p.kind == "auto" else p.kind, preset=p.preset,
        depth=p.model.depth, width=p.model.width, norm=p.model.norm, dropout=p.model.dropout, features=p.model.features,
        hidden=p.model.hidden, input_scale=p.model.input_scale, coordinates=p.model.coordinates,
        optimizer=p.optimizer.name, lr=p.optimizer.lr,
        momentum=p.optimizer.momentum, weight_decay=p.optimizer.weight_decay, loss=p.loss, schedule=p.schedule.name,
        warmup=p.schedule.warmup, batch_size=p.batch_size, epochs=p.epochs,
        validation_fraction=p.data.validation_fraction, seed=p.data.seed, cache=p.data.cache, augment=p.data.augment,
        workers=p.data.workers, precision=p.precision, channels_last=p.channels_last, threads=p.nproc,
        resume=p.resume, export=p.output.export, max_minutes=p.max_minutes, clip_grad=p.clip_grad, select=p.select,
        stream=None if p.stream.recipe is None else StreamSettings(
            recipe=p.stream.recipe, seed=p.stream.seed, images_per_epoch=p.stream.images_per_epoch,
            validation_images=p.stream.validation_images, replay=p.stream.replay, pool_size=p.structures.pool_size,
            pool_seed=p.structures.seed, cache=p.structures.cache, detector=p.stream.detector))


def profile_config_from_params(params, inputs) -> ProfileConfig:
    """The :class:`ProfileConfig` of the command line (model.family=profile)."""
    p = params
    if p.kind == "multilattice":
        raise ConfigError("model.family=profile is a resolution network; kind=multilattice needs model.family=resnet")
    if p.stream.recipe is None and not inputs:
        raise ConfigError("give shard folders or files, or stream.recipe=resolution")
    defaults = ProfileTraining()
    recipe = ProfileTraining(epochs=p.epochs or defaults.epochs, batch_size=p.batch_size or defaults.batch_size,
                             learning_rate=p.optimizer.lr or defaults.learning_rate,
                             weight_decay=defaults.weight_decay if p.optimizer.weight_decay is None
                             else p.optimizer.weight_decay, seed=p.data.seed)
    stream = None if p.stream.recipe is None else StreamSettings(
        recipe=p.stream.recipe, seed=p.stream.seed, images_per_epoch=p.stream.images_per_epoch,
        validation_images=p.stream.validation_images, pool_size=p.structures.pool_size, pool_seed=p.structures.seed,
        cache=p.structures.cache, detector=p.stream.detector)
    if stream is not None:
        stream.check()
    return ProfileConfig(data=list(inputs), stream=stream, output=p.output.directory, export=p.output.export,
                         validation_fraction=p.data.validation_fraction, seed=p.data.seed,
                         workers=(os.cpu_count() or 1) if p.data.workers is None else p.data.workers, recipe=recipe,
                         architecture=ProfileArchitecture(members=p.model.members))


def run_train(params, inputs) -> int:
    if params.model.family == "profile":
        fit(profile_config_from_params(params, inputs), progress=lambda total, label: Progress(total, label))
        return EXIT_OK
    result = train(config_from_params(params, inputs))
    if result.best_epoch is not None:
        values = ", ".join(f"{k} {v:.4f}" for k, v in result.best_metrics.items() if isinstance(v, float))
        log.info("best epoch %d of %d: validation %s → %s", result.best_epoch, result.epochs_completed, values,
                 result.best_model)
    return EXIT_OK


program = Program(
    "xrais.train",
    "Train a resolution or multi-lattice model on shards of simulated, conditioned quadrants (from xrais.simulate), "
    "10% held out for validation, or on a stream of images simulated while it trains (stream.recipe=), with "
    "a fixed validation set of the stream's first images; metrics and learning curves every epoch, a checkpoint every epoch (resume=True "
    "continues a killed run), the best model in the registry format. Runs on CPUs and GPUs, in one process or "
    "several (torchrun, mpirun).",
    "xrais.train <shard folders|.h5 files> [key=value ...]  |  xrais.train stream.recipe=<recipe> [key=value ...]",
    PARAMS,
    run_train,
)


def run(argv=None) -> None:
    """Console-script entry point. In a parallel launch only rank 0 writes the log file and prints
    progress; the other ranks report warnings and errors only."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if int(launch_environment().get("RANK", "0")) > 0:
        argv.append("output.log=None")
        logging.disable(logging.INFO)
    sys.exit(program(argv))


if __name__ == "__main__":
    run()
