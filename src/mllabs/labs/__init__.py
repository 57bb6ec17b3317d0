"""The labs, and the mechanics every lab run shares.

A lab module defines NAME, TITLE, SUMMARY, a Config dataclass with PROFILES, and
  prepare(cfg, data_dir) -> data       load and check inputs (before any run directory exists)
  run(cfg, data, ctx) -> (status, metrics)   train, evaluate, fill ctx.report
  predict(run_dir, inputs) -> list[dict]     {"input", "prediction"[, "top"]} per input
and, if it trains neural networks,
  networks(cfg) -> {name: (model, input_shape)}   freshly built, input shape of one sample;
                                                  every report then ends with their layer tables
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

from mllabs.config import build_config, config_to_dict
from mllabs.errors import UserError
from mllabs.report import Report, render_run, write_index
from mllabs.runs import Run, environment
from mllabs.train import resolve_device, seed_everything

LABS = {
    "auto-mpg": "mllabs.labs.auto_mpg",
    "mnist-lenet": "mllabs.labs.mnist_lenet",
    "mnist-cnn": "mllabs.labs.mnist_cnn",
    "mnist-optimizers": "mllabs.labs.mnist_optimizers",
    "mnist-best": "mllabs.labs.mnist_best",
    "bike-sharing": "mllabs.labs.bike_sharing",
    "car-clustering": "mllabs.labs.car_clustering",
    "boston-housing": "mllabs.labs.boston_housing",
    "flowers": "mllabs.labs.flowers",
    "activations": "mllabs.labs.activations",
    "regularization": "mllabs.labs.regularization",
    "eye-screening": "mllabs.labs.eye_screening",
}


def get_lab(name: str) -> ModuleType:
    if name not in LABS:
        raise UserError(f"unknown lab {name!r}; available: {', '.join(LABS)} (see `mllabs list`)")
    return importlib.import_module(LABS[name])


@dataclass
class RunContext:
    """What a lab's run() gets besides its config and data."""

    run: Run
    report: Report
    device: torch.device
    progress: bool = True

    def log(self, message: str) -> None:
        if self.progress:
            print(f"[{self.run.lab}] {message}", file=sys.stderr, flush=True)


def execute(name: str, *, profile: str = "default", sets: list[str] | None = None,
            seed: int | None = None, device: str | None = None, out: Path = Path("runs"),
            data_dir: Path | None = None, progress: bool = True, command: str = "") -> dict:
    """Run one lab end to end; returns metrics.json's object plus run_dir."""
    lab = get_lab(name)
    cfg = build_config(lab.Config, lab.PROFILES, profile, sets, seed=seed, device=device)
    torch_device = resolve_device(cfg.device)
    data = lab.prepare(cfg, data_dir)  # bad input fails here, before anything is written

    run = Run.create(out, name)
    saved = {"lab": name, "profile": profile, **config_to_dict(cfg)}
    run.write_json("config.json", saved)
    command = command or f"mllabs run {name} --profile {profile} --seed {cfg.seed}"
    run.write_json("env.json", environment(cfg.seed, str(torch_device), command))
    seed_everything(cfg.seed)
    ctx = RunContext(run, Report(run, lab.TITLE, lab.SUMMARY), torch_device, progress)
    ctx.log(f"profile {profile}, device {torch_device}, writing {run.path}")
    try:
        status, metrics = lab.run(cfg, data, ctx)
        if hasattr(lab, "networks"):
            network_section(ctx.report, lab_networks(lab, cfg))
    except KeyboardInterrupt:
        _finish(run, ctx.report, "interrupted", {}, command)
        raise
    except UserError:
        _finish(run, ctx.report, "failed", {}, command)
        raise
    except Exception as exc:
        _finish(run, ctx.report, "failed", {"error": f"{type(exc).__name__}: {exc}"}, command)
        raise
    result = _finish(run, ctx.report, status, metrics, command)
    return {**result, "run_dir": str(run.path)}


def lab_networks(lab: ModuleType, cfg) -> list[tuple[str, tuple[int, ...], list[dict]]]:
    """(name, input shape, summary rows) for each network the lab trains."""
    from mllabs.models import summary

    if not hasattr(lab, "networks"):
        with_one = [n for n in LABS if hasattr(get_lab(n), "networks")]
        raise UserError(f"{lab.NAME} has no neural network to summarise; labs with one: "
                        f"{', '.join(with_one)}")
    # building a network draws its initial weights; keep the lab's random stream untouched
    with torch.random.fork_rng(devices=[]):
        return [(name, tuple(shape), summary(model, tuple(shape)))
                for name, (model, shape) in lab.networks(cfg).items()]


def network_section(report: Report, tables) -> None:
    """The same layer table in every report: one per network, counted per sample."""
    from mllabs.models.ops import CONVENTIONS

    report.section("The network, layer by layer", CONVENTIONS)
    for name, shape, rows in tables:
        report.table(rows, f"{name}: input {'×'.join(map(str, shape))} per sample; output "
                     "shape, parameters and operation counts per layer, totals in the last row")


def _finish(run: Run, report: Report, status: str, metrics: dict, command: str) -> dict:
    result = run.write_metrics(status, metrics)
    report.save(command)
    render_run(run.path)
    write_index(run.path.parent.parent)
    return result


def labs_summary() -> list[tuple[str, str]]:
    return [(name, get_lab(name).SUMMARY_LINE) for name in LABS]
