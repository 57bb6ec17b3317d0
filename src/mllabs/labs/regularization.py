"""Overfitting and weight decay: the same network on few digits, with a growing L2 penalty.

A fully connected network has a weight for every pixel of every hidden unit and no built-in
notion that neighbouring pixels belong together, so on a few thousand digits it can learn the
training set by heart: its training loss keeps falling while the test loss turns and climbs.
Weight decay adds λ·w to every weight's gradient (the gradient of λ/2·‖w‖²), which pulls
unused weights back to zero; the lab sweeps λ and measures the gap between test and training.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mllabs import stacked
from mllabs.config import OPTIMIZERS, TrainConfig, option
from mllabs.data import mnist
from mllabs.errors import UserError
from mllabs.labs import _mnist
from mllabs.models.inspect import layer_statistics
from mllabs.models.lenet import LeNet5
from mllabs.models.mlp import MLP
from mllabs.report import figures, mean_std
from mllabs.train import accuracy, cross_entropy, evaluate

NAME = "regularization"
TITLE = "Regularization: overfitting and weight decay"
SUMMARY_LINE = "an MLP on 3,000 digits overfits; weight decay swept, train/test gap measured; CE vs MSE"
SUMMARY = (
    "A fully connected network trained on a few thousand MNIST digits, long enough to overfit, "
    "once for each weight decay in a range. The report draws training and test loss per epoch "
    "for each, measures the generalisation gap (test minus training) and the size of the "
    "weights, and chooses the weight decay on held-out digits.")

LOSSES = ("cross_entropy", "mse")


def squared_error(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared distance between the softmax probabilities and the one-hot target, summed over
    the 10 classes and averaged over the digits (the Brier score; 0 perfect, 2 the worst)."""
    return stacked.example_losses(out.unsqueeze(0), target, "mse").mean()


LOSS_FUNCTIONS = {"cross_entropy": cross_entropy, "mse": squared_error}
LOSS_NAMES = {"cross_entropy": "cross-entropy", "mse": "squared error of the probabilities"}


@dataclass
class Config(TrainConfig):
    weight_decays: tuple[float, ...] = option((0.0, 1e-4, 1e-3, 1e-2, 1e-1),
                                              "weight decays (L2 factor λ) to compare", min=0.0)
    loss: str = option("cross_entropy", "training loss (mse: on the softmax probabilities against "
                       "one-hot targets)", choices=LOSSES)
    inspect: bool = option(False, "print and tabulate every layer's output statistics on one batch")
    hidden: tuple[int, ...] = option((256, 256), "hidden layer widths of the 784 → … → 10 network",
                                     min=1)
    seeds: int = option(3, "seeds per weight decay", min=1)
    epochs: int = option(40, "passes over the training digits", min=1)
    batch_size: int = option(64, "digits per update", min=1)
    optimizer: str = option("momentum", "update rule (adamw decouples the decay from the gradient)",
                            choices=tuple(o for o in OPTIMIZERS if o != "gd"))
    lr: float = option(0.01, "learning rate", gt=0.0)
    schedule: str = option("constant", "learning-rate schedule", choices=stacked.SCHEDULES)
    train_size: int = option(3000, "training digits (few, so that the network can memorise them)",
                             min=1)
    val_size: int = option(5000, "training digits held out to choose the weight decay", min=1)


# TrainConfig's weight_decay is replaced in each run by a value of the grid above
UNUSED_KEYS = {"weight_decay": "it compares every weight decay in `weight_decays`"}


PROFILES = {
    "quick": {"epochs": 3, "seeds": 1, "train_size": 500, "val_size": 500, "hidden": (64,),
              "weight_decays": (0.0, 1e-2)},
    "default": {},
    "full": {"epochs": 100, "seeds": 3, "weight_decays": (0.0, 1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)},
}


def networks(cfg: Config) -> dict:
    return {"mlp": (MLP(784, cfg.hidden, 10), (1, 28, 28))}


def prepare(cfg: Config, data_dir: Path | None) -> mnist.Mnist:
    if not cfg.weight_decays:
        raise UserError("weight_decays is empty; give at least one, e.g. --set weight_decays=0,1e-3")
    if len(set(cfg.weight_decays)) != len(cfg.weight_decays):
        raise UserError("weight_decays lists a value twice; list each once")
    if cfg.weight_decay:
        raise UserError("this lab sweeps weight_decays; set those (e.g. --set weight_decays=0,1e-3) "
                        "rather than weight_decay")
    if not cfg.hidden:
        raise UserError("hidden is empty; give at least one hidden layer width, e.g. --set hidden=256")
    stacked.refuse_early_stopping(cfg.patience)
    data = mnist.load(data_dir)
    _mnist.check_sizes(cfg, data, all_train=True)
    return data


def run(cfg: Config, data: mnist.Mnist, ctx) -> tuple[str, dict]:
    rep = ctx.report
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = _mnist.splits(
        data, cfg.val_size, cfg.train_size, cfg.seed)
    loss_fn, loss_name = LOSS_FUNCTIONS[cfg.loss], LOSS_NAMES[cfg.loss]
    parameters = sum(p.numel() for p in MLP(784, cfg.hidden, 10).parameters())
    lenet = sum(p.numel() for p in LeNet5().parameters())
    rep.section("Setup", (
        f"Network 784 → {' → '.join(map(str, cfg.hidden))} → 10 with ReLU, {parameters:,} parameters, "
        f"trained on only {len(y_train):,} digits: a fully connected network has no notion that "
        "neighbouring pixels belong together and far more weights than training digits, so it can "
        "fit them all by heart within a few epochs (LeNet-5, which shares a few convolution weights "
        f"across the whole image, gets by with {lenet:,}). "
        f"Loss: {loss_name} (`--set loss={'mse' if cfg.loss == 'cross_entropy' else 'cross_entropy'}` "
        f"switches). Every run: {cfg.optimizer} at learning rate {cfg.lr:g} ({cfg.schedule}), "
        f"batch {cfg.batch_size}, {cfg.epochs} epochs, "
        + (f"seeds {cfg.seed}…{cfg.seed + cfg.seeds - 1}. " if cfg.seeds > 1 else f"seed {cfg.seed}. ")
        + f"Weight decay λ ∈ {{{', '.join(f'{wd:g}' for wd in cfg.weight_decays)}}}: "
        + ("decoupled (AdamW shrinks each weight by lr·λ every step)" if cfg.optimizer == "adamw" else
           "λ·w is added to each gradient, the gradient of the penalty λ/2·‖w‖²")
        + ", on every weight and bias. The losses reported are the data loss alone, without the "
        f"penalty, so they compare across λ. {len(y_val):,} held-out training digits choose λ; "
        "the 10,000 test digits are only measured."))

    results = train_runs(cfg, ctx, (x_train, y_train), (x_test, y_test), loss_fn)
    for wd, records in results.items():
        for record in records:
            if record["status"] == "completed":
                model = record["model"]
                record.update({split: evaluate(model, xs, ys, loss_fn, {"accuracy": accuracy})
                               for split, (xs, ys) in (("train", (x_train, y_train)), ("val", (x_val, y_val)),
                                                       ("test", (x_test, y_test)))})
                record["weight_norm"] = weight_norm(model)
        ok = [r for r in records if r["status"] == "completed"]
        ctx.log(f"weight decay {wd:<7g} " + (
            f"test accuracy {mean_std([r['test']['accuracy'] for r in ok], 4)}, loss gap "
            f"{mean_std([r['test']['loss'] - r['train']['loss'] for r in ok], 4)}" if ok else "diverged"))
    ctx.run.write_history([{"weight_decay": wd, "seed": r["seed"], **row}
                           for wd, rs in results.items() for r in rs for row in r["history"]])

    done = {wd: [r for r in rs if r["status"] == "completed"] for wd, rs in results.items()}
    done = {wd: rs for wd, rs in done.items() if rs}
    if not done:
        rep.section("Diverged", f"Every run's loss became NaN or infinite; lower the learning rate "
                    f"(now {cfg.lr:g}).")
        return "diverged", {}
    metrics = report_gap(cfg, done, rep, loss_name)
    failed = [(wd, r["seed"]) for wd, rs in results.items() for r in rs if r["status"] != "completed"]
    if failed:
        rep.table([{"weight decay": wd, "seed": s} for wd, s in failed],
                  "Runs whose loss became NaN or infinite (left out of every table and curve)")

    best_wd = metrics["best_weight_decay"]
    chosen = max(done[best_wd], key=lambda r: r["val"]["accuracy"])
    if cfg.inspect:
        report_layers(chosen["model"], x_test[:cfg.batch_size], best_wd, rep, ctx)
    _mnist.save_classifier(ctx.run.path, NAME, chosen["model"], "mlp",
                           {"in_features": 784, "hidden": list(cfg.hidden), "out_features": 10}, pad_to=28)
    rep.section("Predict", f"`mllabs predict` (the command under What next, on a test digit the run saved) reads your own digit images with "
                f"the network trained with λ = {best_wd:g} (seed {chosen['seed']}).")
    metrics["train_seconds"] = sum(r["seconds"] for rs in results.values() for r in rs)
    return "completed", metrics


def train_runs(cfg: Config, ctx, train, test, loss_fn) -> dict[float, list[dict]]:
    """One network per weight decay and seed, each a record with its seed, status, per-epoch
    history (the training and test sets measured after every epoch, for the gap), training
    seconds and model.

    The lab's own MLPs train stacked (mllabs.stacked): all of them as one model, each exactly as
    fit() would train it alone (the default's figures are unchanged to the fourth digit), in
    about three quarters of the time (153 → 112-133 s held to AVX2; the per-epoch measurement
    of 15 networks on 13,000 digits is most of what is left). A network of the user's own
    (mllabs.run(..., model=...)) cannot be stacked and trains one at a time."""
    decays = {wd: [cfg.seed + k for k in range(cfg.seeds)] for wd in cfg.weight_decays}
    if ctx.user_network is None:
        arms = [stacked.Arm(cfg.optimizer, cfg.lr, seed, wd)
                for wd, seeds in decays.items() for seed in seeds]
        ctx.log(f"training {len(arms)} networks ({len(decays)} weight decays × {cfg.seeds} seeds) "
                f"together, {cfg.epochs} epochs")
        done = stacked.train_stack(
            arms, cfg.hidden, train, epochs=cfg.epochs, batch_size=cfg.batch_size, schedule=cfg.schedule,
            gamma=cfg.gamma, milestones=cfg.milestones, factor=cfg.factor,
            sets={"trainset": train, "test": test}, loss=cfg.loss, session=ctx.session,
            label="weight decays", device=ctx.device, progress=progress_line(ctx))
        results: dict[float, list[dict]] = {wd: [] for wd in decays}
        for r in done:
            model = MLP(784, cfg.hidden, 10).to(ctx.device)
            if r.weights is not None:
                model.load_state_dict(r.weights)
            results[r.arm.weight_decay].append({"seed": r.arm.seed, "status": r.status,
                                                "history": r.history, "seconds": r.seconds,
                                                "model": model})
        return results
    results = {}
    for wd, seeds in decays.items():
        results[wd] = []
        for seed in seeds:
            torch.manual_seed(seed)
            model = ctx.network(MLP(784, cfg.hidden, 10))
            result = ctx.fit(model, train, dataclasses.replace(cfg, seed=seed, weight_decay=wd),
                             loss_fn=loss_fn, metrics={"accuracy": accuracy},
                             # training loss measured after each epoch (not the running mean) for the gap
                             also={"trainset": train, "test": test}, restore_best=False, progress=False)
            results[wd].append({"seed": seed, "status": result.status, "history": result.history,
                                "seconds": result.seconds, "model": model})
    return results


def progress_line(ctx):
    """train_stack's progress callback: a line at every quarter of the epochs (the training
    loss only: what is printed must not invite choosing by test)."""
    def show(epoch: int, epochs: int, alive: list) -> None:
        if epoch % max(1, epochs // 4) == 0 or epoch == epochs:
            losses = [r.history[-1]["trainset_loss"] for r in alive]
            ctx.log(f"epoch {epoch}/{epochs}: " + (
                f"training loss {min(losses):.4f}–{max(losses):.4f} over {len(alive)} networks"
                if alive else "every network diverged"))
    return show


def weight_norm(model: nn.Module) -> float:
    """‖w‖ over every weight matrix (biases left out): what the penalty shrinks."""
    return float(torch.sqrt(sum(m.weight.detach().pow(2).sum() for m in model.modules()
                                if isinstance(m, nn.Linear))))


def report_gap(cfg: Config, done: dict[float, list[dict]], rep, loss_name: str) -> dict:
    rows, metrics = [], {}
    for wd, rs in done.items():
        gap = [r["test"]["loss"] - r["train"]["loss"] for r in rs]
        acc_gap = [r["train"]["accuracy"] - r["test"]["accuracy"] for r in rs]
        rows.append({"weight decay": f"{wd:g}",
                     "training loss": mean_std([r["train"]["loss"] for r in rs], 4),
                     "test loss": mean_std([r["test"]["loss"] for r in rs], 4),
                     "loss gap (test − train)": mean_std(gap, 4),
                     "training accuracy": mean_std([r["train"]["accuracy"] for r in rs], 4),
                     "test accuracy": mean_std([r["test"]["accuracy"] for r in rs], 4),
                     "accuracy gap (train − test)": mean_std(acc_gap, 4),
                     "validation accuracy": mean_std([r["val"]["accuracy"] for r in rs], 4),
                     "weight norm ‖w‖": mean_std([r["weight_norm"] for r in rs], 2)})
        key = f"wd_{wd:g}"
        metrics.update({f"{key}.test_accuracy": float(np.mean([r["test"]["accuracy"] for r in rs])),
                        f"{key}.loss_gap": float(np.mean(gap)),
                        f"{key}.accuracy_gap": float(np.mean(acc_gap)),
                        f"{key}.weight_norm": float(np.mean([r["weight_norm"] for r in rs]))})
    best = max(done, key=lambda wd: np.mean([r["val"]["accuracy"] for r in done[wd]]))
    best_test = float(np.mean([r["test"]["accuracy"] for r in done[best]]))
    metrics = {"best_weight_decay": best, "best_test_accuracy": best_test, "loss": cfg.loss, **metrics}

    rep.section("Generalisation gap", verdict(done, best))
    rep.table(rows, f"After {cfg.epochs} epochs, for each weight decay (mean ± std over seeds; losses "
              f"are {loss_name}, measured on the whole set after training, without the penalty)")
    panels, gaps = {"training loss": {}, "test loss": {}}, {"loss gap (test − train)": {},
                                                            "accuracy gap (train − test)": {}}
    test_curves, train_curves = {}, {}
    for wd, rs in done.items():
        length = min(len(r["history"]) for r in rs)
        epochs = np.arange(1, length + 1)

        def mean(key, rs=rs, length=length):
            return np.mean([[row[key] for row in r["history"][:length]] for r in rs], 0)

        label = f"λ = {wd:g}"
        test_curves[wd], train_curves[wd] = mean("test_loss"), mean("trainset_loss")
        panels["training loss"][label] = (epochs, mean("trainset_loss"))
        panels["test loss"][label] = (epochs, mean("test_loss"))
        gaps["loss gap (test − train)"][label] = (epochs, mean("test_loss") - mean("trainset_loss"))
        gaps["accuracy gap (train − test)"][label] = (epochs,
                                                      mean("trainset_accuracy") - mean("test_accuracy"))
    rep.figure(figures.curves(panels, log_y=True), "loss_curves",
               f"Training and test loss ({loss_name}) per epoch for each weight decay, both measured "
               "after the epoch on the whole set (mean over seeds; log scale)",
               conclusion=loss_conclusion(test_curves))
    rep.figure(figures.curves(gaps), "gap", "The generalisation gap per epoch for each weight decay "
               "(mean over seeds)",
               conclusion=gap_conclusion({wd: float(c[-1] - train_curves[wd][-1])
                                          for wd, c in test_curves.items()}))
    return metrics


def loss_conclusion(test_curves: dict[float, np.ndarray]) -> str:
    """Which λ ends with the lowest test loss, and whether the weakest decay's test loss turned
    upward (it fell to a minimum, then rose more than 2 %)."""
    final = {wd: float(c[-1]) for wd, c in test_curves.items()}
    best = min(final, key=final.get)
    low = min(test_curves)
    curve = test_curves[low]
    turn = int(np.argmin(curve))
    text = f"The test loss ends lowest at λ = {best:g} ({final[best]:.4f})"
    if turn < len(curve) - 1 and curve[-1] > curve[turn] * 1.02:
        text += (f"; at λ = {low:g} it was lowest after epoch {turn + 1} ({curve[turn]:.4f}) and "
                 f"rose {100 * (curve[-1] / curve[turn] - 1):.0f} % after that, the mark of overfitting")
    else:
        text += f"; at λ = {low:g} it did not turn upward ({final[low]:.4f} at the end)"
    return text + "."


def gap_conclusion(final_gap: dict[float, float]) -> str:
    """The last epoch's loss gap from the weakest to the strongest decay, in the direction the
    numbers go."""
    low, high = min(final_gap), max(final_gap)
    if low == high:
        return f"At λ = {low:g} the test loss ends {final_gap[low]:.4f} above the training loss."
    a, b = final_gap[low], final_gap[high]
    if abs(b - a) <= 0.1 * abs(a):  # within a tenth: no direction worth stating
        return (f"The final loss gap barely moves, {a:.4f} at λ = {low:g} and {b:.4f} at "
                f"λ = {high:g}: at this length of training the penalty changes little.")
    move = "shrinks" if b < a else "grows"
    return (f"The final loss gap {move} from {a:.4f} at λ = {low:g} to {b:.4f} at λ = {high:g}"
            + (": the penalty keeps the network from fitting its training digits much better than new ones."
               if b < a else "."))


def averages(rs: list[dict]) -> dict:
    """Means over seeds of what the verdict compares."""
    def avg(fn):
        return float(np.mean([fn(r) for r in rs]))

    return {"train_loss": avg(lambda r: r["train"]["loss"]),
            "test_loss": avg(lambda r: r["test"]["loss"]),
            "gap": avg(lambda r: r["test"]["loss"] - r["train"]["loss"]),
            "train_acc": avg(lambda r: r["train"]["accuracy"]),
            "test_acc": avg(lambda r: r["test"]["accuracy"]),
            "acc_gap": avg(lambda r: r["train"]["accuracy"] - r["test"]["accuracy"]),
            "norm": avg(lambda r: r["weight_norm"]),
            "test_acc_std": (float(np.std([r["test"]["accuracy"] for r in rs], ddof=1))
                             if len(rs) > 1 else 0.0)}


def verdict(done: dict[float, list[dict]], best: float) -> str:
    """What the sweep shows, from this run's numbers."""
    low, high = min(done), max(done)
    a = {wd: averages(done[wd]) for wd in (low, high, best)}
    text = (("Without weight decay" if low == 0 else f"With the weakest decay, λ = {low:g},")
            + f" the network ends with training loss {a[low]['train_loss']:.4f} against test loss "
            f"{a[low]['test_loss']:.4f}, training accuracy {100 * a[low]['train_acc']:.2f} % against "
            f"{100 * a[low]['test_acc']:.2f} % on test.")
    curve = np.mean([[row["test_loss"] for row in r["history"]] for r in done[low]], 0)
    turn = int(np.argmin(curve))
    if turn < len(curve) - 1 and curve[-1] > curve[turn] * 1.02:
        text += (f" Its test loss was lowest after epoch {turn + 1} ({curve[turn]:.4f}) and climbed "
                 "from there while the training loss kept falling: from then on the network fits its "
                 "particular training digits more than digits in general.")
    if high != low:
        text += (f" At λ = {high:g} the loss gap is {a[high]['gap']:.4f} (against {a[low]['gap']:.4f}) "
                 f"and the weights' norm {a[high]['norm']:.1f} (against {a[low]['norm']:.1f}).")
    loss_cut = 1 - a[best]["gap"] / a[low]["gap"] if a[low]["gap"] > 0 else 0.0
    acc_cut = 1 - a[best]["acc_gap"] / a[low]["acc_gap"] if a[low]["acc_gap"] > 0 else 0.0
    if best != low and loss_cut > 0.1 and loss_cut > 2 * acc_cut:
        text += (f" From λ = {low:g} to λ = {best:g} the loss gap shrinks by "
                 f"{100 * loss_cut:.0f} % but the accuracy gap only from "
                 f"{100 * a[low]['acc_gap']:.2f} to {100 * a[best]['acc_gap']:.2f} points, and the test "
                 f"loss falls from {a[low]['test_loss']:.4f} to {a[best]['test_loss']:.4f}: the decay "
                 "mostly makes the network less over-confident rather than right more often.")
    text += f" Chosen on the held-out digits: λ = {best:g}, {100 * a[best]['test_acc']:.2f} % test accuracy"
    if best != low:
        gain = a[best]["test_acc"] - a[low]["test_acc"]
        spread = max(a[best]["test_acc_std"], a[low]["test_acc_std"])
        noise = abs(gain) <= 2 * spread
        text += (f", {100 * gain:+.2f} points against λ = {low:g}"
                 + (f" (the seeds' standard deviation is {100 * spread:.2f} points, so within noise)"
                    if noise else "")
                 + ".")
    else:
        text += "."
    if best < high and a[high]["test_acc"] < a[best]["test_acc"]:
        text += (f" More is not better: at λ = {high:g} the penalty keeps the weights too small to fit "
                 f"even the training digits well (training accuracy {100 * a[high]['train_acc']:.2f} %), "
                 f"and test accuracy falls to {100 * a[high]['test_acc']:.2f} %.")
    return text


def report_layers(model: nn.Module, batch: torch.Tensor, wd: float, rep, ctx) -> None:
    """Every layer's output on one batch of test digits, on stderr and in the report."""
    rows = layer_statistics(model, batch)
    rep.section("Inside the network", f"Each layer's output for one batch of {len(batch)} test digits, "
                f"in the network trained with λ = {wd:g}. 'zeros' is the share of outputs exactly 0: "
                "after a ReLU, the units that are switched off for that digit.")
    rep.table(rows, "Layer outputs on one batch: shape (batch first), mean, standard deviation, "
              "range and share of zeros")
    for row in rows:
        ctx.log(f"{row['layer']:>3} {row['type']:<8} {row['output']:<10} mean {row['mean']:+.4f}  "
                f"std {row['std']:.4f}  min {row['min']:+.4f}  max {row['max']:+.4f}  "
                f"zeros {100 * row['zeros']:.1f} %")


def predict(run_dir: Path, inputs: list[Path]) -> list[dict]:
    return _mnist.predict_digits(run_dir, inputs, NAME)


predict_network = _mnist.build_network  # the network predict loads (mllabs export)


# ---------------------------------------------------------------------------- the report's ends

HEADLINE = "best_test_accuracy"
KEY_FIGURE = "gap"
TRY_NEXT = [
    ("--set loss=mse", "the squared error instead of cross-entropy, as the handout also tries"),
    ("--set inspect=true", "look inside the chosen network: each layer's output statistics"),
    ("--set train_size=10000", "more digits: less to overfit, and less for weight decay to fix"),
]


def headline(metrics: dict) -> str:
    from mllabs import stats

    return (f"Weight decay λ = {metrics['best_weight_decay']:g} is best on the held-out digits, "
            f"with **{stats.percent(metrics['best_test_accuracy'])}** test accuracy.")


def example_input(data, run_dir: Path) -> list[str]:
    return _mnist.example_digit(data, run_dir)
