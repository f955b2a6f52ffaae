"""Training of the lattice-evidence network (:mod:`xrais.models.evidence`) on the features of
simulated images (``scripts/multilattice_evidence.py`` makes them; a few thousand rows train it in
seconds on a CPU)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..models.evidence import EvidenceArchitecture, EvidenceNet


def fit_evidence_net(features: np.ndarray, labels: np.ndarray,
                     architecture: EvidenceArchitecture = EvidenceArchitecture(), epochs: int = 400,
                     learning_rate: float = 0.02, weight_decay: float = 1e-3, seed: int = 0) -> EvidenceNet:
    """An :class:`EvidenceNet` fitted to feature rows (n_images, n_features, in the architecture's
    order) and labels (1: several lattices) by full-batch Adam on the binary cross-entropy, with
    weight decay; deterministic for a seed. Returned in eval mode."""
    torch.manual_seed(seed)
    x = torch.as_tensor(np.asarray(features, np.float32))
    y = torch.as_tensor(np.asarray(labels, np.float32))
    network = EvidenceNet(architecture)
    network.mean.copy_(x.mean(0))
    network.scale.copy_(x.std(0) + 1e-6)
    optimiser = torch.optim.Adam(network.layers.parameters(), lr=learning_rate, weight_decay=weight_decay)
    for _ in range(epochs):
        optimiser.zero_grad()
        nn.functional.binary_cross_entropy_with_logits(network(x), y).backward()
        optimiser.step()
    return network.eval()
