"""bike-sharing on the real UCI tables: split by date, no leaking columns, the RMSProp linear
model reaching least squares, result.txt, and predict on rows shaped like the raw CSVs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import run_cli

from mllabs.runner import RunContext

MODELS = ("linear", "ols", "mlp", "gbm")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bike")
    from mllabs.runner import execute

    result = execute("bike-sharing", profile="quick", out=out, progress=False)
    return result, out / "bike-sharing" / result["run_dir"].split("/")[-1]


def test_quick_run_reports_every_model_on_both_tables(quick):
    result, run_dir = quick
    assert result["status"] == "completed"
    m = result["metrics"]
    for table in ("hour", "day"):
        for model in MODELS:
            for k in ("mae", "mse", "rmse", "r2"):
                assert np.isfinite(m[f"{table}.{model}.test_{k}"]), (table, model, k)
            assert m[f"{table}.{model}.test_rmse"] == pytest.approx(m[f"{table}.{model}.test_mse"] ** 0.5)
    md = (run_dir / "report.md").read_text()
    for text in ("add up to `cnt`", "shuffled split", "least squares (closed form)", "After dropping"):
        assert text in md, text
    assert {"curves_hour.png", "curves_day.png", "test_weeks.png"} <= {p.name for p in (run_dir / "figures").iterdir()}


def test_split_is_by_date_and_inputs_hold_no_leak(data_root):
    from mllabs.labs import bike_sharing as lab
    from mllabs.config import build_config

    cfg = build_config(lab.Config, lab.PROFILES, "quick")
    tables = lab.prepare(cfg, data_root)
    for t in tables.values():
        train_days, test_days = t.raw.loc[t.train, "dteday"], t.raw.loc[~t.train, "dteday"]
        assert train_days.max() < test_days.min()  # every test day comes after every training day
        assert test_days.nunique() == round(0.2 * t.raw["dteday"].nunique())
        columns = lab.encoded_columns(t.encoding)
        assert not {"casual", "registered", "cnt", "instant"} & set(columns)
        x = t.x(t.raw[t.train])
        assert np.allclose(x[:, :4].mean(0), 0, atol=1e-9)  # normalised with training rows only
        assert x.shape[1] == len(columns)
    hour_columns = lab.encoded_columns(tables["hour"].encoding)
    assert [c for c in hour_columns if c.startswith("hr_")] == [f"hr_{h}" for h in range(24)]
    assert not [c for c in lab.encoded_columns(tables["day"].encoding) if c.startswith("hr_")]


def test_rmsprop_linear_model_reaches_least_squares_on_daily_table(data_root):
    """The handout's recipe (RMSProp 1e-3, 400 epochs) on the daily table: test MSE within 2 %."""
    from mllabs.config import build_config
    from mllabs.labs import bike_sharing as lab

    cfg = build_config(lab.Config, lab.PROFILES, "default", ["mlp_epochs=1", "gbm_iterations=5"])
    t = lab.prepare(cfg, data_root)["day"]

    # the engine's own context, without a run directory: ctx.fit trains on the CPU, no session
    ctx = RunContext(run=None, report=None, device=torch.device("cpu"), progress=False)
    out = lab.run_table(t, cfg, ctx)
    ratio = out["scores"]["linear"]["mse"] / out["scores"]["ols"]["mse"]
    assert 0.98 <= ratio <= 1.02, ratio


def test_result_txt_has_every_test_prediction(quick):
    result, run_dir = quick
    rows = pd.read_csv(run_dir / "result.txt", sep="\t", dtype={"hour": str})
    assert list(rows.columns) == ["table", "date", "hour", "true", *MODELS]
    hourly = rows[rows["table"] == "hour"]
    assert len(hourly) == 3464 and (rows["table"] == "day").sum() == 146
    assert hourly["date"].min() == "2012-08-08" and hourly["hour"].astype(int).between(0, 23).all()
    # the table's own numbers reproduce the reported MAE
    assert np.abs(hourly["gbm"] - hourly["true"]).mean() == pytest.approx(
        result["metrics"]["hour.gbm.test_mae"], abs=0.06)


def test_predict_on_raw_rows_matches_the_run(quick, data_root, tmp_path, capsys):
    _, run_dir = quick
    raw = pd.read_csv(data_root / "bike-sharing" / "hour.csv")
    rows = raw[raw["dteday"] == "2012-12-31"].head(5)
    rows.to_csv(tmp_path / "hours.csv", index=False)
    day = pd.read_csv(data_root / "bike-sharing" / "day.csv").tail(2)
    day.drop(columns=["casual", "registered", "cnt"]).to_csv(tmp_path / "days.csv", index=False)
    assert run_cli("predict", run_dir, tmp_path / "hours.csv", tmp_path / "days.csv", "--json") == 0
    answers = json.loads(capsys.readouterr().out)
    assert [a["table"] for a in answers] == ["hour"] * 5 + ["day"] * 2
    saved = pd.read_csv(run_dir / "result.txt", sep="\t", dtype={"hour": str})
    expected = saved[(saved["table"] == "hour") & (saved["date"] == "2012-12-31")].head(5)["gbm"]
    assert [a["prediction"] for a in answers[:5]] == pytest.approx(expected.tolist(), abs=0.06)


@pytest.mark.parametrize("change, expected", [
    (lambda f: f.drop(columns=["hum"]), "no column 'hum'"),
    (lambda f: f.assign(hr=25), "column 'hr' holds 25"),
    (lambda f: f.assign(temp="warm"), "column 'temp' holds 'warm'"),
])
def test_predict_rejects_bad_rows_with_one_line(quick, data_root, tmp_path, capsys, change, expected):
    _, run_dir = quick
    rows = change(pd.read_csv(data_root / "bike-sharing" / "hour.csv").head(3))
    rows.to_csv(tmp_path / "bad.csv", index=False)
    assert run_cli("predict", run_dir, tmp_path / "bad.csv") == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1


def test_comparison_with_least_squares_states_the_direction_the_numbers_give():
    from mllabs.labs.bike_sharing import against_least_squares, versus_sentence

    clear = {"difference": -40.0, "low": -45.0, "high": -35.0}
    assert "43 % below least squares' 94.0" in versus_sentence("MLP", 53.2, 94.0, clear)
    assert "more than the test days' spread" in versus_sentence("MLP", 53.2, 94.0, clear)
    worse = {"difference": 6.0, "low": -1.0, "high": 12.0}
    text = versus_sentence("MLP", 100.0, 94.0, worse)
    assert "6 % above" in text and "within the test days' spread" in text
    # the paired interval over days: a model that is better on every day has it below zero
    days = np.repeat(np.arange(20), 24)
    y = np.random.default_rng(0).uniform(0, 500, len(days))
    r = {"y_test": y, "pred": {"ols": y + 50, "linear": y + 60, "mlp": y + 10, "gbm": y}}
    d = against_least_squares(r, days)
    assert d["mlp"]["high"] < 0 < d["linear"]["low"] and abs(d["gbm"]["difference"] + 50) < 1e-9
