"""LeNet-5 on MNIST, end to end: the data pipeline, training with checkpoints, the test set.

The handout's pipeline is load → shuffle → map (normalise) → batch → repeat. Here load and map
happen once, up front, on the whole array (60,000 digits are 47 MB as floats); shuffle, batch
and repeat are fit()'s seeded permutation, index slices and epochs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from mllabs.config import OPTIMIZERS, SCHEDULES, TrainConfig, option
from mllabs.data import mnist
from mllabs.labs import _mnist
from mllabs.models.lenet import LeNet5
from mllabs.report import figures
from mllabs.train import accuracy, cross_entropy, evaluate

NAME = "mnist-lenet"
TITLE = "MNIST with LeNet-5"
SUMMARY_LINE = "LeNet-5 on MNIST: pipeline, checkpoints, confusion matrix, predict on your digits"
SUMMARY = (
    "LeNet-5, the convolutional network LeCun and colleagues built for reading digits, trained on "
    "the 60,000 MNIST training digits and tested on the 10,000 test digits. The report follows "
    "the handout: the data pipeline, the network layer by layer, loss and accuracy per epoch, and "
    "where the network still goes wrong.")


@dataclass
class Config(TrainConfig):
    epochs: int = option(6, "passes over the training digits", min=1)
    batch_size: int = option(128, "digits per update", min=1)
    optimizer: str = option("adam", "update rule", choices=OPTIMIZERS)
    lr: float = option(2e-3, "learning rate", gt=0.0)
    schedule: str = option("cosine", "learning-rate schedule", choices=SCHEDULES)
    activation: str = option("relu", "activation after each layer (sigmoid: the 1998 classic)",
                             choices=("relu", "sigmoid", "tanh"))
    val_size: int = option(5000, "training digits held out to pick the best epoch", min=0)
    train_size: int = option(0, "use only this many training digits (0: all)", min=0)
    keep_last: int = option(3, "epoch checkpoints kept (best.pt is kept besides)", min=1)


PROFILES = {
    "quick": {"epochs": 1, "train_size": 4000, "val_size": 1000},
    "default": {},
    "full": {"epochs": 20, "schedule": "constant", "lr": 1e-3},
}


def networks(cfg: Config) -> dict:
    return {"LeNet-5": (LeNet5(cfg.activation), (1, 32, 32))}  # digits padded to 32×32


def prepare(cfg: Config, data_dir: Path | None) -> mnist.Mnist:
    data = mnist.load(data_dir)  # step 1 of the pipeline: load (IDX files, checked by sha256)
    _mnist.check_sizes(cfg, data)
    return data


def build(cfg: Config) -> LeNet5:
    """The lab's network. From batch 64 up it is kept channels-last, which on CPU makes a
    training step 1.25x faster at batch 128 (pooling and the convolutions' backward pass
    dominate it) but 0.9x at batch 32 (benchmarks/optimisations.md)."""
    model = LeNet5(cfg.activation)
    if cfg.batch_size >= 64:
        model = model.to(memory_format=torch.channels_last)
    return model


def run(cfg: Config, data: mnist.Mnist, ctx) -> tuple[str, dict]:
    rep = ctx.report
    # validation digits held out; step 3, map: scale to [0, 1], standardise with the training
    # mean and std, pad to 32×32
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = _mnist.splits(
        data, cfg.val_size, cfg.train_size, cfg.seed, pad_to=32)
    rep.section("Data pipeline", "The handout's five steps, and where each happens here.")
    rep.table([
        {"step": "load", "what": "read the IDX files (sha256-checked)",
         "result": f"{len(data.train_y):,} + {len(data.test_y):,} digits, 28×28 uint8"},
        {"step": "shuffle", "what": "a new seeded permutation of the training digits every epoch",
         "result": f"{len(y_train):,} training, {len(y_val):,} held out for validation"},
        {"step": "map", "what": f"÷255, −{mnist.MEAN}, ÷{mnist.STD}, pad 2 px to 32×32",
         "result": "×".join(map(str, x_train.shape)) + " float32"},
        {"step": "batch", "what": "slices of the permutation", "result": f"{cfg.batch_size} digits"},
        {"step": "repeat", "what": "epochs", "result": f"{cfg.epochs}"},
    ], "Data pipeline")

    torch.manual_seed(cfg.seed)
    model = build(cfg)
    rep.section("Model", f"LeNet-5 with {cfg.activation} activations and max pooling (its "
                "layers, shapes and operation counts are at the end of the report).")

    val = (x_val, y_val) if len(y_val) else None
    result = ctx.fit(model, (x_train, y_train), cfg, loss_fn=cross_entropy, metrics={"accuracy": accuracy},
                     val=val, also={"test": (x_test, y_test)},
                     checkpoint_dir=ctx.run.checkpoints, keep_last=cfg.keep_last,
                     restore_best=val is not None, label="LeNet-5")
    ctx.run.write_history(result.history)
    test = evaluate(model, x_test, y_test, cross_entropy, {"accuracy": accuracy})
    ctx.log(f"test accuracy {test['accuracy']:.4f} after {len(result.history)} epochs "
            f"({result.seconds:.1f} s)")

    rep.section("Training", f"{cfg.optimizer}, learning rate {cfg.lr:g} ({cfg.schedule}), batch "
                f"{cfg.batch_size}, {len(result.history)} epochs in {result.seconds:.1f} s "
                f"({len(y_train) * len(result.history) / result.seconds:,.0f} digits/s). The "
                f"weights kept are those of epoch {result.best_epoch}, the best on the held-out "
                "validation digits; the test digits were only measured, never used to choose.")
    epochs = [r["epoch"] for r in result.history]
    splits = [s for s in ("train", "val", "test") if f"{s}_loss" in result.history[0]]
    names = {"train": "train", "val": "validation", "test": "test"}
    rep.figure(figures.curves({
        "loss (cross-entropy)": {names[s]: (epochs, [r[f"{s}_loss"] for r in result.history]) for s in splits},
        "accuracy": {names[s]: (epochs, [r[f"{s}_accuracy"] for r in result.history]) for s in splits},
    }), "curves", "Loss and accuracy per epoch (train: running mean over each epoch's batches)")
    status = result.status
    if status == "diverged":
        rep.section("Diverged", f"The loss became NaN in epoch {len(result.history)}; lower the "
                    f"learning rate (now {cfg.lr:g}).")
        return status, {"test_accuracy": test["accuracy"], "test_loss": test["loss"]}

    rep.section("Results", f"Test accuracy {test['accuracy']:.4f} ({100 * (1 - test['accuracy']):.2f} % "
                "of the 10,000 test digits wrong), test loss " f"{test['loss']:.4f}.")
    found = _mnist.describe_classifier(rep, model, x_test, data.test_y, data.test_x, cfg.seed)
    _mnist.save_classifier(ctx.run.path, NAME, model, "lenet5", {"activation": cfg.activation}, pad_to=32)
    rep.text("`mllabs predict RUN_DIR digit.png ...` classifies your own digit photos or drawings "
             "with this network (top 3 with probabilities).")
    return status, {"test_accuracy": test["accuracy"], "test_loss": test["loss"],
                    "test_errors": found["errors"], "epochs_run": len(result.history),
                    "best_epoch": result.best_epoch, "train_seconds": result.seconds}


def predict(run_dir: Path, inputs: list[Path]) -> list[dict]:
    return _mnist.predict_digits(run_dir, inputs, NAME)


predict_network = _mnist.build_network  # the network predict loads (mllabs export)
