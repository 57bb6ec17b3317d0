"""benchmarks/run.py's arithmetic and tables, on made-up runs (the benchmarks themselves are not
run by the tests: they need the peer frameworks and an hour)."""

import importlib.util
from pathlib import Path

import pytest

RUNNER = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


@pytest.fixture(scope="module")
def runner():
    spec = importlib.util.spec_from_file_location("bench_runner", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def lenet_run(seconds=None, *, recipe="r", epochs=3):
    run = {"recipe": recipe, "reached": seconds is not None, "final_accuracy": 0.991,
           "train_seconds_per_epoch": 2.0, "eval_seconds_per_epoch": 0.1, "import_seconds": 1.0,
           "data_seconds": 0.3}
    if seconds is not None:
        run.update(seconds_to_target=seconds, epochs_to_target=epochs)
    return run


def test_a_missed_run_counts_as_never_reaching_the_target(runner):
    assert runner.time_to_target([lenet_run(6.0), lenet_run(7.0), lenet_run(5.0)]) == 6.0
    assert runner.time_to_target([lenet_run(6.0), lenet_run(None), lenet_run(5.0)]) == 6.0  # not 5.5
    assert runner.time_to_target([lenet_run(6.0), lenet_run(None), lenet_run(None)]) is None
    assert runner.time_to_target([{"error": "timed out"}]) is None


def test_lenet_table_and_headline_use_those_medians(runner):
    bench = {"max_epochs": 20, "budget_seconds": 1800, "slow_after": 900, "variants": {
        "mllabs (one-cycle recipe)": [lenet_run(6.0), lenet_run(None), lenet_run(7.0)],
        "mllabs (lab recipe)": [lenet_run(10.0, epochs=5)] * 3,
        "PyTorch (Dataset + DataLoader)": [lenet_run(28.0, epochs=5)] * 3,
        "Slow peer": [lenet_run(None)],
    }}
    table = "\n".join(runner.render_lenet(bench))
    one_cycle = next(line for line in table.splitlines() if line.startswith("| mllabs (one-cycle"))
    assert "| 7.0 (6.0–7.0) | 2/3 |" in one_cycle
    pytorch = next(line for line in table.splitlines() if line.startswith("| PyTorch"))
    assert pytorch.split(" | ")[-3:] == ["4.00×", "2.80×", "– |"]  # ÷ one-cycle, ÷ lab, no handout row
    headline = runner.lenet_headline(bench)
    assert "fastest peer PyTorch (Dataset + DataLoader), 28.0 s" in headline
    assert "7.0 s (4.00× faster)" in headline and "Not reaching 99.0 % within the budget: Slow peer" in headline
