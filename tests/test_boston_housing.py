"""The boston-housing lab: hand-derived NumPy gradients, the lab end to end, predict (real data)."""

import csv
import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import LinearRegression

from conftest import run_cli
from mllabs.config import build_config
from mllabs.labs import boston_housing as lab
from mllabs.models import numpy_net

EXAMPLE = "0.04741,0,11.93,0,0.573,6.03,80.8,2.505,1,273,21,396.9,7.88"  # housing.data, last line


@pytest.fixture(scope="module")
def prepared():
    cfg = build_config(lab.Config, lab.PROFILES, "default")
    return cfg, lab.prepare(cfg, None)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert run_cli("run", "boston-housing", "--quiet", "--out", out) == 0
    (run_dir,) = (out / "boston-housing").iterdir()
    return run_dir, json.loads((run_dir / "metrics.json").read_text())


def random_model(kind, rng):
    model = kind(len(lab.FEATURES), rng)
    for value in model.params.values():  # non-zero everywhere, w1 included
        value[:] = rng.normal(0, 0.5, value.shape)
    return model


def central_differences(model, x, y, h=1e-6):
    """Written here, independently of numpy_net.numerical_gradient."""
    out = {}
    for name, value in model.params.items():
        grad = np.empty_like(value)
        for i in range(value.size):
            shifted = []
            for sign in (1, -1):
                saved = value.copy()
                value.flat[i] += sign * h
                shifted.append(np.mean((model.forward(x) - y) ** 2))
                value[:] = saved
            grad.flat[i] = (shifted[0] - shifted[1]) / (2 * h)
        out[name] = grad
    return out


def rel_error(a, b):
    fa = np.concatenate([np.ravel(a[k]) for k in sorted(a)])
    fb = np.concatenate([np.ravel(b[k]) for k in sorted(a)])
    return np.linalg.norm(fa - fb) / (np.linalg.norm(fa) + np.linalg.norm(fb))


@pytest.mark.parametrize("kind", [numpy_net.Linear, numpy_net.Quadratic])
def test_gradient_matches_finite_differences(prepared, kind, note):
    _, p = prepared
    x, y = p.x(p.train_idx[:64]), p.y(p.train_idx[:64])
    model = random_model(kind, np.random.default_rng(1))
    by_hand = model.gradient(x, y)
    assert x.dtype == np.float64 and all(g.dtype == np.float64 for g in by_hand.values())
    error = rel_error(by_hand, central_differences(model, x, y))
    note(f"boston-housing: {kind.__name__} gradient vs finite differences, relative error {error:.1e}")
    assert error < 1e-6
    # the check is sharp enough to catch a gradient that is only 1 % off
    assert rel_error({k: 1.01 * g for k, g in by_hand.items()}, central_differences(model, x, y)) > 1e-6


@pytest.mark.parametrize("kind", [numpy_net.Linear, numpy_net.Quadratic])
def test_gradient_matches_torch_autograd(prepared, kind):
    _, p = prepared
    x, y = p.x(p.train_idx), p.y(p.train_idx)
    model = random_model(kind, np.random.default_rng(2))
    t = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    if kind is numpy_net.Linear:
        out = xt @ t["w"] + t["b"]
    else:
        out = (xt + t["w1"] * xt ** 2) @ t["w2"] + t["b"]
    loss = ((out - yt) ** 2).mean()
    loss.backward()
    assert model.loss(x, y) == pytest.approx(loss.item(), rel=1e-12)
    by_hand = model.gradient(x, y)
    assert set(by_hand) == set(t)
    for name, tensor in t.items():
        np.testing.assert_allclose(by_hand[name], tensor.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_train_shuffles_each_epoch_and_records_history(prepared):
    _, p = prepared
    rng = np.random.default_rng(0)
    first, second = (np.concatenate(list(numpy_net.epoch_batches(404, 32, rng))) for _ in range(2))
    assert sorted(first) == list(range(404)) and not np.array_equal(first, second)
    model = numpy_net.Linear(13, np.random.default_rng(0))
    history = numpy_net.train(model, p.x(p.train_idx), p.y(p.train_idx), lr=0.3, epochs=5,
                              batch_size=32, seed=0, test=(p.x(p.test_idx), p.y(p.test_idx)))
    assert [row["epoch"] for row in history] == [0, 1, 2, 3, 4, 5]
    assert history[-1]["train_mse"] < history[0]["train_mse"] / 5


def test_split_and_normalisation_use_training_houses_only(prepared):
    cfg, p = prepared
    assert len(p.raw) == 506 and (len(p.train_idx), len(p.test_idx)) == (404, 102)
    assert not set(p.train_idx) & set(p.test_idx)
    x = p.x(p.train_idx)
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(x.max(0) - x.min(0), 1)  # (x - mean) / (max - min) of training
    ordered = lab.prepare(build_config(lab.Config, lab.PROFILES, "default", ["split=file-order"]), None)
    assert list(ordered.train_idx) == list(range(404))


def test_default_run_matches_least_squares_within_one_percent(default_run, prepared, note):
    _, metrics = default_run
    m = metrics["metrics"]
    assert metrics["status"] == "completed"
    # least squares checked against scikit-learn on the same split
    _, p = prepared
    sk = LinearRegression().fit(p.x(p.train_idx), p.y(p.train_idx))
    sk_mse = float(np.mean((sk.predict(p.x(p.test_idx)) - p.y(p.test_idx)) ** 2))
    assert m["ols.test_mse"] == pytest.approx(sk_mse, rel=1e-9)
    gap = m["numpy.test_mse"] / m["ols.test_mse"] - 1
    note(f"boston-housing default: NumPy linear test MSE {m['numpy.test_mse']:.3f}, least squares "
         f"{m['ols.test_mse']:.3f} ({100 * gap:+.2f} %); NumPy {m['numpy.seconds']:.3f} s, "
         f"PyTorch {m['torch.seconds']:.3f} s; wall {metrics['seconds']:.1f} s")
    assert abs(gap) < 0.01
    # the same network in PyTorch, same start and batches: the same predictions
    assert m["numpy_vs_torch.max_prediction_difference"] < 1e-9
    # the wall time is noted above, not asserted: on a loaded machine it says nothing of the code


def test_quick_profile_end_to_end(tmp_path, capsys):
    assert run_cli("run", "boston-housing", "--profile", "quick", "--quiet", "--out", tmp_path,
                   "--json") == 0
    result = json.loads(capsys.readouterr().out)
    run_dir = tmp_path / "boston-housing" / result["run_dir"].split("/")[-1]
    assert result["status"] == "completed"
    m = result["metrics"]
    for model in ("numpy", "numpy_quadratic", "torch", "ols"):
        for key in ("test_mse", "test_rmse", "seconds", "lines_of_code"):
            assert f"{model}.{key}" in m, f"{model}.{key}"
        assert m[f"{model}.test_rmse"] == pytest.approx(m[f"{model}.test_mse"] ** 0.5)
        assert m[f"{model}.lines_of_code"] > 0
    for name in ("report.md", "report.html", "metrics.json", "history.csv", "predict.json",
                 "checkpoints/model.json", "figures/loss_curves.png", "figures/true_vs_predicted.png"):
        assert (run_dir / name).is_file(), name
    md = (run_dir / "report.md").read_text()
    for text in ("housing.data, first 6 rows", "NumPy network, PyTorch network and least squares",
                 "Structure. The NumPy linear network is", "Speed. PyTorch", "Gradient check",
                 "One house", "--values"):
        assert text in md, text
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    assert len(rows) == 3 * (lab.PROFILES["quick"]["epochs"] + 1)
    # the paired comparison with least squares: its difference is the two test MSEs' difference
    for model in ("numpy", "numpy_quadratic"):
        d = m[f"{model}_vs_ols.test_mse_difference"]
        assert d == pytest.approx(m[f"{model}.test_mse"] - m["ols.test_mse"], rel=1e-9, abs=1e-9)
        assert m[f"{model}_vs_ols.test_mse_difference_ci95_low"] <= d <= m[f"{model}_vs_ols.test_mse_difference_ci95_high"]
    doc = json.loads((run_dir / "report.json").read_text())
    said = {b["file"]: b.get("conclusion", "") for s in doc["sections"] for b in s["blocks"] if b["kind"] == "figure"}
    assert all(said.values()), [f for f, c in said.items() if not c]
    assert f"{m['numpy.test_mse']:.2f}" in said["figures/true_vs_predicted.png"]


def test_comparison_sentence_follows_the_numbers():
    clear = {"difference": -2.0, "low": -3.0, "high": -1.0}
    assert "10.0 % below least squares' 20.00" in lab.versus_sentence("net", 18.0, 20.0, clear)
    assert "confirm" in lab.versus_sentence("net", 18.0, 20.0, clear)
    unsure = {"difference": 2.0, "low": -1.0, "high": 5.0}
    text = lab.versus_sentence("net", 22.0, 20.0, unsure)
    assert "10.0 % above" in text and "cannot tell" in text
    # the interval comes from the houses: a model worse on every house has it above zero
    rng = np.random.default_rng(0)
    y = rng.normal(22, 9, 100)
    results = {"y_test": y, "ols": {"pred": y + rng.normal(0, 1, 100)}, "numpy": {"pred": y + rng.normal(0, 3, 100)}}
    d = lab.versus_ols(results, "numpy")
    assert d["low"] > 0 and results["numpy"]["vs_ols"] is d


def test_lines_of_code_are_measured_from_source():
    def sample(a):
        """A docstring

        over two lines."""
        # a comment

        b = a + 1  # trailing comment counts as code
        return b

    assert lab.code_lines(sample) == 3  # def, b = ..., return
    assert lab.code_size()["ols"] == lab.code_lines(lab.least_squares)


def test_predict_values_prints_a_price(default_run, capsys):
    run_dir, _ = default_run
    assert run_cli("predict", run_dir, "--values", EXAMPLE) == 0
    line = capsys.readouterr().out.strip()
    text, price, *_ = line.split("\t")
    assert text == EXAMPLE and 5 < float(price) < 50 and "$1000s" in line
    # the same price computed here from the saved statistics and weights
    prep = json.loads((run_dir / "predict.json").read_text())
    params = json.loads((run_dir / "checkpoints" / "model.json").read_text())["params"]
    x = (np.array(EXAMPLE.split(","), float) - prep["mean"]) / prep["scale"]
    assert float(price) == pytest.approx(x @ params["w"] + params["b"][0], abs=1e-3)


@pytest.mark.parametrize("values, fragment", [
    ("0.04741,0,11.93,0,0.573,6.03,80.8,2.505,1,273,21,396.9", "needs 13 comma-separated numbers, got 12"),
    (EXAMPLE + ",11.9", "got 14"),
    ("0.04741,0,eleven,0,0.573,6.03,80.8,2.505,1,273,21,396.9,7.88", "value 3 (INDUS) is 'eleven'"),
])
def test_predict_values_errors_exit_2_with_one_line(default_run, capsys, values, fragment):
    run_dir, _ = default_run
    assert run_cli("predict", run_dir, "--values", values) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert fragment in err and len(err.splitlines()) == 1 and not captured.out
    assert "CRIM, ZN, INDUS, CHAS, NOX, RM, AGE, DIS, RAD, TAX, PTRATIO, B, LSTAT" in err


def test_predict_csv_any_case_and_bad_cells(default_run, tmp_path, capsys):
    run_dir, _ = default_run
    header = ",".join(f.lower() if i % 2 else f for i, f in enumerate(lab.FEATURES))
    good = tmp_path / "houses.csv"
    good.write_text(f"{header},medv\n{EXAMPLE},11.9\n")
    assert run_cli("predict", run_dir, good, "--json") == 0
    (from_csv,) = json.loads(capsys.readouterr().out)
    assert run_cli("predict", run_dir, "--values", EXAMPLE, "--json") == 0
    (from_values,) = json.loads(capsys.readouterr().out)
    assert from_csv["input"] == f"{good}:2" and from_csv["prediction"] == from_values["prediction"]
    for content, fragment in ((f"{header}\n{EXAMPLE.replace('6.03', 'many')}\n", "row 2, column 'RM'"),
                              (header.rsplit(",", 1)[0] + "\n" + EXAMPLE.rsplit(",", 1)[0] + "\n",
                               "no column 'LSTAT'")):
        bad = tmp_path / "bad.csv"
        bad.write_text(content)
        assert run_cli("predict", run_dir, bad) == 2
        err = capsys.readouterr().err.strip()
        assert fragment in err and len(err.splitlines()) == 1, err


def test_divergence_is_reported_not_crashed(tmp_path, capsys):
    rc = run_cli("run", "boston-housing", "--profile", "quick", "--set", "lr=5", "--set", "epochs=5",
                 "--quiet", "--out", tmp_path, "--json")
    assert rc == 1
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "diverged" and "ols.test_mse" in result["metrics"]
    run_dir = tmp_path / "boston-housing" / result["run_dir"].split("/")[-1]
    assert "## Diverged" in (run_dir / "report.md").read_text()
    assert run_cli("predict", run_dir, "--values", EXAMPLE) == 2
