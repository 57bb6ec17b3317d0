"""mllabs.run / load / lab: the CLI's run from Python, its errors as exceptions, a user's own
network in place of the lab's, predict on files and rows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import mllabs
from conftest import run_cli
from mllabs import api
from mllabs.errors import UserError
from mllabs.labs import LABS, get_lab

CARS = ("cylinders,displacement,horsepower,weight,acceleration,model_year,origin,car_name\n"
        "4,120,90,2400,15,80,3,small one\n8,350,165,4200,11,72,1,big one\n")
SMALL = {"epochs": 3, "seeds": 1, "hidden": (8, 8)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """auto-mpg on a small budget three ways: mllabs.run, the CLI with the same --set values, and
    mllabs.run with a network of the user's own."""
    root = tmp_path_factory.mktemp("api")
    ours = mllabs.run("auto-mpg", profile="quick", seed=0, out=root / "api", progress=False, **SMALL)
    assert run_cli("run", "auto-mpg", "--profile", "quick", "--seed", "0", "--quiet", "--out",
                   root / "cli", "--set", "epochs=3", "--set", "seeds=1", "--set", "hidden=8,8") == 0
    (cli,) = (root / "cli" / "auto-mpg").glob("*/metrics.json")
    mine = nn.Sequential(nn.Linear(9, 5), nn.Tanh(), nn.Linear(5, 1))
    before = [p.detach().clone() for p in mine.parameters()]
    yours = mllabs.run("auto-mpg", profile="quick", seed=0, out=root / "api", progress=False,
                       model=mine, **SMALL)
    cars = root / "cars.csv"
    cars.write_text(CARS)
    return {"ours": ours, "cli": cli.parent, "yours": yours, "mine": mine, "before": before,
            "cars": cars, "root": root}


def test_run_is_the_cli_run(runs):
    ours, cli = runs["ours"], runs["cli"]
    expected = json.loads((cli / "metrics.json").read_text())["metrics"]
    assert ours.status == "completed"
    assert {k: v for k, v in ours.metrics.items() if "seconds" not in k} == \
           {k: v for k, v in expected.items() if "seconds" not in k}
    config = json.loads((ours.run_dir / "config.json").read_text())
    assert config == json.loads((cli / "config.json").read_text()) and config["hidden"] == [8, 8]
    assert ours.report.is_file() and (ours.run_dir / "report.md").is_file()
    from mllabs import rundb
    assert rundb.get_run(ours.run_dir.parent.parent, ours.run_dir.name)["status"] == "completed"
    env = json.loads((ours.run_dir / "env.json").read_text())
    assert env["command"] == ("mllabs run auto-mpg --profile quick --seed 0 --set epochs=3 "
                              "--set seeds=1 --set hidden=8,8")


def test_history_figures_html_and_load(runs):
    ours = runs["ours"]
    assert list(ours.history["epoch"]) == [1, 2, 3]
    assert "val_mae" in ours.history
    names = [f.name for f in ours.figures]
    assert "training_curves" in names and ours.figure("training_curves")._repr_png_()[:4] == b"\x89PNG"
    html = ours._repr_html_()
    assert html.count("data:image/png;base64,") == len(names) and "test_mae" in html
    again = mllabs.load(ours.run_dir)
    assert again.metrics == ours.metrics and again.lab == "auto-mpg"
    with pytest.raises(UserError, match="no figure 'nope'"):
        ours.figure("nope")


def test_predict_files_and_rows_as_the_cli(runs, capsys):
    ours, cars = runs["ours"], runs["cars"]
    capsys.readouterr()
    assert run_cli("predict", ours.run_dir, cars, "--json") == 0
    cli = json.loads(capsys.readouterr().out)
    frame = ours.predict(cars)
    assert list(frame["prediction"]) == [r["prediction"] for r in cli]
    rows = ours.predict([{"cylinders": 4, "displacement": 120, "horsepower": 90, "weight": 2400,
                          "acceleration": 15, "model_year": 80, "origin": "Japan"}])
    assert rows["prediction"][0] == cli[0]["prediction"] and rows["input"][0] == "rows:2"
    with pytest.raises(UserError, match="does not exist"):
        ours.predict(runs["root"] / "missing.csv")
    with pytest.raises(UserError, match="nothing to predict"):
        ours.predict()
    with pytest.raises(UserError, match="not from values"):
        ours.predict(values=[1, 2, 3])


def test_overrides_parse_as_set_does():
    assert api.as_sets({"hidden": (64, 64)}) == api.as_sets({"hidden": "64,64"}) == ["hidden=64,64"]
    assert api.as_sets({"refit": False, "lr": 0.001}) == ["refit=false", "lr=0.001"]
    steps = mllabs.lab("auto-mpg", profile="quick", hidden=[16], lr=1e-3)
    assert steps.config.hidden == (16,) and steps.config.lr == 1e-3 and steps.config.epochs == 30


@pytest.mark.parametrize("call, message", [
    (lambda out: mllabs.run("no-such-lab", out=out), "unknown lab 'no-such-lab'"),
    (lambda out: mllabs.run("auto-mpg", profile="fast", out=out), "unknown profile 'fast'"),
    (lambda out: mllabs.run("auto-mpg", out=out, epoch=3), "unknown config key 'epoch'"),
    (lambda out: mllabs.run("auto-mpg", out=out, epochs="ten"), "bad value for epochs"),
    (lambda out: mllabs.run("auto-mpg", out=out, epochs=0), "epochs=0 is below its minimum"),
    (lambda out: mllabs.run("car-clustering", out=out, model=nn.Linear(2, 2)),
     "car-clustering cannot train your own network"),
    (lambda out: mllabs.lab("mnist-lenet", out=out, optimizer="fast"), "optimizer='fast' is not one of"),
    (lambda out: mllabs.load(out), "is not a run directory"),
])
def test_bad_arguments_raise_the_cli_errors_and_write_nothing(call, message, tmp_path):
    with pytest.raises(UserError, match=re.escape(message)):
        call(tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_your_network_trains_in_place_of_the_labs(runs):
    yours, mine = runs["yours"], runs["mine"]
    assert yours.status == "completed" and yours.model is mine
    assert any(not torch.equal(a, b) for a, b in zip(runs["before"], mine.parameters()))
    assert yours.metrics["test_mae"] != runs["ours"].metrics["test_mae"]
    env = json.loads((yours.run_dir / "env.json").read_text())
    assert "Sequential" in env["network"]
    report = (yours.run_dir / "report.md").read_text()
    assert "Sequential (yours, in place of network)" in report
    spec = json.loads((yours.run_dir / "predict.json").read_text())
    assert spec["user_network"] == "Sequential"


def test_predict_with_your_network_needs_it(runs, capsys):
    yours, cars = runs["yours"], runs["cars"]
    first = yours.predict(cars)
    with pytest.raises(UserError, match=r"model=YourNetwork\(\)"):
        mllabs.load(yours.run_dir).predict(cars)
    shaped = nn.Sequential(nn.Linear(9, 5), nn.Tanh(), nn.Linear(5, 1))  # fresh weights: loaded
    assert list(mllabs.load(yours.run_dir, model=shaped).predict(cars)["prediction"]) == \
           list(first["prediction"])
    assert run_cli("predict", yours.run_dir, cars) == 2
    assert "trained your own network" in capsys.readouterr().err


def test_every_lab_says_whether_it_takes_your_network():
    """A lab in USER_NETWORK builds its network through ctx.network(...); the others never do
    and say why they refuse."""
    assert set(api.USER_NETWORK) | set(api.REFUSED) == set(LABS)
    assert not set(api.USER_NETWORK) & set(api.REFUSED)
    for name in LABS:
        source = Path(get_lab(name).__file__).read_text()
        assert ("ctx.network(" in source) == (name in api.USER_NETWORK), name


def test_network_hook_copies_with_fresh_weights():
    from mllabs.runner import RunContext

    mine = nn.Linear(4, 3)
    ctx = RunContext(None, None, torch.device("cpu"), user_network=mine)
    first, second = ctx.network(nn.Linear(4, 3)), ctx.network(nn.Linear(4, 3))
    assert first is mine and second is not mine
    assert not torch.equal(first.weight, second.weight)
    lab_own = nn.Linear(4, 3)
    assert RunContext(None, None, torch.device("cpu")).network(lab_own) is lab_own
    made = RunContext(None, None, torch.device("cpu"), user_network=lambda: nn.Linear(4, 3))
    assert isinstance(made.network(lab_own), nn.Linear) and made.network(lab_own) is not lab_own
    with pytest.raises(UserError, match="not a torch.nn.Module"):
        RunContext(None, None, torch.device("cpu"), user_network=lambda: 3).network(lab_own)


def test_steps_show_the_network():
    steps = mllabs.lab("mnist-lenet", profile="quick")
    table = steps.summary()
    total = table.iloc[-1]
    assert total["layer"] == "total"
    assert total["parameters"] == sum(p.numel() for p in steps.model().parameters())
    mine = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 10))
    assert steps.summary(mine).iloc[-1]["parameters"] == 32 * 32 * 10 + 10
    assert steps.input_shape == (1, 32, 32)
    assert "LeNet-5" in steps.replaces
    assert steps.options().loc["epochs", "value"] == 1
    assert steps.module.SUMMARY in steps.about()._repr_markdown_()
    with pytest.raises(UserError, match="no network to show"):
        mllabs.lab("car-clustering").summary()
