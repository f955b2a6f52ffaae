"""Training the shell-profile resolution network (:mod:`xrais.models.profile`).

Its input is small (N_CHANNELS × N_SHELLS numbers per quadrant), so the features of every training
image are computed once (:func:`shard_features`, a few ms per quadrant) and training runs over them
in memory: thousands of epochs-worth of images a minute on two cores, which is what makes learning
curves over 1k–10k images cheap.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from ..models.profile import (N_CHANNELS, N_GLOBALS, N_SHELLS, UNDETERMINED_SIGMA, ProfileArchitecture, ProfileNet,
                              gaussian_nll, global_inputs, profile_features, shell_histogram)
from . import metrics
from .data import DataError, ShardReader, ShardSet

log = logging.getLogger(__name__)


@dataclasses.dataclass
class FeatureSet:
    """Features of labelled quadrants: features (n, N_CHANNELS, N_SHELLS) float32, globals
    (n, N_GLOBALS) float32, target (n,) 1/d Å⁻¹, and per-image label columns (for confound tables)."""

    features: np.ndarray
    globals: np.ndarray
    target: np.ndarray
    labels: Dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.target)

    def subset(self, indices) -> "FeatureSet":
        return FeatureSet(self.features[indices], self.globals[indices], self.target[indices],
                          {k: v[indices] for k, v in self.labels.items()})

    @classmethod
    def concatenate(cls, parts: Sequence["FeatureSet"]) -> "FeatureSet":
        """One set of several, in order; the label columns they all have."""
        common = set.intersection(*(set(part.labels) for part in parts))
        return cls(np.concatenate([p.features for p in parts]), np.concatenate([p.globals for p in parts]),
                   np.concatenate([p.target for p in parts]),
                   {k: np.concatenate([p.labels[k] for p in parts]) for k in sorted(common)})

    def save(self, path: str) -> None:
        np.savez_compressed(path, features=self.features, globals=self.globals, target=self.target,
                            **{f"label_{k}": v for k, v in self.labels.items()})

    @classmethod
    def load(cls, path: str) -> "FeatureSet":
        with np.load(path, allow_pickle=True) as data:
            labels = {k[6:]: data[k] for k in data.files if k.startswith("label_")}
            return cls(data["features"], data["globals"], data["target"], labels)


def shard_features(shards: ShardSet, indices: Optional[np.ndarray] = None, progress=None) -> FeatureSet:
    """Features of the shard images ``indices`` (default all), read shard by shard."""
    indices = np.arange(len(shards)) if indices is None else np.asarray(indices)
    reader = ShardReader(shards)
    geometry = shards.geometry()
    features = np.empty((len(indices), N_CHANNELS, N_SHELLS), dtype=np.float32)
    globals_ = np.empty((len(indices), N_GLOBALS), dtype=np.float32)
    order = np.lexsort((shards.row[indices], shards.shard[indices]))
    for position in order:
        index = int(indices[position])
        wavelength, distance, pixel_size, downsample = (float(v) for v in geometry[index])
        histogram, area = shell_histogram(reader.read(index), wavelength, distance, pixel_size, int(downsample))
        features[position] = profile_features(histogram, area)
        globals_[position] = global_inputs(wavelength, distance, pixel_size, int(downsample))
        if progress is not None:
            progress.update(1)
    labels = {k: np.asarray(v)[indices] for k, v in shards.labels.items()}
    return FeatureSet(features, globals_, shards.target("resolution")[indices], labels)


@dataclasses.dataclass(frozen=True)
class ProfileTraining:
    """Recipe of a training run: epochs over the training features, batch size, AdamW learning rate
    (cosine decay) and weight decay, seed; ``warmup_epochs`` of mean-squared error before the
    likelihood (so that σ is not learnt before the mean is)."""

    epochs: int = 60
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 3
    seed: int = 0


def train_profile(train: FeatureSet, validation: Optional[FeatureSet] = None,
                  architecture: ProfileArchitecture = ProfileArchitecture(),
                  recipe: ProfileTraining = ProfileTraining(),
                  on_epoch: Optional[Callable[[dict], None]] = None) -> ProfileNet:
    """A :class:`ProfileNet` trained on ``train``; ``on_epoch`` gets {epoch, loss, validation…}
    (and ``member``, the network's number, for a model of several).

    With a ``validation`` set, the network returned is that of the epoch of least validation
    loss (Gaussian likelihood: the mean and σ together), its number in ``network.best_epoch``: past
    it the network learns its training images' noise, and its σ shrinks below its errors. A model
    of several members (``architecture.members``) trains each on its own, member i with the seed
    ``recipe.seed + i`` (initial weights and batch order), each at its own best epoch
    (``best_epoch`` then lists them)."""
    if architecture.members > 1:
        single = dataclasses.replace(architecture, members=1)
        network = ProfileNet(architecture)
        epochs = []
        for number, member in enumerate(network.members):
            report = None if on_epoch is None else (lambda entry, number=number: on_epoch({**entry, "member": number}))
            trained = train_profile(train, validation, single, dataclasses.replace(recipe, seed=recipe.seed + number),
                                    report)
            member.load_state_dict(trained.members[0].state_dict())
            epochs.append(trained.best_epoch)
        network.best_epoch = epochs
        return network.eval()
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    network = ProfileNet(architecture)
    features = torch.from_numpy(train.features)
    globals_ = torch.from_numpy(train.globals)
    target = torch.from_numpy(train.target.astype(np.float32))
    optimizer = torch.optim.AdamW(network.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(train) / recipe.batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.learning_rate,
                                                   total_steps=recipe.epochs * steps_per_epoch, pct_start=0.05)
    best = None  # (validation loss, epoch, state) of the best epoch so far
    for epoch in range(recipe.epochs):
        network.train()
        order = torch.randperm(len(train), generator=generator)
        total = 0.0
        for start in range(0, len(train), recipe.batch_size):
            batch = order[start:start + recipe.batch_size]
            mean, sigma = network(features[batch], globals_[batch])
            if epoch < recipe.warmup_epochs:
                loss = ((mean - target[batch]) ** 2).mean() * 100.0
            else:
                loss = gaussian_nll(mean, sigma, target[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), 5.0)
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        entry = {"epoch": epoch + 1, "loss": total / len(train)}
        if validation is not None:
            mean, sigma = predict_features(network, validation)
            entry.update(score((mean, sigma), validation.target))
            entry["validation_loss"] = float(gaussian_nll(torch.from_numpy(mean), torch.from_numpy(sigma),
                                                          torch.from_numpy(validation.target.astype(np.float64))))
            if epoch >= recipe.warmup_epochs and (best is None or entry["validation_loss"] < best[0]):
                best = (entry["validation_loss"], epoch + 1, copy.deepcopy(network.state_dict()))
        if on_epoch is not None:
            on_epoch(entry)
    network.best_epoch = recipe.epochs  # without a validation set (or within the warm-up): the last
    if best is not None:
        network.load_state_dict(best[2])
        network.best_epoch = best[1]
    return network.eval()


def predict_features(network: ProfileNet, data: FeatureSet, batch_size: int = 1024):
    """(mean 1/d, σ) float64 arrays (Å⁻¹) of ``network`` on a feature set."""
    network.eval()
    means, sigmas = [], []
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            mean, sigma = network(torch.from_numpy(data.features[start:start + batch_size]),
                                  torch.from_numpy(data.globals[start:start + batch_size]))
            means.append(mean.double().numpy())
            sigmas.append(sigma.double().numpy())
    return np.concatenate(means), np.concatenate(sigmas)


def score(prediction, target, undetermined_sigma: float = UNDETERMINED_SIGMA) -> dict:
    """Resolution metrics (:mod:`xrais.training.metrics`) of (mean, σ) predictions, with the
    calibration of σ and the undetermined ones (σ above ``undetermined_sigma``, Å⁻¹)."""
    mean, sigma = prediction
    return {**metrics.resolution_metrics(mean, target),
            **metrics.uncertainty_metrics(mean, sigma, target, undetermined_sigma)}


#: σ limits (Å⁻¹) tried by :func:`calibrated_undetermined_sigma`, and the share of the determined
#: images that must be right (within 0.07 Å⁻¹): a determined answer is a right answer.
UNDETERMINED_GRID = tuple(round(0.03 + 0.005 * k, 3) for k in range(15))
DETERMINED_ACCURACY = 0.9


def calibrated_undetermined_sigma(prediction, target) -> float:
    """The σ above which estimates are reported undetermined, chosen on images that play no part
    in the figures reported (the training run's validation split): the largest of
    :data:`UNDETERMINED_GRID` at which :data:`DETERMINED_ACCURACY` of the images it leaves
    determined are within the tolerance; the smallest if none does."""
    mean, sigma = (np.asarray(v, dtype=float) for v in prediction)
    right = np.abs(mean - np.asarray(target, dtype=float)) <= metrics.RESOLUTION_TOLERANCE
    chosen = UNDETERMINED_GRID[0]
    for limit in UNDETERMINED_GRID:
        determined = sigma <= limit
        if determined.any() and right[determined].mean() >= DETERMINED_ACCURACY:
            chosen = limit
    return float(chosen)


def learning_curve(train: FeatureSet, validation: FeatureSet, sizes: Sequence[int],
                   architecture: ProfileArchitecture = ProfileArchitecture(),
                   recipe: ProfileTraining = ProfileTraining(), evaluate: Optional[Dict[str, FeatureSet]] = None,
                   images_per_size: int = 150_000) -> List[dict]:
    """Scores of networks trained on the first ``n`` training images for each size, on the
    ``evaluate`` sets; ``validation`` picks each run's epoch (it is not scored). Epochs:
    max(recipe.epochs, images_per_size / n), capped at 300, so that small sets get as many
    gradient steps as their best epoch needs."""
    rows = []
    for n in sizes:
        if n > len(train):
            break
        epochs = int(min(300, max(recipe.epochs, images_per_size // n)))
        network = train_profile(train.subset(np.arange(n)), validation, architecture,
                                dataclasses.replace(recipe, epochs=epochs))
        row = {"n_train": int(n), "epochs": epochs, "best_epoch": int(getattr(network, "best_epoch", epochs))}
        for name, data in (evaluate or {}).items():
            row[name] = score(predict_features(network, data), data.target)
        log.info("learning curve: %s", row)
        rows.append(row)
    return rows


def breakdown(prediction, data: FeatureSet, values: np.ndarray, edges: Sequence[float]) -> List[dict]:
    """Scores of (mean, σ) predictions per bin [low, high) of ``values`` (one per image): the
    confound tables (accuracy per overall scale, per background, per detector code…)."""
    mean, sigma = (np.asarray(v) for v in prediction)
    values = np.asarray(values, dtype=float)
    rows = []
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (values >= low) & (values < high)
        if inside.any():
            rows.append({"low": float(low), "high": float(high), "n": int(inside.sum()),
                         **score((mean[inside], sigma[inside]), data.target[inside])})
    return rows


class _StreamFeatures(torch.utils.data.Dataset):
    """(features, globals, target) of stream images, simulated and reduced to features in the
    data-loading workers (no image leaves them)."""

    def __init__(self, settings, first: int, count: int):
        from .stream import StreamDataset

        self.images = StreamDataset(settings, "resolution", count)
        self.first = int(first)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        image, geometry, target = self.images[self.first + i]
        wavelength, distance, pixel_size, downsample = (float(v) for v in geometry)
        histogram, area = shell_histogram(image.numpy(), wavelength, distance, pixel_size, int(round(downsample)))
        return (profile_features(histogram, area), global_inputs(wavelength, distance, pixel_size, int(round(downsample))),
                np.float32(target))


def channel_names() -> List[str]:
    """Names of the shell profile's channels (:func:`xrais.models.profile.profile_features`), for tables."""
    from ..models.profile import thresholds

    return ["coverage", "log10 shell pixels / 6", "background / 16"] + [
        f"spot pixels ≥ {energy:.0f} photons (log10 fraction + 5)" for energy in thresholds()]


def feature_gap(measured: FeatureSet, simulated: FeatureSet, top: int = 3) -> List[dict]:
    """Where the images a model reads (``measured``: frames, pooled as the predictor pools them) lie
    outside what it was trained on (``simulated``), channel by channel of the shell profile: per
    shell, z = (measured mean − simulated mean) / simulated standard deviation, over the shells the
    measured images cover (mean coverage > 0). Per channel: its name, the mean |z| over those shells,
    and the ``top`` shells of largest |z| with s (Å⁻¹), z and both means. A gap of several σ in a
    channel means the simulation (or the pipeline: pooling, conditioning) lacks something the
    measured frames have, or the reverse. The simulated set's spread is floored at 10⁻³ (shells
    that never vary, beyond every training image's reach)."""
    from ..models.profile import S_MAX

    if not len(measured) or len(simulated) < 2:
        raise ValueError("feature_gap needs measured images and at least two simulated ones")
    mean = simulated.features.astype(np.float64).mean(axis=0)
    spread = np.maximum(simulated.features.astype(np.float64).std(axis=0), 1e-3)
    seen = measured.features.astype(np.float64).mean(axis=0)
    z = (seen - mean) / spread
    covered = np.flatnonzero(seen[0] > 0)
    centres = (np.arange(N_SHELLS) + 0.5) * S_MAX / N_SHELLS
    rows = []
    for channel, name in enumerate(channel_names()):
        order = covered[np.argsort(-np.abs(z[channel, covered]), kind="stable")][:top]
        rows.append({"channel": channel, "name": name,
                     "mean_abs_z": float(np.abs(z[channel, covered]).mean()) if len(covered) else 0.0,
                     "largest": [{"s": round(float(centres[k]), 4), "z": round(float(z[channel, k]), 2),
                                  "measured": round(float(seen[channel, k]), 3),
                                  "simulated": round(float(mean[channel, k]), 3)} for k in order]})
    return rows


def stream_features(settings, first: int, count: int, workers: int, progress=None) -> FeatureSet:
    """Features of stream images ``first … first + count − 1`` of (recipe, seed), simulated by
    ``workers`` processes (0: in this one)."""
    from .stream import loader_options

    options = {**loader_options(workers), "persistent_workers": False}
    loader = torch.utils.data.DataLoader(_StreamFeatures(settings, first, count), batch_size=8, shuffle=False,
                                         **options)
    parts = []
    for batch in loader:
        parts.append([b.numpy() for b in batch])
        if progress is not None:
            progress.update(len(batch[2]))
    if not parts:
        return FeatureSet(np.zeros((0, N_CHANNELS, N_SHELLS), np.float32), np.zeros((0, N_GLOBALS), np.float32),
                          np.zeros(0, np.float32), {})
    features, globals_, target = (np.concatenate(column) for column in zip(*parts))
    return FeatureSet(features, globals_, target, {})


@dataclasses.dataclass
class ProfileConfig:
    """A training run of the shell-profile resolution network (``xrais.train model.family=profile``).

    data: shard files/folders (or none, with ``stream``); stream: a
    :class:`~xrais.training.stream.StreamSettings` whose ``images_per_epoch`` is the number of
    training images simulated (once: their features are what the epochs go over); output: run
    folder (``features_*.npz``, ``history.json``, ``best.pt/.json/.md``); export: registry name or
    path to write the model to; validation_fraction/seed: the held-out split of shards (by image
    identity, as for the ResNet) and every random choice; workers: simulation processes of a stream;
    architecture and recipe: the network and its training.
    """

    data: Sequence[str] = ()
    stream: Optional[object] = None
    output: str = "xrais_run"
    export: Optional[str] = None
    validation_fraction: float = 0.1
    seed: int = 0
    workers: int = 2
    architecture: ProfileArchitecture = ProfileArchitecture()
    recipe: ProfileTraining = ProfileTraining()


def cached_features(path: str, count: int, make: Callable[[], FeatureSet]) -> FeatureSet:
    """The feature set saved at ``path`` if it holds ``count`` images, else ``make()`` saved there
    (so that a run started again reuses the simulated or read features)."""
    if os.path.exists(path):
        data = FeatureSet.load(path)
        if len(data) == count:
            log.info("features of %d images read from %s", count, path)
            return data
    data = make()
    partial = path + ".partial.npz"
    data.save(partial)
    os.replace(partial, path)
    return data


def fit(config: ProfileConfig, progress: Optional[Callable[[int, str], object]] = None) -> dict:
    """Train and export a shell-profile network; returns {"model", "validation", "history", "training_data"}.

    progress(total, label): a progress bar (with ``update(n)`` and ``close()``) for the feature pass."""
    from ..models.registry import export
    from ..sim.recipes import RECIPE_VERSIONS
    from .data import open_shards, validation_mask

    os.makedirs(config.output, exist_ok=True)
    bar = progress or (lambda total, label: None)
    if config.stream is not None:
        settings = config.stream
        if settings.recipe != "resolution":
            raise DataError(f"the shell-profile network is a resolution model; stream.recipe is {settings.recipe!r}")
        count_v, count_t = settings.validation_images, settings.images_per_epoch
        validation = cached_features(os.path.join(config.output, "features_validation.npz"), count_v,
                             lambda: stream_features(settings, 0, count_v, config.workers,
                                                     bar(count_v, "simulating validation images")))
        train = cached_features(os.path.join(config.output, "features_train.npz"), count_t,
                        lambda: stream_features(settings, count_v, count_t, config.workers,
                                                bar(count_t, "simulating training images")))
        source = {"stream": f"recipe resolution v{RECIPE_VERSIONS['resolution']}, seed {settings.seed}: validation "
                            f"images 0–{count_v - 1}, training images {count_v}–{count_v + count_t - 1}",
                  "images": count_t}
    else:
        shards = open_shards(config.data, "resolution")
        if shards.recipe not in ("resolution", "unknown"):
            raise DataError(f"the shell-profile network is a resolution model; the shards' recipe is {shards.recipe!r}")
        held_out = validation_mask(shards.identity, config.validation_fraction, config.seed)
        indices = np.arange(len(shards))
        validation = cached_features(os.path.join(config.output, "features_validation.npz"), int(held_out.sum()),
                             lambda: shard_features(shards, indices[held_out], bar(int(held_out.sum()), "reading validation images")))
        train = cached_features(os.path.join(config.output, "features_train.npz"), int((~held_out).sum()),
                        lambda: shard_features(shards, indices[~held_out], bar(int((~held_out).sum()), "reading training images")))
        source = {**shards.summary(indices[~held_out]), "recipe_version": RECIPE_VERSIONS["resolution"]}
    if len(train) == 0 or len(validation) == 0:
        raise DataError("no training or no validation images")
    history: List[dict] = []

    def on_epoch(entry: dict) -> None:
        history.append(entry)
        log.info("%sepoch %d/%d: loss %.4f, validation accuracy %.4f, MAE %.4f Å⁻¹, within 1σ %.3f",
                 f"member {entry['member']}, " if "member" in entry else "", entry["epoch"],
                 config.recipe.epochs, entry["loss"], entry["accuracy"], entry["mae"], entry["within_1sigma"])
        with open(os.path.join(config.output, "history.json"), "w", encoding="utf-8") as handle:
            json.dump(history, handle, indent=1)

    started = time.perf_counter()
    network = train_profile(train, validation, config.architecture, config.recipe, on_epoch)
    minutes = (time.perf_counter() - started) / 60.0
    prediction = predict_features(network, validation)
    limit = calibrated_undetermined_sigma(prediction, validation.target)
    final = score(prediction, validation.target, limit)
    r = config.recipe
    card = {
        "description": f"xrais resolution model ({config.architecture.label}) trained by xrais.train",
        "recipe": "resolution",
        "training_data": source,
        "validation_images": len(validation),
        "epoch": network.best_epoch if isinstance(network.best_epoch, list) else int(network.best_epoch),
        "epochs_planned": r.epochs,
        "selected_by": "validation loss (Gaussian likelihood of the mean and σ)",
        "optimizer": f"adamw lr {r.learning_rate:g}, weight decay {r.weight_decay:g}",
        "schedule": f"onecycle; {r.warmup_epochs} epochs of mean-squared error, then the Gaussian likelihood",
        "loss": "gaussian_nll",
        "batch_size": r.batch_size,
        "training_minutes": round(minutes, 2),
        "undetermined_sigma": limit,
        "undetermined_sigma_chosen_by": (f"the largest σ limit (Å⁻¹, grid {UNDETERMINED_GRID[0]}–{UNDETERMINED_GRID[-1]}) "
                                         f"at which {DETERMINED_ACCURACY:.0%} of the validation images it leaves "
                                         "determined are within 0.07 Å⁻¹"),
        "validation_metrics": final,
    }
    best = str(export(network, os.path.join(config.output, "best"), card))
    exported = str(export(network, config.export, card)) if config.export else None
    log.info("epoch %s (least validation loss): validation accuracy %.4f, MAE %.4f Å⁻¹, within 1σ %.3f, 2σ %.3f; "
             "model %s%s", network.best_epoch, final["accuracy"], final["mae"], final["within_1sigma"], final["within_2sigma"], best, f", exported to {exported}" if exported else "")
    return {"model": best, "exported": exported, "validation": final, "history": history, "training_data": source}
