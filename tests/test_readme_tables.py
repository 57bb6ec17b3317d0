"""README's lab table and MNIST results table are what benchmarks/readme_tables.py renders from
the measured suite record in benchmarks/results.json: one source for both, so they cannot
disagree again, and each says which commit and CPU measured it."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tables():
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "benchmarks" / "readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_tables_are_the_rendered_ones(tables):
    readme = (ROOT / "README.md").read_text()
    for name, body in tables.render(tables.suite_record()).items():
        held = tables.current(readme, name)
        assert held is not None, f"README.md lost the markers of the {name}"
        assert held == body, (f"README.md's {name} differs from benchmarks/results.json: run "
                              "python benchmarks/readme_tables.py --write (edit the words in that script)")


def test_both_tables_take_their_figures_from_the_same_record(tables):
    record = tables.suite_record()
    rendered = tables.render(record)
    lenet = tables.per_lab(record)["mnist-lenet"]["metrics"]["test_accuracy"]
    assert f"{100 * lenet:.2f} %" in rendered["lab table"] and f"{lenet:.4f}" in rendered["mnist table"]
    assert record["revision"] in rendered["lab table"] and ", ".join(record["machine"]["simd"]) in rendered["mnist table"]
    # a different measurement gives different tables: nothing in them is typed by hand
    changed = copy.deepcopy(record)
    for run in changed["result"]["rounds"][0]:
        if run["lab"] in ("mnist-lenet", "activations"):
            run["metrics"] = {k: v * 0.9 if isinstance(v, float) else v for k, v in run["metrics"].items()}
    again = tables.render(changed)
    assert f"{100 * 0.9 * lenet:.2f} %" in again["lab table"] and f"{0.9 * lenet:.4f}" in again["mnist table"]
    ratio = tables.per_lab(record)["activations"]["metrics"]["first_layer_grad_ratio"]
    assert f"{0.9 * ratio:,.0f}×" in again["lab table"] and f"{ratio:,.0f}×" not in again["lab table"]


def test_a_lab_missing_from_the_record_says_so(tables):
    record = copy.deepcopy(tables.suite_record())
    record["result"]["rounds"][0] = [r for r in record["result"]["rounds"][0] if r["lab"] != "bike-sharing"]
    assert "| `bike-sharing` |" in tables.lab_table(record)
    assert "not measured in the suite record" in tables.lab_table(record)


def test_the_time_table_takes_its_times_from_both_records(tables):
    record, reference = tables.suite_record(), tables.reference_times()
    table = tables.time_table(record, reference)
    flowers = reference["labs"]["flowers"]["default"]["seconds"]
    assert f"| `flowers` | {tables.duration(flowers)} |" in table
    changed = copy.deepcopy(reference)
    changed["labs"]["flowers"]["default"]["seconds"] = flowers + 600
    assert f"| `flowers` | {tables.duration(flowers + 600)} |" in tables.time_table(record, changed)
    # a lab changed since the suite record is marked, with what changed
    row = next(line for line in table.splitlines() if line.startswith("| `flowers` |"))
    mark = row.rsplit("(", 1)[1].split(")")[0]
    assert f"{mark}: flowers, the default was then CNN and ResNet-18" in table
