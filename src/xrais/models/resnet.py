"""The ResNet family (He et al. 2015), written here so xrais needs no torchvision.

Configured like torchvision (``width=1``, ``in_channels=3``, ``num_features=1000``, batch norm) the
networks have exactly the reference parameter counts (ResNet-18/34/50: 11,689,512 / 21,797,672 /
25,557,032). The paper's networks (Table 2) are the single-channel variants. A width multiplier
scales every convolution's channel count (``width=0.25``: stages of 16/32/64/128 base channels),
giving compact networks that run within a CPU time budget.

Normalisation: ``norm="batch"`` (the paper's choice; with several processes, convert to
``SyncBatchNorm`` on GPUs, see :mod:`xrais.training.distributed`) or ``norm="group"`` (GroupNorm:
independent of the batch, so a one-process run and an N-process run compute the same thing, and
small per-process batches on CPUs train as well as large ones).
"""
from __future__ import annotations

import math
from typing import List, Type, Union

import torch
from torch import nn
from torch.nn import functional as F

#: Blocks per stage and block type of each supported depth.
DEPTHS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3))}
NORMS = ("batch", "group")
BASE_CHANNELS = (64, 128, 256, 512)


def scaled_channels(channels: int, width: float) -> int:
    """Channel count ``channels`` × ``width``, rounded, at least 4 (so group norm has groups)."""
    return max(4, int(round(channels * width)))


def group_count(channels: int) -> int:
    """GroupNorm groups: up to 32, each of at least 4 channels, dividing ``channels``."""
    return math.gcd(channels, max(1, min(32, channels // 4)))


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(group_count(channels), channels)
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return PointwiseConv(in_channels, out_channels, 1, stride=stride, bias=False)


class PointwiseConv(nn.Conv2d):
    """1×1 convolution whose stride is applied by slicing the input first.

    Same parameters and result as ``nn.Conv2d(..., 1, stride)``; it avoids a oneDNN defect (torch
    CPU builds): the backward pass of a strided 1×1 convolution on ``channels_last`` inputs with
    few (≤ 12) channels corrupts the heap and kills the process.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        step_slow, step_fast = self.stride
        if step_slow > 1 or step_fast > 1:
            x = x[:, :, ::step_slow, ::step_fast]
        return F.conv2d(x, self.weight, self.bias)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions and an identity (or 1×1 projection) shortcut."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int, norm: str):
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = make_norm(norm, channels)
        self.conv2 = conv3x3(channels, out_channels)
        self.bn2 = make_norm(norm, out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _projection(in_channels, out_channels, stride, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (carrying the stride, "ResNet v1.5"), 1×1 expand ×4, and a shortcut."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int, norm: str):
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = conv1x1(in_channels, channels)
        self.bn1 = make_norm(norm, channels)
        self.conv2 = conv3x3(channels, channels, stride)
        self.bn2 = make_norm(norm, channels)
        self.conv3 = conv1x1(channels, out_channels)
        self.bn3 = make_norm(norm, out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _projection(in_channels, out_channels, stride, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


def _projection(in_channels: int, out_channels: int, stride: int, norm: str):
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), make_norm(norm, out_channels))


class ResNet(nn.Module):
    """ResNet backbone: 7×7/2 stem, 3×3/2 max-pool, four stages, global average pool, and a linear
    layer to ``num_features`` outputs (the "1000 features" of the paper's Figure 5).

    depth: 18, 34 or 50; width: channel multiplier; in_channels: 1 for diffraction quadrants;
    norm: "batch" or "group". Each residual branch's last norm starts at zero (identity blocks at
    initialisation), which trains deep and narrow networks more reliably.
    """

    def __init__(self, depth: int = 18, width: float = 1.0, in_channels: int = 1, num_features: int = 1000,
                 norm: str = "batch"):
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"depth must be one of {sorted(DEPTHS)}, got {depth}")
        if not width > 0:
            raise ValueError(f"width must be positive, got {width}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        kind, blocks = DEPTHS[depth]
        block: Type[Union[BasicBlock, Bottleneck]] = BasicBlock if kind == "basic" else Bottleneck
        stem = scaled_channels(BASE_CHANNELS[0], width)
        self.conv1 = nn.Conv2d(in_channels, stem, 7, stride=2, padding=3, bias=False)
        self.bn1 = make_norm(norm, stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels_in = stem
        stages: List[nn.Sequential] = []
        for index, (base, count) in enumerate(zip(BASE_CHANNELS, blocks)):
            channels = scaled_channels(base, width)
            stage = []
            for k in range(count):
                stride = 2 if (index > 0 and k == 0) else 1
                stage.append(block(channels_in, channels, stride, norm))
                channels_in = channels * block.expansion
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels_in, num_features)
        self._initialise()

    def _initialise(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self.modules():
            last_norm = module.bn3 if isinstance(module, Bottleneck) else module.bn2 if isinstance(module, BasicBlock) else None
            if last_norm is not None:
                nn.init.zeros_(last_norm.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def parameter_count(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those requiring gradients)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)

