"""Which optimizer, at which learning rate? The same network, the same epochs, many seeds.

The handout trained one fully connected network once with each of four optimizers and reported
the numbers side by side; single runs at one untuned learning rate cannot say which optimizer
is better. This lab follows the protocol optimizer benchmarks use (DeepOBS, AlgoPerf): every
optimizer gets a log-spaced learning-rate grid, the rate is chosen on held-out training digits,
and only the chosen setting is re-run with fresh seeds and read on the test set. The dozens of
small networks this takes are trained stacked (mllabs.stacked): the same arithmetic per network
in far fewer, larger operations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter
from scipy import stats

from mllabs.config import OPTIMIZERS, TrainConfig, option
from mllabs.data import mnist
from mllabs.labs import _mnist
from mllabs.models.mlp import MLP
from mllabs.report import figures, mean_std
from mllabs.stacked import SCHEDULES, Arm, refuse_early_stopping, train_stack
from mllabs.stats import mean_interval

NAME = "mnist-optimizers"
TITLE = "MNIST: every optimizer side by side"
SUMMARY_LINE = "one MLP, 8 optimizers, a learning-rate grid chosen on validation, 10 fresh seeds each"
SUMMARY = (
    "One fully connected network on MNIST, trained with eight optimizers (full-batch gradient "
    "descent, SGD, momentum, Nesterov, Adagrad, RMSProp, Adam, AdamW) for the same number of "
    "epochs. Each optimizer's learning rate is chosen from a log-spaced grid on held-out training "
    "digits; the chosen setting is then trained again with fresh seeds and only those runs are "
    "measured on the test digits, so the comparison is between tuned optimizers rather than "
    "between one lucky run each.")

NAMES = {"gd": "gradient descent (full batch)", "sgd": "SGD", "momentum": "momentum",
         "nesterov": "Nesterov", "adagrad": "Adagrad", "rmsprop": "RMSProp", "adam": "Adam",
         "adamw": "AdamW"}

# The handout's table: one run each, learning rates not tuned (train, test accuracy).
HANDOUT = {"gd": (0.9971, 0.9812), "sgd": (0.9593, 0.9572), "rmsprop": (0.8803, 0.9083),
           "adam": (0.9727, 0.9692)}

# Each optimizer's usual default rate: Keras's, which the handout trained with (PyTorch's differ
# for SGD, 1e-3, and RMSprop and Adagrad, 1e-2). Always trained in the grid, for the "defaults" column.
DEFAULT_LR = {"gd": 0.01, "sgd": 0.01, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.001,
              "rmsprop": 0.001, "adam": 0.001, "adamw": 0.001}

TARGET = 0.97  # AlgoPerf's MNIST target test accuracy, for "time to target"


@dataclass
class Config(TrainConfig):
    epochs: int = option(5, "passes over the training digits, the same for every optimizer", min=1)
    batch_size: int = option(128, "digits per update (gd always uses all of them)", min=1)
    hidden: tuple[int, ...] = option((256,), "hidden layer widths of the 784 → … → 10 network", min=1)
    schedule: str = option("cosine", "learning-rate schedule, the same for every optimizer",
                           choices=SCHEDULES)
    optimizers: tuple[str, ...] = option(OPTIMIZERS, "optimizers to compare", choices=OPTIMIZERS)
    lrs: tuple[float, ...] = option((1.0, 3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4),
                                    "learning-rate grid (each optimizer's default rate is added)", gt=0.0)
    tune_seeds: int = option(2, "seeds per optimizer and learning rate while choosing the rate", min=1)
    seeds: int = option(10, "fresh seeds the chosen rate is trained with; only these see the test set",
                        min=1)
    adamw_decay: float = option(0.01, "AdamW's decoupled weight decay (torch's default; at 0 AdamW "
                                "is Adam)", min=0.0)
    val_size: int = option(5000, "training digits held out to choose each learning rate", min=1)
    train_size: int = option(0, "use only this many training digits (0: all)", min=0)


# TrainConfig's keys that each of the lab's runs replaces with its own value (see the grid above)
UNUSED_KEYS = {"optimizer": "it trains every optimizer in `optimizers`",
               "lr": "it tries every learning rate in `lrs`"}


PROFILES = {
    "quick": {"epochs": 1, "tune_seeds": 1, "seeds": 2, "train_size": 2000, "val_size": 500,
              "optimizers": ("gd", "sgd", "adam"), "lrs": (1e-1, 1e-3), "hidden": (32,)},
    "default": {},
    "full": {"epochs": 20, "tune_seeds": 3, "lrs": (3.0, 1.0, 3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3,
                                                    3e-4, 1e-4)},
}


def networks(cfg: Config) -> dict:
    return {"MLP": (MLP(784, cfg.hidden, 10), (1, 28, 28))}


def layer_names(cfg: Config) -> dict:
    return {"MLP": MLP(784, cfg.hidden, 10).layer_names()}


def prepare(cfg: Config, data_dir: Path | None) -> mnist.Mnist:
    refuse_early_stopping(cfg.patience)
    data = mnist.load(data_dir)
    _mnist.check_sizes(cfg, data)
    return data


def run(cfg: Config, data: mnist.Mnist, ctx) -> tuple[str, dict]:
    rep = ctx.report
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = _mnist.splits(
        data, cfg.val_size, cfg.train_size, cfg.seed)
    tune_seeds = [cfg.seed + k for k in range(cfg.tune_seeds)]
    final_seeds = [cfg.seed + cfg.tune_seeds + k for k in range(cfg.seeds)]
    rates = {name: sorted(set(cfg.lrs) | {DEFAULT_LR[name]}, reverse=True) for name in cfg.optimizers}
    tuning_runs = sum(len(r) for r in rates.values()) * len(tune_seeds)
    rep.section("Setup", f"Network 784 → {' → '.join(map(str, cfg.hidden))} → 10 (ReLU), the same "
                f"for every optimizer. {len(y_train):,} training digits, {len(y_val):,} held out "
                f"to choose the learning rate, the 10,000 test digits read only by the final runs. "
                f"Every run: {cfg.epochs} epochs, batch {cfg.batch_size} (gradient descent: all digits "
                f"per update, so {cfg.epochs} updates in all), cross-entropy loss, {cfg.schedule} "
                f"learning-rate schedule, weight decay {cfg.weight_decay:g} (AdamW: "
                f"{cfg.adamw_decay:g}, decoupled).")
    rep.text(f"Tuning budget: {len(rates)} optimizers × learning rates "
             f"{', '.join(f'{lr:g}' for lr in cfg.lrs)} (plus each optimizer's default rate) × "
             f"{len(tune_seeds)} seeds = {tuning_runs} runs, the rate with the best mean validation "
             f"accuracy chosen; then {cfg.seeds} fresh seeds ({final_seeds[0]}…{final_seeds[-1]}) "
             f"at the chosen rate, {len(rates) * cfg.seeds} runs. Every optimizer gets the same "
             "budget.")

    def stack(name, arms, phase, step, steps):
        results = train_stack(arms, cfg.hidden, (x_train, y_train), epochs=cfg.epochs,
                              batch_size=cfg.batch_size, schedule=cfg.schedule, gamma=cfg.gamma,
                              milestones=cfg.milestones, factor=cfg.factor,
                              sets={"val": (x_val, y_val), "test": (x_test, y_test)},
                              session=ctx.session, label=f"{phase} {name}", device=ctx.device)
        seconds = results[0].seconds * len(results)
        ctx.log(f"[{phase} {step}/{steps}] {name:<9} {len(arms)} networks, {cfg.epochs} epochs: "
                f"{seconds:.1f} s")
        return results

    decay = {name: cfg.adamw_decay if name == "adamw" else cfg.weight_decay for name in cfg.optimizers}
    grid: dict[tuple[str, float], list] = {}
    for step, name in enumerate(cfg.optimizers, 1):
        arms = [Arm(name, lr, s, decay[name]) for lr in rates[name] for s in tune_seeds]
        for result in stack(name, arms, "tune", step, len(rates)):
            grid.setdefault((name, result.arm.lr), []).append(result)
    best = {name: choose_lr(rates[name], name, grid) for name in cfg.optimizers}
    final: dict[str, list] = {}
    for step, name in enumerate([n for n in cfg.optimizers if best[n] is not None], 1):
        final[name] = stack(name, [Arm(name, best[name], s, decay[name]) for s in final_seeds],
                            "final", step, sum(b is not None for b in best.values()))

    # base_lr: the rate tried (the grid's); lr: the rate the schedule gave in that epoch
    ctx.run.write_history([{"phase": phase, "optimizer": r.arm.optimizer, "base_lr": r.arm.lr,
                            "seed": r.arm.seed, **row}
                           for phase, groups in (("tune", grid.values()), ("final", final.values()))
                           for runs in groups for r in runs for row in r.history])
    status, metrics = report_results(cfg, rates, grid, best, final, rep)
    metrics.update({"tuning_runs": tuning_runs, "final_runs": sum(len(v) for v in final.values())})
    if status == "completed":
        # predict uses the winner's final seed with the best validation accuracy
        winner = max((r for r in final[metrics["best_optimizer"]] if r.status == "completed"),
                     key=lambda r: r.history[-1]["val_accuracy"])
        model = MLP(784, cfg.hidden, 10)
        model.load_state_dict(winner.weights)
        _mnist.save_classifier(ctx.run.path, NAME, model, "mlp",
                               {"in_features": 784, "hidden": list(cfg.hidden), "out_features": 10},
                               pad_to=28)
    return status, metrics


def last(r, key: str) -> float:
    return r.history[-1][key]


def choose_lr(rates, name: str, grid) -> float | None:
    """The learning rate with the best mean validation accuracy after the last epoch; None if
    every one diverged. Ties go to the larger rate (listed first)."""
    scores = {lr: np.mean([last(r, "val_accuracy") for r in grid[(name, lr)]])
              for lr in rates if all(r.status == "completed" for r in grid[(name, lr)])}
    return max(scores, key=scores.get) if scores else None


def epochs_to_target(runs) -> float | None:
    """Median over seeds of the first epoch whose test accuracy reaches TARGET (None: most never do)."""
    firsts = [next((row["epoch"] for row in r.history if row["test_accuracy"] >= TARGET), None)
              for r in runs]
    reached = [f for f in firsts if f is not None]
    return float(np.median(reached)) if len(reached) * 2 > len(firsts) else None


def report_results(cfg: Config, rates, grid, best, final, rep) -> tuple[str, dict]:
    rows, metrics, ranking = [], {}, []
    for name in cfg.optimizers:
        lr = best[name]
        runs = [r for r in final.get(name, []) if r.status == "completed"]
        default = [last(r, "test_accuracy") for r in grid[(name, DEFAULT_LR[name])] if r.status == "completed"]
        default_text = (f"{100 * np.mean(default):.2f} % at {DEFAULT_LR[name]:g}" if default
                        else f"diverged at {DEFAULT_LR[name]:g}")
        if lr is None or not runs:
            rows.append({"optimizer": NAMES[name], "chosen lr": "all diverged", "defaults": default_text})
            continue
        test = [last(r, "test_accuracy") for r in runs]
        low, high = mean_interval(test)
        edge = lr in (max(rates[name]), min(rates[name]))
        to_target = epochs_to_target(runs)
        per_epoch = runs[0].seconds / cfg.epochs
        rows.append({"optimizer": NAMES[name], "chosen lr": f"{lr:g}" + (" (grid edge)" if edge else ""),
                     "test accuracy": f"{100 * np.mean(test):.2f} ± {100 * np.std(test, ddof=1) if len(test) > 1 else 0:.2f} %",
                     "95 % interval": f"{100 * low:.2f}–{100 * high:.2f} %",
                     "train accuracy": f"{100 * np.mean([last(r, 'train_accuracy') for r in runs]):.2f} %",
                     "train loss": mean_std([last(r, "train_loss") for r in runs], 4),
                     "test loss": mean_std([last(r, "test_loss") for r in runs], 4),
                     "epochs to 97 %": f"{to_target:g} (≈{to_target * per_epoch:.1f} s)"
                     if to_target is not None else "not reached",
                     "updates": runs[0].updates, "defaults": default_text})
        metrics.update({f"{name}.test_accuracy": float(np.mean(test)),
                        f"{name}.test_accuracy_std": float(np.std(test, ddof=1)) if len(test) > 1 else 0.0,
                        f"{name}.test_accuracy_low": low, f"{name}.test_accuracy_high": high,
                        f"{name}.train_accuracy": float(np.mean([last(r, "train_accuracy") for r in runs])),
                        f"{name}.test_loss": float(np.mean([last(r, "test_loss") for r in runs])),
                        f"{name}.best_lr": lr, f"{name}.lr_at_grid_edge": edge})
        if default:
            metrics[f"{name}.default_lr_test_accuracy"] = float(np.mean(default))
        if to_target is not None:
            metrics[f"{name}.epochs_to_97"] = to_target
        ranking.append((float(np.mean(test)), name, lr, test))
    if not ranking:
        rep.section("Diverged", "Every optimizer diverged at every learning rate; try smaller ones.")
        return "diverged", metrics
    ranking.sort(reverse=True)
    metrics = {"best_optimizer": ranking[0][1], "best_test_accuracy": ranking[0][0], **metrics}

    minibatch = [final[n][0].updates for n in final if n != "gd"]
    rep.section("Results", verdict(ranking, cfg, max(minibatch, default=0)))
    rep.table(rows, f"Each optimizer at its chosen learning rate, {cfg.seeds} fresh seeds: mean ± std, "
              "a 95 % t-interval for the mean, losses after the last epoch on the training and test "
              "digits, the median epoch at which test accuracy first reached 97 % (AlgoPerf's MNIST "
              "target; seconds: that share of the network's training time), and, as 'defaults', "
              f"the mean test accuracy of the {cfg.tune_seeds} tuning seeds at the usual default rate")
    edges = [NAMES[n] for n in cfg.optimizers if metrics.get(f"{n}.lr_at_grid_edge")]
    if edges:
        rep.text(f"The rate chosen for {', '.join(edges)} is at the edge of the grid: a better one "
                 "may lie beyond it (try `--set lrs=...` with rates past the edge).")
    rep.table([{"optimizer": NAMES[n], "handout train": f"{tr:.4f}", "handout test": f"{te:.4f}",
                "here, test": f"{100 * metrics[f'{n}.test_accuracy']:.2f} %"
                if f"{n}.test_accuracy" in metrics else "—"}
               for n, (tr, te) in HANDOUT.items()],
              "The handout's single runs (one seed, one untuned learning rate, its own epoch count "
              "and batch size) next to the tuned runs here")
    if "gd" in final:
        rep.text(f"The handout's gradient descent reached 98.12 % test accuracy after many more "
                 f"full-batch updates than the {final['gd'][0].updates} it gets here: with the same "
                 "number of epochs as the others, one update per epoch is what full-batch descent "
                 "costs.")
    rep.figure(choice_heatmap(cfg, rates, grid, best), "accuracy_heatmap",
               "Validation accuracy (mean over the tuning seeds) for every optimizer and learning "
               "rate, the chosen rate boxed; — marks a rate at which a run diverged. The test digits "
               "played no part in this choice.", conclusion=heatmap_text(cfg, rates, grid, best))
    rep.figure(sensitivity(cfg, rates, grid), "lr_sensitivity",
               "Learning-rate sensitivity: validation accuracy against the rate, the band spanning "
               "the tuning seeds. A wide plateau means an optimizer forgives a rough choice.",
               conclusion=plateau_text(cfg, rates, grid))
    finals = {}
    for key, title, fname in (("test_accuracy", "test accuracy", "test_accuracy"),
                              ("train_loss", "training loss (cross-entropy)", "loss")):
        series, full_batch = {}, None
        for name, runs in final.items():
            runs = [r for r in runs if r.status == "completed"]
            values = np.array([[row[key] for row in r.history] for r in runs])
            err = values.std(0, ddof=1) if len(values) > 1 else None
            label = f"{NAMES[name]} ({best[name]:g})"
            series[label] = (np.arange(1, values.shape[1] + 1), values.mean(0), err)
            finals.setdefault(key, {})[NAMES[name]] = float(values.mean(0)[-1])
            full_batch = label if name == "gd" else full_batch
        panels = {title: series}
        if full_batch and len(series) > 1:
            # gradient descent's few updates squash the others' curves: a second, zoomed panel
            panels[f"{title}, mini-batch optimizers only"] = {
                k: v for k, v in series.items() if k != full_batch}
        rep.figure(figures.curves(panels, log_y=key == "train_loss", ncols=1), fname,
                   f"{title.capitalize()} per epoch, each optimizer at its chosen rate "
                   f"(mean over {cfg.seeds} fresh seeds, band ± one std)",
                   conclusion=curve_text(finals, key))
    diverged = [(n, lr, sum(r.status != "completed" for r in runs))
                for (n, lr), runs in grid.items() if any(r.status != "completed" for r in runs)]
    if diverged:
        rep.table([{"optimizer": NAMES[n], "learning rate": f"{lr:g}", "seeds diverged": k}
                   for n, lr, k in diverged], "Tuning runs whose loss became NaN or infinite "
                   "(recorded, not crashed)")
    return "completed", metrics


def _val_means(rates, name, grid):
    return [np.mean([last(r, "val_accuracy") for r in grid[(name, lr)]])
            if all(r.status == "completed" for r in grid[(name, lr)]) else np.nan for lr in rates]


def choice_heatmap(cfg, rates, grid, best):
    columns = sorted({lr for rs in rates.values() for lr in rs}, reverse=True)
    names = list(cfg.optimizers)
    heat = np.array([[np.mean([last(r, "val_accuracy") for r in grid[(n, lr)]])
                      if (n, lr) in grid and all(r.status == "completed" for r in grid[(n, lr)])
                      else np.nan for lr in columns] for n in names])
    low = float(np.nanmin(heat)) if np.isfinite(heat).any() else 0.0
    fig = figures.heatmap(heat, [NAMES[n] for n in names], [f"{lr:g}" for lr in columns],
                          fmt="{:.3f}", colorbar_label="validation accuracy", vmin=low, vmax=1.0,
                          xlabel="learning rate")
    ax = fig.axes[0]
    for i, n in enumerate(names):
        if best[n] is not None:
            ax.add_patch(Rectangle((columns.index(best[n]) - 0.5, i - 0.5), 1, 1, fill=False,
                                   edgecolor="#d62728", linewidth=2.2))
    return fig


def heatmap_text(cfg, rates, grid, best) -> str:
    """The heatmap read out: the best cell, and which chosen rates sit at the grid's edge."""
    cells = {(n, lr): np.mean([last(r, "val_accuracy") for r in grid[(n, lr)]])
             for n in cfg.optimizers for lr in rates[n]
             if all(r.status == "completed" for r in grid[(n, lr)])}
    if not cells:
        return "Every cell diverged: no validation accuracy to choose a rate by."
    (name, lr), acc = max(cells.items(), key=lambda item: item[1])
    edges = [NAMES[n] for n in cfg.optimizers
             if best[n] is not None and best[n] in (max(rates[n]), min(rates[n]))]
    return (f"The best cell is {NAMES[name]} at rate {lr:g} ({100 * acc:.2f} % validation accuracy); "
            + (f"the chosen rate sits at the edge of the grid for {' and '.join(edges)}, so a better "
               "one may lie beyond it." if edges else
               "every chosen rate lies inside the grid, with a worse rate on either side."))


def plateau_text(cfg, rates, grid, within: float = 0.01) -> str:
    """How forgiving each optimizer is: the rates whose mean validation accuracy comes within
    `within` of its best."""
    counts = {}
    for name in cfg.optimizers:
        means = np.array(_val_means(rates[name], name, grid), float)
        if np.isfinite(means).any():
            counts[NAMES[name]] = (int((means >= np.nanmax(means) - within).sum()), len(means))
    if not counts:
        return "Every rate diverged for every optimizer."
    wide = max(counts, key=lambda n: counts[n][0])
    narrow = min(counts, key=lambda n: counts[n][0])
    return (f"Rates within {100 * within:.0f} point of each optimizer's best validation accuracy: "
            + ", ".join(f"{n} {k} of {total}" for n, (k, total) in counts.items())
            + (f"; {wide} forgives a rough choice most, {narrow} least."
               if counts[wide][0] > counts[narrow][0] else "."))


def curve_text(finals: dict[str, dict[str, float]], key: str) -> str:
    """The curves' last points: who ends best and worst, and, for the loss, whether the lowest
    training loss went with the best test accuracy."""
    values = finals[key]
    if key == "test_accuracy":
        order = sorted(values, key=values.get, reverse=True)
        return (f"After the last epoch {order[0]} leads with {100 * values[order[0]]:.2f} % and "
                f"{order[-1]} trails with {100 * values[order[-1]]:.2f} % test accuracy.")
    order = sorted(values, key=values.get)
    accuracy = finals.get("test_accuracy", {})
    best = max(accuracy, key=accuracy.get) if accuracy else order[0]
    return (f"{order[0]} ends with the lowest training loss ({values[order[0]]:.4f}), {order[-1]} "
            f"with the highest ({values[order[-1]]:.4f}); "
            + ("the lowest loss went with the best test accuracy." if best == order[0] else
               f"the best test accuracy is {best}'s: a lower loss on the training digits did not "
               "buy a better score on the test digits."))


def sensitivity(cfg, rates, grid):
    series = {}
    for name in cfg.optimizers:
        ok = [lr for lr in rates[name] if all(r.status == "completed" for r in grid[(name, lr)])]
        if not ok:
            continue
        values = np.array([[last(r, "val_accuracy") for r in grid[(name, lr)]] for lr in ok])
        mid, spread = values.mean(1), (values.max(1) - values.min(1)) / 2
        series[NAMES[name]] = (np.array(ok), mid, spread if values.shape[1] > 1 else None)
    fig = figures.curves({"validation accuracy after training": series}, xlabel="learning rate", ncols=1)
    ax = fig.axes[0]
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    return fig


def verdict(ranking, cfg, updates: int) -> str:
    """One paragraph from the measured numbers: who won, by how much, and whether it is noise."""
    (acc1, n1, lr1, t1), rest = ranking[0], ranking[1:]
    text = (f"{NAMES[n1]} won at learning rate {lr1:g} with {100 * acc1:.2f} % test accuracy "
            f"(± {100 * (np.std(t1, ddof=1) if len(t1) > 1 else 0):.2f} over {cfg.seeds} fresh seeds).")
    if rest:
        acc2, n2, lr2, t2 = rest[0]
        # Welch's t-test between the two best, over their fresh seeds
        p = stats.ttest_ind(t1, t2, equal_var=False).pvalue if len(t1) > 1 and len(t2) > 1 else float("nan")
        settled = p < 0.05
        text += (f" The runner-up, {NAMES[n2]} at {lr2:g}, reached {100 * acc2:.2f} %: "
                 f"{100 * (acc1 - acc2):.2f} points behind (Welch's t-test over seeds, p = {p:.2g}), "
                 + ("so the order of the two is settled at the 5 % level." if settled
                    else "so the order of the two is not settled."))
        worst = rest[-1]
        text += f" Last came {NAMES[worst[1]]}: {100 * worst[0]:.2f} % at {worst[2]:g}."
    if "gd" in [r[1] for r in ranking] and len(ranking) > 1:
        text += (f" Full-batch gradient descent makes one update per epoch: {cfg.epochs} updates in "
                 f"this budget, against {updates:,} for the mini-batch methods.")
    return text


def predict(run_dir: Path, inputs: list[Path]) -> list[dict]:
    return _mnist.predict_digits(run_dir, inputs, NAME)


predict_network = _mnist.build_network  # the network predict loads (mllabs export)


# ---------------------------------------------------------------------------- the report's ends

HEADLINE = "best_test_accuracy"
# the results box shows who leads, epoch by epoch, at the rates chosen on validation
KEY_FIGURE = "test_accuracy"
TRY_NEXT = [
    ("--set seeds=20", "more fresh seeds: does the leaders' order survive?"),
    ("--set lrs=3,1,0.3,0.1", "rates past the grid's edge, where an optimizer's choice sat at it"),
    ("--set epochs=20", "a longer budget: does full-batch descent catch up?"),
]


def headline(metrics: dict) -> str:
    from mllabs import stats

    name = metrics["best_optimizer"]
    low, high = metrics.get(f"{name}.test_accuracy_low"), metrics.get(f"{name}.test_accuracy_high")
    interval = f" (95 % interval {stats.percent_interval(low, high)} over fresh seeds)" \
        if low is not None and high is not None else ""
    return (f"{NAMES.get(name, name)} leads with **{stats.percent(metrics['best_test_accuracy'])}** "
            f"test accuracy{interval} at its learning rate chosen on validation.")


def example_input(data, run_dir: Path) -> list[str]:
    return _mnist.example_digit(data, run_dir)
