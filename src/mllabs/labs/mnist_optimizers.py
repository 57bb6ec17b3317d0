"""Which optimizer, at which learning rate? The same network, the same epochs, several seeds.

The handout trained one fully connected network once with each of four optimizers and reported
the numbers side by side; single runs at one untuned learning rate cannot say which optimizer
is better. Here every optimizer gets a learning-rate grid and several seeds, each learning rate
is chosen on held-out training digits, and only then is the test set read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mllabs.config import OPTIMIZERS, SCHEDULES, TrainConfig, option
from mllabs.data import mnist
from mllabs.labs import _mnist
from mllabs.models.mlp import MLP
from mllabs.report import figures, mean_std
from mllabs.train import accuracy, cross_entropy, evaluate

NAME = "mnist-optimizers"
TITLE = "MNIST: every optimizer side by side"
SUMMARY_LINE = "one MLP, 8 optimizers × 4 learning rates × 3 seeds, same budget; which one wins"
SUMMARY = (
    "One fully connected network on MNIST, trained with eight optimizers (full-batch gradient "
    "descent, SGD, momentum, Nesterov, Adagrad, RMSProp, Adam, AdamW), each at several learning "
    "rates and seeds with the same number of epochs. Each optimizer is judged at its best "
    "learning rate, chosen on held-out training digits, so the comparison is between tuned "
    "optimizers rather than between one lucky run each.")

NAMES = {"gd": "gradient descent (full batch)", "sgd": "SGD", "momentum": "momentum",
         "nesterov": "Nesterov", "adagrad": "Adagrad", "rmsprop": "RMSProp", "adam": "Adam",
         "adamw": "AdamW"}

# The handout's table: one run each, learning rates not tuned (train, test accuracy).
HANDOUT = {"gd": (0.9971, 0.9812), "sgd": (0.9593, 0.9572), "rmsprop": (0.8803, 0.9083),
           "adam": (0.9727, 0.9692)}


@dataclass
class Config(TrainConfig):
    epochs: int = option(5, "passes over the training digits, the same for every optimizer", min=1)
    batch_size: int = option(128, "digits per update (gd always uses all of them)", min=1)
    hidden: tuple[int, ...] = option((256,), "hidden layer widths of the 784 → … → 10 network", min=1)
    schedule: str = option("cosine", "learning-rate schedule, the same for every optimizer",
                           choices=SCHEDULES)
    optimizers: tuple[str, ...] = option(OPTIMIZERS, "optimizers to compare", choices=OPTIMIZERS)
    lrs: tuple[float, ...] = option((1e-1, 1e-2, 1e-3, 1e-4), "learning-rate grid", gt=0.0)
    seeds: int = option(3, "seeds per optimizer and learning rate", min=1)
    adamw_decay: float = option(0.01, "AdamW's decoupled weight decay (torch's default; at 0 AdamW "
                                "is Adam)", min=0.0)
    val_size: int = option(5000, "training digits held out to choose each learning rate", min=1)
    train_size: int = option(0, "use only this many training digits (0: all)", min=0)


# TrainConfig's keys that each of the lab's runs replaces with its own value (see the grid above)
UNUSED_KEYS = {"optimizer": "it trains every optimizer in `optimizers`",
               "lr": "it tries every learning rate in `lrs`"}


PROFILES = {
    "quick": {"epochs": 1, "seeds": 1, "train_size": 2000, "val_size": 500,
              "optimizers": ("gd", "sgd", "adam"), "lrs": (1e-1, 1e-3), "hidden": (32,)},
    "default": {},
    "full": {"epochs": 20, "seeds": 5, "lrs": (1.0, 3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4)},
}


def networks(cfg: Config) -> dict:
    return {"MLP": (MLP(784, cfg.hidden, 10), (1, 28, 28))}


def prepare(cfg: Config, data_dir: Path | None) -> mnist.Mnist:
    data = mnist.load(data_dir)
    _mnist.check_sizes(cfg, data)
    return data


def run(cfg: Config, data: mnist.Mnist, ctx) -> tuple[str, dict]:
    rep = ctx.report
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = _mnist.splits(
        data, cfg.val_size, cfg.train_size, cfg.seed)
    rep.section("Setup", f"Network 784 → {' → '.join(map(str, cfg.hidden))} → 10 (ReLU), the same "
                f"for every optimizer. {len(y_train):,} training digits, {len(y_val):,} held out "
                f"to choose the learning rate, the 10,000 test digits read only to report. Every run: "
                f"{cfg.epochs} epochs, batch {cfg.batch_size} (gradient descent: all digits per "
                f"update, so {cfg.epochs} updates in all), cross-entropy loss, {cfg.schedule} learning-rate "
                f"schedule, weight decay {cfg.weight_decay:g} (AdamW: {cfg.adamw_decay:g}, decoupled). "
                f"Grid: learning rates "
                f"{', '.join(f'{lr:g}' for lr in cfg.lrs)} × seeds {cfg.seed}…{cfg.seed + cfg.seeds - 1}.")

    grid: dict[tuple[str, float], list[dict]] = {}
    total, done = len(cfg.optimizers) * len(cfg.lrs) * cfg.seeds, 0
    for name in cfg.optimizers:
        for lr in cfg.lrs:
            runs = []
            for k in range(cfg.seeds):
                seed = cfg.seed + k
                torch.manual_seed(seed)
                model = MLP(784, cfg.hidden, 10)
                decay = cfg.adamw_decay if name == "adamw" else cfg.weight_decay
                run_cfg = dataclasses.replace(cfg, optimizer=name, lr=lr, seed=seed, weight_decay=decay)
                result = ctx.fit(model, (x_train, y_train), run_cfg, loss_fn=cross_entropy,
                                 metrics={"accuracy": accuracy}, val=(x_val, y_val),
                                 also={"test": (x_test, y_test)},
                                 restore_best=False, progress=False)
                record = {"seed": seed, "status": result.status, "history": result.history,
                          "updates": result.updates, "seconds": result.seconds}
                if result.status == "completed":
                    record["model"] = model
                    record["train"] = evaluate(model, x_train, y_train, cross_entropy, {"accuracy": accuracy})
                    record["val"] = evaluate(model, x_val, y_val, cross_entropy, {"accuracy": accuracy})
                    record["test"] = evaluate(model, x_test, y_test, cross_entropy, {"accuracy": accuracy})
                runs.append(record)
                done += 1
            grid[(name, lr)] = runs
            ok = [r for r in runs if r["status"] == "completed"]
            summary = (f"test {mean_std([r['test']['accuracy'] for r in ok], 4)}" if ok else "diverged")
            ctx.log(f"[{done}/{total}] {name:<9} lr={lr:<7g} {summary}  "
                    f"({sum(r['seconds'] for r in runs):.1f} s)")

    ctx.run.write_history([{"optimizer": name, "lr": lr, "seed": r["seed"], **row}
                           for (name, lr), runs in grid.items() for r in runs for row in r["history"]])
    best = {name: choose_lr(name, cfg.lrs, grid) for name in cfg.optimizers}
    status, metrics = report_results(cfg, grid, best, rep)
    if status == "completed":
        # predict uses the winner's seed with the best validation accuracy
        winner = max(grid[(metrics["best_optimizer"], best[metrics["best_optimizer"]])],
                     key=lambda r: r["val"]["accuracy"])
        _mnist.save_classifier(ctx.run.path, NAME, winner["model"], "mlp",
                               {"in_features": 784, "hidden": list(cfg.hidden), "out_features": 10},
                               pad_to=28)
    return status, metrics


def choose_lr(name: str, lrs, grid) -> float | None:
    """The learning rate with the best mean validation accuracy; None if every one diverged."""
    scores = {lr: np.mean([r["val"]["accuracy"] for r in grid[(name, lr)]])
              for lr in lrs if all(r["status"] == "completed" for r in grid[(name, lr)])}
    return max(scores, key=scores.get) if scores else None


def report_results(cfg: Config, grid, best, rep) -> tuple[str, dict]:
    rows, metrics, ranking = [], {}, []
    for name, lr in best.items():
        if lr is None:
            rows.append({"optimizer": NAMES[name], "best lr": "all diverged"})
            continue
        runs = grid[(name, lr)]
        test = [r["test"]["accuracy"] for r in runs]
        train = [r["train"]["accuracy"] for r in runs]
        rows.append({"optimizer": NAMES[name], "best lr": f"{lr:g}",
                     "train accuracy": mean_std(train, 4), "test accuracy": mean_std(test, 4),
                     "final loss": mean_std([r["train"]["loss"] for r in runs], 4),
                     "updates": runs[0]["updates"],
                     "seconds": mean_std([r["seconds"] for r in runs], 1)})
        metrics.update({f"{name}.test_accuracy": float(np.mean(test)),
                        f"{name}.test_accuracy_std": float(np.std(test, ddof=1)) if len(test) > 1 else 0.0,
                        f"{name}.train_accuracy": float(np.mean(train)), f"{name}.best_lr": lr})
        ranking.append((float(np.mean(test)), name, lr, test))
    if not ranking:
        rep.section("Diverged", "Every optimizer diverged at every learning rate; try smaller ones.")
        return "diverged", metrics
    ranking.sort(reverse=True)
    metrics = {"best_optimizer": ranking[0][1], "best_test_accuracy": ranking[0][0], **metrics}

    minibatch = [grid[(n, lr)][0]["updates"] for n, lr in best.items() if lr is not None and n != "gd"]
    rep.section("Results", verdict(ranking, cfg, max(minibatch, default=0)))
    rep.table(rows, f"Each optimizer at its best learning rate (chosen on validation digits); "
              f"mean ± std over {cfg.seeds} seeds; loss and accuracy measured after training")
    rep.table([{"optimizer": NAMES[n], "handout train": f"{tr:.4f}", "handout test": f"{te:.4f}",
                "here, test": mean_std([r["test"]["accuracy"] for r in grid[(n, best[n])]], 4)
                if best.get(n) is not None else "—"}
               for n, (tr, te) in HANDOUT.items()],
              "The handout's single runs (one seed, one untuned learning rate, its own epoch count "
              "and batch size) next to the tuned runs here")
    names = list(cfg.optimizers)
    heat = np.array([[np.mean([r["test"]["accuracy"] for r in grid[(n, lr)]])
                      if all(r["status"] == "completed" for r in grid[(n, lr)]) else np.nan
                      for lr in cfg.lrs] for n in names])
    low = float(np.nanmin(heat)) if np.isfinite(heat).any() else 0.0
    rep.figure(figures.heatmap(heat, [NAMES[n] for n in names], [f"{lr:g}" for lr in cfg.lrs],
                               fmt="{:.3f}", colorbar_label="test accuracy", vmin=low, vmax=1.0,
                               xlabel="learning rate"),
               "accuracy_heatmap", "Test accuracy (mean over seeds) for every optimizer and learning "
               "rate; — marks a learning rate at which a run diverged")
    for key, title, fname in (("train_accuracy", "training accuracy (running mean per epoch)", "train_accuracy"),
                              ("test_accuracy", "test accuracy", "test_accuracy"),
                              ("train_loss", "training loss (cross-entropy)", "loss")):
        series, full_batch = {}, None
        for name, lr in best.items():
            if lr is None:
                continue
            values = np.array([[row[key] for row in r["history"]] for r in grid[(name, lr)]])
            err = values.std(0, ddof=1) if len(values) > 1 else None
            label = f"{NAMES[name]} ({lr:g})"
            series[label] = (np.arange(1, values.shape[1] + 1), values.mean(0), err)
            full_batch = label if name == "gd" else full_batch
        panels = {title: series}
        if key != "train_loss" and full_batch and len(series) > 1:
            # gradient descent's few updates squash the others' curves: a second, zoomed panel
            panels[f"{title}, mini-batch optimizers only"] = {
                k: v for k, v in series.items() if k != full_batch}
        rep.figure(figures.curves(panels, log_y=key == "train_loss"), fname,
                   f"{title.capitalize()} per epoch, each optimizer at its best learning rate "
                   "(mean over seeds, band ± one std)")
    diverged = [(n, lr, sum(r["status"] != "completed" for r in runs))
                for (n, lr), runs in grid.items() if any(r["status"] != "completed" for r in runs)]
    if diverged:
        rep.table([{"optimizer": NAMES[n], "learning rate": f"{lr:g}", "seeds diverged": k}
                   for n, lr, k in diverged], "Runs whose loss became NaN or infinite (recorded, not crashed)")
    return "completed", metrics


def verdict(ranking, cfg, updates: int) -> str:
    """One paragraph from the measured numbers: who won, by how much, and whether it is noise."""
    (acc1, n1, lr1, t1), rest = ranking[0], ranking[1:]
    text = (f"{NAMES[n1]} won at learning rate {lr1:g} with {100 * acc1:.2f} % test accuracy "
            f"(± {100 * (np.std(t1, ddof=1) if len(t1) > 1 else 0):.2f} over {cfg.seeds} seeds).")
    if rest:
        acc2, n2, lr2, t2 = rest[0]
        spread = max(np.std(t1, ddof=1) if len(t1) > 1 else 0, np.std(t2, ddof=1) if len(t2) > 1 else 0)
        gap = acc1 - acc2
        noise = ("larger than" if gap > 2 * spread else "within twice")
        text += (f" The runner-up, {NAMES[n2]} at {lr2:g}, reached {100 * acc2:.2f} %: "
                 f"{100 * gap:.2f} points behind, a gap {noise} the seed-to-seed spread "
                 f"({100 * spread:.2f} points)" + (", so the order of the two is not settled."
                                                  if gap <= 2 * spread else "."))
        worst = rest[-1]
        text += f" Last came {NAMES[worst[1]]}: {100 * worst[0]:.2f} % at {worst[2]:g}."
    if "gd" in [r[1] for r in ranking] and len(ranking) > 1:
        text += (f" Full-batch gradient descent makes one update per epoch: {cfg.epochs} updates in "
                 f"this budget, against {updates:,} for the mini-batch methods.")
    return text


def predict(run_dir: Path, inputs: list[Path]) -> list[dict]:
    return _mnist.predict_digits(run_dir, inputs, NAME)


predict_network = _mnist.build_network  # the network predict loads (mllabs export)
