"""Example: the smallest complete lab, the template for "Adding a lab" in docs/architecture.md.

A line through noisy points, learned by one linear neuron. It has everything a lab needs (a
config with profiles, data checked before the run exists, training through ctx.fit, a report
with a table and a figure, what predict needs saved once, predict on the user's CSV) and
nothing else. tests/test_labs_contract.py registers it and runs it end to end through the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from mllabs import checkpoints
from mllabs.config import TrainConfig, option
from mllabs.data.tabular import read_csv
from mllabs.errors import DataError
from mllabs.train import evaluate, predict as forward

NAME = "example-line"
TITLE = "A line through noisy points"
SUMMARY = "One linear neuron learns y = 3x + 1 from 200 noisy points; the report shows the fit."
SUMMARY_LINE = "y = 3x + 1 from noisy points: the template lab"


@dataclass
class Config(TrainConfig):
    points: int = option(200, "noisy points to learn from", min=10)
    noise: float = option(0.5, "standard deviation of the noise on y", min=0.0)


PROFILES = {"quick": {"epochs": 5}, "default": {"epochs": 60, "lr": 0.05}, "full": {"epochs": 200}}
HEADLINE = "mse"  # the metric runs/index.html shows
TRY_NEXT = [("--set noise=2", "four times the noise: how far is the learned line off now?")]


def headline(metrics: dict) -> str:  # the report's first sentence
    return f"Learned y = {metrics['slope']:.2f}x + {metrics['intercept']:.2f} (true: 3x + 1), MSE {metrics['mse']:.3f}."


def networks(cfg: Config) -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    return {"neuron": (nn.Linear(1, 1), (1,))}


def prepare(cfg: Config, data_dir: Path | None) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(cfg.seed)  # the "dataset": made, so nothing can be malformed
    x = rng.uniform(-2, 2, (cfg.points, 1)).astype(np.float32)
    y = (3 * x + 1 + rng.normal(0, cfg.noise, x.shape)).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(y)


def run(cfg: Config, data, ctx) -> tuple[str, dict]:
    x, y = data
    model = networks(cfg)["neuron"][0]
    result = ctx.fit(model, (x, y), cfg, loss_fn=nn.functional.mse_loss, label="neuron")
    ctx.run.write_history(result.history)
    w, b = model.weight.item(), model.bias.item()
    mse = evaluate(model, x, y, nn.functional.mse_loss)["loss"]
    ctx.report.section("The fit", f"Learned y = {w:.3f}x + {b:.3f} (true: 3x + 1), MSE {mse:.3f}.")
    ctx.report.table([{"": "learned", "slope": w, "intercept": b}, {"": "true", "slope": 3, "intercept": 1}],
                     "Slope and intercept")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.scatter(x[:, 0], y[:, 0], s=6, alpha=0.5)
    ax.plot([-2, 2], [b - 2 * w, b + 2 * w], color="C1")
    ctx.report.figure(fig, "fit", "The points and the learned line", key=True,
                      conclusion=f"The line runs through the middle of the points (slope {w:.2f}).")
    checkpoints.save_for_predict(ctx.run.path, NAME, {}, {"model": model.state_dict()})
    return result.status, {"slope": w, "intercept": b, "mse": mse}


def predict(run_dir: Path, inputs: list[Path]) -> list[dict]:
    spec = checkpoints.load_spec(run_dir, NAME)
    model = checkpoints.load_model(run_dir, spec, lambda s: nn.Linear(1, 1))
    rows = []
    for path in inputs:
        frame = read_csv(path)
        if "x" not in frame.columns:
            raise DataError(f"{path} has no column 'x'; give one value of x per row")
        ys = forward(model, torch.tensor(frame["x"].to_numpy(np.float32))[:, None])[:, 0]
        rows += [{"input": f"{path}:{i + 2}", "prediction": round(float(v), 4)} for i, v in enumerate(ys)]
    return rows
