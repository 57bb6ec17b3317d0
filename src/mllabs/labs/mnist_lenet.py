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
from mllabs.models.lenet import LeNet5, channels_last_lenet
from mllabs import stats
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


HEADLINE = "test_accuracy"
# the handout's names: C convolution, S subsampling (pooling), F fully connected
LAYER_NAMES = {"LeNet-5": {"features.0": "C1", "features.2": "S2", "features.3": "C3",
                           "features.5": "S4", "classifier.1": "C5", "classifier.3": "F6",
                           "classifier.5": "output"}}
TRY_NEXT = [
    ("--set activation=sigmoid", "the 1998 classic's squashing activation: slower to train, and "
     "by how much?"),
    ("--set epochs=20 --set schedule=constant --set lr=0.001", "the handout's budget (`--profile "
     "full`): more epochs, a fixed rate"),
    ("--set optimizer=sgd --set lr=0.05", "plain SGD instead of Adam at a rate that suits it"),
    ("--set train_size=6000", "a tenth of the training digits: how much does the data buy?"),
    ("--seed 1", "another seed: a second accuracy to set against this one's interval"),
]


def headline(metrics: dict) -> str:
    return _mnist.accuracy_headline(metrics, f"one seed, with the weights of epoch "
                                    f"{metrics['best_epoch']} (lowest validation loss)")


def example_input(data: mnist.Mnist, run_dir: Path) -> list[str]:
    return _mnist.example_digit(data, run_dir)


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
    "quick": {"epochs": 1, "train_size": 1000, "val_size": 300},
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
    """The lab's network, channels-last at every batch size (models.lenet.channels_last_lenet)."""
    return channels_last_lenet(cfg.activation)


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
    model = ctx.network(build(cfg))
    rep.section("Model", f"LeNet-5 with {cfg.activation} activations and max pooling (its "
                "layers, shapes and operation counts are at the end of the report).")

    val = (x_val, y_val) if len(y_val) else None
    result = ctx.fit(model, (x_train, y_train), cfg, loss_fn=cross_entropy, metrics={"accuracy": accuracy},
                     val=val, also={"test": (x_test, y_test)},
                     checkpoint_dir=ctx.run.checkpoints, keep_last=cfg.keep_last,
                     restore_best=val is not None, label="LeNet-5")
    ctx.run.write_history(result.history)
    test = evaluate(model, x_test, y_test, cross_entropy, {"accuracy": accuracy})

    rep.section("Training", f"{cfg.optimizer}, learning rate {cfg.lr:g} ({cfg.schedule}), batch "
                f"{cfg.batch_size}, {len(result.history)} epochs in {result.seconds:.1f} s "
                f"({len(y_train) * len(result.history) / result.seconds:,.0f} digits/s). The "
                f"weights kept are those of epoch {result.best_epoch}, the best on the held-out "
                "validation digits; the test digits were only measured, never used to choose.")
    epochs = [r["epoch"] for r in result.history]
    splits = [s for s in ("train", "val", "test") if f"{s}_loss" in result.history[0]]
    names = {"train": "train", "val": "validation", "test": "test"}
    kept = result.best_epoch if val is not None else len(result.history)
    rule = "lowest validation loss" if val is not None else "the last; nothing held out"
    rep.figure(figures.curves({
        "loss (cross-entropy)": {names[s]: (epochs, [r[f"{s}_loss"] for r in result.history]) for s in splits},
        "accuracy": {names[s]: (epochs, [r[f"{s}_accuracy"] for r in result.history]) for s in splits},
    }, mark=(kept, f"kept: epoch {kept} ({rule})")), "curves",
        "Loss and accuracy per epoch (train: running mean over each epoch's batches; test drawn "
        "as the handout does, never used to choose); the dashed line is the epoch kept",
        conclusion=curves_conclusion(result.history, kept, val is not None), key=True)
    status = result.status
    if status == "diverged":
        rep.section("Diverged", f"The loss became NaN in epoch {len(result.history)}; lower the "
                    f"learning rate (now {cfg.lr:g}).")
        return status, {"test_accuracy": test["accuracy"], "test_loss": test["loss"]}

    low, high = stats.wilson(test["accuracy"], len(y_test))
    rep.section("Results", f"Test accuracy {stats.percent(test['accuracy'])} "
                f"({100 * (1 - test['accuracy']):.2f} % of the {len(y_test):,} test digits wrong), "
                f"test loss {test['loss']:.4f}. This is one seed measured once on {len(y_test):,} "
                f"digits: its 95 % Wilson interval is {stats.percent_interval(low, high)}, so another "
                "run (or the README's number) inside that range agrees with this one; a run "
                "outside it points to a real difference in the setup.")
    found = _mnist.describe_classifier(rep, model, x_test, data.test_y, data.test_x, cfg.seed)
    _mnist.save_classifier(ctx.run.path, NAME, model, "lenet5", {"activation": cfg.activation}, pad_to=32)
    rep.text("`mllabs predict` classifies your own digit photos or drawings with this network "
             "(top 3 with probabilities); the command under What next runs it on a test digit the "
             "run saved as a PNG.")
    return status, {"test_accuracy": test["accuracy"], "test_loss": test["loss"],
                    **_mnist.test_interval(test["accuracy"], len(y_test)),
                    "test_errors": found["errors"], "epochs_run": len(result.history),
                    "best_epoch": result.best_epoch, "train_seconds": result.seconds}


def curves_conclusion(history: list[dict], kept: int, has_val: bool) -> str:
    """Which epoch was kept and why, and whether another rule would have picked differently."""
    row = history[kept - 1]
    if not has_val:
        return f"All {len(history)} epochs ran and the last was kept (train loss {row['train_loss']:.4f})."
    text = (f"Epoch {kept} had the lowest validation loss ({row['val_loss']:.4f}, validation "
            f"accuracy {stats.percent(row['val_accuracy'])}), so its weights were kept")
    best_acc = max(history, key=lambda r: r["val_accuracy"])
    if best_acc["epoch"] != kept:
        text += (f"; epoch {best_acc['epoch']} had the highest validation accuracy "
                 f"({stats.percent(best_acc['val_accuracy'])}), but the rule is the loss, which "
                 "also counts how sure the network is of each answer")
    return text + "."


def predict(run_dir: Path, inputs: list[Path]) -> list[dict]:
    return _mnist.predict_digits(run_dir, inputs, NAME)


predict_network = _mnist.build_network  # the network predict loads (mllabs export)
