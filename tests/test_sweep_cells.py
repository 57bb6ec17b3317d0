"""Sweeps run as a user runs them, in subprocesses: the best cell follows the metric's direction,
--threads reaches every cell, and a sweep killed halfway resumes. In a file of their own so that
the two test processes share the sweep tests' minutes."""

import json
from pathlib import Path

from mllabs import rundb
from test_sweep import cell_means

def test_sweep_best_cell_follows_the_metric_direction_and_threads_reach_the_cells(tmp_path):
    """Through the CLI, two cells that both complete (car-clustering at k = 2 and k = 4): with
    --metric kmeans.silhouette (higher is better) the best cell is the argmax, with
    kmeans.davies_bouldin (lower is better) the argmin, each recomputed from the runs' own
    metrics.json; the second sweep runs nothing (both cells finished). --threads 2 is what each
    cell's torch was given (env.json)."""
    import subprocess
    import sys

    root = tmp_path / "runs"
    base = [sys.executable, "-m", "mllabs", "sweep", "car-clustering", "--profile", "quick",
            "--grid", "k=2,4", "--jobs", "1", "--threads", "2", "--out", str(root), "--json",
            "--set", "k_max=4", "--set", "n_init=2", "--set", "medoid_starts=2", "--set", "alt_starts=2"]
    chosen = {}
    for metric in ("kmeans.silhouette", "kmeans.davies_bouldin"):
        done = subprocess.run(base + ["--metric", metric], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        chosen[metric] = json.loads(done.stdout)
    assert "(2 already finished), 0 to run" in done.stderr  # the second sweep only re-reports
    sweep_id = chosen["kmeans.silhouette"]["sweep"]
    silhouette = cell_means(root, sweep_id, ("k",), "kmeans.silhouette")
    davies_bouldin = cell_means(root, sweep_id, ("k",), "kmeans.davies_bouldin")
    assert len(silhouette) == 2 and len(set(silhouette.values())) == 2  # so the choice can go wrong
    assert len(set(davies_bouldin.values())) == 2
    assert chosen["kmeans.silhouette"]["best_cell"] == max(silhouette, key=silhouette.get)
    assert chosen["kmeans.davies_bouldin"]["best_cell"] == min(davies_bouldin, key=davies_bouldin.get)
    report = (root / "sweeps" / sweep_id / "report.md").read_text()
    assert "kmeans.davies_bouldin (lower is better)" in report
    runs = rundb.list_runs(root, where={"sweep": sweep_id})
    assert len(runs) == 2
    assert [json.loads((Path(r["path"]) / "env.json").read_text())["threads"] for r in runs] == [2, 2]


def test_mnist_sweep_killed_halfway_resumes_and_runs_list_finds_every_run(tmp_path):
    """The issue's check through the CLI: a 2 × 2 MNIST sweep with --jobs 2 is killed (SIGKILL to
    its whole process group) the moment it reports its second finished cell (its progress line,
    printed after the cell is recorded: no clock, no polling); the same command again runs only
    the missing cells, and `runs list` shows all four."""
    import os
    import signal
    import subprocess
    import sys

    root = tmp_path / "runs"
    cmd = [sys.executable, "-m", "mllabs", "sweep", "mnist-lenet", "--grid", "optimizer=sgd,adam",
           "--grid", "lr=0.1,0.01", "--seeds", "1", "--jobs", "2", "--profile", "quick",
           "--set", "epochs=1", "--set", "train_size=500", "--set", "val_size=200", "--out", str(root)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    printed = []
    for line in first.stderr:
        printed.append(line)
        if line.startswith("[2/4]"):
            os.killpg(first.pid, signal.SIGKILL)
            break
    first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL, "".join(printed)
    finished_before = len([r for r in rundb.list_runs(root) if r["status"] == "completed"])
    assert 2 <= finished_before < 4

    again = subprocess.run(cmd + ["--json"], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"({finished_before} already finished), {4 - finished_before} to run" in again.stderr
    result = json.loads(again.stdout)
    assert result["cells"] == 4 and result["failed"] == 0 and result["best_cell"]
    listed = subprocess.run([sys.executable, "-m", "mllabs", "runs", "list", "--out", str(root),
                             "--where", f"sweep={result['sweep']}", "--where", "status=completed",
                             "--json"], env=env, capture_output=True, text=True)
    cells = {(r["config"]["optimizer"], r["config"]["lr"], r["seed"]) for r in json.loads(listed.stdout)}
    assert len(cells) == 4
    report = (root / "sweeps" / result["sweep"] / "report.md").read_text()
    assert "✓" in report and "heatmap.png" in report and "Every run completed." in report
