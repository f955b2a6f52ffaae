"""Training data straight from the simulator: every training image a fresh (recipe, seed, index),
rendered by the data-loading worker processes while the network trains, no shards written.

Image numbers: the validation set is images 0 … V−1 of (recipe, seed), rendered once when a run
starts (again, identically, when it resumes) and held in memory; epoch e (from 1) trains on the N
images V + ((e − 1) // replay)·N … of the same stream, so with replay = 1 no image is seen twice,
and a resumed run renders exactly the images the uninterrupted run would have. Under several
processes (torchrun, MPI) each rank trains on its own slice of every epoch's images (the
distributed sampler) and validates on its own slice of the validation images.

On a CPU machine the simulation costs 10–20× the training step per image (about 0.35–0.6 s
against 0.03 s for ResNet-18 ×0.25), so the workers (default: one per core) simulate and the
training process keeps one torch thread, which takes its share of the cores between batches.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import torch

from .data import GEOMETRY_LABELS, TARGET_LABEL, transpositions


@dataclasses.dataclass(frozen=True)
class StreamSettings:
    """What a streamed run trains on.

    recipe: "resolution" or "multilattice"; seed: the stream's recipe seed; images_per_epoch:
    training images per epoch (N); validation_images: V; replay: epochs each image is used for
    (1: every training image is fresh); pool_size, pool_seed, cache: the structure pool (as
    xrais.simulate's structures.*); detector: render every image on this catalogue detector.
    """

    recipe: str
    seed: int = 0
    images_per_epoch: int = 2000
    validation_images: int = 200
    replay: int = 1
    pool_size: int = 40
    pool_seed: int = 0
    cache: Optional[str] = None
    detector: Optional[str] = None

    def check(self) -> None:
        """Raise :class:`ConfigError` for settings that make no sense."""
        from ..sim.recipes import RECIPES
        from .config import ConfigError

        if self.recipe not in RECIPES:
            raise ConfigError(f"stream.recipe must be one of {RECIPES}, got {self.recipe!r}")
        if self.images_per_epoch < 1 or self.validation_images < 1 or self.replay < 1 or self.pool_size < 1:
            raise ConfigError("stream.images_per_epoch, stream.validation_images, stream.replay and "
                              "stream.pool_size must be ≥ 1")
        if self.detector is not None:
            from ..io import detectors

            try:
                detectors.get(self.detector)
            except KeyError:
                raise ConfigError(f"stream.detector: unknown detector {self.detector!r}") from None

    def first_training_index(self, epoch: int) -> int:
        """Image number of the first training image of ``epoch`` (from 1)."""
        return self.validation_images + ((epoch - 1) // self.replay) * self.images_per_epoch

    def pool(self):
        from ..sim.pool import StructurePool

        return StructurePool(size=self.pool_size, seed=self.pool_seed, folder=self.cache)


class StreamDataset(torch.utils.data.Dataset):
    """(image float32 (512, 512), geometry float32 (4,), target float32) of a stream's images,
    rendered on demand (in the data-loading workers). An item is an image number, or an (image
    number, transpose) pair as :class:`StreamSampler` yields them.

    kind: the model's target ("resolution": 1/d, "multilattice": is_multi); count: the number of
    images a loader takes per pass (the validation images, or one epoch's).
    """

    def __init__(self, settings: StreamSettings, kind: str, count: int):
        self.settings = settings
        self.kind = kind
        self.count = int(count)
        self._pool = None

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, item):
        from ..sim.recipes import sample_spec
        from ..sim.training_images import render_training_image

        number, transpose = item if isinstance(item, tuple) else (item, False)
        if self._pool is None:
            self._pool = self.settings.pool()
        settings = self.settings
        spec = sample_spec(settings.recipe, int(number), settings.seed, settings.pool_size, detector=settings.detector)
        rendered = render_training_image(spec, self._pool)
        image = rendered.conditioned.T if transpose else rendered.conditioned
        geometry = np.array([rendered.labels[name] for name in GEOMETRY_LABELS], dtype=np.float32)
        target = np.float32(rendered.labels[TARGET_LABEL[self.kind]])
        return (torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)), torch.from_numpy(geometry),
                torch.tensor(target))


class StreamSampler(torch.utils.data.Sampler):
    """This process's (image number, transpose) items of an epoch: the epoch's images in an order
    drawn from (seed, epoch), split over the processes as torch's DistributedSampler splits them
    (drop_last), so global batch k holds the same images whatever the number of processes; half
    the images transposed (the augmentation), drawn from (seed, epoch) too."""

    def __init__(self, settings: StreamSettings, rank: int = 0, world_size: int = 1, seed: int = 0,
                 augment: bool = False):
        self.settings = settings
        self.rank, self.world_size = rank, world_size
        self.seed, self.augment = seed, augment
        self.epoch = 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.settings.images_per_epoch // self.world_size

    def __iter__(self):
        count = self.settings.images_per_epoch
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        order = torch.randperm(count, generator=generator).tolist()[:len(self) * self.world_size]
        flips = transpositions(self.seed, self.epoch, count) if self.augment else np.zeros(count, dtype=bool)
        first = self.settings.first_training_index(self.epoch)
        for position in order[self.rank::self.world_size]:
            yield first + position, bool(flips[position])


class TensorsDataset(torch.utils.data.Dataset):
    """Images (uint16, as conditioned), geometry and targets held in memory (the rendered
    validation set); items as :class:`StreamDataset` gives them."""

    def __init__(self, images: np.ndarray, geometry: torch.Tensor, target: torch.Tensor):
        self.images, self.geometry, self.target = images, geometry, target

    def __len__(self) -> int:
        return len(self.target)

    def __getitem__(self, i: int):
        return torch.from_numpy(self.images[i].astype(np.float32)), self.geometry[i], self.target[i]


def worker_init(_worker_id: int) -> None:
    """Data-loading worker set-up: one numba and one torch thread each (the workers are the
    parallelism)."""
    import numba

    numba.set_num_threads(1)
    torch.set_num_threads(1)


def loader_options(workers: int) -> dict:
    """DataLoader options of a stream's simulation workers: started by spawning (numba's OpenMP
    threads do not survive a fork), one thread each, kept for the whole run."""
    if not workers:
        return {"num_workers": 0}
    return {"num_workers": workers, "multiprocessing_context": "spawn", "worker_init_fn": worker_init,
            "persistent_workers": True}


def render_all(dataset: torch.utils.data.Dataset, workers: int, progress=None) -> TensorsDataset:
    """Render every image of ``dataset`` once (with ``workers`` processes) and hold them in memory."""
    options = {**loader_options(workers), "persistent_workers": False}
    loader = torch.utils.data.DataLoader(dataset, batch_size=8, shuffle=False, **options)
    images, geometry, target = [], [], []
    for batch in loader:
        images.append(batch[0].numpy().astype(np.uint16))  # conditioned values are whole numbers < 2¹⁶
        geometry.append(batch[1])
        target.append(batch[2])
        if progress is not None:
            progress.update(len(batch[2]))
    if not target:
        return TensorsDataset(np.zeros((0, 512, 512), np.uint16), torch.zeros(0, len(GEOMETRY_LABELS)), torch.zeros(0))
    return TensorsDataset(np.concatenate(images), torch.cat(geometry), torch.cat(target))
