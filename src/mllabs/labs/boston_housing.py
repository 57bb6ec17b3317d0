"""Boston housing: a regression network written in NumPy, beside PyTorch and least squares.

The handout builds the whole network by hand: load housing.data (506 houses × 14 columns),
split 80/20, normalise with training statistics, forward pass, MSE loss, gradients derived on
paper, mini-batch gradient descent with a shuffle every epoch, a loss curve and one predicted
price. Its homework adds a curvature term per feature. mllabs trains that NumPy network, the same
network in PyTorch (same start, learning rate and batches) and the closed-form least-squares
solution, and answers the handout's question (hand-written or framework?) from measured numbers.
"""

from __future__ import annotations

import ast
import inspect
import math
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from mllabs import checkpoints
from mllabs import data as datasets
from mllabs.config import LabConfig, option
from mllabs.data.tabular import numeric_column, read_csv, read_whitespace
from mllabs.errors import DataError, UserError
from mllabs.models import numpy_net
from mllabs.models.ols import least_squares
from mllabs.models.numpy_net import Linear, Quadratic
from mllabs.report import figures
from mllabs.files import read_json, write_json

NAME = "boston-housing"
TITLE = "Boston housing: a network written in NumPy, against PyTorch and least squares"
SUMMARY_LINE = "house prices from 13 features; hand-derived NumPy gradients vs PyTorch vs least squares"
SUMMARY = (
    "A linear network predicts the median house price of a Boston census tract from 13 "
    "features, written without a framework: NumPy forward pass, mean-squared-error loss, "
    "gradients derived by hand (and checked against finite differences and PyTorch's autograd), "
    "mini-batch gradient descent. The homework's variant bends every feature with a learned "
    "square term. The same linear network is trained in PyTorch from the same start on the same "
    "batches, and least squares gives the exact optimum; one table compares error, time and lines "
    "of code.")

FEATURES = ["CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO",
            "B", "LSTAT"]
TARGET = "MEDV"
COLUMNS = FEATURES + [TARGET]
MEANING = {
    "CRIM": "crimes per resident of the town",
    "ZN": "% of residential land zoned for lots over 25,000 sq ft",
    "INDUS": "% of the town's acres used by non-retail business",
    "CHAS": "1 if the tract borders the Charles River, else 0",
    "NOX": "nitric-oxide concentration (parts per 10 million)",
    "RM": "mean number of rooms per home",
    "AGE": "% of owner-occupied homes built before 1940",
    "DIS": "weighted distance to five Boston job centres",
    "RAD": "index of access to radial highways (24: inner Boston)",
    "TAX": "property-tax rate per $10,000",
    "PTRATIO": "pupils per teacher in the town",
    "B": "1000(Bk − 0.63)², Bk the town's share of Black residents",
    "LSTAT": "% of residents of lower status",
}
EXPECTED = ", ".join(FEATURES)
UNIT = "MEDV, $1000s"
MODELS = {"numpy": "NumPy linear", "numpy_quadratic": "NumPy quadratic (homework)",
          "torch": "PyTorch linear", "ols": "least squares (closed form)"}


@dataclass
class Config(LabConfig):
    epochs: int = option(300, "passes over the training houses", min=1)
    batch_size: int = option(32, "houses per gradient step", min=1)
    lr: float = option(0.3, "learning rate of gradient descent (all three networks)", gt=0.0)
    schedule: str = option("cosine", "learning rate per epoch: cosine decay to zero, or constant",
                           choices=("cosine", "constant"))
    split: str = option("shuffled", "test houses: a seeded random sample, or the end of the file "
                        "(the handout's cut)", choices=("shuffled", "file-order"))
    test_fraction: float = option(0.2, "share of houses held out for the test set", gt=0.0, lt=1.0)


PROFILES = {
    "quick": {"epochs": 30},
    "default": {},
    "full": {"epochs": 1000},
}


# ---------------------------------------------------------------------------- data

@dataclass
class Prepared:
    raw: pd.DataFrame
    train_idx: np.ndarray
    test_idx: np.ndarray
    mean: np.ndarray
    scale: np.ndarray

    def x(self, idx) -> np.ndarray:
        return (self.raw[FEATURES].to_numpy(float)[idx] - self.mean) / self.scale

    def y(self, idx) -> np.ndarray:
        return self.raw[TARGET].to_numpy(float)[idx]


def prepare(cfg: Config, data_dir: Path | None) -> Prepared:
    if cfg.test_fraction >= 1:
        raise DataError("test_fraction must be below 1")
    folder = datasets.dataset_dir(NAME, data_dir)
    raw = read_whitespace(folder / "housing.data", COLUMNS)
    if cfg.split == "shuffled":
        order = np.random.RandomState(cfg.seed).permutation(len(raw))
    else:
        order = np.arange(len(raw))
    n_train = int((1 - cfg.test_fraction) * len(raw))  # the handout's int(0.8 × 506) = 404
    train_idx, test_idx = np.sort(order[:n_train]), np.sort(order[n_train:])
    if len(train_idx) < 2 or len(test_idx) < 1:
        raise DataError("the split leaves too few houses; pick a test_fraction nearer 0.2")
    # the handout's normalisation: centre on the training mean, divide by the training range;
    # every training feature then lies within [-1, 1], so the quadratic model's x² stays small
    values = raw[FEATURES].to_numpy(float)[train_idx]
    mean, scale = values.mean(0), values.max(0) - values.min(0)
    scale[scale == 0] = 1.0  # a constant column stays 0 instead of dividing by zero
    return Prepared(raw, train_idx, test_idx, mean, scale)


# ---------------------------------------------------------------------------- models

def train_torch(init: dict, x: np.ndarray, y: np.ndarray, cfg: Config, device: torch.device,
                test: tuple[np.ndarray, np.ndarray]) -> tuple[nn.Linear, list[dict]]:
    """The linear network in PyTorch: same start, same batches, same learning rates as NumPy."""
    def tensor(a):
        return torch.as_tensor(a, dtype=torch.float64, device=device)

    model = nn.Linear(x.shape[1], 1, dtype=torch.float64, device=device)
    with torch.no_grad():
        model.weight.copy_(tensor(init["w"])[None])
        model.bias.copy_(tensor(init["b"]))
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, cfg.epochs)
    xs, ys, xt, yt = tensor(x), tensor(y)[:, None], tensor(test[0]), tensor(test[1])[:, None]
    rng, history = np.random.default_rng(cfg.seed), []
    for epoch in range(cfg.epochs + 1):
        if epoch > 0:  # epoch 0 measures the starting weights, as the NumPy loop does
            for idx in numpy_net.epoch_batches(len(x), cfg.batch_size, rng):
                idx = torch.as_tensor(idx, device=device)
                loss = nn.functional.mse_loss(model(xs[idx]), ys[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            if cfg.schedule == "cosine":
                decay.step()
        with torch.no_grad():
            history.append({"epoch": epoch, "train_mse": nn.functional.mse_loss(model(xs), ys).item(),
                            "test_mse": nn.functional.mse_loss(model(xt), yt).item()})
        if not math.isfinite(history[-1]["train_mse"]):
            break
    return model, history


def networks(cfg: Config) -> dict:
    """The PyTorch network only: the NumPy ones are arrays, not modules, and do the same
    arithmetic (the linear one exactly this; the quadratic one 2 × and 1 + more per feature)."""
    return {"PyTorch linear": (nn.Linear(len(FEATURES), 1, dtype=torch.float64), (len(FEATURES),))}


def code_lines(*objects) -> int:
    """Lines of source that do something: not blank, not comments, not docstrings."""
    total = 0
    for obj in objects:
        source = textwrap.dedent(inspect.getsource(obj))
        skip = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(node):
                doc = node.body[0]
                skip.update(range(doc.lineno, doc.end_lineno + 1))
        total += sum(1 for i, line in enumerate(source.splitlines(), 1)
                     if line.strip() and not line.strip().startswith("#") and i not in skip)
    return total


def code_size() -> dict[str, int]:
    """Measured from the source that trains each model (the shared batch shuffler included)."""
    loop = (numpy_net.mse, numpy_net.epoch_batches, numpy_net.cosine_lr, numpy_net.train)
    return {"numpy": code_lines(Linear, *loop), "numpy_quadratic": code_lines(Quadratic, *loop),
            "torch": code_lines(train_torch, numpy_net.epoch_batches),
            "ols": code_lines(least_squares)}


def check_gradients(x: np.ndarray, y: np.ndarray, seed: int) -> list[dict]:
    """Hand-derived gradients against central differences and PyTorch autograd, same weights."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, model in (("linear", Linear(x.shape[1], rng)), ("quadratic", Quadratic(x.shape[1], rng))):
        for value in model.params.values():  # random values everywhere (w1 starts at 0)
            value[:] = rng.normal(0, 0.5, value.shape)
        by_hand = model.gradient(x, y)
        params = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        hidden = xt + params["w1"] * xt ** 2 if label == "quadratic" else xt
        out = hidden @ params["w2" if label == "quadratic" else "w"] + params["b"]
        ((out - yt) ** 2).mean().backward()
        autograd = {k: p.grad.numpy() for k, p in params.items()}
        rows.append({"model": label, "parameters": sum(v.size for v in model.params.values()),
                     "vs finite differences": numpy_net.relative_error(
                         by_hand, numpy_net.numerical_gradient(model, x, y)),
                     "vs PyTorch autograd": numpy_net.relative_error(by_hand, autograd)})
    return rows


# ---------------------------------------------------------------------------- run

def run(cfg: Config, p: Prepared, ctx) -> tuple[str, dict]:
    rep = ctx.report
    describe_data(cfg, p, rep)
    x_train, y_train, x_test, y_test = p.x(p.train_idx), p.y(p.train_idx), p.x(p.test_idx), p.y(p.test_idx)
    grad_rows = check_gradients(x_train, y_train, cfg.seed)
    n = len(FEATURES)
    train_args = dict(lr=cfg.lr, epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed,
                      schedule=cfg.schedule, test=(x_test, y_test))

    results: dict[str, dict] = {}
    linear = Linear(n, np.random.default_rng(cfg.seed))  # the handout's seeded normal start
    init = {k: v.copy() for k, v in linear.params.items()}
    quadratic = Quadratic(n, np.random.default_rng(cfg.seed))  # w2 starts where linear's w did
    for key, label, model in (("numpy", "NumPy linear", linear),
                              ("numpy_quadratic", "NumPy quadratic", quadratic)):
        start = time.perf_counter()
        history = numpy_net.train(model, x_train, y_train, **train_args)
        results[key] = {"history": history, "seconds": time.perf_counter() - start,
                        "pred": model.forward(x_test)}
        ctx.log(f"{label}: test MSE {history[-1]['test_mse']:.3f} ({results[key]['seconds']:.2f} s)")

    start = time.perf_counter()
    model, history = train_torch(init, x_train, y_train, cfg, ctx.device, (x_test, y_test))
    seconds = time.perf_counter() - start
    with torch.no_grad():
        pred = model(torch.as_tensor(x_test, device=ctx.device)).cpu().numpy()[:, 0]
    results["torch"] = {"history": history, "seconds": seconds, "pred": pred}
    ctx.log(f"PyTorch linear: test MSE {history[-1]['test_mse']:.3f} ({seconds:.2f} s)")

    start = time.perf_counter()
    theta = least_squares(x_train, y_train)
    seconds = time.perf_counter() - start
    results["y_test"] = y_test
    results["ols"] = {"seconds": seconds, "pred": x_test @ theta[:-1] + theta[-1],
                      "train_mse": numpy_net.mse(x_train @ theta[:-1] + theta[-1], y_train)}
    for key in ("numpy", "numpy_quadratic", "torch"):
        results[key]["train_mse"] = results[key]["history"][-1]["train_mse"]

    ctx.run.write_history([{"model": key, **row} for key in ("numpy", "numpy_quadratic", "torch")
                           for row in results[key]["history"]])
    sizes = code_size()
    y_test = results.pop("y_test")
    for key in ("numpy", "numpy_quadratic"):
        versus_ols({**results, "y_test": y_test}, key)
    for key, r in results.items():
        with np.errstate(over="ignore", invalid="ignore"):  # a diverged model's output
            r["test_mse"] = numpy_net.mse(r["pred"], y_test)
        r["lines"] = sizes[key]
    diverged = [k for k in ("numpy", "numpy_quadratic", "torch")
                if not math.isfinite(results[k]["history"][-1]["train_mse"])]
    metrics = summarise(results, grad_rows)
    describe_training(cfg, results, grad_rows, rep)
    if diverged:
        rep.section("Diverged", f"{'; '.join(MODELS[k] for k in diverged)}: the loss became NaN "
                    "or infinite, so training stopped there and nothing is saved for predict. A "
                    f"learning rate of {cfg.lr:g} is too large for "
                    f"{'these networks' if len(diverged) > 1 else 'this network'}: lower it, "
                    f"e.g. --set lr={cfg.lr / 10:g}.")
        return "diverged", {k: v for k, v in metrics.items()
                            if not set(k.split(".")[0].split("_vs_")) & set(diverged)}

    save_for_predict(ctx.run.path, linear, quadratic, p, cfg)
    describe_results(cfg, p, results, grad_rows, y_test, rep)
    return "completed", metrics


def summarise(results: dict, grad_rows: list[dict]) -> dict:
    metrics = {}
    order = ("numpy", "ols", "numpy_quadratic", "torch")
    for key in order:
        metrics[f"{key}.test_mse"] = results[key]["test_mse"]
        metrics[f"{key}.test_rmse"] = math.sqrt(results[key]["test_mse"])
    for key in order:
        metrics[f"{key}.seconds"] = round(results[key]["seconds"], 6)
        metrics[f"{key}.lines_of_code"] = results[key]["lines"]
    metrics["numpy.gap_to_ols"] = results["numpy"]["test_mse"] / results["ols"]["test_mse"] - 1
    for key in ("numpy", "numpy_quadratic"):
        d = results[key].get("vs_ols") or versus_ols(results, key)
        metrics |= {f"{key}_vs_ols.test_mse_difference": d["difference"],
                    f"{key}_vs_ols.test_mse_difference_ci95_low": d["low"],
                    f"{key}_vs_ols.test_mse_difference_ci95_high": d["high"]}
    metrics["numpy_vs_torch.max_prediction_difference"] = float(
        np.abs(results["numpy"]["pred"] - results["torch"]["pred"]).max())
    for row in grad_rows:
        metrics[f"gradient_check.{row['model']}.finite_differences"] = row["vs finite differences"]
        metrics[f"gradient_check.{row['model']}.autograd"] = row["vs PyTorch autograd"]
    return metrics


def versus_ols(results: dict, key: str) -> dict:
    """`key`'s test MSE minus least squares', paired on the same test houses: a 95 % bootstrap
    interval from resampling the houses (each keeps both models' squared errors)."""
    from mllabs import stats

    y = results["y_test"]
    with np.errstate(over="ignore", invalid="ignore"):  # a diverged model's output
        d = stats.paired_difference((results[key]["pred"] - y) ** 2, (results["ols"]["pred"] - y) ** 2,
                                    resamples=2000)
    results[key]["vs_ols"] = d
    return d


def versus_sentence(name: str, mse: float, ols_mse: float, diff: dict) -> str:
    """One sentence comparing a network with least squares on the same test houses: the
    direction from the two numbers, and whether the paired interval leaves zero out."""
    if mse == ols_mse:
        where = f"equal to least squares' {ols_mse:.2f}"
    else:
        where = (f"{100 * abs(mse / ols_mse - 1):.1f} % {'below' if mse < ols_mse else 'above'} "
                 f"least squares' {ols_mse:.2f}")
    sure = ("a difference the test houses confirm" if diff["low"] > 0 or diff["high"] < 0 else
            "a difference these test houses cannot tell from chance")
    return (f"The {name}'s test MSE {mse:.2f} is {where} (paired over the same test houses: "
            f"{diff['difference']:+.2f}, 95 % interval {diff['low']:+.2f} to {diff['high']:+.2f}), "
            f"{sure}.")


def curves_conclusion(results: dict, epochs: int) -> str:
    np_r, q_r, t_r, ols = (results[k] for k in ("numpy", "numpy_quadratic", "torch", "ols"))
    gap = np_r["history"][-1]["test_mse"] / ols["test_mse"] - 1
    same = float(np.max(np.abs(np.asarray([h["test_mse"] for h in np_r["history"]])
                               - np.asarray([h["test_mse"] for h in t_r["history"]]))))
    return (f"After {epochs} epochs the NumPy linear network's test MSE is "
            f"{np_r['history'][-1]['test_mse']:.2f}, {100 * abs(gap):.1f} % "
            f"{'above' if gap > 0 else 'below'} the least-squares line's {ols['test_mse']:.2f}; the "
            f"PyTorch network's curve lies on it (largest difference {same:.1e}) and the quadratic "
            f"one ends at {q_r['history'][-1]['test_mse']:.2f}.")


# ---------------------------------------------------------------------------- report

def describe_data(cfg: Config, p: Prepared, rep) -> None:
    rep.section("Data", f"Boston housing (Harrison & Rubinfeld, 1978): {len(p.raw)} census tracts "
                f"around Boston, {len(FEATURES)} features each and the median price of the "
                f"owner-occupied homes ({TARGET}, in $1000s), which the models predict. Column B is "
                "built from the tract's share of Black residents; it is kept only because the "
                "handout uses all 13 columns, and a real price model should not use it. "
                f"{int((p.raw[TARGET] == 50).sum())} tracts have a price of exactly 50.0, the "
                "highest value in the file: prices above $50,000 were recorded as 50.")
    rep.table(p.raw.head(6), "housing.data, first 6 rows", columns=COLUMNS)
    if cfg.split == "shuffled":
        how = (f"a seeded shuffle (seed {cfg.seed}), then {len(p.train_idx)} houses for training "
               f"and {len(p.test_idx)} for testing. The handout cuts the file in its own order "
               "instead; the file is sorted by town, so that cut puts mostly inner-Boston tracts in "
               "the test set (--set split=file-order reproduces it)")
    else:
        how = (f"the file's first {len(p.train_idx)} houses for training and the last "
               f"{len(p.test_idx)} for testing, as the handout cuts it; the file is sorted by town, "
               "so the test set is mostly inner-Boston tracts the training set hardly covers")
    rep.text(f"Split: {how}. Each feature is then normalised as in the handout, x → (x − mean) / "
             "(max − min), with the mean, maximum and minimum of the training houses only, so "
             "nothing about the test houses reaches training. Every training feature then lies "
             "within [−1, 1], which keeps the quadratic model's x² small. The price is not "
             "normalised, so every error below is in $1000s (MSE in ($1000s)²).")
    x = p.raw[FEATURES].to_numpy(float)[p.train_idx]
    rep.table([{"feature": f, "meaning": MEANING[f], "mean": float(m), "min": float(lo),
                "max": float(hi)} for f, m, lo, hi in zip(FEATURES, p.mean, x.min(0), x.max(0))],
              "The features and their training statistics (saved with the run; predict reuses them)")


def describe_training(cfg: Config, results: dict, grad_rows: list[dict], rep) -> None:
    sched = ("cosine decay to zero over the epochs" if cfg.schedule == "cosine"
             else "constant")
    rep.section("Networks and training",
                "Linear network: price = x·w + b, 14 parameters. Quadratic network (the "
                "homework): z1 = x + w1 ⊙ x², price = z1·w2 + b, 27 parameters; w1 starts at zero, "
                "so it starts as the linear network and learns how much each feature bends. Both "
                "start from the handout's seeded standard-normal weights and zero bias and minimise "
                f"the mean squared error by mini-batch gradient descent: batches of "
                f"{cfg.batch_size} houses, a fresh seeded shuffle every epoch, {cfg.epochs} epochs, "
                f"learning rate {cfg.lr:g} ({sched}). The PyTorch network is nn.Linear with "
                "optim.SGD, given the NumPy network's starting weights and the same shuffled "
                "batches, in float64 like NumPy.")
    rep.text("The gradients are derived by hand (models/numpy_net.py). Before they are trusted, "
             "they are compared on the training houses, at random weights, with central finite "
             "differences (L(θ + h) − L(θ − h)) / 2h, h = 10⁻⁶, and with PyTorch's autograd on the "
             "same weights; relative error ‖a − b‖ / (‖a‖ + ‖b‖):")
    rep.table(grad_rows, "Gradient check (float64)")
    panels = {}
    for key in ("numpy", "numpy_quadratic", "torch"):
        # a diverged run is drawn until its loss leaves what a log axis can show
        hist = [row for row in results[key]["history"]
                if max(row["train_mse"], row["test_mse"]) < 1e30]
        epochs = np.array([row["epoch"] for row in hist])
        panels[MODELS[key]] = {
            "train": (epochs, [row["train_mse"] for row in hist]),
            "test": (epochs, [row["test_mse"] for row in hist]),
            "least squares, test": (epochs, np.full(len(epochs), results["ols"]["test_mse"]))}
    rep.figure(figures.curves(panels, log_y=True, ncols=3), "loss_curves",
               "Mean squared error ($1000s²) on all training houses and on the test houses after "
               "every epoch; the flat line is least squares on the test houses",
               conclusion=curves_conclusion(results, cfg.epochs)
               if math.isfinite(results["numpy"]["history"][-1]["test_mse"])
               and math.isfinite(results["torch"]["history"][-1]["test_mse"]) else "")


def describe_results(cfg: Config, p: Prepared, results: dict, grad_rows: list[dict],
                     y_test: np.ndarray, rep) -> None:
    ols = results["ols"]["test_mse"]
    rep.section("Comparison", f"Test: the {len(y_test)} test houses; train: all training houses "
                "at the end (least squares has the lowest training MSE any linear model can have). "
                "Seconds are wall-clock time of training on this machine (for the networks "
                "including both losses measured after every epoch); lines of code are counted from "
                "the source that defines and trains each model, without blank lines, comments and "
                "docstrings.")
    rep.table([{"model": MODELS[k], "train MSE": r["train_mse"], "test MSE": r["test_mse"],
                "test RMSE ($1000s)": math.sqrt(r["test_mse"]),
                "test MSE vs least squares": f"{100 * (r['test_mse'] / ols - 1):+.2f} %",
                "seconds": f"{r['seconds']:.3g}", "lines of code": r["lines"]}
               for k, r in results.items()], "NumPy network, PyTorch network and least squares")
    gap = results["numpy"]["test_mse"] / ols - 1
    verdict = ("within 1 %: gradient descent has found the optimum that least squares computes "
               "directly" if abs(gap) < 0.01 else
               "more than 1 % away: training stopped before it reached the optimum; more epochs "
               "(--set epochs=...) close the gap")
    rep.text(f"The NumPy linear network's test MSE is {results['numpy']['test_mse']:.3f}, least "
             f"squares' {ols:.3f}: {100 * gap:+.2f} %, {verdict}.")
    rep.text("The handout asks how a network written by hand and one built with a framework differ "
             "in structure, effort, accuracy and speed. This run's answer:")
    for paragraph in answer(results, grad_rows, len(p.train_idx), cfg.batch_size):
        rep.text(paragraph)
    rep.figure(figures.true_vs_predicted(y_test, results["numpy"]["pred"], "price ($1000s)"),
               "true_vs_predicted", "Predicted against true price of the test houses, NumPy linear "
               "network (the one predict uses); the dashed line is a perfect prediction",
               conclusion=versus_sentence("NumPy linear network", results["numpy"]["test_mse"], ols,
                                          results["numpy"]["vs_ols"]))
    rep.figure(figures.true_vs_predicted(y_test, results["numpy_quadratic"]["pred"], "price ($1000s)"),
               "true_vs_predicted_quadratic", "The same for the quadratic network",
               conclusion=versus_sentence("quadratic network", results["numpy_quadratic"]["test_mse"],
                                          ols, results["numpy_quadratic"]["vs_ols"]))
    top = y_test >= np.quantile(y_test, 0.9)
    rep.text(f"On the {top.sum()} most expensive test houses (from ${1000 * y_test[top].min():,.0f}) "
             "the mean error (predicted − true) is "
             f"{np.mean(results['numpy']['pred'][top] - y_test[top]):+.2f} ($1000s) for the linear "
             f"network and {np.mean(results['numpy_quadratic']['pred'][top] - y_test[top]):+.2f} "
             "for the quadratic one; on all test houses "
             f"{np.mean(results['numpy']['pred'] - y_test):+.2f} and "
             f"{np.mean(results['numpy_quadratic']['pred'] - y_test):+.2f}.")
    # one house, as the handout ends: the test house that comes last in the file
    k = len(y_test) - 1
    values = ",".join(f"{v:g}" for v in p.raw[FEATURES].to_numpy(float)[p.test_idx[k]])
    rep.section("One house", f"The last test house in file order (line {p.test_idx[k] + 1} of "
                f"housing.data): the median value of its homes is ${1000 * y_test[k]:,.0f}. The "
                "predictions:")
    rep.table([{"model": MODELS[key], "predicted price ($1000s)": float(r["pred"][k]),
                "error ($1000s)": float(r["pred"][k] - y_test[k])} for key, r in results.items()],
              f"Predictions for test house at line {p.test_idx[k] + 1}")
    rep.text(f"The same with the saved NumPy linear network: `mllabs predict RUN_DIR --values "
             f"\"{values}\"` (13 numbers in the order {EXPECTED}), or `mllabs predict RUN_DIR "
             "houses.csv` with those columns.")


def answer(results: dict, grad_rows: list[dict], n_train: int, batch_size: int) -> list[str]:
    """The handout's question, answered from this run's numbers: one paragraph per aspect."""
    np_r, t_r, q_r, ols_r = (results[k] for k in ("numpy", "torch", "numpy_quadratic", "ols"))
    ols = ols_r["test_mse"]
    diff = float(np.abs(np_r["pred"] - t_r["pred"]).max())
    same = (f"identical up to rounding: their test predictions differ by at most {diff:.1e} "
            "($1000s)" if diff < 1e-6 else f"different: their test predictions differ by up to "
            f"{diff:.3g} ($1000s)")
    ratio = t_r["seconds"] / np_r["seconds"]
    steps = (len(np_r["history"]) - 1) * math.ceil(n_train / batch_size)
    per_step = (f"{1e6 * t_r['seconds'] / steps:.0f} µs against {1e6 * np_r['seconds'] / steps:.0f} µs "
                f"per step, {steps} steps")
    if ratio > 1:
        speed = (f"PyTorch took {ratio:.1f}× as long as NumPy ({t_r['seconds']:.3f} s against "
                 f"{np_r['seconds']:.3f} s; {per_step}). A step here is a few products of a "
                 f"{batch_size} × {len(FEATURES)} batch, so PyTorch's fixed cost per step (recording "
                 "the graph for autograd, the optimizer, dispatching every operation) outweighs "
                 "the arithmetic; a framework pays off on large models and accelerators, not here")
    else:
        speed = (f"PyTorch was {1 / ratio:.1f}× as fast as NumPy ({t_r['seconds']:.3f} s against "
                 f"{np_r['seconds']:.3f} s; {per_step})")
    grads = code_lines(Linear.gradient), code_lines(Quadratic.gradient)
    fd = max(r["vs finite differences"] for r in grad_rows)
    ag = max(r["vs PyTorch autograd"] for r in grad_rows)
    fewer = np_r["lines"] - t_r["lines"]
    lines = (f"{fewer} fewer" if fewer > 0 else f"{-fewer} more" if fewer < 0 else "as many")
    return [
        f"Structure. The NumPy linear network is {np_r['lines']} lines of code: its "
        "parameters, forward pass, loss, hand-derived gradient and a loop that updates every "
        f"parameter itself. The PyTorch one is {t_r['lines']}, {lines}: nn.Linear holds the "
        "weights, loss.backward() derives the gradient and optim.SGD applies it, but turning arrays "
        "into tensors and copying NumPy's starting weights cost lines of their own. Least squares "
        f"is {ols_r['lines']} lines, because this model has a closed-form optimum and needs no loop.",
        f"Effort. The gradient is only {grads[0]} lines for the linear network and {grads[1]} "
        "for the quadratic one, but each had to be derived on paper and then checked: relative "
        f"error {fd:.0e} against finite differences and {ag:.0e} against autograd. In PyTorch the "
        "quadratic variant would be one more parameter and one changed line of the forward pass, "
        "with nothing to derive; the bigger the network, the more that matters.",
        f"Accuracy. From the same start on the same batches, NumPy and PyTorch end {same}, "
        f"with test MSE {np_r['test_mse']:.3f} and {t_r['test_mse']:.3f} against least squares' "
        f"{ols:.3f}. The framework changes nothing about accuracy; the model does: the quadratic "
        f"network reaches {q_r['test_mse']:.3f} ({100 * (q_r['test_mse'] / ols - 1):+.1f} % "
        "against least squares).",
        f"Speed. {speed}; least squares solved it in {ols_r['seconds'] * 1000:.1f} ms.",
    ]


# ---------------------------------------------------------------------------- predict

def save_for_predict(run_dir: Path, linear: Linear, quadratic: Quadratic, p: Prepared,
                     cfg: Config) -> None:
    """The NumPy networks' parameters as JSON in checkpoints/ (no torch file), then predict.json."""
    for name, model in (("model", linear), ("quadratic", quadratic)):
        write_json(run_dir / "checkpoints" / f"{name}.json", {
            "model": type(model).__name__.lower(), "seed": cfg.seed, "epochs": cfg.epochs,
            "params": {k: v.tolist() for k, v in model.params.items()}})
    checkpoints.save_for_predict(run_dir, NAME, {
        "features": FEATURES, "target": f"{TARGET} ($1000s)", "mean": p.mean.tolist(),
        "scale": p.scale.tolist(), "normalise": "(x - mean) / scale, scale = max - min of training",
        "ranges": checkpoints.ranges(p.raw.iloc[p.train_idx], FEATURES)})


def load_linear(run_dir: Path) -> tuple[Linear, np.ndarray, np.ndarray]:
    spec = checkpoints.load_spec(run_dir, NAME)
    with checkpoints.reading(run_dir, NAME):
        mean, scale = np.array(spec["mean"], float), np.array(spec["scale"], float)
        if not mean.shape == scale.shape == (len(FEATURES),):
            raise ValueError(f"mean and scale of {len(FEATURES)} features expected")
    saved = read_json(Path(run_dir) / "checkpoints" / "model.json")
    with checkpoints.reading(run_dir, NAME, "checkpoints/model.json"):
        model = Linear(len(FEATURES), np.random.default_rng(0))
        model.params = {k: np.array(saved["params"][k], float) for k in ("w", "b")}
        if model.params["w"].shape != (len(FEATURES),):
            raise ValueError(f"{len(FEATURES)} weights expected")
    return model, mean, scale


def price(model: Linear, mean: np.ndarray, scale: np.ndarray, x: np.ndarray) -> np.ndarray:
    return model.forward((np.atleast_2d(x) - mean) / scale)


def predict_values(run_dir: Path, text: str) -> list[dict]:
    """One house typed as 13 comma-separated numbers -> its predicted price in $1000s."""
    parts = [t.strip() for t in text.split(",")] if text.strip() else []
    if len(parts) != len(FEATURES):
        raise UserError(f"--values needs {len(FEATURES)} comma-separated numbers, got {len(parts)}; "
                        f"give them in this order: {EXPECTED}")
    values = []
    for i, (name, part) in enumerate(zip(FEATURES, parts), start=1):
        try:
            value = float(part)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            shown = "empty" if not part else repr(part)
            raise UserError(f"--values: value {i} ({name}) is {shown}, not a finite number; "
                            f"give {len(FEATURES)} numbers in this order: {EXPECTED}")
        values.append(value)
    model, mean, scale = load_linear(run_dir)
    value = float(price(model, mean, scale, np.array(values))[0])
    return [{"input": text, "prediction": round(value, 3), "unit": UNIT}]


def predict(run_dir: Path, inputs: list[Path]) -> list[dict]:
    """CSV files with the 13 feature columns (any letter case; other columns are ignored)."""
    model, mean, scale = load_linear(run_dir)
    results = []
    for path in inputs:
        frame = read_csv(path)
        by_lower = {c.lower(): c for c in frame.columns}
        if len(by_lower) < len(frame.columns):
            twice = next(c for c in frame.columns if sum(o.lower() == c.lower() for o in frame.columns) > 1)
            raise DataError(f"{path} has the column {twice.lower()!r} twice (names compared in any "
                            "case); keep one of them")
        missing = [f for f in FEATURES if f.lower() not in by_lower]
        if missing:
            raise DataError(f"{path} has no column {missing[0]!r} (columns: "
                            f"{', '.join(frame.columns)}); required: {EXPECTED}")
        x = np.column_stack([numeric_column(frame[by_lower[f.lower()]], path, f).to_numpy()
                             for f in FEATURES])
        for i, value in enumerate(price(model, mean, scale, x)):
            results.append({"input": f"{path}:{i + 2}", "prediction": round(float(value), 3),
                            "unit": UNIT})
    return results


# ---------------------------------------------------------------------------- the report's ends

HEADLINE = "numpy.test_mse"
KEY_FIGURE = "loss_curves"
TRY_NEXT = [
    ("--set schedule=constant", "a fixed learning rate instead of cosine decay"),
    ("--set epochs=1000", "longer training: does the NumPy network close the gap to least squares?"),
    ("--set lr=0.03", "a tenth of the rate: slower, and how much worse after the same epochs?"),
]


def headline(metrics: dict) -> str:
    text = (f"The NumPy network's test MSE is **{metrics['numpy.test_mse']:.2f}** against "
            f"{metrics['ols.test_mse']:.2f} for least squares "
            f"({100 * metrics['numpy.gap_to_ols']:+.1f} %)")
    if "numpy_quadratic.test_mse" in metrics:
        text += f"; the quadratic variant reaches {metrics['numpy_quadratic.test_mse']:.2f}"
    return text + " (price in $1000s², on the same test houses)."


def example_input(p: Prepared, run_dir: Path) -> list[str]:
    """One test house's 13 values, typed the way `--values` takes them."""
    row = p.raw.iloc[int(p.test_idx[0])]
    return ["--values", ",".join(f"{float(row[c]):g}" for c in FEATURES)]
