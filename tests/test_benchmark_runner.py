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
    bench["variants"]["Skipped peer"] = [{"error": "not run (--no-peers)"}]
    headline = runner.lenet_headline(bench)
    assert "within the budget: Slow peer." in headline and "Not measured: Skipped peer." in headline


def race_run(seconds, *, side, epochs):
    return dict(lenet_run(seconds, epochs=epochs), side=side, schedule_epochs=epochs, train_examples=55000)


def test_race_times_each_side_with_its_fewest_epochs_that_reach_99_on_four_of_five_seeds(runner):
    variants = {
        "recipe, 1 epoch": [race_run(s, side="recipe", epochs=1) for s in (11.0, None, None, 12.0, None)],
        "recipe, 2 epochs": [race_run(s, side="recipe", epochs=2) for s in (24.0, 23.0, 25.0, 22.0, 30.0)],
        "mllabs, 3 epochs": [race_run(s, side="mllabs", epochs=3) for s in (19.0, 18.0, 20.0, None, 17.0)],
        "mllabs, 2 epochs": [race_run(s, side="mllabs", epochs=2) for s in (12.0, None, None, 13.0, 14.0)],
    }
    # the recipe's 1-epoch schedule reached 99 % on 2 seeds only; mllabs' 2-epoch one on 3
    assert runner.race_choice(variants, "recipe", 4) == ("recipe, 2 epochs", 24.0)
    assert runner.race_choice(variants, "mllabs", 4) == ("mllabs, 3 epochs", 19.0)  # the miss counts as never
    cls = {"env": {}, "floor": [{"macs_per_second_best": 100e9, "lenet_forward_macs": 416520}],
           "variants": variants}
    assert "**1.26×** faster" in runner.race_sentence("held to AVX2", cls, 4)
    table = "\n".join(runner.render_race({"classes": {"held to AVX2": cls}, "seeds": 5, "min_reached": 4}))
    row = next(line for line in table.splitlines() if "mllabs, 3 epochs" in line)
    assert "| 4/5 |" in row and "2.9× (0.69 s)" in row  # 2.0 s per epoch against 3 × 416,520 × 55,000 at 100 G/s
    nobody = {"env": {}, "floor": [], "variants": {k: v for k, v in variants.items() if "1 epoch" in k}}
    assert "no ratio" in runner.race_sentence("as is", nobody, 4)


@pytest.mark.parametrize("simd, held_only, classes", [
    (["avx2", "avx512f"], False, ["as is", "held to AVX2"]),
    (["avx2", "avx512f"], True, ["held to AVX2"]),
    (["avx2"], False, ["as is"]),
    (["avx2"], True, ["as is"]),  # an AVX2-only CPU is the class already: nothing to hold
])
def test_race_cpu_classes_follow_the_flags(runner, monkeypatch, simd, held_only, classes):
    monkeypatch.setattr(runner, "machine", lambda threads: {"simd": simd})
    got = runner.cpu_classes(held_only)
    assert [label.split(" (")[0] for label in got] == classes
    assert all((env == runner.HELD_TO_AVX2) == label.startswith("held") for label, env in got.items())
