"""The time a run is expected to take here: calibration, scaling, and what `mllabs run` prints."""

import time

import pytest
import torch

from conftest import run_cli
from mllabs import estimate
from mllabs.labs import LABS, get_lab

REFERENCE = {"machine": "test machine", "calibration": {"conv": 10.0, "dense": 100.0},
             "labs": {"slow": {"default": {"seconds": 600.0, "kind": "conv"}},
                      "dense": {"default": {"seconds": 900.0, "kind": "dense"}},
                      "short": {"default": {"seconds": 5.0, "kind": "dense"}}}}


@pytest.fixture
def reference(monkeypatch):
    monkeypatch.setattr(estimate, "reference", lambda: REFERENCE)


def test_the_calibration_measures_both_kinds_within_its_budget():
    start = time.perf_counter()
    speeds = estimate.calibrate(seconds=0.4)
    took = time.perf_counter() - start
    assert set(speeds) == set(estimate.KINDS) and all(v > 0 for v in speeds.values())
    # the budget, plus warm-up steps and a first optimizer's one-off imports
    assert took < 4.0, f"a 0.4 s calibration took {took:.1f} s"
    # a dense step is a fraction of a convolution step's work: a broken timer would not say so
    assert speeds["dense"] > speeds["conv"]


def test_the_expected_time_scales_with_the_speed_of_its_kind(reference):
    assert estimate.expected_seconds("slow", {"conv": 20.0, "dense": 1.0}) == pytest.approx(300.0)
    # a dense lab scales by the dense steps alone: convolutions twice as fast change nothing
    assert estimate.expected_seconds("dense", {"conv": 20.0, "dense": 50.0}) == pytest.approx(1800.0)
    assert estimate.expected_seconds("slow", {"conv": 20.0, "dense": 1.0}, profile="quick") is None
    assert estimate.expected_seconds("missing", {"conv": 1.0, "dense": 1.0}) is None


def test_a_short_lab_says_nothing_and_waits_for_no_calibration(reference, monkeypatch):
    def no_calibration(*args):
        raise AssertionError("calibrated for a lab of seconds")
    monkeypatch.setattr(estimate, "calibrate", no_calibration)
    assert estimate.announce(["short"], "default", torch.device("cpu")) is None
    assert estimate.announce(["slow"], "quick", torch.device("cpu")) is None  # profile never timed


def test_the_announcement_gives_the_machine_the_ratio_and_the_total(reference):
    text = estimate.announce(["slow", "dense", "short"], "default", torch.device("cpu"),
                             calibration={"conv": 5.0, "dense": 100.0})
    assert "vector level" in text and "test machine" in text
    assert "conv 0.50x" in text and "dense 1.00x" in text
    # 600 × 10/5 + 900 × 100/100 + 5 × 100/100 = 2,105 s
    assert "about 35 min for 3 labs' default profiles" in text
    assert "longest: slow 20 min, dense 15 min, short 5 s" in text
    one = estimate.announce(["slow"], "default", torch.device("cpu"), calibration={"conv": 40.0, "dense": 1})
    assert "about 150 s" not in one and "about 2 min for slow's default profile" in one
    on_gpu = estimate.announce(["slow"], "default", torch.device("cuda"))
    assert "none is given for cuda" in on_gpu and "expected: about" not in on_gpu


def test_minutes_reads_like_a_person_would_say_it():
    assert [estimate.minutes(s) for s in (40, 89, 420, 3599, 3900)] == [
        "40 s", "89 s", "7 min", "60 min", "1 h 05 min"]


def test_every_lab_that_run_all_runs_has_a_reference_time():
    table = estimate.reference()
    for name in LABS:
        if getattr(get_lab(name), "USER_DATA", False):
            continue  # `run all` skips it: its photos are the user's
        entry = table["labs"].get(name, {}).get("default")
        assert entry is not None, f"{name}: time it with benchmarks/reference_times.py"
        assert entry["kind"] in estimate.KINDS and entry["seconds"] > 0
    assert table["flags"] and table["machine"] and all(table["calibration"][k] > 0 for k in estimate.KINDS)


def test_run_all_says_what_it_expects_before_the_first_lab(monkeypatch, capsys, reference):
    import mllabs.runner

    monkeypatch.setattr(estimate, "reference", lambda: {
        **REFERENCE, "labs": {name: REFERENCE["labs"]["slow"] for name in LABS}})
    started = []

    def fake_execute(name, **kwargs):
        started.append((name, "expected: about" in capsys.readouterr().err))
        return {"lab": name, "status": "completed", "seconds": 0.0, "metrics": {}, "run_dir": "x"}

    monkeypatch.setattr(mllabs.runner, "execute", fake_execute)
    assert run_cli("run", "all", "--json") == 0
    assert started[0] == (started[0][0], True), "the estimate came after the first lab started"
    assert run_cli("run", "all", "--quiet", "--json") == 0
    assert "expected" not in capsys.readouterr().err
