"""Training configuration and presets.

Presets give every setting a value for each kind of model; any setting given explicitly wins.

* ``cpu`` (default): compact networks (ResNet-18 ×0.25, ≈ 10 ms per quadrant on one CPU core)
  given the distance-from-the-beam channel besides the image (xrais.models.network), with group
  normalisation (no train/eval gap with small batches, and the same result whatever
  the number of processes), trained with AdamW and a one-cycle schedule, so a whole recipe
  (simulation + training) fits in a couple of hours on a small CPU machine;
* ``paper``: the networks and optimiser settings of the paper's Table 2 — ResNet-50 (resolution,
  SGD lr 6e-3, momentum 0.9, MAE loss) and ResNet-34 (multi-lattice, SGD lr 1.04e-3, momentum
  0.9983, weight decay 2.5e-4, dropout after FC1), single-channel input, constant learning rate —
  meant for GPUs.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence, Tuple

from ..io.errors import XraisError
from ..models.network import KINDS
from .metrics import DEFAULT_SELECTION, METRIC_NAMES
from .stream import StreamSettings

OPTIMIZERS = ("sgd", "adamw")
LOSSES = {"resolution": ("l1", "mse"), "multilattice": ("bce",)}
SCHEDULES = ("constant", "cosine", "onecycle")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
CACHE_MODES = ("auto", "yes", "no")

PRESETS = {
    "cpu": {
        "resolution": dict(depth=18, width=0.25, norm="group", dropout=0.0, optimizer="adamw", lr=2e-3,
                           momentum=0.9, weight_decay=1e-4, loss="l1", schedule="onecycle", warmup=0.3,
                           batch_size=16, epochs=16, coordinates=False),
        "multilattice": dict(depth=18, width=0.25, norm="group", dropout=0.2, optimizer="adamw", lr=2e-3,
                             momentum=0.9, weight_decay=1e-4, loss="bce", schedule="onecycle", warmup=0.3,
                             batch_size=16, epochs=16, coordinates=True),
    },
    "paper": {
        "resolution": dict(depth=50, width=1.0, norm="batch", dropout=0.0, optimizer="sgd", lr=6e-3,
                           momentum=0.9, weight_decay=0.0, loss="l1", schedule="constant", warmup=0.0,
                           batch_size=64, epochs=400, coordinates=False),
        "multilattice": dict(depth=34, width=1.0, norm="batch", dropout=0.5, optimizer="sgd", lr=1.04e-3,
                             momentum=0.9983, weight_decay=2.5e-4, loss="bce", schedule="constant", warmup=0.0,
                             batch_size=64, epochs=400, coordinates=False),
    },
}


class ConfigError(XraisError, ValueError):
    """A training setting makes no sense."""


#: Settings a preset provides (None in :class:`TrainConfig` means "from the preset").
PRESET_FIELDS = tuple(PRESETS["cpu"]["resolution"])


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run needs (units: learning rate per step, warm-up in epochs —
    for ``onecycle`` the fraction of the run spent rising; batch_size is the global batch, split
    over the processes).

    data: shard files/folders; output: run folder (checkpoint, history, curves, best model);
    kind: "resolution"/"multilattice" (None: from the shards' recipe); preset: "cpu" or "paper";
    features/hidden/input_scale: network head and input scaling (None: architecture defaults);
    coordinates: give the network the distance-from-the-beam channel (None: preset);
    validation_fraction/seed: held-out split and every random choice; cache: keep decoded images
    in memory ("auto": when they fit); augment: random transposition; workers: data-loading
    processes per training process (None: 0 on CPUs, up to 8 on GPUs); precision: "auto" (bf16 or
    fp16 autocast on GPUs, fp32 on CPUs); threads: torch threads per process (None: cores /
    processes on the node); resume: continue the run in ``output``; export: registry name or path
    to write the best model to at the end; max_minutes: stop after the epoch that passes this
    wall time; clip_grad: gradient norm limit (0: none); select: validation metric that picks the
    best epoch ("auto": MAE for resolution, AUC for multi-lattice); stream: train on images
    simulated while training (:mod:`xrais.training.stream`) instead of ``data`` (then empty); its
    validation set replaces ``validation_fraction``, and ``workers`` are its simulation processes
    (None: one per core).
    """

    data: Sequence[str]
    output: str = "xrais_run"
    kind: Optional[str] = None
    preset: str = "cpu"
    depth: Optional[int] = None
    width: Optional[float] = None
    norm: Optional[str] = None
    dropout: Optional[float] = None
    features: Optional[int] = None
    hidden: int = 100
    input_scale: float = 1.0 / 16.0
    coordinates: Optional[bool] = None
    optimizer: Optional[str] = None
    lr: Optional[float] = None
    momentum: Optional[float] = None
    weight_decay: Optional[float] = None
    loss: Optional[str] = None
    schedule: Optional[str] = None
    warmup: Optional[float] = None
    batch_size: Optional[int] = None
    epochs: Optional[int] = None
    validation_fraction: float = 0.1
    seed: int = 0
    cache: str = "auto"
    augment: bool = True
    workers: Optional[int] = None
    precision: str = "auto"
    channels_last: bool = True
    threads: Optional[int] = None
    resume: bool = False
    export: Optional[str] = None
    max_minutes: Optional[float] = None
    clip_grad: float = 0.0
    select: str = "auto"
    stream: Optional[StreamSettings] = None

    def resolved(self, kind: str) -> "TrainConfig":
        """A copy for ``kind`` with every preset setting filled in and checked."""
        if kind not in KINDS:
            raise ConfigError(f"kind must be one of {KINDS}, got {kind!r}")
        if self.preset not in PRESETS:
            raise ConfigError(f"preset must be one of {tuple(PRESETS)}, got {self.preset!r}")
        preset = PRESETS[self.preset][kind]
        filled = {name: preset[name] if getattr(self, name) is None else getattr(self, name) for name in PRESET_FIELDS}
        config = dataclasses.replace(self, kind=kind, **filled)
        config.check()
        return config

    def check(self) -> None:
        """Raise :class:`ConfigError` for settings that make no sense."""
        checks: Tuple[Tuple[bool, str], ...] = (
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}"),
            (self.loss in LOSSES[self.kind], f"loss for {self.kind} must be one of {LOSSES[self.kind]}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}"),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}"),
            (self.cache in CACHE_MODES, f"cache must be one of {CACHE_MODES}"),
            (self.lr > 0 and self.batch_size >= 1 and self.epochs >= 1, "lr, batch_size and epochs must be positive"),
            (0.0 < self.validation_fraction < 1.0, "validation_fraction must be between 0 and 1"),
            (self.warmup >= 0 and self.clip_grad >= 0, "warmup and clip_grad must not be negative"),
            (self.schedule != "onecycle" or 0 < self.warmup < 1, "onecycle needs warmup between 0 and 1 (fraction of the run)"),
            (self.select == "auto" or self.select in METRIC_NAMES[self.kind],
             f"select for {self.kind} must be auto or one of {METRIC_NAMES[self.kind]}"),
        )
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.stream is not None:
            self.stream.check()

    @property
    def selection_metric(self) -> str:
        return DEFAULT_SELECTION[self.kind] if self.select == "auto" else self.select

    def as_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["data"] = list(self.data)
        return values


#: Settings that must not change when a run is resumed (they define what is being trained).
RESUME_INVARIANTS = ("kind", "depth", "width", "norm", "dropout", "features", "hidden", "input_scale", "coordinates",
                     "optimizer", "lr", "momentum", "weight_decay", "loss", "schedule", "warmup", "batch_size", "epochs",
                     "validation_fraction", "seed", "augment", "stream")
