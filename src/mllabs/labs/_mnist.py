"""What the MNIST labs share: tensors, the classifier's report pages, and predict on photos."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mllabs import checkpoints, stats
from mllabs.data import mnist
from mllabs.data.digits import prepare_digit
from mllabs.errors import UserError
from mllabs.files import atomic_write_bytes
from mllabs.models.cnn import DigitNet, ShallowCNN
from mllabs.models.lenet import LeNet5
from mllabs.models.mlp import MLP
from mllabs.report.classifier import describe_classifier as report_classifier
from mllabs.train import predict as forward

ARCHITECTURES = {"mlp": MLP, "lenet5": LeNet5, "shallow_cnn": ShallowCNN, "digitnet": DigitNet}


def check_sizes(cfg, data: mnist.Mnist, *, all_train: bool = False) -> None:
    """val_size must leave digits to train on (and, with all_train, train_size must fit in what is
    left); checked in prepare so that a bad size fails before a run directory exists."""
    total = len(data.train_y)
    val = getattr(cfg, "val_size", 0)
    if val >= total:
        raise UserError(f"val_size={val} holds out all {total:,} training digits, leaving none to "
                        f"train on; use a val_size below {total:,} (e.g. --set val_size=5000)")
    if all_train and cfg.train_size > total - val:
        raise UserError(f"train_size={cfg.train_size} is more than the {total - val:,} digits left "
                        f"after holding out val_size={val}; lower one of them")


def split_validation(data: mnist.Mnist, size: int, seed: int):
    """Hold out `size` training digits (seeded) to choose the best epoch without the test set."""
    order = np.random.default_rng(seed).permutation(len(data.train_y))
    return np.sort(order[size:]), np.sort(order[:size])


Pair = tuple[torch.Tensor, torch.Tensor]


def splits(data: mnist.Mnist, val_size: int, train_size: int, seed: int,
           pad_to: int = 28) -> tuple[Pair, Pair, Pair]:
    """(x, y) for training, validation and test: `val_size` training digits held out (seeded),
    the first `train_size` of the rest kept (0: all), images normalised (÷255, −mean, ÷std,
    padded to `pad_to`) and labels int64. With val_size=0 the validation pair is empty."""
    train_idx, val_idx = split_validation(data, val_size, seed)
    if train_size:
        train_idx = train_idx[:train_size]
    return tuple((mnist.normalise(x, pad_to=pad_to), torch.from_numpy(y.astype(np.int64)))
                 for x, y in ((data.train_x[train_idx], data.train_y[train_idx]),
                              (data.train_x[val_idx], data.train_y[val_idx]),
                              (data.test_x, data.test_y)))


def describe_classifier(rep, model: nn.Module, test_x: torch.Tensor, test_y: np.ndarray,
                        raw_images: np.ndarray, seed: int) -> dict:
    """Confusion matrix, per-class accuracy and a grid of test digits; returns the numbers."""
    probs = torch.softmax(forward(model, test_x), 1).cpu().numpy()
    return report_classifier(rep, probs, test_y, mnist.CLASSES, raw_images, seed, what="digits")


# ---------------------------------------------------------------------------- predict

def save_classifier(run_dir: Path, lab: str, model: nn.Module, architecture: str, options: dict,
                    pad_to: int) -> None:
    """What predict needs: weights (tensors only) and how to rebuild and feed the network."""
    checkpoints.save_for_predict(run_dir, lab, {"architecture": architecture, "options": options,
                                                "pad_to": pad_to, "classes": mnist.CLASSES},
                                 {"model": model.state_dict()})


def build_network(spec: dict) -> nn.Module:
    """The empty network predict.json names: every MNIST lab's `predict_network`."""
    return ARCHITECTURES[spec["architecture"]](**spec["options"])


def predict_digits(run_dir: Path, inputs: list[Path], lab: str, top: int = 3) -> list[dict]:
    spec = checkpoints.load_spec(run_dir, lab)
    model = checkpoints.load_model(run_dir, spec, build_network)
    digits = np.stack([prepare_digit(p) for p in inputs])  # every file checked before any output
    probs = torch.softmax(forward(model, mnist.normalise(digits, spec["pad_to"])), 1).numpy()
    results = checkpoints.top_k(inputs, probs, spec["classes"], top)
    for result, digit in zip(results, digits):
        if not digit.any():  # mnist_style found nothing standing out from the background
            result["warning"] = "no digit found: the image looks blank, so this prediction means nothing"
    return results


# ---------------------------------------------------------------------------- report ends


def test_interval(accuracy: float, n: int) -> dict:
    """The 95 % Wilson interval of a single-seed test accuracy over its n test digits."""
    low, high = stats.wilson(accuracy, n)
    return {"test_accuracy_ci95_low": low, "test_accuracy_ci95_high": high, "test_digits": n}


def accuracy_headline(metrics: dict, what: str = "") -> str:
    """"Test accuracy **99.25 %** (95 % CI 99.07–99.40 % over the 10,000 test digits)" + what."""
    text = f"Test accuracy **{stats.percent(metrics['test_accuracy'])}**"
    if "test_accuracy_ci95_low" in metrics:
        text += (f" (95 % CI {stats.percent_interval(metrics['test_accuracy_ci95_low'], metrics['test_accuracy_ci95_high'])}"
                 f" over the {metrics['test_digits']:,} test digits)")
    return text + (f", {what}" if what else "") + "."


def example_digit(data: mnist.Mnist, run_dir: Path) -> list[str]:
    """The first test digit as a user might draw it: dark ink on white, 4× larger, a PNG."""
    from PIL import Image

    digit = data.test_x[0]
    image = Image.fromarray((255 - digit).astype(np.uint8)).resize((112, 112), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    path = run_dir / f"example-digit-{int(data.test_y[0])}.png"
    atomic_write_bytes(path, buf.getvalue())
    return [str(path)]
