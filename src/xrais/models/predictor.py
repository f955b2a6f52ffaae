"""A loaded model serving inference: batches, CPU/GPU, ``channels_last``, optional fp16/bf16 on GPUs.

A prediction changes no state (eval mode, frozen parameters, ``torch.inference_mode``), so one
:class:`XraisModel` may be called from several threads at once.
"""
from __future__ import annotations

import time
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import torch

from ..io.geometry import Geometry
from .network import GEOMETRY_COLUMNS, XraisNet

PRECISIONS = ("fp32", "fp16", "bf16")
_AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: Union[str, torch.device, None] = "auto") -> torch.device:
    """"auto" (or None): the first GPU if there is one, else the CPU; otherwise ``torch.device(device)``."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def geometry_tensor(geometry, count: int) -> torch.Tensor:
    """(count, 4) float32 tensor of λ (Å), D (mm), p (mm), N for each quadrant.

    geometry: one :class:`~xrais.io.Geometry` (for every quadrant), a sequence of ``count``
    Geometry objects, a mapping with keys wavelength, distance, pixel_size, downsample (scalars or
    length-``count`` arrays/tensors), or an array/tensor (count, 4) in that column order.
    """
    if isinstance(geometry, Geometry):
        geometry = [geometry]
    if isinstance(geometry, Mapping):
        missing = [c for c in GEOMETRY_COLUMNS if c not in geometry]
        if missing:
            raise ValueError(f"geometry mapping lacks {', '.join(missing)}")
        columns = [torch.as_tensor(geometry[c], dtype=torch.float32).cpu().reshape(-1) for c in GEOMETRY_COLUMNS]
        table = torch.stack([c.expand(count) if c.numel() == 1 else c for c in columns], dim=1)
    elif isinstance(geometry, (list, tuple)) and geometry and isinstance(geometry[0], Geometry):
        table = torch.tensor([[g.wavelength, g.distance, g.pixel_size, g.downsample] for g in geometry], dtype=torch.float32)
        if len(geometry) == 1:
            table = table.expand(count, 4)
    else:
        table = torch.as_tensor(geometry, dtype=torch.float32).cpu()
    if table.shape != (count, 4):
        raise ValueError(f"geometry must give {count} rows of {', '.join(GEOMETRY_COLUMNS)}, got shape {tuple(table.shape)}")
    return table


class XraisModel:
    """A trained network ready for inference.

    network: the :class:`~xrais.models.network.XraisNet` (moved to ``device``, put in eval mode and
    frozen, in place);
    card: its registry metadata (name, kind, architecture, training summary…);
    precision: "fp32", or "fp16"/"bf16" autocast (GPU only; ignored on the CPU);
    channels_last: NHWC memory layout (faster on CPUs with oneDNN and on tensor-core GPUs);
    batch_size: quadrants per forward pass.
    """

    def __init__(self, network: XraisNet, card: Optional[dict] = None, device="auto", precision: str = "fp32",
                 channels_last: bool = True, batch_size: int = 32):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.device = resolve_device(device)
        self.precision = precision if self.device.type == "cuda" else "fp32"
        self.channels_last = bool(channels_last)
        self.batch_size = int(batch_size)
        self.card = dict(card or {})
        network = network.to(self.device).eval()
        if self.channels_last:
            network = network.to(memory_format=torch.channels_last)
        for parameter in network.parameters():
            parameter.requires_grad_(False)
        self.network = network

    @property
    def kind(self) -> str:
        return self.network.architecture.kind

    @property
    def family(self) -> str:
        """"resnet" (the paper's network on conditioned quadrants) or "profile" (the shell-profile
        network, :mod:`xrais.models.profile`, which also gives each 1/d a σ)."""
        return getattr(self.network.architecture, "family", "resnet")

    @property
    def name(self) -> str:
        return self.card.get("name", self.kind)

    def __repr__(self) -> str:
        return f"XraisModel({self.name!r}, {self.kind}, {self.network.architecture.label}, {self.device}, {self.precision})"

    def predict(self, quadrants, geometry=None):
        """1/d (Å⁻¹, ≥ 0; resolution models) or multi-lattice probability, one per quadrant.

        quadrants: (B, 512, 512) or (B, 1, 512, 512) conditioned values (NumPy array or tensor,
        any device); geometry: per-quadrant geometry for resolution models (see
        :func:`geometry_tensor`). Returns a float32 NumPy array (B,), or a tensor on the model's
        device when ``quadrants`` is a tensor.
        """
        as_tensor = isinstance(quadrants, torch.Tensor)
        if self.family == "profile":
            mean, _ = self.predict_with_sigma(quadrants, geometry)
            return torch.from_numpy(mean).to(self.device) if as_tensor else mean
        images = quadrants if as_tensor else torch.from_numpy(np.ascontiguousarray(quadrants))
        if images.dim() == 4:
            images = images[:, 0]
        if images.dim() != 3:
            raise ValueError(f"quadrants must be (B, 512, 512) or (B, 1, 512, 512), got shape {tuple(images.shape)}")
        count = images.shape[0]
        table = geometry_tensor(geometry, count) if self.kind == "resolution" else None
        outputs = []
        with torch.inference_mode():
            for start in range(0, count, self.batch_size):
                outputs.append(self._forward(images[start:start + self.batch_size],
                                             None if table is None else table[start:start + self.batch_size]))
        result = torch.cat(outputs) if outputs else torch.zeros(0, device=self.device)
        return result if as_tensor else result.cpu().numpy()

    def predict_with_sigma(self, quadrants, geometry, pooled: bool = False):
        """(1/d, σ) float32 NumPy arrays (Å⁻¹) of a resolution model: one per quadrant, or with
        ``pooled`` one pair for all of them (the quadrants of one image, pooled into one shell
        profile). See :meth:`predict_image`."""
        if pooled:
            return self.predict_image(quadrants, geometry, pool=True, per_quadrant=False)[1]
        return self.predict_image(quadrants, geometry)[0]

    def predict_image(self, quadrants, geometry, pool=None, per_quadrant: bool = True):
        """((1/d, σ) per quadrant, (1/d, σ) of the pooled quadrants) of a resolution model, as
        float32 NumPy arrays (Å⁻¹), from one pass over the quadrants (each shell histogram is made
        once). pool: None (no pooled estimate: its pair is None), True (all quadrants) or a boolean
        mask of the quadrants to pool (the quadrants of one image); the pooled pair has length 1.
        per_quadrant=False leaves the per-quadrant pair out (None).

        An estimate past the largest 1/d its quadrants cover is brought back to it, with a σ at
        least as large as the step (:func:`xrais.models.profile.within_reach`). σ is NaN for a
        ResNet model, which gives none; its pooled 1/d is the pooled quadrants' mean."""
        if self.kind != "resolution":
            raise ValueError("predict_with_sigma and predict_image are for resolution models")
        images = quadrants.cpu().numpy() if isinstance(quadrants, torch.Tensor) else np.asarray(quadrants)
        if images.ndim == 4:
            images = images[:, 0]
        if images.ndim != 3:
            raise ValueError(f"quadrants must be (B, 512, 512) or (B, 1, 512, 512), got shape {images.shape}")
        mask = None if pool is None else np.ones(len(images), bool) if pool is True else np.asarray(pool, bool)
        if self.family != "profile":
            values = np.asarray(self.predict(images, geometry), dtype=np.float32)
            nan = lambda shape: np.full(shape, np.nan, dtype=np.float32)  # noqa: E731
            pooled = None if mask is None else (values[mask].mean(keepdims=True), nan(1))
            return ((values, nan(values.shape)) if per_quadrant else None), pooled
        from .profile import quadrant_inputs

        table = geometry_tensor(geometry, images.shape[0]).numpy()
        features, globals_ = quadrant_inputs(images, table, pool=mask, per_quadrant=per_quadrant)
        mean, sigma = self._profile_pass(features, globals_)
        split = len(mean) - (mask is not None)
        return ((mean[:split], sigma[:split]) if per_quadrant else None,
                None if mask is None else (mean[split:], sigma[split:]))

    def predict_whole(self, conditioned: np.ndarray, inverse_d: np.ndarray, geometry: Geometry):
        """(1/d, σ) (Å⁻¹, floats) of a shell-profile resolution model from a whole conditioned frame
        and the 1/d of its pixels (:func:`xrais.conditioning.condition_whole`,
        :func:`~xrais.conditioning.whole_inverse_d`): the frame's profile in shells of 1/d, for a
        detector of any orientation (a swung one has no beam-centred quadrants). The global inputs are
        those of a quadrant at the geometry's perpendicular distance."""
        if self.kind != "resolution" or self.family != "profile":
            raise ValueError("predict_whole is for shell-profile resolution models")
        from .profile import global_inputs, profile_features, whole_shell_histogram

        fields = (geometry.wavelength, geometry.distance, geometry.pixel_size, geometry.downsample)
        features = torch.from_numpy(profile_features(*whole_shell_histogram(conditioned, inverse_d, *fields))[None])
        globals_ = torch.from_numpy(global_inputs(*fields)[None])
        mean, sigma = self._profile_pass(features, globals_)
        return float(mean[0]), float(sigma[0])

    def _profile_pass(self, features: torch.Tensor, globals_: torch.Tensor):
        """(1/d, σ) float32 arrays of the shell-profile network on rows of features and global
        inputs, brought within the reach of each row's shells (:func:`~xrais.models.profile.within_reach`)."""
        from .profile import within_reach

        means, sigmas = [], []
        with torch.inference_mode():
            for start in range(0, features.shape[0], self.batch_size):
                mean, sigma = self.network(features[start:start + self.batch_size].to(self.device),
                                           globals_[start:start + self.batch_size].to(self.device))
                means.append(mean.float().cpu().numpy())
                sigmas.append(sigma.float().cpu().numpy())
        if not means:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        return within_reach(np.concatenate(means), np.concatenate(sigmas), features.numpy())

    def _forward(self, images: torch.Tensor, table: Optional[torch.Tensor]) -> torch.Tensor:
        if not images.is_floating_point():
            images = images.float()  # integer quadrants (uint16 shards) become float32 before any transfer
        images = images.to(self.device, non_blocking=True).unsqueeze(1)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if table is not None:
            table = table.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=_AUTOCAST_DTYPES.get(self.precision, torch.float32),
                            enabled=self.precision != "fp32"):
            value = self.network(images, table)
        return torch.sigmoid(value) if self.kind == "multilattice" else value

    def predict_frame(self, frame, quadrants: Union[int, Sequence[int], None] = None) -> np.ndarray:
        """Predictions for the quadrants (default: all four) of an :class:`xrais.io.Frame`."""
        from ..conditioning import condition_frame

        conditioned = condition_frame(frame, quadrants=quadrants)
        return self.predict(conditioned, frame.geometry)


def cpu_seconds_per_quadrant(model: XraisModel, threads: int = 1, batch: int = 1, repeat: int = 5) -> float:
    """Seconds per quadrant of ``model.predict`` on the CPU with ``threads`` torch threads and
    ``batch`` quadrants per call: the best of ``repeat`` timed calls after a warm-up (the run least
    disturbed by other processes). Restores torch's thread count."""
    if model.device.type != "cpu":
        raise ValueError("cpu_seconds_per_quadrant needs a model on the CPU")
    quadrants = np.random.default_rng(0).poisson(4.0, (batch, 512, 512)).astype(np.float32)
    geometry = {"wavelength": 0.9795, "distance": 250.0, "pixel_size": 0.172, "downsample": 2}
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model.predict(quadrants, geometry)  # warm-up (oneDNN primitive creation)
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            model.predict(quadrants, geometry)
            times.append(time.perf_counter() - started)
    finally:
        torch.set_num_threads(saved_threads)
    return min(times) / batch
