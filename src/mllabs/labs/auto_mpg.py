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

from mllabs import data as datasets
from mllabs.config import TrainConfig, option
from mllabs.data.tabular import numeric_column, read_csv, read_whitespace
from mllabs.errors import DataError
from mllabs.models.mlp import MLP
from mllabs.report import figures, mean_std
from mllabs.runs import read_json, write_json
from mllabs.train import evaluate, fit, load_checkpoint, predict as forward, save_checkpoint

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


@dataclass
class Config(TrainConfig):
    epochs: int = option(1000, "passes over the training data (the handout's budget)", min=1)
    optimizer: str = option("rmsprop", "update rule", choices=(
        "gd", "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"))
    lr: float = option(1e-3, "learning rate", gt=0.0)
    hidden: tuple[int, ...] = option((64, 64), "hidden layer widths, e.g. 64,64")
    activation: str = option("relu", "hidden-layer activation", choices=("relu", "tanh", "sigmoid", "gelu"))
    seeds: int = option(5, "networks trained with seeds seed, seed+1, ...; mean ± std reported", min=1)
    test_fraction: float = option(0.2, "share of cars held out for the test set", gt=0.0)
    val_fraction: float = option(0.2, "share of the training cars used to pick the best epoch", min=0.0)


PROFILES = {
    "quick": {"epochs": 30, "seeds": 2},
    "default": {},
    "full": {"seeds": 10},
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
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(encoded))
    n_test = round(cfg.test_fraction * len(order))
    test_idx, rest = np.sort(order[:n_test]), order[n_test:]
    n_val = round(cfg.val_fraction * len(rest))
    val_idx, train_idx = np.sort(rest[:n_val]), np.sort(rest[n_val:])
    if len(train_idx) < 2 or len(test_idx) < 1:
        raise DataError("the split leaves too few cars; lower test_fraction or val_fraction")
    fit_idx = np.concatenate([train_idx, val_idx])  # statistics from all training cars, never test
    values = encoded[FEATURES].to_numpy(float)
    mean, std = values[fit_idx].mean(0), values[fit_idx].std(0)
    mean[len(NUMERIC):], std[len(NUMERIC):] = 0.0, 1.0  # one-hot columns stay 0/1
    return Prepared(raw, encoded, len(raw) - len(known), train_idx, val_idx, test_idx, mean, std)


# ---------------------------------------------------------------------------- model

def build_model(cfg_hidden, activation: str) -> nn.Module:
    return MLP(len(FEATURES), tuple(cfg_hidden), 1, activation)


def mae(out, target):
    return (out - target).abs().mean()


def mse(out, target):
    return ((out - target) ** 2).mean()


def least_squares(p: Prepared) -> np.ndarray:
    """Closed-form linear regression (with intercept) on all training cars."""
    idx = np.concatenate([p.train_idx, p.val_idx])
    design = np.hstack([p.x(idx), np.ones((len(idx), 1), np.float32)])
    coef, *_ = np.linalg.lstsq(design.astype(float), p.y(idx)[:, 0].astype(float), rcond=None)
    return coef


# ---------------------------------------------------------------------------- run

def run(cfg: Config, p: Prepared, ctx) -> tuple[str, dict]:
    rep = ctx.report
    describe_data(p, rep)

    tensors = {name: (torch.from_numpy(p.x(idx)), torch.from_numpy(p.y(idx)))
               for name, idx in (("train", p.train_idx), ("val", p.val_idx), ("test", p.test_idx))}
    runs, status = [], "completed"
    for k in range(cfg.seeds):
        seed = cfg.seed + k
        torch.manual_seed(seed)
        model = build_model(cfg.hidden, cfg.activation)
        seed_cfg = dataclasses.replace(cfg, seed=seed)
        result = fit(model, tensors["train"], seed_cfg, loss_fn=mse, metrics={"mae": mae, "mse": mse},
                     val=tensors["val"] if len(p.val_idx) else None, device=ctx.device,
                     checkpoint_dir=ctx.run.checkpoints / f"seed{seed}", checkpoint_every=cfg.epochs,
                     progress=ctx.progress, label=f"seed {k + 1}/{cfg.seeds}")
        test = evaluate(model, *tensors["test"], mse, {"mae": mae, "mse": mse})
        val_loss = min((r.get("val_loss", r["train_loss"]) for r in result.history), default=np.inf)
        runs.append({"seed": seed, "model": model, "fit": result, "test": test, "val_loss": val_loss})
        ctx.log(f"seed {seed}: test MAE {test['mae']:.3f} MPG (best epoch {result.best_epoch}, "
                f"{result.seconds:.1f} s)")
        if result.status == "diverged":
            status = "diverged"
            break

    ctx.run.write_history([{"seed": r["seed"], **row} for r in runs for row in r["fit"].history])
    coef = least_squares(p)
    x_test, y_test = p.x(p.test_idx), p.y(p.test_idx)[:, 0]
    linear_pred = np.hstack([x_test, np.ones((len(x_test), 1), np.float32)]) @ coef
    linear = {"mae": float(np.abs(linear_pred - y_test).mean()),
              "mse": float(((linear_pred - y_test) ** 2).mean())}

    chosen = min(runs, key=lambda r: r["val_loss"])  # picked on validation, never on test
    save_for_predict(ctx.run.path, chosen["model"], cfg, p, chosen["seed"])
    metrics = summarise(runs, linear, chosen, cfg)
    describe_training(cfg, runs, rep)
    describe_results(runs, linear, linear_pred, chosen, x_test, y_test, metrics, rep)
    return status, metrics


def summarise(runs, linear, chosen, cfg) -> dict:
    test_mae = np.array([r["test"]["mae"] for r in runs])
    test_mse = np.array([r["test"]["mse"] for r in runs])
    spread = (lambda a: float(a.std(ddof=1)) if len(a) > 1 else 0.0)
    return {
        "test_mae": float(test_mae.mean()), "test_mae_std": spread(test_mae),
        "test_mse": float(test_mse.mean()), "test_mse_std": spread(test_mse),
        "linear.test_mae": linear["mae"], "linear.test_mse": linear["mse"],
        "mae_reduction_vs_linear": 1 - float(test_mae.mean()) / linear["mae"],
        "seeds": len(runs), "epochs": cfg.epochs,
        "predict_model_seed": chosen["seed"], "predict_model.test_mae": chosen["test"]["mae"],
    }


# ---------------------------------------------------------------------------- report

def describe_data(p: Prepared, rep) -> None:
    rep.section("Data", f"UCI Auto MPG: {len(p.raw)} cars. {p.dropped} have no horsepower "
                "recorded ('?' in the file) and are dropped, as in the handout. Origin is a code "
                "(1 USA, 2 Europe, 3 Japan), not a quantity, so it becomes three 0/1 columns.")
    rep.table(p.raw.head(8), "The raw table, first 8 rows", columns=RAW_COLUMNS)
    rep.table(p.encoded.head(8), "After dropping unknown horsepower and one-hot encoding origin",
              columns=["mpg"] + FEATURES)
    rep.text(f"Split (seeded): {len(p.train_idx)} cars train, {len(p.val_idx)} validation (to pick "
             f"each network's best epoch), {len(p.test_idx)} test. Numeric features are "
             "standardised with the mean and standard deviation of the training and validation "
             "cars only, so nothing about the test cars leaks into training.")
    rep.table([{"feature": f, "mean": float(m), "std": float(s)}
               for f, m, s in zip(NUMERIC, p.mean, p.std)],
              "Normalisation statistics (saved with the run; predict reuses them)")
    cols = ["mpg", "cylinders", "displacement", "weight"]
    train_rows = p.encoded.iloc[np.concatenate([p.train_idx, p.val_idx])]
    rep.figure(figures.pair_plot({c: train_rows[c].to_numpy() for c in cols}), "pairplot",
               "Pair plot of MPG, cylinders, displacement and weight (training cars): heavier, "
               "bigger engines burn more fuel, and the relation is curved, not straight")
    corr = train_rows[["mpg"] + NUMERIC].corr().to_numpy()
    rep.figure(figures.heatmap(corr, ["mpg"] + NUMERIC, ["mpg"] + NUMERIC, cmap="coolwarm",
                               vmin=-1, vmax=1, colorbar_label="Pearson r"), "correlation",
               "Correlation between MPG and the numeric features (training cars)")


def describe_training(cfg: Config, runs, rep) -> None:
    n_params = sum(t.numel() for t in runs[0]["model"].parameters())
    rep.section("Model and training",
                f"Network: {len(FEATURES)} inputs → " + " → ".join(map(str, cfg.hidden)) +
                f" ({cfg.activation}) → 1 output, {n_params:,} parameters. Optimizer {cfg.optimizer}, "
                f"learning rate {cfg.lr:g}, batch {cfg.batch_size}, {cfg.epochs} epochs, mean squared "
                f"error loss; each seed keeps the weights of its epoch with the lowest validation "
                f"loss. {len(runs)} seeds: {', '.join(str(r['seed']) for r in runs)}.")
    panels = {}
    for metric, title in (("mae", "MAE (MPG)"), ("mse", "MSE (MPG²)")):
        series = {}
        for split in ("train", "val"):
            key = f"{split}_{metric}"
            if key not in runs[0]["fit"].history[0]:
                continue
            length = min(len(r["fit"].history) for r in runs)
            values = np.array([[row[key] for row in r["fit"].history[:length]] for r in runs])
            err = values.std(0, ddof=1) if len(runs) > 1 else None
            series[split] = (np.arange(1, length + 1), values.mean(0), err)
        panels[title] = series
    rep.figure(figures.curves(panels, log_y=True), "training_curves",
               "Training and validation error per epoch, mean over seeds (band: ± one std)")
    rep.table([{"seed": r["seed"], "best epoch": r["fit"].best_epoch,
                "epochs run": len(r["fit"].history), "updates": r["fit"].updates,
                "seconds": round(r["fit"].seconds, 2), "val MSE": r["val_loss"],
                "test MAE": r["test"]["mae"], "test MSE": r["test"]["mse"]} for r in runs],
              "Every seed")


def describe_results(runs, linear, linear_pred, chosen, x_test, y_test, metrics, rep) -> None:
    maes = [r["test"]["mae"] for r in runs]
    mses = [r["test"]["mse"] for r in runs]
    rep.section("Results", f"On the {len(y_test)} test cars the network's mean absolute error is "
                f"{mean_std(maes)} MPG over {len(runs)} seeds, against {linear['mae']:.3f} MPG for "
                f"least squares: {100 * metrics['mae_reduction_vs_linear']:.1f} % lower.")
    rep.table([{"model": f"network ({len(runs)} seeds, mean ± std)", "test MAE (MPG)": mean_std(maes),
                "test MSE (MPG²)": mean_std(mses)},
               {"model": "linear regression (least squares)", "test MAE (MPG)": f"{linear['mae']:.3f}",
                "test MSE (MPG²)": f"{linear['mse']:.3f}"}], "Test error")
    pred = forward(chosen["model"], torch.from_numpy(x_test)).cpu().numpy()[:, 0]
    rep.figure(figures.true_vs_predicted(y_test, pred, "MPG"), "true_vs_predicted",
               f"Predicted against true MPG on the test cars (network, seed {chosen['seed']}, "
               "the one predict uses); the dashed line is a perfect prediction")
    rep.figure(figures.histogram(pred - y_test, "prediction error (MPG)"), "error_histogram",
               "Prediction errors of that network on the test cars")
    rep.text(f"predict uses the seed-{chosen['seed']} network (lowest validation loss; test MAE "
             f"{chosen['test']['mae']:.3f} MPG): `mllabs predict RUN_DIR cars.csv`, with columns "
             "cylinders, displacement, horsepower, weight, acceleration, model_year, origin "
             "(1/2/3 or USA/Europe/Japan).")


# ---------------------------------------------------------------------------- predict

def save_for_predict(run_dir: Path, model: nn.Module, cfg: Config, p: Prepared, seed: int) -> None:
    save_checkpoint(run_dir / "checkpoints" / "model.pt", model.state_dict(), seed=seed)
    write_json(run_dir / "preprocess.json", {
        "features": FEATURES, "numeric": NUMERIC, "mean": p.mean.tolist(), "std": p.std.tolist(),
        "origins": ORIGINS, "hidden": list(cfg.hidden), "activation": cfg.activation})


def parse_origin(value, path, row: int) -> str:
    text = str(value).strip().lower()
    names = {str(code): name for code, name in ORIGINS.items()} | {n: n for n in ORIGINS.values()}
    names.update({"1.0": "usa", "2.0": "europe", "3.0": "japan", "us": "usa"})
    if text not in names:
        raise DataError(f"{path}: row {row}, column 'origin' holds {value!r}; use 1/2/3 or "
                        "USA/Europe/Japan")
    return names[text]


def predict(run_dir: Path, inputs: list[Path]) -> list[dict]:
    prep = read_json(Path(run_dir) / "preprocess.json")
    state = load_checkpoint(Path(run_dir) / "checkpoints" / "model.pt")
    model = build_model(prep["hidden"], prep["activation"])
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as exc:
        raise DataError(f"{run_dir}/checkpoints/model.pt does not fit this lab's network "
                        f"({str(exc).splitlines()[0]}); re-run `mllabs run auto-mpg`") from None
    mean, std = np.array(prep["mean"]), np.array(prep["std"])
    results = []
    for path in inputs:
        frame = read_csv(path, required=prep["numeric"] + ["origin"], rename_snake=True)
        for column in prep["numeric"]:
            frame[column] = numeric_column(frame[column], path, column)
        origins = [parse_origin(v, path, i + 2) for i, v in enumerate(frame["origin"])]
        for name in ORIGINS.values():
            frame[f"origin_{name}"] = [float(o == name) for o in origins]
        x = ((frame[prep["features"]].to_numpy(float) - mean) / std).astype(np.float32)
        mpg = forward(model, torch.from_numpy(x)).numpy()[:, 0]
        for i, value in enumerate(mpg):
            label = f"{path}:{i + 2}"
            if "car_name" in frame.columns:
                label += f" ({frame['car_name'].iloc[i]})"
            results.append({"input": label, "prediction": round(float(value), 3)})
    return results
