"""The training loop: epochs of training and validation, metrics, checkpoints, resume, best-model
export, DistributedDataParallel.

Run folder (written by rank 0 only):

* ``checkpoint.pt``: everything needed to continue exactly where the run stopped (model,
  optimiser, schedule, gradient scaler, random number generator states, epoch, best metric,
  history); written atomically after every epoch;
* ``history.json`` and ``curves.png``: per-epoch train/validation metrics (like Figure 6);
* ``best.pt``/``best.json``/``best.md``: the best epoch's model in the registry format.

Determinism: the shuffling of epoch e depends on (seed, e) only, the transpositions too, and the
random state (dropout) is restored from the checkpoint, so a resumed run repeats exactly what the
uninterrupted run would have done (on the same hardware and number of processes). All processes
share rank 0's random stream.
"""
from __future__ import annotations

import dataclasses
import gc
import logging
import math
import os
import platform
import random
import time
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler

from ..io.errors import XraisError
from ..models.network import Architecture, XraisNet
from ..models.registry import export, load_network
from . import distributed, metrics
from .config import RESUME_INVARIANTS, ConfigError, TrainConfig
from .data import DataError, QuadrantDataset, ShardReader, open_shards, should_cache, validation_mask
from .history import plot_curves, write_json
from .stream import StreamDataset, StreamSampler, loader_options, render_all

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = "xrais-checkpoint/1"
HISTORY = "history.json"
CURVES = "curves.png"
BEST = "best"


class DivergedError(XraisError):
    """The training loss became infinite or NaN."""


@dataclasses.dataclass
class TrainResult:
    """What a run produced: run folder, epochs completed, best epoch and its validation metrics,
    the best model's description file, the registry export (if asked), the history."""

    output: str
    epochs_completed: int
    best_epoch: Optional[int]
    best_metrics: dict
    best_model: Optional[str]
    exported: Optional[str]
    history: List[dict]


def train(config: TrainConfig, callbacks: Sequence[Callable] = ()) -> TrainResult:
    """Train a model (one process, or one rank of a ``torchrun``/MPI launch).

    callbacks: functions ``callback(trainer, entry)`` called after each epoch's checkpoint (entry:
    that epoch's history record).
    """
    context = distributed.setup()
    finished = False
    trainer = None
    try:
        trainer = Trainer(config, context, callbacks)
        result = trainer.fit()
        finished = True
        return result
    finally:
        # The network's DDP wrapper holds the process group: free it (and any reference cycle
        # through it) while the group is alive, or gloo's threads die at interpreter exit (SIGABRT).
        del trainer
        gc.collect()
        distributed.teardown(context, synchronise=finished)


def _rng_state() -> dict:
    numpy_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        "python": random.getstate(),
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def hardware_description(context: distributed.Context) -> str:
    """E.g. "2 × NVIDIA A100-SXM4-40GB" or "CPU: Intel Xeon … (2 cores)"."""
    if context.device.type == "cuda":
        return f"{context.world_size} × {torch.cuda.get_device_name(context.device)}"
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            name = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    processes = f", {context.world_size} processes" if context.distributed else ""
    return f"CPU: {name} ({os.cpu_count()} cores{processes}, {torch.get_num_threads()} threads per process)"


def _invariants(config: dict) -> dict:
    """The settings a resumed run must share (a stream's structure cache may move)."""
    values = {key: config.get(key) for key in RESUME_INVARIANTS}
    if isinstance(values.get("stream"), dict):
        values["stream"] = {k: v for k, v in values["stream"].items() if k != "cache"}
    return values


class Trainer:
    """One training run (see the module docstring); :meth:`fit` runs it."""

    def __init__(self, config: TrainConfig, context: distributed.Context, callbacks: Sequence[Callable] = ()):
        self.context = context
        self.callbacks = list(callbacks)
        self.device = context.device
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed 512×512 inputs: pick the fastest kernels once
        stream = config.stream
        if stream is not None:
            if config.data:
                raise ConfigError("train either on shards or on a stream (stream.recipe), not on both")
            stream.check()
            # the simulation workers are the parallelism; the training process needs one thread
            torch.set_num_threads(config.threads or 1)
            shards, recipe = None, stream.recipe
        else:
            torch.set_num_threads(config.threads or max(1, (os.cpu_count() or 1) // context.local_world_size))
            shards = open_shards(config.data, config.kind)
            recipe = shards.recipe
        kind = config.kind or recipe
        if kind not in ("resolution", "multilattice"):
            raise DataError(f"the data's recipe is {recipe!r}: say which model to train (kind=resolution "
                            "or kind=multilattice)")
        if kind == "multilattice" and recipe == "resolution":
            raise ConfigError("a multi-lattice model cannot learn from the resolution recipe: every image of it holds "
                              "one lattice (train it on the multilattice recipe)")
        self.config = config = config.resolved(kind)
        self.kind = kind
        self.shards = shards
        self.recipe = recipe
        self.precision = self._precision(config.precision)
        self.output = config.output
        self._check_run_folder()
        # a resumed run's settings are checked before any data is read or simulated
        self._resume_state = self._read_checkpoint() if config.resume and os.path.exists(self.checkpoint_path) else None

        torch.manual_seed(config.seed)
        if config.batch_size % context.world_size:
            raise ConfigError(f"batch_size={config.batch_size} must be a multiple of the number of processes "
                              f"({context.world_size})")
        self.rank_batch = config.batch_size // context.world_size
        if stream is None:
            held_out = validation_mask(shards.identity, config.validation_fraction, config.seed)
            self.train_indices = np.flatnonzero(~held_out)
            self.validation_indices = np.flatnonzero(held_out)
            n_train, n_validation = len(self.train_indices), len(self.validation_indices)
            self._log(f"{kind} model, {shards.summary()['images']} images in {len(shards.paths)} shard(s): "
                      f"{n_train} training, {n_validation} validation")
        else:
            n_train, n_validation = stream.images_per_epoch, stream.validation_images
            self._log(f"{kind} model on a stream of {stream.recipe} images (seed {stream.seed}): {n_train} per epoch "
                      f"(each used for {stream.replay} epoch(s)), {n_validation} for validation")
        if n_train < config.batch_size or n_validation == 0:
            raise DataError(f"too few images: {n_train} for training (batch size {config.batch_size}) "
                            f"and {n_validation} for validation")
        self.train_set, self.validation_set = self._datasets()
        self.train_loader, self.validation_loader = self._loaders()

        self.architecture = Architecture(kind, config.depth, config.width, config.features, config.hidden,
                                         config.dropout, config.norm, config.input_scale,
                                         coordinates=config.coordinates)
        self.network = XraisNet(self.architecture).to(self.device)
        if config.channels_last:
            self.network = self.network.to(memory_format=torch.channels_last)
        self.model = self._parallel(self.network)
        self.optimizer = self._optimizer()
        self.scheduler = self._scheduler()
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.loss_function = {"l1": F.l1_loss, "mse": F.mse_loss, "bce": F.binary_cross_entropy_with_logits}[config.loss]

        self.history: List[dict] = []
        self.best_value: Optional[float] = None
        self.best_epoch: Optional[int] = None
        self.start_epoch = 1
        self.elapsed = 0.0
        self.resumed_at: List[int] = []
        if self._resume_state is not None:
            self._load_checkpoint(self._resume_state)

    # -- set-up ------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> str:
        return os.path.join(self.output, CHECKPOINT)

    def _log(self, message: str) -> None:
        """Log on rank 0 only."""
        if self.context.is_main:
            log.info("%s", message)

    def _precision(self, requested: str) -> str:
        if self.device.type != "cuda":
            return "fp32" if requested == "auto" else requested
        if requested == "auto":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return requested

    def _check_run_folder(self) -> None:
        if os.path.exists(self.checkpoint_path) and not self.config.resume:
            raise ConfigError(f"{self.output} already holds a training run: resume=True to continue it, or choose "
                              "another output folder")
        if self.context.is_main:
            os.makedirs(self.output, exist_ok=True)

    def _datasets(self):
        if self.config.stream is not None:
            return self._stream_datasets()
        config, shards = self.config, self.shards
        cached = should_cache(config.cache, len(self.train_indices) + len(self.validation_indices),
                              self.context.local_world_size)
        images = {}
        if cached:
            from ..command_line.program import Progress

            reader = ShardReader(shards)
            total = len(self.train_indices) + len(self.validation_indices)
            started = time.perf_counter()
            with Progress(total, "caching images", enabled=None if self.context.is_main else False) as progress:
                for name, indices in (("train", self.train_indices), ("validation", self.validation_indices)):
                    images[name] = reader.read_many(indices, progress)
            self._log(f"{total} images cached in memory ({total * 0.5:.0f} MiB) in {time.perf_counter() - started:.0f} s")
        train_set = QuadrantDataset(shards, self.train_indices, self.kind, config.augment, config.seed, images.get("train"))
        validation_set = QuadrantDataset(shards, self.validation_indices, self.kind, False, config.seed,
                                         images.get("validation"))
        return train_set, validation_set

    def _stream_datasets(self):
        """A stream's training set and its validation set, rendered now (this rank's part)."""
        from ..command_line.program import Progress

        config, context, stream = self.config, self.context, self.config.stream
        started = time.perf_counter()
        stream.pool().build()  # before the workers start, so that none of them builds a structure
        self._log(f"structure pool: {stream.pool_size} structures ready in {time.perf_counter() - started:.0f} s")
        train_set = StreamDataset(stream, self.kind, stream.images_per_epoch)
        mine = list(range(context.rank, stream.validation_images, context.world_size))
        validation = torch.utils.data.Subset(StreamDataset(stream, self.kind, stream.validation_images), mine)
        started = time.perf_counter()
        with Progress(len(mine), "simulating the validation images",
                      enabled=None if context.is_main else False) as progress:
            rendered = render_all(validation, self._workers(), progress)
        self._log(f"{len(mine)} validation images simulated in {time.perf_counter() - started:.0f} s")
        return train_set, rendered

    def _workers(self) -> int:
        """Data-loading (for a stream: simulation) processes of this training process."""
        config, context = self.config, self.context
        if config.workers is not None:
            return config.workers
        per_process = max(1, (os.cpu_count() or 1) // context.local_world_size)
        if config.stream is not None:
            return per_process
        return min(8, max(1, per_process - 1)) if self.device.type == "cuda" else 0

    def _loaders(self):
        config, context = self.config, self.context
        cuda = self.device.type == "cuda"
        workers = self._workers()
        # drop_last: every process gets floor(n / world) images, so global batch k is images
        # [k·batch, (k+1)·batch) of the epoch's permutation whatever the number of processes.
        if config.stream is not None:
            self.sampler = StreamSampler(config.stream, context.rank, context.world_size, config.seed, config.augment)
            train_loader = DataLoader(self.train_set, batch_size=self.rank_batch, sampler=self.sampler, drop_last=True,
                                      pin_memory=cuda, **loader_options(workers))
            # the validation images are in memory, already this rank's part
            return train_loader, DataLoader(self.validation_set, batch_size=2 * self.rank_batch, shuffle=False)
        self.sampler = DistributedSampler(self.train_set, num_replicas=context.world_size, rank=context.rank,
                                          shuffle=True, seed=config.seed, drop_last=True)
        train_loader = DataLoader(self.train_set, batch_size=self.rank_batch, sampler=self.sampler, drop_last=True,
                                  num_workers=workers, pin_memory=cuda)
        # Validation: every image once, split over the ranks without padding.
        mine = torch.utils.data.Subset(self.validation_set, range(context.rank, len(self.validation_set), context.world_size))
        validation_loader = DataLoader(mine, batch_size=2 * self.rank_batch, shuffle=False, num_workers=workers,
                                       pin_memory=cuda)
        return train_loader, validation_loader

    def _parallel(self, network: XraisNet):
        if not self.context.distributed:
            return network
        if self.config.norm == "batch":
            if self.device.type == "cuda":
                network = torch.nn.SyncBatchNorm.convert_sync_batchnorm(network)
                self.network = network
            else:
                self._log("warning: batch norm with several CPU processes normalises each process's part of the "
                          "batch separately (SyncBatchNorm needs GPUs); norm=group makes them equivalent to one process")
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(network, device_ids=device_ids)

    def _optimizer(self):
        c = self.config
        if c.optimizer == "sgd":
            return torch.optim.SGD(self.network.parameters(), lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
        return torch.optim.AdamW(self.network.parameters(), lr=c.lr, betas=(c.momentum, 0.999), weight_decay=c.weight_decay)

    def _scheduler(self):
        c = self.config
        steps_per_epoch = len(self.train_loader)
        total = c.epochs * steps_per_epoch
        if c.schedule == "onecycle":
            return torch.optim.lr_scheduler.OneCycleLR(self.optimizer, max_lr=c.lr, total_steps=total,
                                                       pct_start=c.warmup, cycle_momentum=False)
        warmup = c.warmup * steps_per_epoch
        cosine = c.schedule == "cosine"

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            if not cosine:
                return 1.0
            progress = min(1.0, (step - warmup) / max(1.0, total - warmup))
            return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress))

        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)

    # -- checkpoints --------------------------------------------------------------------------
    def _save_checkpoint(self, epoch: int) -> None:
        state = {
            "format": CHECKPOINT_FORMAT,
            "epoch": epoch,
            "model": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": _rng_state(),
            "best": {"value": self.best_value, "epoch": self.best_epoch},
            "history": self.history,
            "config": self.config.as_dict(),
            "elapsed": self.elapsed,
            "resumed_at": self.resumed_at,
        }
        partial = self.checkpoint_path + ".partial"
        torch.save(state, partial)
        os.replace(partial, self.checkpoint_path)

    def _read_checkpoint(self) -> dict:
        """The run's checkpoint, after checking that it is one and that the settings that define
        the run are the same."""
        try:
            state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=True)
        except Exception as exc:  # torch raises many types for unreadable files
            raise DataError(f"{self.checkpoint_path}: cannot read the checkpoint: {exc}") from None
        if state.get("format") != CHECKPOINT_FORMAT:
            raise DataError(f"{self.checkpoint_path}: not an xrais checkpoint")
        before, now = _invariants(state["config"]), _invariants(self.config.as_dict())
        changed = [f"{key} {before.get(key)!r} → {now[key]!r}" for key in RESUME_INVARIANTS if before.get(key) != now[key]]
        if changed:
            raise ConfigError(f"cannot resume {self.output}: settings differ from the run's ({'; '.join(changed)})")
        return state

    def _load_checkpoint(self, state: dict) -> None:
        self.network.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        self.best_value, self.best_epoch = state["best"]["value"], state["best"]["epoch"]
        self.history = state["history"]
        self.elapsed = state["elapsed"]
        self.start_epoch = state["epoch"] + 1
        self.resumed_at = state["resumed_at"] + [self.start_epoch]
        self._log(f"resuming {self.output} after epoch {state['epoch']} (best so far: epoch {self.best_epoch})")

    # -- epochs -------------------------------------------------------------------------------
    def _autocast(self):
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.precision, torch.float32)
        return torch.autocast(self.device.type, dtype=dtype, enabled=self.precision != "fp32")

    def _batch(self, batch):
        images, geometry, target = (t.to(self.device, non_blocking=True) for t in batch)
        images = images.unsqueeze(1)
        if self.config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, geometry, target

    def _readout(self, output: torch.Tensor) -> torch.Tensor:
        """Network output → reported prediction: 1/d clamped at 0, or probability."""
        return output.clamp_min(0.0) if self.kind == "resolution" else torch.sigmoid(output)

    def train_epoch(self, epoch: int) -> dict:
        """One pass over the training images; metrics of the predictions made while training."""
        from ..command_line.program import Progress

        self.model.train()
        self.sampler.set_epoch(epoch)
        if self.config.stream is None:
            self.train_set.set_epoch(epoch)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        predictions, targets = [], []
        with Progress(len(self.train_loader), f"epoch {epoch} training",
                      enabled=None if self.context.is_main else False) as progress:
            for batch in self.train_loader:
                images, geometry, target = self._batch(batch)
                with self._autocast():
                    output = self.model(images, geometry)
                loss = self.loss_function(output.float(), target)
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                if self.config.clip_grad > 0:
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.config.clip_grad)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler.step()
                loss_sum += loss.detach().double() * len(target)
                predictions.append(self._readout(output.detach()))
                targets.append(target)
                progress.update(1)
        return self._metrics(predictions, targets, loss_sum)

    def validate(self) -> dict:
        """Metrics of the validation images (eval mode)."""
        self.model.eval()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        predictions, targets = [], []
        with torch.inference_mode():
            for batch in self.validation_loader:
                images, geometry, target = self._batch(batch)
                with self._autocast():
                    output = self.network(images, geometry)
                loss_sum += self.loss_function(output.float(), target, reduction="sum").double()
                predictions.append(self._readout(output))
                targets.append(target)
        return self._metrics(predictions, targets, loss_sum)

    def _metrics(self, predictions, targets, loss_sum) -> dict:
        empty = torch.zeros(0, device=self.device)
        predicted = torch.cat(predictions or [empty]).float().cpu().numpy()
        labels = torch.cat(targets or [empty]).float().cpu().numpy()
        predicted, labels = distributed.gather(self.context, predicted, labels)
        return metrics.compute(self.kind, predicted, labels, distributed.all_sum(self.context, float(loss_sum)))

    def fit(self) -> TrainResult:
        """Run the remaining epochs; returns what the run produced."""
        config = self.config
        select = config.selection_metric
        started = time.perf_counter() - self.elapsed
        last_epoch = self.start_epoch - 1
        for epoch in range(self.start_epoch, config.epochs + 1):
            epoch_started = time.perf_counter()
            learning_rate = self.optimizer.param_groups[0]["lr"]
            train_metrics = self.train_epoch(epoch)
            if not math.isfinite(train_metrics["loss"]):
                raise DivergedError(f"training diverged in epoch {epoch} (loss {train_metrics['loss']}): set clip_grad "
                                    "(resume=True continues from the last checkpoint) or lower optimizer.lr in a new run")
            validation_metrics = self.validate()
            self.elapsed = time.perf_counter() - started
            improved = metrics.is_better(select, validation_metrics[select], self.best_value)
            entry = {"epoch": epoch, "lr": learning_rate, "seconds": time.perf_counter() - epoch_started,
                     "elapsed": self.elapsed, "train": train_metrics, "validation": validation_metrics, "best": improved}
            if improved:
                self.best_value, self.best_epoch = validation_metrics[select], epoch
            self.history.append(entry)
            if self.context.is_main:
                if improved:
                    export(self.network, os.path.join(self.output, BEST), self.card_fields(entry))
                self._save_checkpoint(epoch)
                self._write_history()
            self._log(self._epoch_line(entry))
            last_epoch = epoch
            for callback in self.callbacks:
                callback(self, entry)
            over_time = config.max_minutes is not None and self.elapsed > 60.0 * config.max_minutes
            if distributed.broadcast_flag(self.context, over_time) and epoch < config.epochs:
                self._log(f"stopping after epoch {epoch}: the time limit of {config.max_minutes:g} min is reached")
                break
        return self._finish(last_epoch)

    def _finish(self, last_epoch: int) -> TrainResult:
        best_model = os.path.join(self.output, BEST + ".json")
        exported = None
        best_entry = next((e for e in self.history if e["epoch"] == self.best_epoch), None)
        if self.context.is_main and self.config.export and best_entry is not None:
            network, _ = load_network(best_model)
            exported = str(export(network, self.config.export, self.card_fields(best_entry)))
            self._log(f"best model (epoch {self.best_epoch}) exported to {exported}")
        return TrainResult(self.output, last_epoch, self.best_epoch, best_entry["validation"] if best_entry else {},
                           best_model if best_entry else None, exported, self.history)

    # -- reporting ----------------------------------------------------------------------------
    def card_fields(self, entry: dict) -> dict:
        """What the model card records about this run, up to the epoch of ``entry``."""
        c = self.config
        return {
            "description": f"xrais {self.kind} model ({self.architecture.label}) trained by xrais.train",
            "recipe": self.recipe,
            "training_data": self._training_data(entry["epoch"]),
            "validation_images": int(c.stream.validation_images if c.stream else len(self.validation_indices)),
            "epoch": entry["epoch"],
            "epochs_planned": c.epochs,
            "selected_by": f"validation {c.selection_metric}",
            "preset": c.preset,
            "optimizer": f"{c.optimizer} lr {c.lr:g}, momentum/beta1 {c.momentum:g}, weight decay {c.weight_decay:g}",
            "schedule": f"{c.schedule}, warm-up {c.warmup:g}",
            "loss": c.loss,
            "batch_size": c.batch_size,
            "augmentation": "random transposition" if c.augment else "none",
            "precision": self.precision,
            "hardware": hardware_description(self.context),
            "training_minutes": round(entry["elapsed"] / 60.0, 2),
            "validation_metrics": entry["validation"],
            "train_metrics": entry["train"],
        }

    def _training_data(self, epoch: int) -> dict:
        """The card's account of the training images seen up to ``epoch``."""
        stream = self.config.stream
        if stream is None:
            return self.shards.summary(self.train_indices)
        distinct = stream.first_training_index(epoch) + stream.images_per_epoch - stream.validation_images
        return {"images": int(distinct), "source": "stream", "recipe": stream.recipe, "seed": stream.seed,
                "replay": stream.replay, "images_per_epoch": stream.images_per_epoch,
                "detector": stream.detector or "recipe's"}

    def _write_history(self) -> None:
        write_json(os.path.join(self.output, HISTORY), {
            "kind": self.kind, "architecture": self.architecture.as_dict(), "config": self.config.as_dict(),
            "selected_by": self.config.selection_metric, "best_epoch": self.best_epoch, "resumed_at": self.resumed_at,
            "epochs": self.history})
        plot_curves(os.path.join(self.output, CURVES), self.history, self.kind,
                    title=f"{self.kind}: {self.architecture.label}", resumed_at=self.resumed_at)

    def _epoch_line(self, entry: dict) -> str:
        def describe(values: dict) -> str:
            return " ".join(f"{name} {values[name]:.4f}" for name in metrics.METRIC_NAMES[self.kind])

        return (f"epoch {entry['epoch']}/{self.config.epochs}: train {describe(entry['train'])} | validation "
                f"{describe(entry['validation'])} | lr {entry['lr']:.3g} | {entry['seconds']:.0f} s"
                + ("  *best*" if entry["best"] else ""))
