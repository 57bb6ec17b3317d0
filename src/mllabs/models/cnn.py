"""The shallow CNN of the MNIST handout (one convolution, then a dense classifier), and the
plain CNN of the flowers lab (conv-BN-ReLU-pool blocks, then a dense head)."""

from __future__ import annotations

import sys

import torch
from torch import nn

# the three low 16-bit quarters of an int64 (the top one's first bit is always 0)
LOW_QUARTERS = slice(0, 3) if sys.byteorder == "little" else slice(1, 4)


class ShallowCNN(nn.Sequential):
    """1×28×28 → conv 3×3, 28 filters, ReLU → flatten (18,928) → dense 128 ReLU → dense 10."""

    def __init__(self, filters: int = 28, hidden: int = 128, num_classes: int = 10):
        super().__init__(
            nn.Conv2d(1, filters, 3), nn.ReLU(), nn.Flatten(),
            nn.Linear(filters * 26 * 26, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


class PlainCNN(nn.Module):
    """The flowers lab's plain CNN: blocks of conv 3×3 (same padding) → batch norm → ReLU →
    max pool 2×2, then global average pooling, dropout and one linear layer.

    Each block halves the resolution and (by default) doubles the channels: 32, 64, 128, 256.
    The average pool makes any input size work; from 32 px up, four blocks leave at least 2×2.
    """

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (32, 64, 128, 256),
                 dropout: float = 0.3, in_channels: int = 3):
        super().__init__()
        blocks, cin = [], in_channels
        for width in widths:
            blocks.append(nn.Sequential(nn.Conv2d(cin, width, 3, padding=1, bias=False),
                                        nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                                        nn.MaxPool2d(2)))
            cin = width
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @property
    def cam_layer(self) -> nn.Module:
        """The layer Grad-CAM looks at: the last block's ReLU, i.e. the last convolutional
        features before their final pooling (twice the resolution of the block's output)."""
        return self.features[-1][2]

    def forward(self, x):
        return self.head(self.pool(self.features(x)))


class WordDropout(nn.Dropout):
    """nn.Dropout whose mask is cut from 64-bit random words, three 16-bit draws from each.

    PyTorch's CPU dropout draws one number per element from a scalar Mersenne Twister: for
    DigitNet's 128 × 4,704 flattened features that was 12.7 ms of a 64 ms training step held
    to AVX2 (torch.profiler, aten::bernoulli_). Whole words cost about a third as many draws,
    from the same seeded generator (so --resume, which restores it, stays exact); the drop
    probability is rounded to 1/65,536."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if x.device.type != "cpu" or self.p >= 1:  # GPUs draw fast already
            return super().forward(x)
        n = x.numel()
        words = torch.empty((n + 2) // 3, dtype=torch.int64).random_()  # uniform on [0, 2**63)
        draws = words.view(torch.int16).view(-1, 4)[:, LOW_QUARTERS].reshape(-1)[:n]
        keep = draws.view(x.shape) >= round(self.p * 65536) - 32768
        return x * keep.to(x.dtype).mul_(1 / (1 - self.p))


class DigitNet(nn.Module):
    """The small, fast CNN of mnist-best: stages of conv 3×3 → batch norm → ReLU (`depth` per
    stage) with a 2×2 max pool between stages, then dropout and one linear layer over the
    flattened last map.

    With the default widths (16, 32, 64) at 28×28 the stages see 28, 14 and 7 px. The head keeps
    every position of the last 7×7 map (where a stroke is matters for a digit): the same network
    with global average pooling instead reached 98.8 % rather than 99.5 % in 10 epochs.
    """

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64), depth: int = 1,
                 dropout: float = 0.1, num_classes: int = 10):
        super().__init__()
        layers, cin = [], 1
        for k, width in enumerate(widths):
            if k:
                layers.append(nn.MaxPool2d(2))
            for _ in range(depth):
                layers += [nn.Conv2d(cin, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                           nn.ReLU(inplace=True)]
                cin = width
        self.features = nn.Sequential(*layers)
        side = 28 // 2 ** (len(widths) - 1)
        self.head = nn.Sequential(nn.Flatten(), WordDropout(dropout), nn.Linear(cin * side * side, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.head(self.features(x))
