"""Sweeps over every lab: the report renders whatever a lab's history holds (text columns,
several networks in one file), and a --grid key the lab never reads is refused before running."""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import json

import pytest

from mllabs import sweep
from mllabs.config import TrainConfig, field_specs
from mllabs.labs import LABS, get_lab


# ---------------------------------------------------------------------------- UNUSED_KEYS

def fit_configs_ignoring(module, key: str) -> list[str]:
    """Where the lab's source reads `key` after all: `cfg.key`, or a fit() call handed a config
    that does not replace it (fit reads every TrainConfig field). Empty when the lab never does.
    A read in the test of an `if` that raises is a refusal of the key, not a use of it."""
    tree = ast.parse(inspect.getsource(module))
    refusals = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                and isinstance(node.body[0], ast.Raise) for n in ast.walk(node.test)}
    problems = []
    for func in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
        replaced = {}  # name -> keys replaced in `name = dataclasses.replace(cfg, ...)`
        for node in ast.walk(func):
            if isinstance(node, ast.Assign) and _is_replace(node.value):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        replaced[target.id] = {k.arg for k in node.value.keywords}
        for node in ast.walk(func):
            if isinstance(node, ast.Attribute) and node.attr == key and id(node) not in refusals \
                    and isinstance(node.value, ast.Name) and node.value.id == "cfg":
                problems.append(f"{func.name}: cfg.{key} at line {node.lineno}")
            if isinstance(node, ast.Call) and _name(node.func) == "fit" and len(node.args) >= 3:
                given = node.args[2]
                keys = ({k.arg for k in given.keywords} if _is_replace(given)
                        else replaced.get(given.id, set()) if isinstance(given, ast.Name) else set())
                if key not in keys:
                    problems.append(f"{func.name}: fit() at line {node.lineno} gets {key} unreplaced")
    return problems


def _name(func) -> str:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _is_replace(node) -> bool:
    return isinstance(node, ast.Call) and _name(node.func) == "replace"


@pytest.mark.parametrize("name", list(LABS))
def test_every_unused_key_declared_is_never_read_by_the_lab(name):
    lab = get_lab(name)
    unused = getattr(lab, "UNUSED_KEYS", {})
    keys = {f.name for f in field_specs(lab.Config)}
    trained = {f.name for f in field_specs(TrainConfig)}
    for key, why in unused.items():
        assert key in keys and key in trained, key  # only inherited fit() keys can go unread
        assert "`" in why  # names the key the lab reads instead
        assert fit_configs_ignoring(lab, key) == [], key


def test_the_source_check_catches_a_lab_that_reads_the_key():
    """mnist-lenet hands its config to fit() as it is: optimizer and lr are read."""
    lenet = get_lab("mnist-lenet")
    assert fit_configs_ignoring(lenet, "optimizer") and fit_configs_ignoring(lenet, "lr")
    assert fit_configs_ignoring(get_lab("mnist-optimizers"), "epochs")


@pytest.mark.parametrize("lab, grid, key", [
    ("mnist-optimizers", ["optimizer=sgd,adam", "lr=0.1,0.01"], "optimizer"),
    ("mnist-optimizers", ["lr=0.1,0.01"], "lr"),
    ("regularization", ["weight_decay=0,0.1"], "weight_decay"),
])
def test_a_grid_key_the_lab_never_reads_is_refused_before_running(tmp_path, capsys, lab, grid, key):
    from mllabs.cli import main

    args = ["sweep", lab, "--profile", "quick", "--seeds", "1", "--out", str(tmp_path)]
    for item in grid:
        args += ["--grid", item]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"--grid {key}: {lab} never reads {key}" in err and "keys it reads: " in err
    reads = err.split("keys it reads: ")[1].split(", ")
    assert key not in reads and "epochs" in reads
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


# ---------------------------------------------------------------------------- curves

def test_curves_take_numeric_columns_of_the_first_network(tmp_path):
    """The history layouts the labs write: text identity columns (optimizer, model, table), a
    numeric one (lr, seed, weight_decay), several networks one after another."""
    run = tmp_path / "run"
    run.mkdir()
    rows = ["optimizer,lr,seed,epoch,loss,accuracy,note"]
    for opt, lr, loss in (("gd", 0.1, 2.0), ("gd", 0.01, 3.0), ("adam", 0.1, 1.0)):
        rows += [f"{opt},{lr},0,{e},{loss / e},{0.5 + e / 10},x" for e in (1, 2, 3)]
    (run / "history.csv").write_text("\n".join(rows) + "\n")
    panels = sweep._curves([("cell", [{"path": str(run)}])])
    assert set(panels) == {"loss", "accuracy"}  # lr, seed, epoch, the text column left out
    xs, ys = panels["loss"]["cell"]
    assert xs == [1.0, 2.0, 3.0] and ys == pytest.approx([2.0, 1.0, 2 / 3])  # gd at 0.1 only

    # no epoch column, a value missing, NaN and text in a numeric-looking column
    (run / "history.csv").write_text("model,train_mse,test_mse,flag\nnumpy,4,5,1\nnumpy,3,,1\n"
                                     "numpy,2,4,yes\ntorch,9,9,1\n")
    panels = sweep._curves([("cell", [{"path": str(run)}])])
    assert set(panels) == {"train_mse", "test_mse"}
    assert panels["train_mse"]["cell"] == ([1, 2, 3], [4.0, 3.0, 2.0])
    assert panels["test_mse"]["cell"] == ([1, 3], [5.0, 4.0])

    (run / "history.csv").write_bytes(b"\xff\xfe garbage")
    assert sweep._curves([("cell", [{"path": str(run)}])]) == {}


# ---------------------------------------------------------------------------- every lab

# one or two cells per lab, on a small slice of its data: what matters is that every lab's
# metrics and history make a report, not the numbers
EVERY_LAB = {
    "auto-mpg": (["epochs=2,3"], ["seeds=1"]),
    "mnist-lenet": (["lr=0.01"], ["train_size=500", "val_size=200"]),
    "mnist-cnn": (["epochs=1"], ["train_size=500"]),
    "mnist-optimizers": (["hidden=16/32"], ["train_size=500", "val_size=200", "optimizers=sgd,adam",
                                            "lrs=0.1"]),
    "bike-sharing": (["epochs=1"], ["mlp_epochs=1", "gbm_iterations=5"]),
    "car-clustering": (["k_max=3"], []),
    "boston-housing": (["epochs=2"], []),
    "flowers": (["epochs=1"], ["limit=60", "image_size=32", "cam_photos=1", "models=cnn"]),
    "mnist-best": (["epochs=1"], ["seeds=1", "train_size=500"]),
    "activations": (["epochs=1"], ["train_size=500", "val_size=200"]),
    "regularization": (["epochs=1"], ["train_size=200", "val_size=200"]),
    "eye-screening": (["epochs=1"], ["image_size=32", "cam_photos=1"]),
}


def test_every_lab_is_in_the_sweep_test():
    assert set(EVERY_LAB) == set(LABS)


def run_cell_here(command: list[str], threads: int) -> dict:
    """sweep.run_cell without the child process: `mllabs run ... --json` called in this one, its
    stdout read as run_cell reads the child's. Each child would spend seconds importing torch;
    the child process itself is tested in test_sweep.py and test_sweep_cells.py."""
    from mllabs.cli import main

    assert command[1:3] == ["-m", "mllabs"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(command[3:])
    result = json.loads(out.getvalue())
    assert code == 0, result
    return {"status": result["status"], "run_dir": result["run_dir"],
            "metrics": result.get("metrics", {}), "seconds": 0.0}


@pytest.mark.parametrize("name", list(EVERY_LAB))
def test_a_sweep_of_every_lab_writes_its_report(name, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(sweep, "run_cell", run_cell_here)
    monkeypatch.setenv("MLLABS_CACHE", str(tmp_path / "cache"))  # the flowers decode cache
    grid, sets = EVERY_LAB[name]
    data_dir = None
    if name == "eye-screening":
        from test_eye_screening import two_class_folder

        data_dir = str(two_class_folder(tmp_path / "eyes", n=8))
    spec = sweep.Spec(name, sweep.parse_grid(grid), seeds=1, profile="quick", sets=sets,
                      data_dir=data_dir)
    lab = get_lab(name)
    sweep.check_cells(spec, lab.Config, lab.PROFILES, getattr(lab, "UNUSED_KEYS", {}))
    result = sweep.run_sweep(spec, tmp_path / "runs", jobs=1, log=lambda m: None)
    cells = len(spec.cells())
    assert result["failed"] == 0 and result["runs"] == cells, result
    assert result["best_cell"] in {c.key for c in spec.cells()}
    folder = tmp_path / "runs" / "sweeps" / spec.id
    report = (folder / "report.md").read_text()
    assert "Every cell" in report and "Every run completed." in report
    assert (folder / "report.html").stat().st_size > 1000
    run_dirs = list((tmp_path / "runs" / name).iterdir())
    assert len(run_dirs) == cells
    if any((p / "history.csv").exists() for p in run_dirs):
        assert "best-curves.png" in report  # the curves of a lab that has a history
