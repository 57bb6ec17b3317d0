"""Sweeps and comparisons: every cell of a grid × seeds as its own run, then one report.

Each cell is an ordinary `mllabs run` in a worker process (so a cell that crashes or diverges
cannot take the others down, and each gets its own threads), recorded in the run database
with the sweep's id. The sweep's id is a digest of what it asks for, so running the same sweep
again finds the cells that already finished and runs only the rest: an interrupted sweep
resumes. `compare` builds the same report from runs chosen by hand (of one lab).

Before any cell runs, a --grid key the lab never reads (its UNUSED_KEYS: mnist-optimizers sets
`optimizer` and `lr` per network itself) is refused, and --metric is checked against the lab's
finished runs in the folder, or on the first cell, run alone, when there are none.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mllabs import rundb
from mllabs.config import build_config, field_specs, parse_sets
from mllabs.errors import UserError
from mllabs.files import write_json
from mllabs.runs import Run, environment

FINISHED = ("completed", "diverged")  # a diverged cell is a result, not something to retry
HIGHER_IS_BETTER = ("accuracy", "r2", "silhouette", "auc", "sensitivity", "specificity", "f1",
                    "reduction")  # auto-mpg's mae_reduction_vs_linear: the larger the cut, the better


# ---------------------------------------------------------------------------- the grid

def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """--grid KEY=V1,V2,... (values of a list-valued key separated by '/': hidden=64,64/128,128)."""
    grid: dict[str, list[str]] = {}
    for item in items or []:
        key, sep, values = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key or not values.strip():
            raise UserError(f"--grid {item!r}: write KEY=V1,V2,... e.g. --grid lr=0.1,0.01")
        if key in ("seed", "seeds"):
            raise UserError("--grid seed=...: use --seeds N (seeds seed, seed+1, ...) instead")
        parts = [p.strip() for p in (values.split("/") if "/" in values else values.split(","))]
        if not all(parts):
            raise UserError(f"--grid {item!r} has an empty value; remove the extra separator")
        if key in grid:
            raise UserError(f"--grid {key} is given twice; put all its values in one --grid")
        grid[key] = list(dict.fromkeys(parts))
    if not grid:
        raise UserError("a sweep needs at least one --grid KEY=V1,V2,...")
    return grid


@dataclass(frozen=True)
class Cell:
    params: tuple[tuple[str, str], ...]
    seed: int

    @property
    def key(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.params)

    @property
    def label(self) -> str:
        return f"{self.key} seed={self.seed}"


def expand(grid: dict[str, list[str]], seeds: int, base_seed: int = 0) -> list[Cell]:
    keys = list(grid)
    return [Cell(tuple(zip(keys, values)), base_seed + s)
            for values in itertools.product(*(grid[k] for k in keys)) for s in range(seeds)]


@dataclass
class Spec:
    lab: str
    grid: dict[str, list[str]]
    seeds: int = 1
    seed: int = 0
    profile: str = "default"
    sets: list[str] = field(default_factory=list)
    data_dir: str | None = None
    device: str | None = None

    @property
    def id(self) -> str:
        """The same sweep asked for again gets the same id, which is how it resumes."""
        what = json.dumps({"lab": self.lab, "grid": self.grid, "seeds": self.seeds, "seed": self.seed,
                           "profile": self.profile, "sets": sorted(self.sets)}, sort_keys=True)
        return f"{self.lab}-{hashlib.sha1(what.encode()).hexdigest()[:8]}"

    def cells(self) -> list[Cell]:
        return expand(self.grid, self.seeds, self.seed)


def check_cells(spec: Spec, config_cls, profiles: dict, unused: dict[str, str] | None = None) -> None:
    """Build every cell's config before any cell starts, so that a bad --grid value is one error
    rather than a sweep of failed cells; a key in both --grid and --set is refused, and so is a
    key the lab never reads (`unused`, the lab's UNUSED_KEYS): its cells would all be one run."""
    clash = sorted(set(parse_sets(config_cls, spec.sets or [])) & set(spec.grid))
    if clash:
        raise UserError(f"{clash[0]} is both in --grid and in --set; keep it in one of them")
    for key in spec.grid:
        if key in (unused or {}):
            reads = [f.name for f in field_specs(config_cls) if f.name not in unused
                     and f.name not in ("seed", "device")]
            raise UserError(f"--grid {key}: {spec.lab} never reads {key} ({unused[key]}), so every "
                            f"cell would be the same run; keys it reads: {', '.join(reads)}")
    for params in dict.fromkeys(cell.params for cell in spec.cells()):
        try:
            build_config(config_cls, profiles, spec.profile,
                         list(spec.sets or []) + [f"{k}={v}" for k, v in params])
        except UserError as exc:
            raise UserError(f"--grid: {exc}") from None


# ---------------------------------------------------------------------------- running cells

def cell_command(spec: Spec, cell: Cell, root: Path) -> list[str]:
    cmd = [sys.executable, "-m", "mllabs", "run", spec.lab, "--profile", spec.profile,
           "--seed", str(cell.seed), "--out", str(root), "--json", "--quiet", "--sweep-id", spec.id]
    for item in spec.sets:
        cmd += ["--set", item]
    for key, value in cell.params:
        cmd += ["--set", f"{key}={value}"]
    if spec.data_dir:
        cmd += ["--data-dir", str(spec.data_dir)]
    if spec.device:
        cmd += ["--device", spec.device]
    return cmd


def run_cell(command: list[str], threads: int) -> dict[str, Any]:
    """One cell in a child process; what it printed (--json) or why it failed, never an exception."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    tick = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - tick
    try:
        result = json.loads(proc.stdout)
    except json.JSONDecodeError:
        result = {}
    if proc.returncode != 0 or not result:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        reason = lines[-1].removeprefix("mllabs: error: ") if lines else f"exit status {proc.returncode}"
        return {"status": "failed", "error": reason, "run_dir": result.get("run_dir"), "seconds": seconds}
    return {"status": result.get("status", "failed"), "run_dir": result.get("run_dir"),
            "metrics": result.get("metrics", {}), "seconds": seconds}


def finished_cells(root: Path, spec: Spec) -> dict[Cell, dict]:
    """Cells of this sweep with a finished run in the database (the newest one per cell)."""
    runs = rundb.list_runs(root, lab=spec.lab, where={"sweep": spec.id})
    done: dict[Cell, dict] = {}
    for cell in spec.cells():
        for run in runs:  # newest first
            if run["status"] in FINISHED and run["seed"] == cell.seed and all(
                    rundb.matches(run["config"].get(k), v) for k, v in cell.params):
                done[cell] = run
                break
    return done


def default_jobs(threads: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, threads))


def run_sweep(spec: Spec, root: Path, jobs: int | None = None, threads: int = 1,
              executor: str = "local", address: str | None = None, metric: str | None = None,
              log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)) -> dict:
    """Run the cells that have not finished yet, then write the sweep's report."""
    root = Path(root)
    unchecked = bool(metric) and not check_metric(root, spec.lab, metric)
    cells = spec.cells()
    done = finished_cells(root, spec)
    todo = [c for c in cells if c not in done]
    jobs = jobs or default_jobs(threads)
    log(f"sweep {spec.id}: {len(cells)} cells ({len(done)} already finished), "
        f"{len(todo)} to run with {jobs} job(s) × {threads} thread(s) on {executor}")
    outcomes: dict[Cell, dict] = {}
    tick = time.perf_counter()
    if todo:
        submit = _ray_submitter(address, threads) if executor == "ray" else None
        if unchecked:  # one cell alone first: its metrics say whether --metric names one
            outcomes = _run_all(spec, root, todo[:1], 1, threads, submit, log, len(done), len(cells))
            wrong = _wrong_metric(metric, next(iter(outcomes.values())), spec.lab)
            if wrong:
                raise wrong
            todo = todo[1:]
        outcomes.update(_run_all(spec, root, todo, jobs, threads, submit, log,
                                 len(done) + len(outcomes), len(cells)))
    wall = time.perf_counter() - tick
    for cell, outcome in outcomes.items():
        if outcome.get("run_dir"):
            rundb.record(root, Path(outcome["run_dir"]), sweep=spec.id)
    return write_sweep_report(root, spec, wall, jobs, threads, executor, outcomes, metric)


def metric_names(metrics: dict) -> list[str]:
    return [k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]


def check_metric(root: Path, lab: str, metric: str) -> bool:
    """--metric checked before any cell runs, against the metrics of the lab's finished runs in
    this runs folder (a lab declares no list of its metrics: their names follow its config).
    True when a run reports it. A name that depends on the config (flowers'
    `<model>.test_accuracy`: the part after the dot is known), or a lab without a finished run
    here, is checked on the sweep's first cell instead (False), which then runs alone."""
    runs = [r for r in rundb.list_runs(root, lab=lab) if r["status"] in FINISHED]
    known = sorted({k for r in runs for k in metric_names(r["metrics"])})
    if metric in known:
        return True
    if not known or ("." in metric and metric.rpartition(".")[2] in
                     {k.rpartition(".")[2] for k in known}):
        return False
    raise UserError(f"--metric {metric}: no run of {lab} in {root} reports it; its runs report: "
                    f"{', '.join(known)}")


def _wrong_metric(metric: str | None, outcome: dict, lab: str) -> UserError | None:
    names = metric_names(outcome.get("metrics") or {})
    if metric and outcome.get("status") == "completed" and metric not in names:
        return UserError(f"--metric {metric}: {lab}'s runs do not report it, so the sweep stopped "
                         f"after its first cell; they report: {', '.join(names)}")
    return None


def _run_all(spec, root, todo, jobs, threads, submit, log, start, total) -> dict:
    outcomes: dict[Cell, dict] = {}
    count = start
    if submit is not None:  # ray: every cell is a task; the cluster schedules them
        futures = {cell: submit(cell_command(spec, cell, root)) for cell in todo}
        import ray

        for cell, ref in futures.items():
            outcomes[cell] = ray.get(ref)
            count += 1
            log(_progress_line(count, total, cell, outcomes[cell]))
        return outcomes
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        pending = {pool.submit(run_cell, cell_command(spec, cell, root), threads): cell
                   for cell in todo}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                cell = pending.pop(future)
                outcomes[cell] = future.result()
                if outcomes[cell].get("run_dir"):  # recorded at once, so a killed sweep resumes
                    rundb.record(root, Path(outcomes[cell]["run_dir"]), sweep=spec.id)
                count += 1
                log(_progress_line(count, total, cell, outcomes[cell]))
    return outcomes


def _progress_line(count: int, total: int, cell: Cell, outcome: dict) -> str:
    status = outcome["status"]
    detail = outcome.get("error") if status == "failed" else ", ".join(
        f"{k} = {v:.4g}" for k, v in list((outcome.get("metrics") or {}).items())[:2]
        if isinstance(v, (int, float)))
    return f"[{count}/{total}] {cell.label}: {status}  {detail}  ({outcome['seconds']:.0f} s)"


def _ray_submitter(address: str | None, threads: int):
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install 'mllabs[ray]' (or pip install ray)") from None
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    task = ray.remote(num_cpus=threads)(run_cell)
    return lambda command: task.remote(command, threads)


# ---------------------------------------------------------------------------- the report

def metric_direction(name: str) -> bool:
    """True when a larger value of the metric is better."""
    return any(word in name.lower() for word in HIGHER_IS_BETTER)


def choose_metric(runs: list[dict], wanted: str | None = None) -> str | None:
    if wanted:
        return wanted
    for run in runs:
        for key, value in run["metrics"].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not key.endswith("_std"):
                return key
    return None


def summarise(groups: dict[str, list[dict]], metric: str, sizes: dict[str, int] | None = None) -> list[dict]:
    """One row per group of runs (a cell over its seeds): mean ± std of the metric. `sizes`:
    how many runs each group should have had (a cell that failed to start has no run)."""
    rows = []
    for key, runs in groups.items():
        values = [r["metrics"].get(metric) for r in runs if r["status"] == "completed"]
        values = [float(v) for v in values if isinstance(v, (int, float))]
        rows.append({"cell": key, "runs": max(len(runs), (sizes or {}).get(key, 0)), "completed": len(values),
                     "mean": float(np.mean(values)) if values else float("nan"),
                     "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                     "seconds": float(np.mean([r["seconds"] or 0 for r in runs])) if runs else 0.0})
    return rows


def write_sweep_report(root: Path, spec: Spec, wall: float, jobs: int, threads: int, executor: str,
                       outcomes: dict[Cell, dict], metric: str | None = None) -> dict:
    runs = rundb.list_runs(root, lab=spec.lab, where={"sweep": spec.id})
    by_cell: dict[str, list[dict]] = {}
    for cell in spec.cells():
        matching = [r for r in runs if r["seed"] == cell.seed and all(
            rundb.matches(r["config"].get(k), v) for k, v in cell.params)]
        finished = [r for r in matching if r["status"] in FINISHED]
        chosen = (finished or matching)[:1]  # newest finished run of the cell, else its newest try
        by_cell.setdefault(cell.key, []).extend(chosen)
    failures = []
    for cell in spec.cells():
        outcome = outcomes.get(cell)
        newest = next((r for r in runs if r["seed"] == cell.seed and all(
            rundb.matches(r["config"].get(k), v) for k, v in cell.params)), None)
        status = outcome["status"] if outcome else (newest["status"] if newest else "not run")
        if status != "completed":
            reason = (outcome or {}).get("error") or (newest or {}).get("metrics", {}).get("error", "")
            if not reason and status == "diverged":
                reason = "the loss became NaN or infinite (try a lower learning rate)"
            failures.append({"cell": cell.label, "status": status, "reason": reason or ""})
    title = f"Sweep of {spec.lab}: " + " × ".join(f"{k} ({len(v)})" for k, v in spec.grid.items())
    path = root / "sweeps" / spec.id
    axes = "; ".join(f"{k} = " + ", ".join(v) for k, v in spec.grid.items())
    summary = (f"{len(spec.cells())} cells: the grid ({axes}) × {spec.seeds} seed(s), profile {spec.profile}"
               + (f", with {' '.join('--set ' + s for s in spec.sets)}" if spec.sets else "") + ".")
    command = "mllabs sweep " + spec.lab + "".join(f" --grid {k}={','.join(v)}" for k, v in spec.grid.items()) \
        + f" --seeds {spec.seeds}" + (f" --profile {spec.profile}" if spec.profile != "default" else "")
    result = build_comparison(path, title, summary, by_cell, failures, command,
                              grid=spec.grid, metric=metric, sizes={c.key: spec.seeds for c in spec.cells()},
                              extra={"sweep": spec.id, "cells": len(spec.cells()), "wall_seconds": round(wall, 1),
                                                     "jobs": jobs, "threads_per_run": threads,
                                                     "executor": executor})
    return result


def build_comparison(path: Path, title: str, summary: str, groups: dict[str, list[dict]],
                     failures: list[dict], command: str, grid: dict[str, list[str]] | None = None,
                     metric: str | None = None, extra: dict | None = None,
                     sizes: dict[str, int] | None = None) -> dict:
    """The comparison report in `path`: every group's mean ± std, the best marked, a heatmap for
    two-parameter grids, the best runs' curves, and what failed with its reason."""
    from mllabs.report import Report, figures
    from mllabs.report.render import render_run

    path.mkdir(parents=True, exist_ok=True)
    (path / "figures").mkdir(exist_ok=True)
    every = [r for runs in groups.values() for r in runs]
    metric = choose_metric(every, metric)
    rep = Report(Run(path=path, lab="sweep"), title, summary)
    rows = summarise(groups, metric, sizes) if metric else []
    higher = metric_direction(metric or "")
    scored = [r for r in rows if np.isfinite(r["mean"])]
    best = (max if higher else min)(scored, key=lambda r: r["mean"]) if scored else None
    rep.section("Every cell", f"{metric} ({'higher' if higher else 'lower'} is better), mean ± std "
                "over the completed seeds of each cell; the best cell is marked." if metric else
                "No run finished with a numeric metric.")
    if rows:
        rep.table([{"cell": r["cell"], f"{metric}": (f"{r['mean']:.4f} ± {r['std']:.4f}"
                                                     if np.isfinite(r["mean"]) else "—"),
                    "completed / runs": f"{r['completed']} / {r['runs']}",
                    "seconds per run": f"{r['seconds']:.1f}", "best": "✓" if r is best else ""}
                   for r in rows], f"Every cell: {metric} over its seeds")
    if grid and len(grid) == 2 and rows:
        (k1, v1), (k2, v2) = grid.items()
        means = {r["cell"]: r["mean"] for r in rows}
        matrix = [[means.get(f"{k1}={a} {k2}={b}", float("nan")) for b in v2] for a in v1]
        rep.figure(figures.heatmap(matrix, [f"{k1}={a}" for a in v1], [f"{k2}={b}" for b in v2],
                                   fmt="{:.4f}", colorbar_label=metric, xlabel=k2, ylabel=k1,
                                   cmap="viridis" if higher else "viridis_r"),
                   "heatmap", f"{metric} over the two swept keys (mean over seeds; — where no run completed)")
    if scored:
        ranked = sorted(scored, key=lambda r: r["mean"], reverse=higher)[:3]
        panels = _curves([(r["cell"], groups[r["cell"]]) for r in ranked])
        if panels:
            rep.figure(figures.curves(panels, ncols=min(3, len(panels))), "best-curves",
                       "The best cells' training curves on shared axes (first seed of each)")
    rep.section("Failed or diverged", "Runs that did not complete, with their reason." if failures
                else "Every run completed.")
    if failures:
        rep.table(failures, "Runs that did not complete")
    metrics = {"metric": metric, "best_cell": best["cell"] if best else None,
               "best_mean": best["mean"] if best else None, "best_std": best["std"] if best else None,
               "runs": len(every), "failed": len(failures), **(extra or {})}
    write_json(path / "config.json", {"lab": "sweep", "title": title, "command": command,
                                      "groups": {k: [r["run_dir"] for r in v] for k, v in groups.items()}})
    write_json(path / "env.json", environment(0, "-", command))
    write_json(path / "metrics.json", {"lab": "sweep", "status": "completed" if best else "failed",
                                       "seconds": (extra or {}).get("wall_seconds", 0.0), "metrics": metrics})
    rep.save(command)
    render_run(path)
    return {**metrics, "report": str(path / "report.html"), "rows": rows}


# columns of a history that say which network or when, not how well it learns
NOT_CURVES = ("epoch", "lr", "seconds", "seed", "weight_decay", "step", "updates")


def _curves(ranked: list[tuple[str, list[dict]]]) -> dict:
    """Up to three numeric columns of each cell's first network, against the epoch."""
    panels: dict[str, dict] = {}
    for label, runs in ranked:
        if not runs:
            continue
        history = _first_network(_read_history(Path(runs[0]["path"]) / "history.csv"))
        epochs = [_number(h.get("epoch")) for h in history]
        if any(e is None for e in epochs):
            epochs = list(range(1, len(history) + 1))  # no usable epoch column: count rows
        columns = [c for c in (history[0] if history else {}) if c not in NOT_CURVES
                   and all(_number(h.get(c)) is not None for h in history if h.get(c) not in (None, ""))
                   and any(h.get(c) not in (None, "") for h in history)]
        for column in columns[:3]:
            points = [(e, _number(h[column])) for e, h in zip(epochs, history)
                      if h.get(column) not in (None, "")]
            if points:
                xs, ys = zip(*points)
                panels.setdefault(column, {})[label] = (list(xs), list(ys))
    return panels


def _number(text) -> float | None:
    """A finite number written in a CSV cell, else None (text such as an optimizer's name)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def _read_history(path: Path) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def _first_network(rows: list[dict]) -> list[dict]:
    """The rows of the first network where several share a file (a seed, model, optimizer,
    activation, weight decay... column): every lab writes one network's epochs after another, so
    they end where the text columns change or the epoch stops growing."""
    if not rows:
        return rows
    text = [c for c in rows[0] if _number(rows[0][c]) is None and rows[0][c] not in (None, "")]
    first, last_epoch = rows[:1], _number(rows[0].get("epoch"))
    for row in rows[1:]:
        epoch = _number(row.get("epoch"))
        if any(row[c] != rows[0][c] for c in text) or (
                epoch is not None and last_epoch is not None and epoch <= last_epoch):
            break
        first.append(row)
        last_epoch = epoch
    return first


def compare(root: Path, run_dirs: list[Path], out: Path | None = None, metric: str | None = None) -> dict:
    """The sweep report for runs chosen by hand: runs that differ only in seed form one group."""
    root = Path(root)
    runs = []
    for run_dir in run_dirs:
        row = rundb.row_from_dir(root, Path(run_dir))
        if row is None:
            raise UserError(f"{run_dir} is not a run directory (no readable config.json); pass "
                            "folders such as runs/mnist-lenet/<stamp>-<id>")
        runs.append(rundb.decode(row, root))
    if len(runs) < 2:
        raise UserError("compare needs at least two run directories")
    labs = sorted({r["lab"] for r in runs})
    if len(labs) > 1:  # their metrics and configs have nothing in common to compare
        counts = ", ".join(f"{lab} ({sum(r['lab'] == lab for r in runs)})" for lab in labs)
        raise UserError(f"compare takes runs of one lab, and these are runs of {counts}; compare "
                        "each lab's runs separately")
    ignore = {"seed", "device", "sweep"}
    varying = sorted({k for r in runs for k in r["config"]
                      if k not in ignore and len({json.dumps(x["config"].get(k)) for x in runs}) > 1})
    groups: dict[str, list[dict]] = {}
    for r in runs:
        key = " ".join(f"{k}={_short(r['config'].get(k))}" for k in varying) or r["lab"]
        groups.setdefault(key, []).append(r)
    failures = [{"cell": r["id"], "status": r["status"], "reason": r["metrics"].get("error", "")}
                for r in runs if r["status"] != "completed"]
    digest = hashlib.sha1("".join(sorted(r["id"] for r in runs)).encode()).hexdigest()[:8]
    path = Path(out) if out else root / "comparisons" / f"{'-'.join(labs)}-{digest}"
    title = f"Comparison of {len(runs)} runs of {', '.join(labs)}"
    summary = (f"Runs grouped by what differs between them ({', '.join(varying) or 'nothing but the seed'}); "
               "runs that differ only in seed form one group.")
    return build_comparison(path, title, summary, groups, failures,
                            "mllabs compare " + " ".join(str(p) for p in run_dirs), metric=metric)


def _short(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)
