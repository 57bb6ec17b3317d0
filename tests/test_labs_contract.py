"""Every registered lab keeps the contract written in mllabs.labs.Lab, and the engine's
RunContext.fit fills in what a lab must not have to repeat."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch
from torch import nn

from mllabs.config import PROFILES, LabConfig, TrainConfig, profile_names
from mllabs.labs import LABS, OPTIONAL, Lab, get_lab
from mllabs.runner import RunContext
from mllabs.session import Session


@pytest.mark.parametrize("name", list(LABS))
def test_every_lab_satisfies_the_protocol(name):
    lab = get_lab(name)
    members = [*Lab.__annotations__, "prepare", "run", "predict"]
    assert isinstance(lab, Lab), f"{name} lacks {[m for m in members if not hasattr(lab, m)]}"
    assert lab.NAME == name
    for text in (lab.TITLE, lab.SUMMARY, lab.SUMMARY_LINE):
        assert isinstance(text, str) and text.strip()
    assert dataclasses.is_dataclass(lab.Config) and issubclass(lab.Config, LabConfig)
    assert set(PROFILES) <= set(profile_names(lab.PROFILES))
    for profile in profile_names(lab.PROFILES):  # every profile, a lab's own too, builds a config
        lab.Config(**lab.PROFILES.get(profile, {}))
    for fn, arity in (("prepare", 2), ("run", 3), ("predict", 2), *OPTIONAL.items()):
        if hasattr(lab, fn):
            params = inspect.signature(getattr(lab, fn)).parameters.values()
            required = [p for p in params if p.default is inspect.Parameter.empty]
            assert len(required) == arity, f"{name}.{fn} takes {len(required)} arguments, not {arity}"
    assert isinstance(getattr(lab, "USER_DATA", False), bool)


def test_a_lab_that_trains_with_fit_has_a_train_config():
    """ctx.fit and stacked training read epochs, batch_size, schedule, ...: a lab that trains
    with either uses TrainConfig (boston-housing trains its own NumPy and torch loops)."""
    trains = [n for n in LABS if any(call in inspect.getsource(get_lab(n))
                                     for call in ("ctx.fit(", "train_stack("))]
    assert len(trains) >= 8
    for name in trains:
        assert issubclass(get_lab(name).Config, TrainConfig), name


def test_ctx_fit_fills_in_device_session_and_progress(tmp_path, capsys):
    class FakeRun:
        lab = "test"

    seen = {}
    ctx = RunContext(FakeRun(), report=None, device=torch.device("cpu"), progress=False,
                     session=Session(state_dir=tmp_path))
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    x = torch.randn(16, 3)
    result = ctx.fit(model, (x, x[:, :1]), TrainConfig(epochs=2, batch_size=8),
                     loss_fn=nn.functional.mse_loss, label="probe",
                     stop_when=lambda history: seen.setdefault("epochs", len(history)) and False)
    assert len(result.history) == 2 and seen["epochs"] == 1
    assert (tmp_path / "fit-001.pt").exists()  # the session saved the state: it was passed on
    assert ctx.session.calls == 1 and ctx.session.histories[0][0] == "probe"
    assert capsys.readouterr().err == ""  # progress=False on the context silences fit


def test_a_new_lab_is_one_module_and_one_registry_line(tmp_path, monkeypatch, capsys):
    """docs/example_lab.py, registered with one line, runs end to end through the CLI: run,
    summary, predict and report, with nothing else added anywhere."""
    import importlib.util
    import json
    import sys
    from pathlib import Path

    import mllabs.labs
    from conftest import run_cli

    source = Path(__file__).parent.parent / "docs" / "example_lab.py"
    spec = importlib.util.spec_from_file_location("example_lab", source)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "example_lab", module)
    spec.loader.exec_module(module)
    monkeypatch.setitem(mllabs.labs.LABS, "example-line", "example_lab")  # the one registry line

    assert isinstance(module, Lab)
    assert run_cli("run", "example-line", "--profile", "default", "--json", "--out", tmp_path) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "completed"
    assert abs(result["metrics"]["slope"] - 3) < 0.2 and abs(result["metrics"]["intercept"] - 1) < 0.2
    run_dir = Path(result["run_dir"])
    report = (run_dir / "report.md").read_text()
    assert "The fit" in report and "The network, layer by layer" in report  # networks() → table
    (tmp_path / "xs.csv").write_text("x\n0\n1\n")
    assert run_cli("predict", run_dir, tmp_path / "xs.csv", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [round(r["prediction"]) for r in rows] == [1, 4]
    assert run_cli("summary", "example-line") == 0 and "neuron" in capsys.readouterr().out
