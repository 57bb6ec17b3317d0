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

import contextlib
import importlib
import os
import shutil
import signal
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

from mllabs import distributed, rundb, trackers
from mllabs.config import build_config, config_from_dict, config_to_dict, parse_sets
from mllabs.errors import UserError
from mllabs.report import Report, render_run, write_index
from mllabs.runs import Run, environment, read_json
from mllabs.train import OutOfTime, resolve_device, seed_everything, session

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


def execute(name: str, *, profile: str | None = None, sets: list[str] | None = None,
            seed: int | None = None, device: str | None = None, out: Path = Path("runs"),
            data_dir: Path | None = None, progress: bool = True, command: str = "",
            resume: Path | None = None, max_seconds: float | None = None,
            log: list[str] | None = None, scratch_rank: bool = False) -> dict:
    """Run one lab end to end; returns metrics.json's object plus run_dir.

    With `resume`, the lab runs again top to bottom in that run directory with its saved config,
    and every fit() picks up its saved state (see train.Session). With `max_seconds`, training
    stops at the first epoch boundary where the budget is spent and the run ends interrupted,
    its report written, resumable. `log` names trackers (tensorboard, mlflow) that get a copy
    of the finished run. Started by torchrun (`--nproc N`), every process trains its share and
    only rank 0 writes the run directory."""
    lab = get_lab(name)
    trackers_wanted = trackers.parse_trackers(log)
    if resume is not None:
        cfg, profile = resumed_config(lab, name, Path(resume), profile, sets, seed, device)
    else:
        profile = profile or "default"
        cfg = build_config(lab.Config, lab.PROFILES, profile, sets, seed=seed, device=device)
    torch_device = resolve_device(cfg.device)
    data = lab.prepare(cfg, data_dir)  # bad input fails here, before anything is written
    if distributed.init(torch_device):
        if resume is not None:
            raise UserError("--resume with --nproc is not supported; resume in one process")
        if distributed.rank() != 0 and not scratch_rank:  # trains its share, keeps nothing
            return _helper_rank(name, profile, sets, seed, device, data_dir, command, max_seconds)

    command = command or f"mllabs run {name} --profile {profile} --seed {cfg.seed}"
    if resume is None:
        run = Run.create(out, name)
        run.write_json("config.json", {"lab": name, "profile": profile, **config_to_dict(cfg)})
        run.write_json("env.json", environment(cfg.seed, str(torch_device), command))
    else:
        run = Run.open(resume)
        env = read_json(run.path / "env.json")
        env.setdefault("resumed", []).append({"command": command, "device": str(torch_device),
                                              "at": time.strftime("%Y-%m-%d %H:%M:%S")})
        run.write_json("env.json", env)
    _index(run)  # the run is findable (as running) from its first second
    seed_everything(cfg.seed)
    ctx = RunContext(run, Report(run, lab.TITLE, lab.SUMMARY), torch_device, progress)
    ctx.log(f"profile {profile}, device {torch_device}, "
            f"{'resuming' if resume is not None else 'writing'} {run.path}")
    started = time.time()
    with _sigterm_as_interrupt(), session(state_dir=run.checkpoints / "state", root=run.path,
                                          max_seconds=max_seconds) as sess:
        try:
            status, metrics = lab.run(cfg, data, ctx)
            if hasattr(lab, "networks"):
                network_section(ctx.report, lab_networks(lab, cfg))
        except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM or the time budget
            reason = str(exc) or "Ctrl-C"
            _interrupted(run, ctx, sess, name, reason, started)
            result = _finish(run, ctx.report, "interrupted", {}, command, reason=reason)
            if isinstance(exc, OutOfTime):  # the run ended as asked: `run all` goes on
                return {**result, "run_dir": str(run.path)}
            print(f"[{name}] interrupted ({reason}); resume with: mllabs run {name} --resume "
                  f"{run.path}", file=sys.stderr, flush=True)
            raise
        except UserError:
            _finish(run, ctx.report, "failed", {}, command)
            raise
        except Exception as exc:
            _finish(run, ctx.report, "failed", {"error": f"{type(exc).__name__}: {exc}"}, command)
            raise
    result = _finish(run, ctx.report, status, metrics, command)
    if status in ("completed", "diverged"):  # a finished run has nothing left to resume
        shutil.rmtree(run.checkpoints / "state", ignore_errors=True)
    distributed.finish()
    for line in trackers.export(run.path, trackers_wanted):
        ctx.log(line)
    return {**result, "run_dir": str(run.path)}


def _helper_rank(name, profile, sets, seed, device, data_dir, command, max_seconds) -> dict:
    """Ranks above 0 run the same lab into a throwaway folder: their fit() calls take part in
    every all-reduce, and what they would write is thrown away."""
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix=f"mllabs-rank{distributed.rank()}-"))
    try:
        os.environ["MLLABS_NO_INDEX"] = "1"
        return execute(name, profile=profile, sets=sets, seed=seed, device=device, out=scratch,
                       data_dir=data_dir, progress=False, command=command, max_seconds=max_seconds,
                       scratch_rank=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _index(run: Run) -> None:
    """Record the run in runs/mllabs.db; the database is an index, so a failure only warns."""
    if os.environ.get("MLLABS_NO_INDEX"):
        return
    try:
        rundb.record(run.path.parent.parent, run.path)
    except (sqlite3.Error, OSError) as exc:
        print(f"[{run.lab}] warning: could not record the run in {rundb.DB_NAME} ({exc}); "
              "`mllabs runs reindex` adds it later", file=sys.stderr, flush=True)


def resumed_config(lab: ModuleType, name: str, run_dir: Path, profile: str | None,
                   sets: list[str] | None, seed: int | None, device: str | None):
    """The saved config of the run to resume; options that would change it are refused, since
    the resumed run must replay the interrupted one exactly."""
    saved = read_json(run_dir / "config.json")
    if saved.get("lab") != name:
        raise UserError(f"{run_dir} is a run of {saved.get('lab')!r}, not {name!r}; resume it with "
                        f"`mllabs run {saved.get('lab')} --resume {run_dir}`")
    if (run_dir / "metrics.json").exists():
        status = read_json(run_dir / "metrics.json").get("status")
        if status in ("completed", "diverged"):
            raise UserError(f"{run_dir} already ended {status}; there is nothing to resume (run the "
                            "lab without --resume for a new run)")
    cfg = config_from_dict(lab.Config, saved)
    given = parse_sets(lab.Config, sets or [])
    given.update({k: v for k, v in (("seed", seed), ("device", device)) if v is not None})
    differ = [f"{k}={v!r} (the run has {getattr(cfg, k)!r})" for k, v in given.items()
              if v != getattr(cfg, k)]
    if profile is not None and profile != saved.get("profile"):
        differ.insert(0, f"--profile {profile} (the run has {saved.get('profile')})")
    if differ:
        raise UserError(f"--resume continues {run_dir} with its saved config, and "
                        f"{'; '.join(differ)} would change it: leave those options out, or start a "
                        "new run without --resume")
    return cfg, saved.get("profile", "default")


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (`kill`, a job scheduler's stop) ends a run the way Ctrl-C does: the last complete
    epoch's state, the history and a report marked interrupted stay on disk."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def stop(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted(run: Run, ctx: RunContext, sess, name: str, reason: str, started: float) -> None:
    """What an interrupted run leaves: the epochs trained so far (unless the lab wrote its own
    history.csv in this session) and a report section saying where it stopped and how to go on."""
    history = run.path / "history.csv"
    if not history.exists() or history.stat().st_mtime < started:
        rows = [{"network": label, **row} for label, rows in sess.histories for row in rows]
        if rows:
            run.write_history(rows)
    where = f" {sess.where}" if sess.where else ""
    ctx.report.section("Interrupted", (
        f"The run stopped ({reason}){where}. The state of every network's last complete epoch is "
        f"in `checkpoints/state/` and history.csv holds the epochs trained so far. "
        f"`mllabs run {name} --resume {run.path}` continues from there and ends with the same "
        "results as a run that was never interrupted."))


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


def _finish(run: Run, report: Report, status: str, metrics: dict, command: str, **extra) -> dict:
    result = run.write_metrics(status, metrics, **extra)
    report.save(command)
    render_run(run.path)
    write_index(run.path.parent.parent)
    _index(run)
    return result


def labs_summary() -> list[tuple[str, str]]:
    return [(name, get_lab(name).SUMMARY_LINE) for name in LABS]
