"""Auto MPG: predict a car's fuel efficiency with a small fully connected network.

The handout (TensorFlow's "basic regression" tutorial): drop the cars with unknown horsepower,
one-hot encode the origin, split 80/20, normalise with training statistics, and train a
64-64-1 ReLU network with RMSprop on the mean squared error. mllabs adds what a single run
cannot show: several seeds with mean ± std, and a least-squares baseline on the same split.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from mllabs import checkpoints
from mllabs import data as datasets
from mllabs.checkpoints import save_checkpoint
from mllabs.config import OPTIMIZERS, SCHEDULES, TrainConfig, option
from mllabs.data.tabular import numeric_column, read_csv, read_whitespace
from mllabs.errors import DataError
from mllabs.files import atomic_write_text
from mllabs.models import ols
from mllabs.models.mlp import MLP
from mllabs import stats
from mllabs.report import figures, mean_std
from mllabs.train import evaluate, predict as forward

NAME = "auto-mpg"
TITLE = "Auto MPG: fuel efficiency with a fully connected network"
SUMMARY_LINE = "regress miles per gallon from 7 car attributes; network vs least squares, 5 seeds"
SUMMARY = (
    "A fully connected network predicts a car's fuel efficiency (miles per gallon) from its "
    "cylinders, displacement, horsepower, weight, acceleration, model year and origin, trained "
    "as in TensorFlow's basic-regression handout. The network is trained with several seeds on "
    "the same split and compared with ordinary least squares, so the table says how much the "
    "hidden layers buy and how much of it is luck of the initialisation.")

RAW_COLUMNS = ["mpg", "cylinders", "displacement", "horsepower", "weight", "acceleration",
               "model_year", "origin", "car_name"]
NUMERIC = ["cylinders", "displacement", "horsepower", "weight", "acceleration", "model_year"]
ORIGINS = {1: "usa", 2: "europe", 3: "japan"}
FEATURES = NUMERIC + [f"origin_{o}" for o in ORIGINS.values()]
HEADLINE = "test_mae"
TRY_NEXT = [
    ("--set hidden=64,64 --set dropout=0 --set target=mpg --set epochs=1000",
     "the handout's network and budget: does the bigger default with dropout and log MPG beat it?"),
    ("--set target=mpg", "learn MPG itself instead of log MPG, everything else equal"),
    ("--set refit=false", "test the network trained on the training cars alone (no refit on the "
     "validation cars): how much do 63 more cars buy?"),
    ("--seed 1", "another split of the cars: the split moves the test MAE more than the seeds do"),
    ("--set seeds=10", "more seeds: a narrower ± for the initialisation (not for the test cars)"),
]


@dataclass
class Config(TrainConfig):
    epochs: int = option(200, "passes over the training data (the handout used 1000)", min=1)
    optimizer: str = option("rmsprop", "update rule", choices=OPTIMIZERS)
    lr: float = option(1e-3, "learning rate", gt=0.0)
    schedule: str = option("cosine", "learning-rate schedule", choices=SCHEDULES)
    hidden: tuple[int, ...] = option((128, 128), "hidden layer widths (the handout: 64,64)", min=1)
    dropout: float = option(0.2, "dropout after each hidden layer (the handout: 0)", min=0.0, lt=1.0)
    target: str = option("log", "what the network learns: log MPG or MPG (standardised either way)",
                         choices=("log", "mpg"))
    refit: bool = option(True, "after the train/validation run, retrain on all training cars "
                         "with the same budget and report that network")
    activation: str = option("relu", "hidden-layer activation", choices=("relu", "tanh", "sigmoid", "gelu"))
    seeds: int = option(5, "networks trained with seeds seed, seed+1, ...; mean ± std reported", min=1)
    test_fraction: float = option(0.2, "share of cars held out for the test set", gt=0.0, lt=1.0)
    val_fraction: float = option(0.2, "share of the training cars held out for validation curves",
                                 min=0.0, lt=1.0)


PROFILES = {
    "quick": {"epochs": 30, "seeds": 2},
    "default": {},
    "full": {"epochs": 1000, "seeds": 10},
}


# ---------------------------------------------------------------------------- data

def load_table(data_dir: Path | None) -> pd.DataFrame:
    folder = datasets.dataset_dir(NAME, data_dir)
    return read_whitespace(folder / "auto-mpg.data", RAW_COLUMNS, comment_column="car_name")


def one_hot_origin(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.drop(columns=["origin"])
    for code, name in ORIGINS.items():
        out[f"origin_{name}"] = (frame["origin"] == code).astype(float)
    return out


@dataclass
class Prepared:
    raw: pd.DataFrame
    encoded: pd.DataFrame
    dropped: int
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    def x(self, idx):
        return ((self.encoded[FEATURES].to_numpy(float)[idx] - self.mean) / self.std).astype(np.float32)

    def y(self, idx):
        return self.encoded["mpg"].to_numpy(np.float32)[idx, None]


def prepare(cfg: Config, data_dir: Path | None) -> Prepared:
    if cfg.test_fraction >= 1 or cfg.val_fraction >= 1:
        raise DataError("test_fraction and val_fraction must be below 1")
    raw = load_table(data_dir)
    known = raw.dropna(subset=["horsepower"]).reset_index(drop=True)
    encoded = one_hot_origin(known)
    # The handout's split, reproduced exactly for seed 0: pandas' sample(frac=0.8, random_state=
    # seed) is the first 80 % of RandomState(seed).permutation, and Keras' validation_split
    # holds out the last 20 % of those training rows.
    order = np.random.RandomState(cfg.seed).permutation(len(encoded))
    n_train = round((1 - cfg.test_fraction) * len(order))
    rest, test_idx = order[:n_train], np.sort(order[n_train:])
    n_val = round(cfg.val_fraction * len(rest))
    train_idx, val_idx = np.sort(rest[:len(rest) - n_val]), np.sort(rest[len(rest) - n_val:])
    if len(train_idx) < 2 or len(test_idx) < 1:
        raise DataError("the split leaves too few cars; lower test_fraction or val_fraction")
    fit_idx = np.concatenate([train_idx, val_idx])  # statistics from all training cars, never test
    values = encoded[FEATURES].to_numpy(float)
    mean, std = values[fit_idx].mean(0), values[fit_idx].std(0)
    mean[len(NUMERIC):], std[len(NUMERIC):] = 0.0, 1.0  # one-hot columns stay 0/1
    return Prepared(raw, encoded, len(raw) - len(known), train_idx, val_idx, test_idx, mean, std)


# ---------------------------------------------------------------------------- model

@dataclass
class Target:
    """The network learns a standardised (log) MPG; every reported number is back in MPG."""

    kind: str
    mean: float
    std: float

    @classmethod
    def fit(cls, kind: str, mpg: np.ndarray) -> "Target":
        t = np.log(mpg) if kind == "log" else mpg
        return cls(kind, float(t.mean()), float(t.std()))

    def encode(self, mpg):
        return ((torch.log(mpg) if self.kind == "log" else mpg) - self.mean) / self.std

    def decode(self, z):
        t = z * self.std + self.mean
        return torch.exp(t) if self.kind == "log" else t

    def metrics(self) -> dict:
        """MAE and MSE in MPG, computed from the network's output and the encoded target."""
        return {"mae": lambda out, z: (self.decode(out) - self.decode(z)).abs().mean(),
                "mse": lambda out, z: ((self.decode(out) - self.decode(z)) ** 2).mean()}


def build_model(hidden, activation: str, dropout: float) -> nn.Module:
    return MLP(len(FEATURES), tuple(hidden), 1, activation, dropout)


def networks(cfg: Config) -> dict:
    return {"network": (build_model(cfg.hidden, cfg.activation, cfg.dropout), (len(FEATURES),))}


def layer_names(cfg: Config) -> dict:
    """The tutorial's names for the dense layers (hidden 1, hidden 2, output)."""
    return {"network": build_model(cfg.hidden, cfg.activation, cfg.dropout).layer_names()}


def mse_loss(out, target):
    return ((out - target) ** 2).mean()


# ---------------------------------------------------------------------------- run

def run(cfg: Config, p: Prepared, ctx) -> tuple[str, dict]:
    rep = ctx.report
    describe_data(p, rep)

    all_train = np.concatenate([p.train_idx, p.val_idx])
    target = Target.fit(cfg.target, p.y(all_train)[:, 0])
    metrics_fns = target.metrics()

    def tensors(idx):
        x, y = torch.from_numpy(p.x(idx)), torch.from_numpy(p.y(idx))
        return x, target.encode(y)

    train, val, everything, test = (tensors(i) for i in (p.train_idx, p.val_idx, all_train, p.test_idx))
    has_val = len(p.val_idx) > 0
    runs, status = [], "completed"
    for k in range(cfg.seeds):
        seed = cfg.seed + k
        seed_cfg = dataclasses.replace(cfg, seed=seed)
        label = f"seed {k + 1}/{cfg.seeds}"
        torch.manual_seed(seed)
        model = ctx.network(build_model(cfg.hidden, cfg.activation, cfg.dropout))
        # 1. the handout's run: train on the training cars, watch the validation cars
        curves = ctx.fit(model, train if has_val else everything, seed_cfg, loss_fn=mse_loss,
                         metrics=metrics_fns, val=val if has_val else None,
                         restore_best=False, label=label)
        result = curves
        # 2. the same budget on every training car: a fixed schedule needs no epoch picked on
        #    held-out data, so the validation cars can go back into training
        if cfg.refit and has_val and curves.status == "completed":
            torch.manual_seed(seed)
            model = ctx.network(build_model(cfg.hidden, cfg.activation, cfg.dropout))
            result = ctx.fit(model, everything, seed_cfg, loss_fn=mse_loss, metrics=metrics_fns,
                             restore_best=False, progress=False,  # its line would repeat the seed's
                             label=f"{label} refit")
        save_checkpoint(ctx.run.checkpoints / f"seed{seed}.pt", model.state_dict(), seed=seed)
        test_metrics = evaluate(model, *test, mse_loss, metrics_fns)
        val_mse = curves.history[-1].get("val_mse", np.nan)
        runs.append({"seed": seed, "model": model, "curves": curves, "fit": result,
                     "test": test_metrics, "val_mse": val_mse})
        if "diverged" in (curves.status, result.status):
            status = "diverged"
            break

    ctx.run.write_history([{"seed": r["seed"], **row} for r in runs for row in r["curves"].history])
    # closed-form linear regression of MPG (with intercept) on all training cars
    coef = ols.least_squares(p.x(all_train), p.y(all_train)[:, 0])
    x_test, y_test = p.x(p.test_idx), p.y(p.test_idx)[:, 0]
    linear_pred = ols.predict(coef, x_test)
    linear = {"mae": float(np.abs(linear_pred - y_test).mean()),
              "mse": float(((linear_pred - y_test) ** 2).mean()), "pred": linear_pred}
    if status == "diverged":
        return status, describe_divergence(cfg, runs[-1], linear, has_val, runs, rep)

    # predict uses the seed whose train/validation run ended best: chosen without the test set
    chosen = min(runs, key=lambda r: r["val_mse"] if np.isfinite(r["val_mse"]) else np.inf)
    save_for_predict(ctx.run.path, chosen["model"], cfg, p, target, chosen["seed"])
    net_pred = np.stack([target.decode(forward(r["model"], torch.from_numpy(x_test))).cpu().numpy()[:, 0]
                         for r in runs])
    metrics = summarise(runs, linear, chosen, cfg)
    metrics.update(intervals(net_pred, linear_pred, y_test))
    # least squares fitted on the training cars alone, measured on the validation cars: does the
    # validation set differ from the test set for a model that has nothing to do with the network?
    if has_val:
        coef_train = ols.least_squares(p.x(p.train_idx), p.y(p.train_idx)[:, 0])
        metrics["linear.val_mae"] = float(np.abs(ols.predict(coef_train, p.x(p.val_idx))
                                                 - p.y(p.val_idx)[:, 0]).mean())
    describe_training(cfg, runs, has_val, rep, metrics)
    describe_results(runs, linear, target, chosen, x_test, y_test, metrics, rep)
    return status, metrics


def summarise(runs, linear, chosen, cfg) -> dict:
    test_mae = np.array([r["test"]["mae"] for r in runs])
    test_mse = np.array([r["test"]["mse"] for r in runs])
    return {
        "test_mae": float(test_mae.mean()), "test_mae_std": sample_std(test_mae),
        "test_mse": float(test_mse.mean()), "test_mse_std": sample_std(test_mse),
        "linear.test_mae": linear["mae"], "linear.test_mse": linear["mse"],
        "mae_reduction_vs_linear": 1 - float(test_mae.mean()) / linear["mae"],
        "seeds": len(runs), "epochs": cfg.epochs,
        "predict_model_seed": chosen["seed"], "predict_model.test_mae": chosen["test"]["mae"],
    }


def intervals(net_pred: np.ndarray, linear_pred: np.ndarray, y_test: np.ndarray) -> dict:
    """95 % intervals over the test cars: a bootstrap of the network's MAE (each car's absolute
    error averaged over seeds, so it is the reported mean) and a paired one of its reduction
    against least squares (the same resampled cars for both)."""
    net_err = np.abs(net_pred - y_test).mean(0)
    low, high = stats.bootstrap(net_err)
    diff = stats.paired_difference(net_err, np.abs(linear_pred - y_test))
    return {"test_mae_ci95_low": low, "test_mae_ci95_high": high,
            "mae_reduction_vs_linear_ci95_low": -diff["share_high"],
            "mae_reduction_vs_linear_ci95_high": -diff["share_low"], "test_cars": len(y_test)}


def headline(metrics: dict) -> str:
    return (f"Test MAE **{metrics['test_mae']:.2f} MPG** (95 % CI {metrics['test_mae_ci95_low']:.2f}–"
            f"{metrics['test_mae_ci95_high']:.2f} over the {metrics['test_cars']} test cars; "
            f"± {metrics['test_mae_std']:.2f} across {metrics['seeds']} seeds), "
            f"{100 * metrics['mae_reduction_vs_linear']:.0f} % below least squares' "
            f"{metrics['linear.test_mae']:.2f} MPG (95 % CI "
            f"{100 * metrics['mae_reduction_vs_linear_ci95_low']:.0f}–"
            f"{100 * metrics['mae_reduction_vs_linear_ci95_high']:.0f} %, paired over the same cars).")


def example_input(p: Prepared, run_dir: Path) -> list[str]:
    """Three test cars in the raw columns predict reads (their true mpg kept, for comparison)."""
    known = p.raw.dropna(subset=["horsepower"]).reset_index(drop=True)
    path = run_dir / "example-cars.csv"
    atomic_write_text(path, known.iloc[p.test_idx[:3]].to_csv(index=False))
    return [str(path)]


def sample_std(values: np.ndarray) -> float:
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def describe_divergence(cfg: Config, bad: dict, linear: dict, has_val: bool, runs, rep) -> dict:
    """A diverged run still gets its report: the curves up to the blow-up and what to change."""
    failed = bad["fit"] if bad["fit"].status == "diverged" else bad["curves"]
    epoch = len(failed.history)
    describe_training(cfg, runs, has_val, rep)
    rep.section("Diverged", f"Seed {bad['seed']}: the loss became NaN or infinite in epoch {epoch}, "
                "so training stopped there and no network was tested. The learning rate "
                f"({cfg.lr:g} with {cfg.optimizer}) is too high for this problem: lower it, e.g. "
                f"--set lr={cfg.lr / 10:g}.")
    return {"diverged_seed": bad["seed"], "diverged_epoch": epoch,
            "linear.test_mae": linear["mae"], "linear.test_mse": linear["mse"]}


# ---------------------------------------------------------------------------- report

def describe_data(p: Prepared, rep) -> None:
    rep.section("Data", f"UCI Auto MPG: {len(p.raw)} cars. {p.dropped} have no horsepower "
                "recorded ('?' in the file) and are dropped, as in the handout. Origin is a code "
                "(1 USA, 2 Europe, 3 Japan), not a quantity, so it becomes three 0/1 columns.")
    rep.table(p.raw.head(8), "The raw table, first 8 rows", columns=RAW_COLUMNS)
    rep.table(p.encoded.head(8), "After dropping unknown horsepower and one-hot encoding origin",
              columns=["mpg"] + FEATURES)
    rep.text(f"Split (seeded; seed 0 is the handout's split): {len(p.train_idx)} cars train, "
             f"{len(p.val_idx)} validation (watched while training), {len(p.test_idx)} test. "
             "Numeric features are "
             "standardised with the mean and standard deviation of the training and validation "
             "cars only, so nothing about the test cars leaks into training.")
    rep.table([{"feature": f, "mean": float(m), "std": float(s)}
               for f, m, s in zip(NUMERIC, p.mean, p.std)],
              "Normalisation statistics (saved with the run; predict reuses them)")
    cols = ["mpg", "cylinders", "displacement", "weight"]
    train_rows = p.encoded.iloc[np.concatenate([p.train_idx, p.val_idx])]
    mpg, weight = train_rows["mpg"].to_numpy(), train_rows["weight"].to_numpy()
    light, heavy = weight < np.quantile(weight, 0.25), weight > np.quantile(weight, 0.75)
    rep.figure(figures.pair_plot({c: train_rows[c].to_numpy() for c in cols}), "pairplot",
               "Pair plot of MPG, cylinders, displacement and weight (training cars); each row "
               "shares its vertical axis and each column its horizontal one, and the diagonal "
               "shows each quantity's histogram (counts on an axis of their own, not drawn)",
               conclusion=f"Heavier, bigger engines burn more fuel, along a curve: the lightest "
                          f"quarter of the cars average {mpg[light].mean():.1f} MPG and the heaviest "
                          f"quarter {mpg[heavy].mean():.1f} MPG (MPG ranges "
                          f"{mpg.min():.0f}–{mpg.max():.0f}).")
    corr = train_rows[["mpg"] + NUMERIC].corr()
    strongest = corr["mpg"].drop("mpg").abs().idxmax()
    rep.figure(figures.heatmap(corr.to_numpy(), ["mpg"] + NUMERIC, ["mpg"] + NUMERIC, cmap="coolwarm",
                               vmin=-1, vmax=1, colorbar_label="Pearson r"), "correlation",
               "Correlation between MPG and the numeric features (training cars)",
               conclusion=f"MPG follows {strongest} most closely (r = {corr['mpg'][strongest]:+.2f}); "
                          f"cylinders, displacement, horsepower and weight also correlate with each "
                          f"other (displacement–weight r = {corr['displacement']['weight']:+.2f}), "
                          "so they carry much the same information.")


def describe_training(cfg: Config, runs, has_val: bool, rep, metrics: dict | None = None) -> None:
    n_params = sum(t.numel() for t in runs[0]["model"].parameters())
    learns = "log MPG" if cfg.target == "log" else "MPG"
    rep.section("Model and training",
                f"Network: {len(FEATURES)} inputs → " + " → ".join(map(str, cfg.hidden)) +
                f" ({cfg.activation}, dropout {cfg.dropout:g}) → 1 output, {n_params:,} parameters. "
                f"It learns standardised {learns} with a mean-squared-error loss; fuel use grows "
                "roughly in proportion to weight and engine size, so MPG falls along a curve that "
                "log MPG straightens. Optimizer "
                f"{cfg.optimizer}, learning rate {cfg.lr:g} with {cfg.schedule} decay, batch "
                f"{cfg.batch_size}, {cfg.epochs} epochs; {len(runs)} seeds: "
                f"{', '.join(str(r['seed']) for r in runs)}. The handout's network was 64 → 64 "
                "without dropout, learning MPG itself, for 1000 epochs.")
    if cfg.refit and has_val:
        rep.text("Each seed trains twice. First on the training cars while the validation cars "
                 "are watched (the curves below); then, with the same fixed budget and schedule, "
                 "on all training cars together. That second network is the one tested: a fixed "
                 "schedule needs no epoch chosen on held-out data, so the validation cars can "
                 "add to training. The test cars are used for nothing but the final table.")
    panels = {}
    for metric, title in (("mae", "MAE (MPG)"), ("mse", "MSE (MPG²)")):
        series = {}
        for split in ("train", "val"):
            key = f"{split}_{metric}"
            if key not in runs[0]["curves"].history[0]:
                continue
            length = min(len(r["curves"].history) for r in runs)
            values = np.array([[row[key] for row in r["curves"].history[:length]] for r in runs])
            err = values.std(0, ddof=1) if len(runs) > 1 else None
            series["validation" if split == "val" else "train"] = (np.arange(1, length + 1),
                                                                   values.mean(0), err)
        refits = [r["fit"].history for r in runs if r["fit"] is not r["curves"]]
        if refits:  # the tested networks: every training car, no validation to watch
            length = min(len(h) for h in refits)
            values = np.array([[row[f"train_{metric}"] for row in h[:length]] for h in refits])
            series["refit on all training cars (tested), train"] = (
                np.arange(1, length + 1), values.mean(0), values.std(0, ddof=1) if len(refits) > 1 else None)
        panels[title] = series
    refit = cfg.refit and has_val and all(r["fit"] is not r["curves"] for r in runs)
    kept = (cfg.epochs, f"kept: epoch {cfg.epochs}, the last (fixed budget)") if metrics else None
    rep.figure(figures.curves(panels, log_y=True, mark=kept),
               "training_curves",
               "Training and validation error per epoch, mean over seeds (band: ± one std); "
               "train error is the running mean over each epoch's batches, with dropout on"
               + ("; the third line is the refit network that was tested" if refit else ""),
               conclusion=training_conclusion(runs, metrics, refit) if metrics else "")
    rep.table([{"seed": r["seed"], "epochs": len(r["fit"].history), "updates": r["fit"].updates
                + (r["curves"].updates if r["fit"] is not r["curves"] else 0),
                "seconds": round(r["curves"].seconds + (r["fit"].seconds if r["fit"] is not r["curves"]
                                                        else 0), 2),
                "validation MSE": r["val_mse"], "test MAE": r["test"]["mae"],
                "test MSE": r["test"]["mse"]} for r in runs], "Every seed (test: the tested network)")


def training_conclusion(runs, metrics: dict, refit: bool) -> str:
    """Why validation MAE levels near 2 while the tested network's test MAE is lower, in this
    run's numbers."""
    val = [r["curves"].history[-1].get("val_mae", np.nan) for r in runs]
    if not np.isfinite(val).all():
        return (f"Training error falls for all {len(runs)} seeds; the tested networks reach "
                f"{metrics['test_mae']:.2f} MPG on the test cars.")
    text = (f"Validation MAE levels off at {np.mean(val):.2f} MPG while the tested networks score "
            f"{metrics['test_mae']:.2f} MPG on the test cars. ")
    if "linear.val_mae" in metrics:
        text += (f"Least squares, which cannot overfit in any way that matters here, shows the same "
                 f"gap ({metrics['linear.val_mae']:.2f} MPG on the validation cars against "
                 f"{metrics['linear.test_mae']:.2f} on the test cars): the validation cars are "
                 "harder to predict than the test cars, so the gap is the split, not overfitting")
        text += ("; and the tested network is the refit, trained on the validation cars too."
                 if refit else ".")
    return text


def describe_results(runs, linear, target, chosen, x_test, y_test, metrics, rep) -> None:
    maes = [r["test"]["mae"] for r in runs]
    mses = [r["test"]["mse"] for r in runs]
    rep.section("Results", f"On the {len(y_test)} test cars the network's mean absolute error is "
                f"{mean_std(maes)} MPG over {len(runs)} seeds, against {linear['mae']:.3f} MPG for "
                f"least squares: {100 * metrics['mae_reduction_vs_linear']:.1f} % lower. The ± is "
                "the spread over initialisations only; the test set is small, so the interval "
                "that matters more is over the cars: resampling the 78 test cars (5,000 bootstrap "
                f"draws) puts the MAE between {metrics['test_mae_ci95_low']:.2f} and "
                f"{metrics['test_mae_ci95_high']:.2f} MPG, and the reduction against least squares, "
                "resampled in pairs (the same cars for both), between "
                f"{100 * metrics['mae_reduction_vs_linear_ci95_low']:.0f} and "
                f"{100 * metrics['mae_reduction_vs_linear_ci95_high']:.0f} %. A rerun that lands "
                "inside these ranges agrees with this one.".replace("78", str(len(y_test))))
    rep.table([{"model": f"network ({len(runs)} seeds, mean ± std)", "test MAE (MPG)": mean_std(maes),
                "test MSE (MPG²)": mean_std(mses)},
               {"model": "linear regression (least squares)", "test MAE (MPG)": f"{linear['mae']:.3f}",
                "test MSE (MPG²)": f"{linear['mse']:.3f}"}], "Test error")
    pred = target.decode(forward(chosen["model"], torch.from_numpy(x_test))).cpu().numpy()[:, 0]
    linear_pred = linear["pred"]
    err, lin_err = np.abs(pred - y_test), np.abs(linear_pred - y_test)
    worst = int(np.argmax(err))
    rep.figure(figures.true_vs_predicted(y_test, pred, "MPG", baseline=linear_pred,
                                         labels=(f"network, seed {chosen['seed']}", "least squares")),
               "true_vs_predicted",
               f"Predicted against true MPG on the {len(y_test)} test cars: the network predict uses "
               f"(seed {chosen['seed']}) and least squares; the dashed line is a perfect prediction",
               conclusion=f"The network is closer to the line than least squares on "
                          f"{int((err < lin_err).sum())} of the {len(y_test)} test cars (mean "
                          f"absolute error {err.mean():.2f} against {lin_err.mean():.2f} MPG).",
               key=True)
    rep.figure(figures.histogram(pred - y_test, "prediction error (MPG)"), "error_histogram",
               "Prediction errors of that network on the test cars (predicted − true)",
               conclusion=f"{int((err <= 2).sum())} of {len(y_test)} cars are within 2 MPG; the "
                          f"largest miss is {pred[worst] - y_test[worst]:+.1f} MPG (a "
                          f"{y_test[worst]:.0f}-MPG car).")
    rep.text(f"`mllabs predict` uses the seed-{chosen['seed']} network (lowest validation error; test MAE "
             f"{chosen['test']['mae']:.3f} MPG). It reads a CSV with the columns cylinders, "
             "displacement, horsepower, weight, acceleration, model_year, origin (1/2/3 or "
             "USA/Europe/Japan); other columns such as mpg or car_name are ignored. The command "
             "under What next runs it on three of the test cars.")


# ---------------------------------------------------------------------------- predict

def save_for_predict(run_dir: Path, model: nn.Module, cfg: Config, p: Prepared, target: Target,
                     seed: int) -> None:
    checkpoints.save_for_predict(run_dir, NAME, {
        "features": FEATURES, "numeric": NUMERIC, "mean": p.mean.tolist(), "std": p.std.tolist(),
        "origins": ORIGINS, "hidden": list(cfg.hidden), "activation": cfg.activation,
        "dropout": cfg.dropout, "target": dataclasses.asdict(target), "seed": seed,
        "ranges": checkpoints.ranges(p.encoded.iloc[np.concatenate([p.train_idx, p.val_idx])], NUMERIC)},
        {"model": model.state_dict()})


def parse_origin(value, path, row: int) -> str:
    text = str(value).strip().lower()
    names = {str(code): name for code, name in ORIGINS.items()} | {n: n for n in ORIGINS.values()}
    names.update({"1.0": "usa", "2.0": "europe", "3.0": "japan", "us": "usa"})
    if text not in names:
        raise DataError(f"{path}: row {row}, column 'origin' holds {value!r}; use 1/2/3 or "
                        "USA/Europe/Japan")
    return names[text]


def predict_network(spec: dict) -> nn.Module:
    """The empty network predict.json describes (also what `mllabs export` exports)."""
    return build_model(spec["hidden"], spec["activation"], spec["dropout"])


def predict(run_dir: Path, inputs: list[Path]) -> list[dict]:
    prep = checkpoints.load_spec(run_dir, NAME)
    model = checkpoints.load_model(run_dir, prep, predict_network)
    with checkpoints.reading(run_dir, NAME):
        target, mean, std = Target(**prep["target"]), np.array(prep["mean"]), np.array(prep["std"])
        _ = prep["numeric"], prep["features"]  # present, or the file is damaged
    results = []
    for path in inputs:
        frame = read_csv(path, required=prep["numeric"] + ["origin"], rename_snake=True)
        for column in prep["numeric"]:
            frame[column] = numeric_column(frame[column], path, column)
        origins = [parse_origin(v, path, i + 2) for i, v in enumerate(frame["origin"])]
        for name in ORIGINS.values():
            frame[f"origin_{name}"] = [float(o == name) for o in origins]
        with np.errstate(over="ignore"):
            x = ((frame[prep["features"]].to_numpy(float) - mean) / std).astype(np.float32)
        if not np.isfinite(x).all():  # finite in float64, beyond the network's float32
            row, col = (int(v[0]) for v in np.nonzero(~np.isfinite(x)))
            name = prep["features"][col]
            raise DataError(f"{path}: row {row + 2}, column {name!r} holds {frame[name].iloc[row]:g}, "
                            "far too large to be a car's value; fix that cell")
        mpg = target.decode(forward(model, torch.from_numpy(x))).numpy()[:, 0]
        for i, value in enumerate(mpg):
            label = f"{path}:{i + 2}"
            if "car_name" in frame.columns:
                label += f" ({frame['car_name'].iloc[i]})"
            results.append({"input": label, "prediction": round(float(value), 3)})
            far = far_outside(frame.iloc[i], x[i], prep["features"], prep["numeric"], mean, std)
            if far:
                results[-1]["warning"] = far
    return results


def far_outside(car, standardised: np.ndarray, features: list[str], numeric: list[str],
                mean: np.ndarray, std: np.ndarray, limit: float = 4.0) -> str:
    """A warning when a car's value lies more than `limit` standard deviations from the training
    cars' mean (no car in the data set is beyond 3.4): the network is extrapolating, often from a
    typo or a unit mix-up (kilograms for pounds, litres for cubic inches). `standardised` is the
    car's row of the network's input, which is that distance already."""
    for column in numeric:
        k = features.index(column)
        if abs(standardised[k]) > limit:
            return (f"{column} = {float(car[column]):g} is {abs(standardised[k]):.0f} standard deviations "
                    f"from the training cars (mean {mean[k]:,.0f} ± {std[k]:,.0f}): an extrapolation; "
                    "check the value and its unit")
    return ""
