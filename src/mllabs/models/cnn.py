"""The shallow CNN of the MNIST handout (one convolution, then a dense classifier), and the
plain CNN of the flowers lab (conv-BN-ReLU-pool blocks, then a dense head)."""

from __future__ import annotations

from torch import nn


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
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin * side * side, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.head(self.features(x))
