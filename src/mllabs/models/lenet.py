"""LeNet-5 (LeCun et al. 1998): two 5×5 convolutions with pooling, then three dense layers."""

from __future__ import annotations

from torch import nn

from mllabs.models.mlp import ACTIVATIONS


class LeNet5(nn.Module):
    """Input 1×32×32 (MNIST padded by 2, as in the paper) → 10 class scores.

    C1 6@28×28 → S2 6@14×14 → C3 16@10×10 → S4 16@5×5 → F5 120 → F6 84 → 10. Max pooling and
    ReLU by default; activation="sigmoid" gives the classic slow-learning comparison.
    """

    def __init__(self, activation: str = "relu", num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        act = ACTIVATIONS[activation]
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5), act(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), act(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), act(), nn.Linear(120, 84), act(),
            nn.Linear(84, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))
