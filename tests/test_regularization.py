"""The regularization lab on small slices of the real MNIST files: weight decay, the gap, inspect."""

import json

import pytest
import torch
from conftest import run_cli

from mllabs.labs.regularization import squared_error


def tables(run_dir):
    doc = json.loads((run_dir / "report.json").read_text())
    return {b["caption"].split(" (")[0].split(":")[0]: b for s in doc["sections"] for b in s["blocks"]
            if b["kind"] == "table"}


def run_quick(out, *sets):
    args = [a for s in sets for a in ("--set", s)]
    assert run_cli("run", "regularization", "--profile", "quick", "--quiet", "--out", out, *args) == 0
    (run_dir,) = (out / "regularization").iterdir()
    return run_dir


@pytest.fixture(scope="module")
def reg_run(tmp_path_factory):
    """Three weight decays, 6 epochs on 500 digits, with the layer statistics."""
    return run_quick(tmp_path_factory.mktemp("runs"), "weight_decays=0,0.01,0.3", "epochs=6",
                     "inspect=true")


def test_gap_table_has_one_row_per_weight_decay(reg_run):
    (gap,) = [t for c, t in tables(reg_run).items() if c.startswith("After 6 epochs")]
    assert [row[0] for row in gap["rows"]] == ["0", "0.01", "0.3"]
    cols = gap["columns"]
    train, test, loss_gap = (cols.index(c) for c in ("training loss", "test loss", "loss gap (test − train)"))
    for row in gap["rows"]:
        assert float(row[loss_gap]) == pytest.approx(float(row[test]) - float(row[train]), abs=2e-4)
    assert {"loss_curves.png", "gap.png"} <= {p.name for p in (reg_run / "figures").iterdir()}


def test_more_decay_gives_smaller_weights_and_a_smaller_gap(reg_run, note):
    m = json.loads((reg_run / "metrics.json").read_text())["metrics"]
    norms = [m[f"wd_{wd}.weight_norm"] for wd in ("0", "0.01", "0.3")]
    assert norms[0] > norms[1] > norms[2]
    assert m["wd_0.3.loss_gap"] < m["wd_0.loss_gap"]
    assert m["best_weight_decay"] in (0.0, 0.01, 0.3) and 0 < m["best_test_accuracy"] <= 1
    assert m["loss"] == "cross_entropy"
    note(f"regularization (quick): weight norm {norms[0]:.2f} → {norms[2]:.2f} from λ = 0 to 0.3")


def test_predict_uses_the_network_of_the_chosen_weight_decay(reg_run, tmp_path, capsys):
    """predict's network is the one trained with best_weight_decay: its test accuracy is that
    network's last epoch in history.csv, and no other λ's."""
    import csv

    from conftest import saved_test_accuracy
    from digit_images import render_digits

    m = json.loads((reg_run / "metrics.json").read_text())["metrics"]
    with open(reg_run / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    final = {float(r["weight_decay"]): float(r["test_accuracy"]) for r in rows if r["epoch"] == "6"}
    assert sorted(final) == [0.0, 0.01, 0.3] and len(set(final.values())) == 3
    assert saved_test_accuracy(reg_run, "regularization") == pytest.approx(final[m["best_weight_decay"]], abs=1e-6)
    made = render_digits(tmp_path / "digits", per_digit=1)
    assert run_cli("predict", reg_run, *[p for p, _ in made], "--json") == 0
    answers = json.loads(capsys.readouterr().out)
    assert len(answers) == 10 and all(len(a["top"]) == 3 for a in answers)


def test_inspect_gives_one_row_per_layer(reg_run):
    (layers,) = [t for c, t in tables(reg_run).items() if c.startswith("Layer outputs")]
    rows = [dict(zip(layers["columns"], row)) for row in layers["rows"]]
    assert [r["type"] for r in rows] == ["Flatten", "Linear", "ReLU", "Linear"]  # hidden=64 in quick
    assert [r["output"] for r in rows] == ["64×784", "64×64", "64×64", "64×10"]
    zeros = [float(r["zeros"]) for r in rows]
    assert all(0 <= z <= 1 for z in zeros) and zeros[2] > 0  # ReLU switches some units off
    assert float(rows[2]["min"]) == 0 and float(rows[2]["std"]) > 0


def test_mse_loss_runs_and_is_recorded(tmp_path):
    run_dir = run_quick(tmp_path, "loss=mse", "weight_decays=0")
    assert json.loads((run_dir / "config.json").read_text())["loss"] == "mse"
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["status"] == "completed" and m["metrics"]["loss"] == "mse"
    assert "squared error of the probabilities" in (run_dir / "report.md").read_text()
    history = (run_dir / "history.csv").read_text().splitlines()
    col = history[0].split(",").index("test_loss")
    assert all(0 <= float(line.split(",")[col]) <= 2 for line in history[1:])


def test_squared_error_of_probabilities():
    target = torch.tensor([3, 7])
    sure = torch.full((2, 10), -50.0)
    sure[0, 3] = sure[1, 7] = 50.0
    assert float(squared_error(sure, target)) == pytest.approx(0.0, abs=1e-6)
    assert float(squared_error(torch.zeros(2, 10), target)) == pytest.approx(0.9)  # 0.81 + 9 × 0.01
    wrong = sure.roll(1, dims=1)
    assert float(squared_error(wrong, target)) == pytest.approx(2.0, abs=1e-6)


@pytest.mark.parametrize("sets, fragment", [
    (("loss=hinge",), "loss='hinge' is not one of"),
    (("weight_decays=0,-0.001",), "weight_decays=-0.001 is below its minimum 0.0"),
    (("weight_decay=0.01",), "this lab sweeps weight_decays"),
    (("weight_decays=0.1,0.1",), "lists a value twice"),
    (("patience=3",), "leave patience at 0"),
])
def test_bad_options_end_with_exit_2(tmp_path, capsys, sets, fragment):
    args = [a for s in sets for a in ("--set", s)]
    assert run_cli("run", "regularization", "--profile", "quick", "--out", tmp_path, *args) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1
    assert not (tmp_path / "regularization").exists()


def test_figure_conclusions_follow_made_up_numbers():
    import numpy as np

    from mllabs.labs.regularization import gap_conclusion, loss_conclusion

    overfit = {0.0: np.array([0.5, 0.3, 0.4]), 0.01: np.array([0.5, 0.35, 0.32])}
    text = loss_conclusion(overfit)
    assert "ends lowest at λ = 0.01 (0.3200)" in text and "after epoch 2 (0.3000) and rose 33 %" in text
    assert "did not turn upward" in loss_conclusion({0.0: np.array([0.5, 0.3]), 0.1: np.array([0.6, 0.4])})
    assert "shrinks from 0.2000 at λ = 0 to 0.0500 at λ = 0.3" in gap_conclusion({0.0: 0.2, 0.01: 0.1, 0.3: 0.05})
    assert "grows from 0.0500" in gap_conclusion({0.0: 0.05, 0.3: 0.2})
    assert "barely moves" in gap_conclusion({0.0: 0.2006, 0.01: 0.1999})


def test_a_network_of_the_users_own_trains_one_at_a_time_with_every_figure(tmp_path):
    """The lab's own MLPs train stacked (tests/test_stacked.py checks that against fit()); a
    network of the user's own (model=) cannot be stacked and trains one at a time with fit():
    the run reports the same figures for it, from its own training."""
    import mllabs
    from mllabs.models.mlp import MLP

    sets = {"weight_decays": (0.0, 0.03), "epochs": 2}
    ours = mllabs.run("regularization", profile="quick", seed=0, out=tmp_path, progress=False, **sets)
    made = []
    yours = mllabs.run("regularization", profile="quick", seed=0, out=tmp_path, progress=False,
                       model=lambda: made.append(MLP(784, (24,), 10)) or made[-1], **sets)
    assert len(made) == 2 and yours.status == ours.status == "completed"
    assert set(yours.metrics) == set(ours.metrics)
    assert yours.metrics["wd_0.03.weight_norm"] < yours.metrics["wd_0.weight_norm"]
    assert all(p.grad is not None for p in made[0].parameters())  # the user's module itself trained
