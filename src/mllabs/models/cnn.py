"""The shallow CNN of the MNIST handout: one convolution, then a dense classifier."""

from __future__ import annotations

from torch import nn


class ShallowCNN(nn.Sequential):
    """1×28×28 → conv 3×3, 28 filters, ReLU → flatten (18,928) → dense 128 ReLU → dense 10."""

    def __init__(self, filters: int = 28, hidden: int = 128, num_classes: int = 10):
        super().__init__(
            nn.Conv2d(1, filters, 3), nn.ReLU(), nn.Flatten(),
            nn.Linear(filters * 26 * 26, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
