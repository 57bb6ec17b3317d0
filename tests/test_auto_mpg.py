"""The auto-mpg lab end to end through the CLI, on the real data (quick profile)."""

import csv
import json
import subprocess
import sys
from importlib import metadata

import pytest

from conftest import run_cli
from mllabs.labs import auto_mpg

QUICK = ("--profile", "quick", "--quiet")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert run_cli("run", "auto-mpg", *QUICK, "--out", out) == 0
    (run_dir,) = (out / "auto-mpg").iterdir()
    return out, run_dir


def test_run_directory_holds_everything(finished):
    out, run_dir = finished
    for name in ("config.json", "env.json", "history.csv", "metrics.json", "report.md",
                 "report.html", "report.json", "predict.json", "checkpoints/model.pt"):
        assert (run_dir / name).is_file(), name
    figures = {p.name for p in (run_dir / "figures").iterdir()}
    assert {"pairplot.png", "correlation.png", "training_curves.png", "true_vs_predicted.png",
            "error_histogram.png"} <= figures
    env = json.loads((run_dir / "env.json").read_text())
    assert {"seed", "torch", "device", "threads", "git_revision", "python"} <= set(env)
    assert env["sklearn"] == metadata.version("scikit-learn")  # recorded, though auto-mpg never imports it
    assert (out / "index.html").read_text().count(run_dir.name) >= 1
    assert not list(run_dir.rglob("*.tmp"))


def test_recording_the_versions_imports_no_library():
    """env.json names scikit-learn's version without importing it (about 2 CPU-seconds that every
    run, and every sweep cell's process, paid for nothing)."""
    code = ("import sys; from mllabs import runs; runs.environment(0, 'cpu', 'x'); "
            "print(sorted(m for m in ('sklearn', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_metrics_follow_the_shared_schema(finished):
    _, run_dir = finished
    result = json.loads((run_dir / "metrics.json").read_text())
    assert result["lab"] == "auto-mpg" and result["status"] == "completed" and result["seconds"] > 0
    m = result["metrics"]
    assert {"test_mae", "test_mae_std", "test_mse", "linear.test_mae"} <= set(m)
    assert m["test_mae_std"] >= 0 and m["seeds"] == 2


def independent_least_squares(data_root, seed=0, test_fraction=0.2):
    """Least squares recomputed here with pandas and scikit-learn, not with the lab's code: the
    raw file, rows without horsepower dropped, origin one-hot, the handout's split (pandas'
    sample(frac=0.8, random_state=seed) keeps the first 80 % of that permutation), raw units
    (least squares with an intercept does not care about standardising)."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    names = ["mpg", "cylinders", "displacement", "horsepower", "weight", "acceleration",
             "model_year", "origin"]
    raw = pd.read_csv(data_root / "auto-mpg" / "auto-mpg.data", sep=r"\s+", names=names,
                      na_values="?", comment="\t", usecols=range(8)).dropna().reset_index(drop=True)
    raw = pd.get_dummies(raw, columns=["origin"], dtype=float)
    train = raw.sample(frac=1 - test_fraction, random_state=seed)
    test = raw.drop(train.index)
    x = lambda f: f.drop(columns="mpg").to_numpy(float)  # noqa: E731
    model = LinearRegression().fit(x(train), train["mpg"])
    return float(np.abs(model.predict(x(test)) - test["mpg"]).mean()), len(train), len(test)


def test_the_network_beats_least_squares_recomputed_independently(finished, data_root, note):
    """The lab's headline: the network's test MAE is well below least squares on the same split
    (27.9 % on the default profile; the quick profile's 30 epochs × 2 seeds get about 25 %)."""
    _, run_dir = finished
    m = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    ols_mae, n_train, n_test = independent_least_squares(data_root)
    assert (n_train, n_test) == (314, 78)
    assert m["linear.test_mae"] == pytest.approx(ols_mae, rel=1e-6)  # the lab's baseline is OLS
    assert m["test_mae"] < 0.85 * ols_mae, (m["test_mae"], ols_mae)
    assert m["predict_model.test_mae"] < ols_mae  # the network predict uses beats it too
    note(f"auto-mpg quick: network test MAE {m['test_mae']:.3f} vs least squares {ols_mae:.3f} "
         f"(scikit-learn, same split): {1 - m['test_mae'] / ols_mae:.1%} lower")


def test_history_has_train_and_validation_per_epoch(finished):
    _, run_dir = finished
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    epochs = auto_mpg.PROFILES["quick"]["epochs"]
    assert len(rows) == 2 * epochs
    assert {"seed", "epoch", "train_mae", "train_mse", "val_mae", "val_mse", "lr", "seconds"} <= set(rows[0])


def test_report_contains_the_lab_tables(finished):
    _, run_dir = finished
    md = (run_dir / "report.md").read_text()
    for text in ("The raw table", "one-hot", "Test error", "linear regression (least squares)",
                 "mllabs run auto-mpg", "figures/pairplot.png"):
        assert text in md, text
    html = (run_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5 and "src=\"figures/" not in html
    # the Markdown in report text becomes HTML there (words in backticks are code)
    assert "<code>mllabs predict</code>" in html and "`mllabs predict" not in html
    # the report's predict command names this run and an example it wrote, so it runs as printed
    command = json.loads((run_dir / "report.json").read_text())["predict_command"]
    assert command == f"mllabs predict {run_dir} {run_dir / 'example-cars.csv'}" and command in html


def test_report_re_renders(finished, capsys):
    _, run_dir = finished
    (run_dir / "report.html").unlink()
    assert run_cli("report", run_dir) == 0
    assert (run_dir / "report.html").is_file()


def test_json_output_is_the_only_stdout(tmp_path, capsys):
    assert run_cli("run", "auto-mpg", *QUICK, "--set", "epochs=2", "--set", "seeds=1",
                   "--out", tmp_path, "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "completed" and "run_dir" in result and "test_mae" in result["metrics"]


def test_same_seed_reproduces_the_metrics(tmp_path, capsys):
    values = []
    for name in ("a", "b"):
        assert run_cli("run", "auto-mpg", *QUICK, "--set", "epochs=5", "--seed", "4",
                       "--out", tmp_path / name, "--json") == 0
        values.append(json.loads(capsys.readouterr().out)["metrics"])
    assert values[0]["test_mae"] == values[1]["test_mae"]


def test_predict_on_raw_columns(finished, tmp_path, capsys):
    _, run_dir = finished
    cars = tmp_path / "cars.csv"
    cars.write_text("mpg,Cylinders,displacement,horsepower,weight,acceleration,model_year,origin,car_name\n"
                    "27,4,97,88,2130,14.5,70,Japan,datsun pl510\n"
                    "15,8,350,165,3693,11.5,70,1,buick skylark 320\n")
    out_csv = tmp_path / "pred.csv"
    assert run_cli("predict", run_dir, cars, "--json", "--output", out_csv) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["input"] for r in results] == [f"{cars}:2 (datsun pl510)", f"{cars}:3 (buick skylark 320)"]
    light, heavy = (r["prediction"] for r in results)
    assert light > heavy  # a 2,130 lb four-cylinder beats a 3,693 lb V8
    assert len(out_csv.read_text().splitlines()) == 3
    assert not any("warning" in r for r in results)  # real cars are not flagged


def test_predict_flags_a_value_far_outside_the_training_cars(finished, tmp_path, capsys):
    _, run_dir = finished
    cars = tmp_path / "cars.csv"
    cars.write_text("cylinders,displacement,horsepower,weight,acceleration,model_year,origin\n"
                    "4,97,88,2130,14.5,70,3\n"
                    "4,97,88,2130,14.5,1970,3\n")  # the year written in full, not as the data's 70
    assert run_cli("predict", run_dir, cars, "--json") == 0
    ordinary, typo = json.loads(capsys.readouterr().out)
    assert "warning" not in ordinary
    assert typo["warning"].startswith("model_year = 1970 is ") and "extrapolation" in typo["warning"]


@pytest.mark.parametrize("content, fragment", [
    ("cylinders,displacement,horsepower,weight,acceleration,model_year,origin\n4,97,?,2130,14.5,70,3\n",
     "row 2, column 'horsepower'"),
    ("cylinders,displacement,horsepower,weight,acceleration,model_year,origin\n4,97,88,2130,14.5,70,Mars\n",
     "row 2, column 'origin'"),
    ("cylinders,displacement,weight,acceleration,model_year,origin\n4,97,2130,14.5,70,3\n",
     "no column 'horsepower'"),
])
def test_predict_bad_rows_exit_2_with_one_line(finished, tmp_path, capsys, content, fragment):
    _, run_dir = finished
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    assert run_cli("predict", run_dir, bad) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_divergence_still_writes_the_report(tmp_path, capsys):
    rc = run_cli("run", "auto-mpg", *QUICK, "--set", "optimizer=sgd", "--set", "lr=50",
                 "--out", tmp_path, "--json")
    assert rc == 1  # not completed: a script sees it in the exit status as well as the JSON
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "diverged" and result["metrics"]["diverged_epoch"] >= 1
    run_dir = tmp_path / "auto-mpg" / next(iter(p.name for p in (tmp_path / "auto-mpg").iterdir()))
    assert "## Diverged" in (run_dir / "report.md").read_text()
    assert (run_dir / "report.html").is_file()
    cars = tmp_path / "cars.csv"
    cars.write_text("cylinders,displacement,horsepower,weight,acceleration,model_year,origin\n"
                    "4,97,88,2130,14.5,70,3\n")
    assert run_cli("predict", run_dir, cars) == 2
    assert "ended diverged" in capsys.readouterr().err


@pytest.mark.parametrize("extra, fragment", [
    (["--values", "4,97,88,2130,14.5,70,3"], "predicts from files, not from --values"),
    ([], "nothing to predict: pass INPUT files"),
])
def test_predict_needs_files_for_a_file_lab(finished, capsys, extra, fragment):
    _, run_dir = finished
    assert run_cli("predict", run_dir, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1
