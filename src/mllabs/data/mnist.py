"""MNIST as arrays: 60,000 training and 10,000 test digits, 28×28 uint8, ink bright on black."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mllabs.data.idx import read_idx_pair
from mllabs.data.store import dataset_dir

# Pixel mean and standard deviation of the 60,000 training images (scaled to [0, 1]).
MEAN, STD = 0.1307, 0.3081
CLASSES = [str(d) for d in range(10)]


@dataclass
class Mnist:
    train_x: np.ndarray  # (60000, 28, 28) uint8
    train_y: np.ndarray  # (60000,) uint8
    test_x: np.ndarray
    test_y: np.ndarray


def load(data_dir: Path | None = None) -> Mnist:
    folder = dataset_dir("mnist", data_dir)
    train = read_idx_pair(folder / "train-images-idx3-ubyte.gz", folder / "train-labels-idx1-ubyte.gz")
    test = read_idx_pair(folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz")
    return Mnist(*train, *test)


def normalise(images: np.ndarray | torch.Tensor, pad_to: int = 28) -> torch.Tensor:
    """uint8 (N, 28, 28) → float (N, 1, S, S), zero mean and unit variance over the training set.

    pad_to=32 adds a 2-pixel border of background, as LeNet-5's original 32×32 input did.
    """
    x = torch.as_tensor(images).float().div_(255.0).sub_(MEAN).div_(STD).unsqueeze(1)
    if pad_to != x.shape[-1]:
        pad = (pad_to - x.shape[-1]) // 2
        x = torch.nn.functional.pad(x, (pad, pad, pad, pad), value=-MEAN / STD)
    return x
