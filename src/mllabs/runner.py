"""The run engine: one lab, end to end, into its run directory.

execute() builds the config, lets the lab load its data (bad input fails before anything is
written), opens the run directory, runs the lab with a RunContext, and ends every run the same
way whatever happened: metrics.json with its status, report.json/md/html, the runs index and the
run database. Ctrl-C, SIGTERM and the --max-seconds budget end a run `interrupted`, resumable
with --resume; under torchrun (--nproc N) only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import copy
import re
import shlex
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import torch

from mllabs import distributed, hardware, rundb, trackers
from mllabs.config import build_config, config_from_dict, config_to_dict, parse_sets
from mllabs.errors import UserError, WriteError
from mllabs.files import read_json
from mllabs.labs import LABS, get_lab
from mllabs.report import Report, render_run, write_index
from mllabs.runs import Run, environment
from mllabs.session import OutOfTime, Session
from mllabs.train import (FitResult, ProgressLine, fit, resolve_device, resolve_precision,
                          seed_everything)


@dataclass
class RunContext:
    """What a lab's run() gets besides its config and data: where to write, what to report, and
    `fit`, the training loop with this run's device, precision, progress and session filled in."""

    run: Run
    report: Report
    device: torch.device
    progress: bool = True
    autocast: torch.dtype | None = None   # from the config's `precision`, where a lab has one
    session: Session = field(default_factory=Session)
    line: ProgressLine = field(default_factory=ProgressLine)  # "[lab i/N]" and the lab's start
    # the user's own nn.Module, or a function making one (mllabs.run(..., model=...)): see network()
    user_network: object = None
    user_networks: list = field(default_factory=list)   # each one network() handed out

    def network(self, model):
        """The network a lab is about to train: `model`, the lab's own, unless the user gave one
        of theirs. Their module itself the first time; each later time (another seed or setting)
        a copy whose layers draw fresh weights (reset_parameters), or a new module from their
        function, so every network starts the way the lab's own would."""
        given = self.user_network
        if given is None:
            return model
        if not isinstance(given, torch.nn.Module):
            made = given()
            if not isinstance(made, torch.nn.Module):
                raise UserError(f"model= gave a {type(made).__name__}, not a torch.nn.Module; pass "
                                "a module or a function that returns one")
        elif not self.user_networks:
            made = given
        else:
            made = copy.deepcopy(given)
            for layer in made.modules():
                if callable(getattr(layer, "reset_parameters", None)):
                    layer.reset_parameters()
        self.user_networks.append(made)
        return made

    def log(self, message: str) -> None:
        if self.progress:
            print(f"{self.line.tag or f'[{self.run.lab}]'} {message}", file=sys.stderr, flush=True)

    def fit(self, model, train, cfg, *, progress: bool = True, **options) -> FitResult:
        """train.fit() for this run: `progress=False` quietens one call (a lab training many)."""
        return fit(model, train, cfg, device=self.device, autocast=self.autocast,
                   progress=self.line if self.progress and progress else False,
                   session=self.session, **options)


def execute(name: str, *, profile: str | None = None, sets: list[str] | None = None,
            seed: int | None = None, device: str | None = None, out: Path = Path("runs"),
            data_dir: Path | None = None, progress: bool = True, command: str = "",
            resume: Path | None = None, max_seconds: float | None = None,
            log: list[str] | None = None, index: bool = True, sweep: str | None = None,
            scratch_rank: bool = False, position: tuple[int, int] | None = None,
            network=None) -> dict:
    """Run one lab end to end; returns metrics.json's object plus run_dir.

    With `resume`, the lab runs again top to bottom in that run directory with its saved config,
    and every fit() picks up its saved state (see session.py). With `max_seconds`, training stops
    at the first epoch boundary where the budget is spent and the run ends interrupted, its
    report written, resumable. `log` names trackers (tensorboard, mlflow) that get a copy of the
    finished run. `index=False` keeps the run out of runs/mllabs.db; `sweep` is the id of the
    sweep the run is a cell of; `position` (i, n) numbers the lab in `run all`'s progress lines.
    `network` is the user's own nn.Module (or a function making one) that the lab trains in
    place of its own (RunContext.network; mllabs.run's `model=`). A completed run's result also
    holds `headline` (the results box's sentence) and `predict_command` (a predict that works as
    printed, on the example input the lab wrote)."""
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
    run = _open_run(out, name, profile, cfg, torch_device, command, resume, sweep)
    record = (lambda r, quiet=False: _index(r, sweep, quiet)) if index else (lambda r, quiet=False: None)
    record(run)  # the run is findable (as running) from its first second
    if index:
        # runs/index.html lists it as running meanwhile; the page is a convenience, so a full disk
        # here is left to the run's own writes, which end it with the one-line error
        with contextlib.suppress(OSError):
            write_index(run.path.parent.parent)
    seed_everything(cfg.seed)
    ctx = RunContext(run, Report(run, lab.TITLE, lab.SUMMARY), torch_device, progress,
                     resolve_precision(getattr(cfg, "precision", "fp32"), torch_device),
                     Session(state_dir=run.checkpoints / "state", root=run.path,
                             max_seconds=max_seconds),
                     ProgressLine(f"[{name} {position[0]}/{position[1]}]" if position else f"[{name}]"),
                     network)
    if network is not None:
        _note_user_network(run, network)
    # what the run's speed depends on (AVX-512, native bfloat16, a GPU), said before any waiting
    ctx.log(f"profile {profile}, device {torch_device} ({hardware.describe()}), "
            f"{'resuming' if resume is not None else 'writing'} {run.path}")
    try:
        result = {**_run_lab(lab, cfg, data, ctx, command, record), "run_dir": str(run.path)}
    except WriteError as exc:
        _unwritable(run, exc, record, resumed=resume is not None)
        raise
    if result["status"] == "interrupted":  # out of time: resumable, nothing more to do
        return result
    if result["status"] in ("completed", "diverged"):  # a finished run has nothing to resume
        shutil.rmtree(run.checkpoints / "state", ignore_errors=True)
    distributed.finish()
    for line in trackers.export(run.path, trackers_wanted):
        ctx.log(line)
    return result


def _open_run(out: Path, name: str, profile: str, cfg, device: torch.device, command: str,
              resume: Path | None, sweep: str | None = None) -> Run:
    """A new run directory with config.json and env.json, or the one being resumed (its env.json
    gains a line saying when, where and how it was resumed). A sweep's cell keeps the sweep's id
    in env.json, so `runs reindex` can tag it again after the database is lost."""
    if resume is None:
        run = Run.create(out, name)
        try:
            run.write_json("config.json", {"lab": name, "profile": profile, **config_to_dict(cfg)})
            run.write_json("env.json", {**environment(cfg.seed, str(device), command),
                                        **({"sweep": sweep} if sweep else {})})
        except WriteError:
            shutil.rmtree(run.path, ignore_errors=True)  # nothing in it yet worth keeping
            raise
        return run
    run = Run.open(resume)
    env = read_json(run.path / "env.json")
    env.setdefault("resumed", []).append({"command": command, "device": str(device),
                                          "at": time.strftime("%Y-%m-%d %H:%M:%S")})
    run.write_json("env.json", env)
    return run


def _run_lab(lab: ModuleType, cfg, data, ctx: RunContext, command: str, record) -> dict:
    """lab.run() inside the run's session; every way out ends with metrics.json and a report."""
    run, started = ctx.run, time.time()

    def finish(status: str, metrics: dict, **extra) -> dict:
        result = run.write_metrics(status, metrics, **extra)
        if status == "completed":
            result.update(_ending(lab, data, ctx, metrics))
        ctx.report.save(command)
        render_run(run.path)
        write_index(run.path.parent.parent)
        record(run)
        return result

    with _sigterm_as_interrupt():
        try:
            status, metrics = lab.run(cfg, data, ctx)
            if ctx.user_networks:
                _mark_user_network(run.path, ctx.user_networks[0])
            if hasattr(lab, "networks"):
                network_section(ctx.report, lab_networks(lab, cfg, ctx.user_networks[:1]),
                                {} if ctx.user_networks else layer_names(lab, cfg))
        except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM or the time budget
            reason = str(exc) or "Ctrl-C"
            _interrupted(ctx, lab.NAME, reason, started)
            result = finish("interrupted", {}, reason=reason)
            if isinstance(exc, OutOfTime):  # the run ended as asked: `run all` goes on
                return result
            print(f"[{lab.NAME}] interrupted ({reason}); resume with: mllabs run {lab.NAME} "
                  f"--resume {run.path}", file=sys.stderr, flush=True)
            raise
        except WriteError:
            raise  # a full disk: no report rendering; execute() marks the run failed if it can
        except UserError:
            finish("failed", {})
            raise
        except Exception as exc:
            finish("failed", {"error": f"{type(exc).__name__}: {exc}"})
            raise
    return finish(status, metrics)


def _ending(lab: ModuleType, data, ctx: RunContext, metrics: dict) -> dict:
    """What a completed run's report opens and ends with, from what the lab declares: the
    headline sentence (results box), the metric the runs index shows, a predict command on an
    example input written into the run directory, and the lab's "try next" commands."""
    doc, out = ctx.report.doc, {}
    if hasattr(lab, "headline"):
        doc["headline"] = out["headline"] = lab.headline(metrics)
    key = f"figures/{getattr(lab, 'KEY_FIGURE', '')}.png"
    if "key_figure" not in doc and any(b.get("file") == key for s in doc["sections"] for b in s["blocks"]):
        doc["key_figure"] = key
    if getattr(lab, "HEADLINE", None):
        doc["headline_metric"] = lab.HEADLINE
    if hasattr(lab, "example_input"):
        args = lab.example_input(data, ctx.run.path)
        doc["predict_command"] = out["predict_command"] = "mllabs predict " + shlex.join(
            [str(ctx.run.path), *map(str, args)])
    if getattr(lab, "TRY_NEXT", None):
        ctx.report.try_next([(f"mllabs run {lab.NAME} {sets}", why) for sets, why in lab.TRY_NEXT])
    return out


def plain(text: str) -> str:
    """Report Markdown (`code`, **bold**) as terminal text."""
    return re.sub(r"\*\*(.+?)\*\*|`([^`]+)`", lambda m: m.group(1) or m.group(2), text)


def _note_user_network(run: Run, network) -> None:
    """env.json says the run trained the user's own network, which its command cannot rebuild."""
    env = read_json(run.path / "env.json")
    env["network"] = (f"the user's own {_network_name(network)}, in place of the lab's; the "
                      "command alone does not reproduce this run")
    run.write_json("env.json", env)


def _network_name(network) -> str:
    return type(network).__name__ if isinstance(network, torch.nn.Module) else \
        f"{getattr(network, '__name__', type(network).__name__)}()"


def _mark_user_network(run_dir: Path, module) -> None:
    """predict.json names the user's network, so that predict without it says what to pass
    rather than failing to fit the lab's own network to its weights."""
    from mllabs.checkpoints import SPEC
    from mllabs.files import write_json

    path = run_dir / SPEC
    if path.exists():
        write_json(path, {**read_json(path), "user_network": type(module).__name__})


def _helper_rank(name, profile, sets, seed, device, data_dir, command, max_seconds) -> dict:
    """Ranks above 0 run the same lab into a throwaway folder, kept out of the database: their
    fit() calls take part in every all-reduce, and what they would write is thrown away."""
    scratch = Path(tempfile.mkdtemp(prefix=f"mllabs-rank{distributed.rank()}-"))
    try:
        return execute(name, profile=profile, sets=sets, seed=seed, device=device, out=scratch,
                       data_dir=data_dir, progress=False, command=command, max_seconds=max_seconds,
                       index=False, scratch_rank=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _unwritable(run: Run, exc: WriteError, record, resumed: bool) -> None:
    """A write failed for want of space or permission. The run is marked failed if metrics.json
    can still be written; a new run that cannot even have that and holds nothing worth keeping
    (no training state, no history) is removed with its row. The caller re-raises `exc`, the
    one line naming the path and what to do, so nothing here may print."""
    try:
        run.write_metrics("failed", {"error": str(exc)})
    except OSError:
        # the figures and pages are drawn again from the run by `mllabs report`: give their room
        # to metrics.json, which says what happened to the run
        shutil.rmtree(run.path / "figures", ignore_errors=True)
        for page in ("report.html", "report.md"):
            (run.path / page).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            run.write_metrics("failed", {"error": str(exc)})
            record(run, quiet=True)
            return
        kept = [p for p in run.path.rglob("*") if p.is_file() and not p.name.endswith(".tmp")
                and p.name not in ("config.json", "env.json")]
        if not resumed and not kept:
            shutil.rmtree(run.path, ignore_errors=True)
            with contextlib.suppress(sqlite3.Error, OSError):
                rundb.forget(run.path.parent.parent, run.path.name)
            return
    record(run, quiet=True)


def _index(run: Run, sweep: str | None, quiet: bool = False) -> None:
    """Record the run in runs/mllabs.db; the database is an index, so a failure only warns."""
    try:
        rundb.record(run.path.parent.parent, run.path, sweep)
    except (sqlite3.Error, OSError) as exc:
        if quiet:
            return
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


def _interrupted(ctx: RunContext, name: str, reason: str, started: float) -> None:
    """What an interrupted run leaves: the epochs trained so far (unless the lab wrote its own
    history.csv in this session) and a report section saying where it stopped and how to go on."""
    run, sess = ctx.run, ctx.session
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


def lab_networks(lab: ModuleType, cfg, replaced: list | None = None
                 ) -> list[tuple[str, tuple[int, ...], list[dict]]]:
    """(name, input shape, summary rows) for each network the lab trains; with `replaced` (the
    user's module, in a lab that trains one network), that module's rows at the lab's input."""
    from mllabs.models import summary

    if not hasattr(lab, "networks"):
        with_one = [n for n in LABS if hasattr(get_lab(n), "networks")]
        raise UserError(f"{lab.NAME} has no neural network to summarise; labs with one: "
                        f"{', '.join(with_one)}")
    # building a network draws its initial weights; keep the lab's random stream untouched
    with torch.random.fork_rng(devices=[]):
        built = lab.networks(cfg)
        if replaced:
            (name, (_, shape)), = built.items()  # the labs that take the user's network have one
            built = {f"{type(replaced[0]).__name__} (yours, in place of {name})":
                     (copy.deepcopy(replaced[0]).cpu(), shape)}
        return [(name, tuple(shape), summary(model, tuple(shape)))
                for name, (model, shape) in built.items()]


# The counting conventions, sentence by sentence, each said only where such a layer exists
# (the whole paragraph is models.ops.CONVENTIONS, which `mllabs summary` and `mllabs ops` print).
_CONVENTION_PARTS = [
    ((), "Counts are per sample at inference."),
    (("Conv1d", "Conv2d", "Conv3d"), "A convolution output element costs C_in/groups·k_h·k_w "
     "multiplications and one addition fewer to sum them, plus one for the bias."),
    (("Linear",), "A linear layer's output element costs in_features multiplications and as many "
     "additions (in_features − 1 to sum them, one for the bias)."),
    (("BatchNorm1d", "BatchNorm2d"), "Batch norm: 1 × and 1 + per element (scale and shift folded)."),
    (("ReLU", "ReLU6"), "ReLU: 1 comparison per element (ReLU6: 2)."),
    (("MaxPool2d", "MaxPool1d"), "Max pooling: window − 1 comparisons per output."),
    (("AvgPool2d", "AdaptiveAvgPool2d"), "Average pooling: window − 1 additions and 1 × per output."),
    (("add",), "Residual blocks add 1 addition per output element for the shortcut."),
    (("Sigmoid", "Tanh", "GELU", "Softmax", "SiLU", "Hardswish"),
     "Sigmoid, tanh, GELU and softmax are not counted."),
]


def conventions(types: set[str]) -> str:
    """The counting conventions that apply to networks made of these layer types."""
    return " ".join(text for kinds, text in _CONVENTION_PARTS
                    if not kinds or any(k in types for k in kinds))


def layer_names(lab: ModuleType, cfg) -> dict[str, dict[str, str]]:
    """The handout's layer names a lab declares: `layer_names(cfg)` where they depend on the
    config (an MLP's hidden layers), else the fixed `LAYER_NAMES`."""
    return lab.layer_names(cfg) if hasattr(lab, "layer_names") else getattr(lab, "LAYER_NAMES", {})


def network_section(report: Report, tables, names: dict[str, dict[str, str]] | None = None) -> None:
    """The same layer table in every report: one per network, counted per sample. `names` maps a
    network's layers to the handout's names (LeNet-5's C1…F6); a Flatten of an input that is
    flat already (an MLP's first layer) is left out, since it does nothing."""
    names = names or {}
    kept = []
    for name, shape, rows in tables:
        rows = [r for r in rows if not (r["type"] == "Flatten" and len(shape) == 1)]
        if name in names:
            rows = [{"handout": names[name].get(r["layer"], ""), **r} for r in rows]
        kept.append((name, shape, rows))
    types = {r["type"] for _, _, rows in kept for r in rows} | {
        "add" for _, _, rows in kept for r in rows if str(r["layer"]).endswith(".add")}
    report.section("The network, layer by layer", conventions(types))
    for name, shape, rows in kept:
        report.table(rows, f"{name}: input {'×'.join(map(str, shape))} per sample; output "
                     "shape, parameters and operation counts per layer, totals in the last row")
