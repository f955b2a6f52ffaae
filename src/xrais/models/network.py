"""The xrais networks (paper Figure 5): a single-channel ResNet, FC1 (features → 100, ReLU, optional
dropout), FC2 (100 → 1), then a head per kind of model.

* ``resolution``: the scalar is a radius (downsampled pixels) turned into 1/d (Å⁻¹) with each
  quadrant's geometry (:mod:`xrais.models.geometry`), so one network serves every detector,
  distance and wavelength;
* ``multilattice``: the scalar is a logit; its sigmoid is the probability of several lattices.

Inputs are raw conditioned quadrants (floor(√max-pool) values, beam at the outer corner of pixel
(0, 0)); the network multiplies them by ``input_scale`` (default 1/16, which maps typical
background (0–10) to 0–0.6 and strong Bragg peaks (≈ 50–300) to ≈ 3–20) itself. With
``coordinates`` it also gives the ResNet a second channel, each pixel's distance from the beam
(:data:`RADIUS_CHANNEL_PER_PIXEL`), so that its convolutions know where on the quadrant a feature
lies (a ResNet's global average pool otherwise keeps only what padding betrays of position): where
the spots fade out is then a matter of reading that channel, which is what the resolution
network's radius is.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch
from torch import nn

from .geometry import inverse_d_from_radius
from .resnet import DEPTHS, NORMS, ResNet

KINDS = ("resolution", "multilattice")
#: Columns of the per-quadrant geometry tensor the resolution network takes: λ (Å), D (mm),
#: pixel size p (mm), max-pool factor N.
GEOMETRY_COLUMNS = ("wavelength", "distance", "pixel_size", "downsample")


class ArchitectureFields:
    """What every network family's architecture dataclass shares: its fields as the dict a model
    card stores, and back (an unknown field is an error, not ignored)."""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict):
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - fields
        if unknown:
            raise ValueError(f"unknown architecture fields: {', '.join(sorted(unknown))}")
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class Architecture(ArchitectureFields):
    """Everything needed to rebuild a network (stored with its weights).

    kind: "resolution" or "multilattice"; depth: 18, 34 or 50; width: channel multiplier;
    features: ResNet output size (the paper's 1000; None → 1000 × width, at least ``hidden``);
    hidden: FC1 output size (100); dropout: probability after FC1; norm: "batch" or "group";
    input_scale: multiplier of the conditioned values; radius_scale: downsampled pixels per unit
    of the resolution network's scalar (256: half a quadrant, so initial radii are O(100) px);
    coordinates: add the distance-from-the-beam channel (see the module docstring).
    """

    kind: str
    depth: int = 18
    width: float = 0.25
    features: Optional[int] = None
    hidden: int = 100
    dropout: float = 0.0
    norm: str = "batch"
    input_scale: float = 1.0 / 16.0
    radius_scale: float = 256.0
    coordinates: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.depth not in DEPTHS:
            raise ValueError(f"depth must be one of {sorted(DEPTHS)}, got {self.depth}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if not self.width > 0 or not self.input_scale > 0 or not self.radius_scale > 0:
            raise ValueError("width, input_scale and radius_scale must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        object.__setattr__(self, "width", float(self.width))
        if self.features is None:
            object.__setattr__(self, "features", max(self.hidden, int(round(1000 * self.width))))

    @property
    def label(self) -> str:
        """Short name, e.g. "ResNet-18 ×0.25 (group norm, radius channel)"."""
        extras = ", radius channel" if self.coordinates else ""
        return f"ResNet-{self.depth} ×{self.width:g} ({self.norm} norm{extras})"



class XraisNet(nn.Module):
    """ResNet + FC head for one kind of prediction (see the module docstring).

    ``forward(images, geometry)``: images (B, 512, 512) or (B, 1, 512, 512) of conditioned values
    (any numeric dtype); geometry (B, 4) float tensor of :data:`GEOMETRY_COLUMNS` (resolution only).
    Returns (B,) float32: 1/d in Å⁻¹ (resolution; signed while training, clamped at 0 in eval
    mode) or the multi-lattice logit.
    """

    def __init__(self, architecture: Architecture):
        super().__init__()
        self.architecture = architecture
        a = architecture
        self.backbone = ResNet(a.depth, a.width, in_channels=2 if a.coordinates else 1, num_features=a.features,
                               norm=a.norm)
        self.fc1 = nn.Linear(a.features, a.hidden)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(a.dropout)
        self.fc2 = nn.Linear(a.hidden, 1)
        if a.kind == "resolution":
            # Start at a radius of ~radius_scale (mid-quadrant) rather than at the beam.
            nn.init.constant_(self.fc2.bias, 1.0)

    def scalar(self, images: torch.Tensor) -> torch.Tensor:
        """The network's raw scalar (B,) for conditioned quadrants."""
        if images.dim() == 3:
            images = images.unsqueeze(1)
        x = images.to(torch.float32) * self.architecture.input_scale
        if self.architecture.coordinates:
            radius = beam_distance_channel(x.shape[-2], x.shape[-1], x.device)
            x = torch.cat([x, radius.expand(x.shape[0], 1, -1, -1)], dim=1)
        x = self.backbone(x)
        x = self.fc2(self.dropout(self.relu(self.fc1(x))))
        return x[:, 0].float()

    def forward(self, images: torch.Tensor, geometry: Optional[torch.Tensor] = None) -> torch.Tensor:
        value = self.scalar(images)
        if self.architecture.kind == "multilattice":
            return value
        if geometry is None:
            raise ValueError("the resolution network needs the geometry (B, 4): wavelength, distance, pixel_size, downsample")
        geometry = geometry.to(device=value.device, dtype=torch.float32)
        wavelength, distance, pixel_size, downsample = geometry.unbind(1)
        radius = value * self.architecture.radius_scale
        inverse_d = inverse_d_from_radius(radius, wavelength, distance, pixel_size, downsample)
        return inverse_d if self.training else inverse_d.clamp_min(0.0)


#: Value of the distance-from-the-beam channel per conditioned pixel: 0.1 across a quadrant (512 px),
#: small next to the scaled image, so that it informs the stem's convolutions without dominating
#: their normalisation (at 1 per quadrant width a group-norm network learns the ring radius of the
#: training tests far worse than without the channel; at 0.1 it learns it better).
RADIUS_CHANNEL_PER_PIXEL = 0.1 / 512

_BEAM_DISTANCE = {}


def beam_distance_channel(height: int, width: int, device) -> torch.Tensor:
    """(1, 1, height, width) distance of each pixel centre from the beam at the outer corner of
    pixel (0, 0), times :data:`RADIUS_CHANNEL_PER_PIXEL`; cached per shape and device."""
    key = (height, width, str(device))
    if key not in _BEAM_DISTANCE:
        slow = torch.arange(height, dtype=torch.float32, device=device) + 0.5
        fast = torch.arange(width, dtype=torch.float32, device=device) + 0.5
        _BEAM_DISTANCE[key] = torch.hypot(slow[:, None], fast[None, :])[None, None] * RADIUS_CHANNEL_PER_PIXEL
    return _BEAM_DISTANCE[key]
