"""The run database and sweeps: rows built from run directories, queries, resuming sweeps."""

import json
import sqlite3
from pathlib import Path

import pytest
from conftest import need

from mllabs import rundb, sweep
from mllabs.errors import UserError


def fake_run(root, lab, name, config, status=None, metrics=None):
    path = root / lab / name
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"lab": lab, "profile": "quick", **config}))
    if status:
        (path / "metrics.json").write_text(json.dumps(
            {"lab": lab, "status": status, "seconds": 1.5, "metrics": metrics or {}}))
    return path


@pytest.fixture
def runs_root(tmp_path):
    root = tmp_path / "runs"
    fake_run(root, "mnist-lenet", "20261101-100000-aaaaaa", {"seed": 0, "optimizer": "adam", "lr": 0.01},
             "completed", {"test_accuracy": 0.97})
    fake_run(root, "mnist-lenet", "20261101-110000-bbbbbb", {"seed": 1, "optimizer": "sgd", "lr": 0.1},
             "completed", {"test_accuracy": 0.99})
    fake_run(root, "mnist-lenet", "20261101-120000-bbbccc", {"seed": 0, "optimizer": "sgd", "lr": 0.01},
             "diverged", {})
    fake_run(root, "auto-mpg", "20261101-130000-dddddd", {"seed": 0, "hidden": [64, 64]},
             "completed", {"test_mae": 1.8})
    fake_run(root, "auto-mpg", "20261101-140000-eeeeee", {"seed": 0, "hidden": [64, 64]})  # running
    return root


def test_reindex_builds_rows_from_run_directories_and_drops_vanished_ones(runs_root):
    for folder in ("sweeps/ab12cd", "comparisons/ef34gh"):  # their pages are not runs
        (runs_root / folder).mkdir(parents=True)
        (runs_root / folder / "config.json").write_text(json.dumps({"lab": "sweep", "title": "t"}))
        (runs_root / folder / "metrics.json").write_text(json.dumps({"lab": "sweep", "status": "completed"}))
    assert rundb.reindex(runs_root) == {"added": 5, "updated": 0, "removed": 0, "unchanged": 0}
    assert rundb.reindex(runs_root)["unchanged"] == 5
    running = rundb.get_run(runs_root, "20261101-140000")
    assert running["status"] == rundb.RUNNING and running["metrics"] == {}
    # the run finishes: its row is refreshed; a directory removed by hand loses its row
    (runs_root / "auto-mpg" / "20261101-140000-eeeeee" / "metrics.json").write_text(json.dumps(
        {"lab": "auto-mpg", "status": "completed", "seconds": 2.0, "metrics": {"test_mae": 1.7}}))
    import shutil
    shutil.rmtree(runs_root / "mnist-lenet" / "20261101-100000-aaaaaa")
    counts = rundb.reindex(runs_root)
    assert counts["updated"] == 1 and counts["removed"] == 1
    assert rundb.get_run(runs_root, "20261101-140000")["metrics"] == {"test_mae": 1.7}
    with sqlite3.connect(runs_root / rundb.DB_NAME) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_list_filters_by_lab_and_any_key_and_sorts_by_a_metric(runs_root):
    rundb.reindex(runs_root)
    assert len(rundb.list_runs(runs_root)) == 5
    lenet = rundb.list_runs(runs_root, lab="mnist-lenet")
    assert [r["id"][:15] for r in lenet] == ["20261101-120000", "20261101-110000", "20261101-100000"]
    assert {r["id"] for r in rundb.list_runs(runs_root, where={"optimizer": "sgd", "lr": "0.1"})} == \
        {"20261101-110000-bbbbbb"}
    assert len(rundb.list_runs(runs_root, where={"hidden": "64,64"})) == 2
    assert len(rundb.list_runs(runs_root, where={"status": "diverged"})) == 1
    best = rundb.list_runs(runs_root, lab="mnist-lenet", sort="test_accuracy:desc")
    assert [r["metrics"].get("test_accuracy") for r in best] == [0.99, 0.97, None]
    assert len(rundb.list_runs(runs_root, sort="test_accuracy", limit=2)) == 2
    with pytest.raises(UserError, match="KEY:desc"):
        rundb.list_runs(runs_root, sort="test_accuracy:down")
    with pytest.raises(UserError, match="KEY=VALUE"):
        rundb.parse_where(["optimizer"])


def test_show_takes_a_unique_prefix_and_rm_removes_row_and_directory(runs_root):
    rundb.reindex(runs_root)
    assert rundb.get_run(runs_root, "20261101-11")["id"] == "20261101-110000-bbbbbb"
    with pytest.raises(UserError, match="matches 5 runs"):
        rundb.get_run(runs_root, "20261101-1")
    with pytest.raises(UserError, match="no run"):
        rundb.get_run(runs_root, "nope")
    run = rundb.remove_run(runs_root, "20261101-130000")
    assert not (runs_root / "auto-mpg" / "20261101-130000-dddddd").exists()
    assert run["lab"] == "auto-mpg" and len(rundb.list_runs(runs_root)) == 4


def test_grid_expands_to_every_combination_times_seeds():
    grid = sweep.parse_grid(["optimizer=sgd,adam", "lr=0.1,0.01", "hidden=64,64/128"])
    assert grid["hidden"] == ["64,64", "128"]
    cells = sweep.expand(grid, seeds=2, base_seed=5)
    assert len(cells) == 2 * 2 * 2 * 2 and len(set(cells)) == 16
    assert {c.seed for c in cells} == {5, 6}
    for bad, message in ((["lr"], "KEY=V1"), (["seed=1,2"], "--seeds"), ([], "at least one"),
                         (["lr=1", "lr=2"], "twice")):
        with pytest.raises(UserError, match=message):
            sweep.parse_grid(bad)
    spec = sweep.Spec("mnist-lenet", grid, seeds=2)
    assert spec.id == sweep.Spec("mnist-lenet", dict(grid), seeds=2).id
    assert spec.id != sweep.Spec("mnist-lenet", grid, seeds=3).id


def test_metric_direction_of_every_lab_headline_metric():
    """Which way is better, for the metric names the labs write: accuracies, R², silhouette and
    the auto-mpg network's cut in error against least squares up; errors, losses and ratios of
    error to a baseline down."""
    up = ["test_accuracy", "relu.test_accuracy", "kmeans.silhouette", "resnet.roc_auc", "test_r2",
          "mae_reduction_vs_linear", "lenet.sensitivity"]
    down = ["test_mae", "numpy.test_mse", "test_loss", "kmeans.davies_bouldin",
            "day.linear.mse_ratio_to_ols", "network.test_rmse"]
    assert [m for m in up if not sweep.metric_direction(m)] == []
    assert [m for m in down if sweep.metric_direction(m)] == []


def cell_means(root, sweep_id, keys, metric) -> dict[str, float]:
    """Each cell's mean of `metric` over its completed runs, read from the run directories."""
    values: dict[str, list[float]] = {}
    for run in rundb.list_runs(root, where={"sweep": sweep_id, "status": "completed"}):
        config = json.loads((Path(run["path"]) / "config.json").read_text())
        metrics = json.loads((Path(run["path"]) / "metrics.json").read_text())["metrics"]
        cell = " ".join(f"{k}={config[k]:g}" if isinstance(config[k], float) else f"{k}={config[k]}"
                        for k in keys)
        values.setdefault(cell, []).append(metrics[metric])
    return {cell: sum(v) / len(v) for cell, v in values.items()}


def test_sweep_runs_every_cell_reports_failures_and_resumes(tmp_path, monkeypatch):
    """A 2 × 2 × 2-seed sweep of a fast lab, with one key value the lab refuses: the bad cells
    fail with their reason, the others complete; rerunning the same sweep after losing two runs
    runs only those two."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    root = tmp_path / "runs"
    spec = sweep.Spec("boston-housing", sweep.parse_grid(["lr=0.1,-1", "epochs=3,5"]), seeds=2,
                      profile="quick")
    lines = []
    result = sweep.run_sweep(spec, root, jobs=2, log=lines.append)
    assert result["cells"] == 8 and result["runs"] == 4 and result["failed"] == 4
    # the best cell is the argmin of the metric (an error) over the two cells that completed,
    # recomputed from their metrics.json; the failed cells cannot be chosen
    assert result["metric"] == "numpy.test_mse"
    means = cell_means(root, spec.id, ("lr", "epochs"), "numpy.test_mse")
    assert set(means) == {"lr=0.1 epochs=3", "lr=0.1 epochs=5"} and len(set(means.values())) == 2
    assert result["best_cell"] == min(means, key=means.get)
    assert result["best_mean"] == pytest.approx(min(means.values()))
    report = (root / "sweeps" / spec.id / "report.md").read_text()
    assert "heatmap.png" in report and "lr=-1" in report and "Failed or diverged" in report
    failed_reason = next(r for r in lines if "lr=-1" in r and "failed" in r)
    assert "lr" in failed_reason.split("failed", 1)[1]  # the reason names the key
    tagged = rundb.list_runs(root, where={"sweep": spec.id})
    assert len([r for r in tagged if r["status"] == "completed"]) == 4

    # lose two finished runs; the same sweep again runs just those two (plus the bad cells)
    for run in tagged[:2]:
        rundb.remove_run(root, run["id"])
    lines.clear()
    again = sweep.run_sweep(spec, root, jobs=2, log=lines.append)
    assert "(2 already finished), 6 to run" in lines[0]
    assert again["best_mean"] == pytest.approx(result["best_mean"])  # same seeds, same numbers
    rows = {r["cell"]: r for r in again["rows"]}
    assert all(rows[f"lr=0.1 epochs={e}"]["completed"] == 2 for e in (3, 5))


def test_ray_executor_runs_the_cells_into_the_same_database(tmp_path, monkeypatch):
    ray = need("ray")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    root = tmp_path / "runs"
    spec = sweep.Spec("boston-housing", sweep.parse_grid(["epochs=3,5"]), seeds=1, profile="quick")
    try:
        result = sweep.run_sweep(spec, root, executor="ray", log=lambda m: None)
    finally:
        ray.shutdown()
    assert result["executor"] == "ray" and result["failed"] == 0
    assert len(rundb.list_runs(root, where={"sweep": spec.id, "status": "completed"})) == 2


def test_ray_executor_without_ray_says_how_to_install(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    spec = sweep.Spec("boston-housing", sweep.parse_grid(["epochs=3"]), profile="quick")
    with pytest.raises(UserError, match=r"pip install 'mllabs\[ray\]'"):
        sweep.run_sweep(spec, tmp_path / "runs", executor="ray", log=lambda m: None)


def test_runs_commands(runs_root, capsys, monkeypatch):
    from mllabs.cli import main

    assert main(["runs", "list", "--out", str(runs_root), "--lab", "auto-mpg"]) == 0  # indexes first
    out = capsys.readouterr().out
    assert "20261101-130000-dddddd" in out and "test_mae=1.8" in out and "mnist-lenet" not in out
    # the settings that tell a lab's runs apart are shown; the seed has its own column
    assert main(["runs", "list", "--out", str(runs_root), "--lab", "mnist-lenet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "settings" in lines[0]
    row = next(line for line in lines if "20261101-110000-bbbbbb" in line)
    assert "optimizer=sgd lr=0.1" in row and "seed=" not in row
    assert main(["runs", "list", "--out", str(runs_root), "--lab", "mnist-lenets"]) == 2
    assert "unknown lab 'mnist-lenets'" in capsys.readouterr().err
    assert main(["runs", "list", "--out", str(runs_root), "--limit", "0"]) == 2
    assert "--limit 0" in capsys.readouterr().err
    assert main(["runs", "show", "20261101-1100", "--out", str(runs_root)]) == 0
    assert "optimizer" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["runs", "rm", "20261101-1100", "--out", str(runs_root)]) == 2
    assert "--yes" in capsys.readouterr().err
    assert (runs_root / "mnist-lenet" / "20261101-110000-bbbbbb").exists()
    assert main(["runs", "rm", "20261101-1100", "--yes", "--out", str(runs_root)]) == 0
    assert not (runs_root / "mnist-lenet" / "20261101-110000-bbbbbb").exists()


@pytest.mark.parametrize("extra, fragment", [
    (["--grid", "lr=abc,0.1"], "--grid: bad value for lr: 'abc'"),
    (["--grid", "nokey=1,2"], "--grid: unknown config key 'nokey'"),
    (["--grid", "lr=0.1,,0.2"], "has an empty value"),
    (["--grid", "lr=0.1,0.2", "--set", "lr=0.3"], "lr is both in --grid and in --set"),
])
def test_a_bad_grid_is_refused_before_any_cell_runs(tmp_path, capsys, extra, fragment):
    from mllabs.cli import main

    assert main(["sweep", "auto-mpg", "--profile", "quick", "--out", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1
    assert not (tmp_path / "auto-mpg").exists() and not (tmp_path / "sweeps").exists()
