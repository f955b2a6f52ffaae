"""The lattice-evidence network: the probability that a still holds several lattices, from the
numbers that say how well one lattice explains its spots (:func:`xrais.lattice.lattice_evidence`).

Its input is not pixels but the result of indexing the still's spots in reciprocal space (the
frame's geometry is exact, so the spots' scattering vectors are too): the shares of spots the first
and further lattices index, how far the first lattice's spots sit from its nodes and how that grows
outwards (a rotation moves a spot in proportion to |r|), reflections lit twice, spots closer than one
lattice's nodes can be, the angle between lattices found. None of them depends on the overall scale
or on how many spots there are, so the network cannot learn brightness or spot count for the label.
A small network (standardised features → tanh layer → logit) is enough: the features carry the
physics, the network only weighs them.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ..lattice import FEATURE_NAMES
from .network import ArchitectureFields


@dataclasses.dataclass(frozen=True)
class EvidenceArchitecture(ArchitectureFields):
    """Everything needed to rebuild an :class:`EvidenceNet`: the features it reads (names of
    :data:`xrais.lattice.FEATURE_NAMES`, in order), the width of its hidden layer and how many
    such networks, trained apart from different initial weights, it averages (members: their
    probabilities' mean; a few dozen measured frames move with one network's seed, the mean of
    several does not)."""

    kind: str = "multilattice"
    family: str = "evidence"
    features: Tuple[str, ...] = FEATURE_NAMES
    hidden: int = 16
    members: int = 1

    def __post_init__(self):
        object.__setattr__(self, "features", tuple(self.features))
        if self.kind != "multilattice" or self.family != "evidence":
            raise ValueError("the lattice-evidence network is a multilattice network (family 'evidence')")
        unknown = [name for name in self.features if name not in FEATURE_NAMES]
        if unknown or not self.features:
            raise ValueError(f"unknown evidence features {unknown}; known: {', '.join(FEATURE_NAMES)}")
        if self.hidden < 1 or self.members < 1:
            raise ValueError("hidden and members must be positive")

    @property
    def label(self) -> str:
        return (f"lattice evidence, {len(self.features)} features → {self.hidden} tanh → 1"
                + (f", the mean probability of {self.members} such networks" if self.members > 1 else ""))


class EvidenceNet(nn.Module):
    """``forward(features (B, n))`` → logits (B,) of several lattices; the features are
    standardised inside by the training set's mean and standard deviation (stored buffers). With
    several members, the logit of their probabilities' mean."""

    def __init__(self, architecture: EvidenceArchitecture = EvidenceArchitecture()):
        super().__init__()
        self.architecture = architecture
        n = len(architecture.features)
        self.register_buffer("mean", torch.zeros(n))
        self.register_buffer("scale", torch.ones(n))
        self.members = nn.ModuleList(
            nn.Sequential(nn.Linear(n, architecture.hidden), nn.Tanh(), nn.Linear(architecture.hidden, 1))
            for _ in range(architecture.members))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        standard = (features - self.mean) / self.scale
        if len(self.members) == 1:
            return self.members[0](standard)[:, 0]
        probability = torch.stack([torch.sigmoid(member(standard)[:, 0]) for member in self.members]).mean(0)
        return torch.logit(probability, eps=1e-7)

    @staticmethod
    def stored_state(state: dict) -> dict:
        """A weights file's state dict as this class names it: weights written before networks had
        members (one network's ``layers.*``) are member 0's."""
        return {("members.0." + key[len("layers."):] if key.startswith("layers.") else key): value
                for key, value in state.items()}

    def feature_rows(self, evidence: Sequence[dict]) -> np.ndarray:
        """(B, n) float32 rows of this network's features from :func:`lattice_evidence` dicts."""
        return np.array([[row[name] for name in self.architecture.features] for row in evidence], np.float32)

    def probability(self, evidence: Sequence[dict]) -> np.ndarray:
        """Probability of several lattices for each :func:`lattice_evidence` dict."""
        with torch.inference_mode():
            return torch.sigmoid(self(torch.from_numpy(self.feature_rows(evidence)))).numpy().astype(float)
