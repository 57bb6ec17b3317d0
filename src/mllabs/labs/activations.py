"""Sigmoid against ReLU: the same LeNet-5, the same start, the same budget.

The sigmoid's slope is at most 1/4 and nearly zero once it saturates. Backpropagation multiplies
one such slope per layer on the way down, so the layers nearest the input get the smallest
gradients and hardly move. ReLU's slope is 1 wherever a unit is active. This lab trains both and
records, after every backward pass, how large each layer's gradient is, so the report shows the
cause next to the effect instead of asserting it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mllabs.config import OPTIMIZERS, SCHEDULES, TrainConfig, option
from mllabs.data import mnist
from mllabs.errors import UserError
from mllabs.labs import _mnist
from mllabs.models.inspect import BatchRecorder, GradientRecorder
from mllabs.models.lenet import LeNet5, channels_last_lenet
from mllabs.report import figures, mean_std
from mllabs.train import accuracy, cross_entropy, evaluate

NAME = "activations"
TITLE = "Activations: sigmoid against ReLU in LeNet-5"
SUMMARY_LINE = "LeNet-5 with sigmoid vs ReLU, same start and budget: curves and gradient size per layer"
SUMMARY = (
    "LeNet-5 trained twice on the same MNIST digits, from the same initial weights, with the same "
    "optimizer and number of updates: once with sigmoid activations (as in the 1990s) and once "
    "with ReLU. Besides the loss and accuracy curves, the report records the mean size of every "
    "layer's weight gradient during training, which is what explains the difference.")

ACTIVATIONS = ("sigmoid", "relu", "tanh")
LABELS = {"sigmoid": "sigmoid", "relu": "ReLU", "tanh": "tanh"}


@dataclass
class Config(TrainConfig):
    activations: tuple[str, ...] = option(("sigmoid", "relu"), "activations to compare",
                                          choices=ACTIVATIONS)
    seeds: int = option(3, "seeds per activation (seed k: the same weights and batch order for each)",
                        min=1)
    epochs: int = option(8, "passes over the training digits", min=1)
    batch_size: int = option(32, "digits per update", min=1)
    optimizer: str = option("momentum", "update rule, the same for every activation (adam rescales "
                            "each weight's step by its own gradient size)",
                            choices=tuple(o for o in OPTIMIZERS if o != "gd"))
    lr: float = option(0.03, "learning rate, the same for every activation", gt=0.0)
    schedule: str = option("constant", "learning-rate schedule", choices=SCHEDULES)
    train_size: int = option(20000, "training digits used (0: all not held out)", min=0)
    val_size: int = option(5000, "training digits held out to choose the network predict uses", min=1)
    every: int = option(20, "updates averaged into one point of the per-update curves", min=1)


PROFILES = {
    "quick": {"epochs": 1, "seeds": 1, "train_size": 1000, "val_size": 200, "every": 4},
    "default": {},
    "full": {"epochs": 20, "train_size": 0},
}


def networks(cfg: Config) -> dict:
    return {f"lenet5-{a}": (LeNet5(a), (1, 32, 32)) for a in cfg.activations}


def prepare(cfg: Config, data_dir: Path | None) -> mnist.Mnist:
    if not cfg.activations:
        raise UserError(f"activations is empty; name at least one of {', '.join(ACTIVATIONS)}")
    if len(set(cfg.activations)) != len(cfg.activations):
        raise UserError(f"activations={','.join(cfg.activations)} names one twice; list each once")
    data = mnist.load(data_dir)
    _mnist.check_sizes(cfg, data)
    return data


def run(cfg: Config, data: mnist.Mnist, ctx) -> tuple[str, dict]:
    rep = ctx.report
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = _mnist.splits(
        data, cfg.val_size, cfg.train_size, cfg.seed, pad_to=32)
    per_epoch = math.ceil(len(y_train) / cfg.batch_size)
    rep.section("Setup", (
        f"LeNet-5 (two 5×5 convolutions with max pooling, then 120, 84 and 10 units) with "
        f"{' and '.join(LABELS[a] for a in cfg.activations)} after every layer but the last. "
        f"{len(y_train):,} training digits"
        + (" (a subset, to keep the default run to a few minutes on a laptop)"
           if cfg.train_size and cfg.train_size < len(data.train_y) - cfg.val_size else "")
        + f", {len(y_val):,} held out to choose the network `predict` uses, the 10,000 test "
        f"digits only measured. Every run: {cfg.optimizer} at learning rate {cfg.lr:g} "
        f"({cfg.schedule}), batch {cfg.batch_size}, {cfg.epochs} epoch{'s' * (cfg.epochs > 1)} = "
        f"{cfg.epochs * per_epoch:,} updates, cross-entropy loss, PyTorch's default initialisation. "
        + (f"Seeds {cfg.seed}…{cfg.seed + cfg.seeds - 1}: for each seed" if cfg.seeds > 1 else
           f"Seed {cfg.seed}:") + " every activation starts from "
        "the same initial weights and sees the batches in the same order, so the activation is "
        "the only difference."))

    runs: dict[str, list[dict]] = {a: [] for a in cfg.activations}
    for act in cfg.activations:
        for k in range(cfg.seeds):
            seed = cfg.seed + k
            torch.manual_seed(seed)
            model = channels_last_lenet(act)
            grads, batches = GradientRecorder(model), BatchRecorder(cross_entropy)
            result = ctx.fit(model, (x_train, y_train), dataclasses.replace(cfg, seed=seed),
                             loss_fn=batches, metrics={"accuracy": accuracy},
                             also={"test": (x_test, y_test)}, restore_best=False,
                             label=f"{LABELS[act]} seed {seed}",
                             after_backward=grads)
            record = {"seed": seed, "status": result.status, "history": result.history,
                      "seconds": result.seconds, "model": model, "layers": grads.names,
                      "grad_updates": grads.per_update(), "grad_epochs": grads.per_epoch(),
                      "batches": batches.per_update()}
            if result.status == "completed":
                record["test"] = evaluate(model, x_test, y_test, cross_entropy, {"accuracy": accuracy})
                record["val"] = evaluate(model, x_val, y_val, cross_entropy, {"accuracy": accuracy})
                ctx.log(f"{LABELS[act]} seed {seed}: validation accuracy "
                        f"{100 * record['val']['accuracy']:.2f} % ({result.seconds:.1f} s)")
            else:
                ctx.log(f"{LABELS[act]} seed {seed}: diverged in epoch {len(result.history)}")
            runs[act].append(record)
    ctx.run.write_history([{"activation": a, "seed": r["seed"], **row}
                           for a, rs in runs.items() for r in rs for row in r["history"]])

    done = {a: [r for r in rs if r["status"] == "completed"] for a, rs in runs.items()}
    if not any(done.values()):
        rep.section("Diverged", f"Every run's loss became NaN or infinite; lower the learning rate "
                    f"(now {cfg.lr:g}).")
        return "diverged", {}
    metrics = report_curves(cfg, done, rep)
    metrics.update(report_gradients(cfg, done, rep))
    failed = [(a, r["seed"]) for a, rs in runs.items() for r in rs if r["status"] != "completed"]
    if failed:
        rep.table([{"activation": LABELS[a], "seed": s} for a, s in failed],
                  "Runs whose loss became NaN or infinite (left out of every table and curve)")

    # predict uses the run with the best accuracy on the held-out digits, whatever its activation
    act, best = max(((a, r) for a, rs in done.items() for r in rs), key=lambda p: p[1]["val"]["accuracy"])
    _mnist.save_classifier(ctx.run.path, NAME, best["model"], "lenet5", {"activation": act}, pad_to=32)
    rep.section("Predict", f"`mllabs predict` (the command under What next, on a test digit the run saved) reads your own digit images with "
                f"the {LABELS[act]} network of seed {best['seed']}, the best on the held-out digits "
                f"({best['val']['accuracy']:.4f}).")
    metrics.update({"predict_network": f"{act}, seed {best['seed']}",
                    "train_seconds": sum(r["seconds"] for rs in runs.values() for r in rs)})
    return "completed", metrics


def smooth(values: np.ndarray, every: int) -> tuple[np.ndarray, np.ndarray]:
    """Means over consecutive blocks of `every` updates; x is the last update of each block."""
    blocks = len(values) // every
    if blocks == 0:
        return np.array([len(values)]), values.mean(0, keepdims=True)
    means = values[:blocks * every].reshape(blocks, every, *values.shape[1:]).mean(1)
    return np.arange(1, blocks + 1) * every, means


def band(values: list[np.ndarray]):
    """Mean over seeds and, with more than one seed, their standard deviation."""
    stack = np.stack(values)
    return stack.mean(0), (stack.std(0, ddof=1) if len(stack) > 1 else None)


def report_curves(cfg: Config, done: dict[str, list[dict]], rep) -> dict:
    rep.section("Learning curves", "Both activations on the same axes (mean over seeds; the band is "
                "± one standard deviation). The per-update curves follow the same runs batch by batch, "
                f"each point the mean of {cfg.every} consecutive training batches, so the first epoch "
                "is visible in detail.")
    panels: dict[str, dict] = {"training loss (cross-entropy)": {}, "test loss (cross-entropy)": {},
                               "training accuracy": {}, "test accuracy": {}}
    early: dict[str, dict] = {"training loss per batch": {}, "training accuracy per batch": {}}
    rows, metrics = [], {}
    for act, rs in done.items():
        if not rs:
            continue
        length = min(len(r["history"]) for r in rs)
        epochs = np.arange(1, length + 1)
        for split, name in (("train", "training"), ("test", "test")):
            for key, what in (("loss", "loss (cross-entropy)"), ("accuracy", "accuracy")):
                mean, err = band([np.array([row[f"{split}_{key}"] for row in r["history"][:length]])
                                  for r in rs])
                panels[f"{name} {what}"][LABELS[act]] = (epochs, mean, err)
        updates = min(len(r["batches"]) for r in rs)
        smoothed = [smooth(r["batches"][:updates], cfg.every) for r in rs]
        x = smoothed[0][0]
        for col, panel in ((0, "training loss per batch"), (1, "training accuracy per batch")):
            mean, err = band([s[1][:, col] for s in smoothed])
            early[panel][LABELS[act]] = (x, mean, err)
        test = [r["test"]["accuracy"] for r in rs]
        rows.append({"activation": LABELS[act], "seeds": len(rs),
                     "final training loss": mean_std([r["history"][-1]["train_loss"] for r in rs], 4),
                     "test loss": mean_std([r["test"]["loss"] for r in rs], 4),
                     "test accuracy": mean_std(test, 4),
                     "seconds per run": mean_std([r["seconds"] for r in rs], 1)})
        metrics.update({f"{act}.test_accuracy": float(np.mean(test)),
                        f"{act}.test_accuracy_std": float(np.std(test, ddof=1)) if len(test) > 1 else 0.0,
                        f"{act}.test_loss": float(np.mean([r["test"]["loss"] for r in rs]))})
    rep.table(rows, "After the last epoch (mean ± std over seeds; training loss: running mean over "
              "the last epoch's batches)")
    text, plateau = verdict(done, cfg.every)
    rep.text(text)
    metrics.update(plateau)
    fig = figures.curves(panels)
    shared_y(fig, rows=2)
    ran = {LABELS[a]: rs for a, rs in done.items() if rs}
    rep.figure(fig, "curves", "Loss and accuracy per epoch; each row shares its y axis (training: "
               "running mean over each epoch's batches; test: the 10,000 test digits after the epoch)",
               conclusion=accuracy_conclusion({a: [r["test"]["accuracy"] for r in rs] for a, rs in ran.items()}))
    rep.figure(figures.curves(early, xlabel="update"), "curves_per_update",
               f"Training loss and accuracy of the batches, {cfg.every} updates per point",
               conclusion=plateau_conclusion({a: [left_plateau(r["batches"], cfg.every) for r in rs]
                                              for a, rs in ran.items()},
                                             min(len(r["batches"]) for rs in ran.values() for r in rs)))
    return metrics


def accuracy_conclusion(accs: dict[str, list[float]]) -> str:
    """Which activation ends higher on the test digits and by how much, over every seed's number
    (the gap is called clear only when every seed of the winner beats every seed of the other)."""
    ranked = sorted(accs, key=lambda a: -np.mean(accs[a]))
    top = ranked[0]
    text = f"{top[0].upper() + top[1:]} ends highest, at {100 * np.mean(accs[top]):.2f} % test accuracy"
    for other in ranked[1:]:
        gap = 100 * (np.mean(accs[top]) - np.mean(accs[other]))
        clear = min(accs[top]) > max(accs[other])
        text += (f", {gap:.2f} points above {other} ({100 * np.mean(accs[other]):.2f} %"
                 + (", every seed below every one of " + top if clear and len(accs[top]) > 1 else "")
                 + ")")
    return text + "."


def plateau_conclusion(left: dict[str, list[int | None]], updates: int) -> str:
    """When each activation's batch loss left the plateau of guessing, seed by seed."""
    parts = []
    for act, when in left.items():
        if all(u is None for u in when):
            parts.append(f"{act}'s batch loss never fell below {PLATEAU:.1f} in {updates:,} updates")
        else:
            seen = [u for u in when if u is not None]
            parts.append(f"{act}'s fell below {PLATEAU:.1f} after "
                         + (f"{seen[0]:,}" if len(when) == 1 else
                            f"{min(seen):,}–{max(seen):,}" + (f" ({len(when) - len(seen)} seed(s) never)"
                                                                if len(seen) < len(when) else ""))
                         + " updates")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def gradient_conclusion(epoch: int, first: str, last: str, first_ratio: float, last_ratio: float) -> str:
    """ReLU's mean gradient over sigmoid's at the first and the last layer, and where the gap is."""
    def times(r):
        return f"{r:,.0f}" if r >= 10 else f"{r:.2g}"

    where = ("the gap opens towards the input" if first_ratio > 2 * last_ratio else
             "the gap does not grow towards the input" if first_ratio > 0.5 * last_ratio else
             "the gap narrows towards the input")
    return (f"In epoch {epoch} ReLU's {first} gradient was {times(first_ratio)} times sigmoid's and "
            f"its {last} gradient {times(last_ratio)} times: {where}.")


PLATEAU = 2.0  # a batch loss below this (guessing gives ln 10 = 2.303) counts as learning


def left_plateau(batches: np.ndarray, every: int) -> int | None:
    """The update at which the batch loss, averaged over `every` updates, first falls below
    PLATEAU; None if it never does."""
    x, means = smooth(batches[:, 0], every)
    below = np.nonzero(means < PLATEAU)[0]
    return int(x[below[0]]) if len(below) else None


def verdict(done: dict[str, list[dict]], every: int) -> tuple[str, dict]:
    """What the curves say, from this run's numbers, and the plateau metrics."""
    parts, metrics = [], {}
    for act, rs in done.items():
        if not rs:
            continue
        name = LABELS[act][0].upper() + LABELS[act][1:]
        acc = [r["test"]["accuracy"] for r in rs]
        left = [left_plateau(r["batches"], every) for r in rs]
        updates = len(rs[0]["batches"])
        text = f"{name} ends at {100 * np.mean(acc):.2f} % test accuracy"
        if len(rs) > 1:
            text += f" (seeds: {', '.join(f'{100 * a:.1f}' for a in acc)} %)"
        if all(u is None for u in left):
            text += (f" and never left the plateau: in all {updates:,} updates its batch loss stayed "
                     f"above {PLATEAU:.1f}, near the ln 10 = {math.log(10):.3f} of guessing.")
        else:
            when = ", ".join(f"{u:,}" if u is not None else "never" for u in left)
            text += (f"; its batch loss first fell below {PLATEAU:.1f} (guessing gives "
                     f"{math.log(10):.3f}) after {when} of its {updates:,} updates"
                     + (" (one number per seed)." if len(rs) > 1 else "."))
            if None not in left:
                metrics[f"{act}.updates_to_learn"] = float(np.mean(left))
        history = [r["history"] for r in rs]
        if len(history[0]) > 1:
            rise = np.mean([h[-1]["test_accuracy"] - h[-2]["test_accuracy"] for h in history])
            if rise > 0.01:
                text += (f" It was still climbing: its test accuracy rose by {100 * rise:.1f} points "
                         "in the last epoch.")
        parts.append(text)
    return " ".join(parts), metrics


def report_gradients(cfg: Config, done: dict[str, list[dict]], rep) -> dict:
    acts = [a for a, rs in done.items() if rs]
    layers = done[acts[0]][0]["layers"]
    rep.section("Gradient size per layer", (
        "After every backward pass, before the update, the lab takes the mean absolute gradient of "
        "each convolution's and each dense layer's weights (conv1 is nearest the input, fc3 is the "
        "output layer). Both activations start from the same weights, so the sizes compare "
        "directly. With a plain or momentum SGD step each weight moves by the learning rate times "
        "its gradient, so a gradient 100 times smaller is a layer that learns 100 times slower."))
    by_epoch = {a: {e: np.mean([r["grad_epochs"][e] for r in done[a]], 0)
                    for e in done[a][0]["grad_epochs"]} for a in acts}
    epochs = sorted(set.intersection(*(set(v) for v in by_epoch.values())))
    pair = ("sigmoid", "relu") if {"sigmoid", "relu"} <= set(acts) else None
    rows = []
    for e in epochs:
        for i, layer in enumerate(layers):
            row = {"epoch": e, "layer": layer}
            row.update({f"{LABELS[a]}: mean gradient size": float(by_epoch[a][e][i]) for a in acts})
            if pair:
                row["ReLU ÷ sigmoid"] = float(by_epoch["relu"][e][i] / by_epoch["sigmoid"][e][i])
            rows.append(row)
    rep.table(rows, "Mean |gradient| of each layer's weights, averaged over the epoch's updates and "
              "the seeds")
    metrics = {f"{a}.grad.{layer}": float(by_epoch[a][epochs[0]][i])
               for a in acts for i, layer in enumerate(layers)}
    if pair:
        e = epochs[0]
        first = by_epoch["relu"][e][0] / by_epoch["sigmoid"][e][0]
        last = by_epoch["relu"][e][-1] / by_epoch["sigmoid"][e][-1]
        metrics["first_layer_grad_ratio"] = float(first)
        rep.text(f"In the first epoch the first convolution's gradient was {first:,.0f} times larger "
                 f"with ReLU than with sigmoid, while at the output layer the ratio was {last:.2g}: "
                 "the gap opens on the way down, one sigmoid slope (at most 0.25) per layer. "
                 "Under sigmoid, the layers that have to learn the strokes and edges of the digits "
                 "barely move; the output layer alone cannot do much with features that stay random.")
        if len(epochs) > 1:
            z = epochs[-1]
            ratio = by_epoch["relu"][z][0] / by_epoch["sigmoid"][z][0]
            shown = f"{ratio:,.0f}" if ratio >= 10 else f"{ratio:.2g}"
            learned = any(left_plateau(r["batches"], cfg.every) is not None for r in done["sigmoid"])
            if learned:
                rep.text(f"By epoch {z} the ratio at the first convolution was down to {shown} (sigmoid's "
                         f"mean gradient there {by_epoch['sigmoid'][z][0]:.2g}, against "
                         f"{by_epoch['sigmoid'][e][0]:.2g} in epoch {e}). The figure below shows the "
                         "sigmoid network's lower-layer gradients growing just when its loss leaves "
                         "the plateau: what reaches a layer is multiplied by the weights of every "
                         "layer above it, and those grow as the network learns.")
            else:
                rep.text(f"The sigmoid network never left the plateau, and in epoch {z} its first "
                         f"convolution's gradient was still {shown} times smaller than ReLU's.")

    panels = {}
    for a in acts:
        series = {}
        for i, layer in enumerate(layers):
            updates = min(len(r["grad_updates"]) for r in done[a])
            smoothed = [smooth(r["grad_updates"][:updates, i], cfg.every) for r in done[a]]
            series[layer] = (smoothed[0][0], np.mean([s[1] for s in smoothed], 0))
        panels[LABELS[a]] = series
    fig = figures.curves(panels, xlabel="update", log_y=True)
    shared_y(fig)
    e = epochs[0]
    said = (gradient_conclusion(e, layers[0], layers[-1], by_epoch["relu"][e][0] / by_epoch["sigmoid"][e][0],
                                by_epoch["relu"][e][-1] / by_epoch["sigmoid"][e][-1]) if pair else
            "; ".join(f"{LABELS[a]}: {layers[0]}'s mean gradient in epoch {e} is "
                      f"{by_epoch[a][e][0] / by_epoch[a][e][-1]:.2g} × {layers[-1]}'s" for a in acts) + ".")
    rep.figure(fig, "gradients", f"Mean |gradient| of each layer's weights ({cfg.every} updates per "
               "point, mean over seeds; log scale, the same for every panel)", conclusion=said)
    return metrics


def shared_y(fig, rows: int = 1) -> None:
    """Give the panels of each row (or, with rows=1, all panels) one y range, to compare at a glance."""
    axes = [ax for ax in fig.axes if ax.get_visible()]
    per_row = -(-len(axes) // rows)
    for k in range(0, len(axes), per_row):
        group = axes[k:k + per_row]
        low = min(ax.get_ylim()[0] for ax in group)
        high = max(ax.get_ylim()[1] for ax in group)
        for ax in group:
            ax.set_ylim(low, high)


def predict(run_dir: Path, inputs: list[Path]) -> list[dict]:
    return _mnist.predict_digits(run_dir, inputs, NAME)


predict_network = _mnist.build_network  # the network predict loads (mllabs export)


# ---------------------------------------------------------------------------- the report's ends

HEADLINE = "relu.test_accuracy"
KEY_FIGURE = "curves"
TRY_NEXT = [
    ("--set epochs=10", "longer training: does sigmoid catch up given time?"),
    ("--set lr=0.5", "a larger rate for sigmoid's small gradients (ReLU may diverge)"),
    ("--set seeds=3", "more seeds: is the gap the same from every start?"),
]


def headline(metrics: dict) -> str:
    from mllabs import stats

    text = "From the same start, "
    parts = [f"{name} reaches **{stats.percent(metrics[f'{key}.test_accuracy'])}**"
             for key, name in (("relu", "ReLU"), ("sigmoid", "sigmoid"))
             if f"{key}.test_accuracy" in metrics]
    text += " and ".join(parts) + " test accuracy"
    if "first_layer_grad_ratio" in metrics:
        text += (f"; the first convolution's gradient is {metrics['first_layer_grad_ratio']:,.0f}× "
                 "smaller under sigmoid")
    return text + "."


def example_input(data, run_dir: Path) -> list[str]:
    return _mnist.example_digit(data, run_dir)
