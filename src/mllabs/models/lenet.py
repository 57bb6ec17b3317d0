"""LeNet-5 (LeCun et al. 1998): two 5×5 convolutions with pooling, then three dense layers."""

from __future__ import annotations

import torch
from torch import nn

from mllabs.models.mlp import ACTIVATIONS


def feature_side(image_size: int) -> int:
    """Side of S4's maps for a square input: each 5×5 convolution takes 4 px, each pool halves."""
    return ((image_size - 4) // 2 - 4) // 2


class LeNet5(nn.Module):
    """Input 1×32×32 (MNIST padded by 2, as in the paper) → 10 class scores.

    C1 6@28×28 → S2 6@14×14 → C3 16@10×10 → S4 16@5×5 → F5 120 → F6 84 → 10. Max pooling and
    ReLU by default; activation="sigmoid" gives the classic slow-learning comparison.

    `in_channels=3, image_size=224` is the same network on colour photos (the eye-screening
    handout's LeNet): the layers are unchanged and F5 reads all 16 S4 maps at whatever size they
    come out (16@53×53 at 224 px), so the dense layer grows with the image as in the handout.
    """

    def __init__(self, activation: str = "relu", num_classes: int = 10, in_channels: int = 1,
                 image_size: int = 32):
        super().__init__()
        side = feature_side(image_size)
        if side < 1:
            raise ValueError(f"LeNet-5 needs images of at least 16 px a side, not {image_size}")
        act = ACTIVATIONS[activation]
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5), act(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), act(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * side * side, 120), act(), nn.Linear(120, 84), act(),
            nn.Linear(84, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def channels_last_lenet(activation: str = "relu") -> LeNet5:
    """LeNet-5 as the MNIST labs train it: kept channels-last (the inputs follow the weights).

    Its 6- and 16-channel layers are bound by memory traffic, and max pooling and the
    convolutions' backward pass run faster on channels-last maps. Training step, interleaved
    medians (benchmarks/optimisations.md): batch 128 1.25x faster on an AMD EPYC with AVX-512
    and native bfloat16; batch 32 1.29x faster (ReLU and sigmoid alike) on an Intel Xeon held
    to AVX2 and 1.2-1.3x as that CPU is, where the AMD machine measured 0.89x."""
    return LeNet5(activation).to(memory_format=torch.channels_last)
