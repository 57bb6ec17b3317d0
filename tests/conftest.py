"""Tests read the real data through MLLABS_DATA (or a cache filled before the tests start)
and never download: MLLABS_OFFLINE=1 turns any download attempt into an error."""

from __future__ import annotations

import importlib
import contextlib
import os
from pathlib import Path

import pytest

os.environ["MLLABS_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The folder laid out like shared/data that the tests read."""
    from mllabs.data import dataset_dir

    return dataset_dir("auto-mpg", download=False).parent.resolve()  # MLLABS_DATA may be relative


def need(module: str):
    """An optional engine (ray, tensorboard, mlflow): its tests are skipped where it is not
    installed, except under CI (CI=true), which installs every one (scripts/test), so there a
    missing engine fails the run instead of passing it silently."""
    if os.environ.get("CI") == "true":
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            pytest.fail(f"{module} is not installed ({exc}); CI=true installs every optional engine "
                        "(scripts/test sets MLLABS_EXTRAS), so this is a failure, not a skip")
    return pytest.importorskip(module)


def run_cli(*args: str) -> int:
    from mllabs.cli import main

    return main([str(a) for a in args])


_NOTES: list[str] = []


@pytest.fixture
def note():
    """Record a measured figure; pytest prints every note at the end of the run."""
    return _NOTES.append


# The slowest test files, slowest first (test-seconds on CI's 2 cores, from junit reports: on
# c04bfc3 the notebooks took 268, test_sweep 130, test_mnist 121, the rest of this list 45-107).
# scripts/test hands whole files to its two workers in collection order (--dist loadfile
# --no-loadscope-reorder): long files started first leave no worker alone with one at the end.
# Unlisted files follow in their usual order.
SLOWEST_FIRST = ("test_notebooks", "test_sweep", "test_mnist", "test_sweep_cells", "test_resume",
                 "test_sweep_labs", "test_demo", "test_bad_inputs", "test_depth_study", "test_export",
                 "test_distributed", "test_activations", "test_transfer", "test_mnist_best",
                 "test_auto_mpg", "test_flowers")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable: tests keep their order


def pytest_terminal_summary(terminalreporter):
    if _NOTES:
        terminalreporter.section("measured by the tests")
        for line in _NOTES:
            terminalreporter.write_line(line)


@contextlib.contextmanager
def cache_in(folder: Path):
    """MLLABS_CACHE pointed at `folder` for a module-scoped fixture (monkeypatch is per test)."""
    before = os.environ.get("MLLABS_CACHE")
    os.environ["MLLABS_CACHE"] = str(folder)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MLLABS_CACHE")
        else:
            os.environ["MLLABS_CACHE"] = before


def saved_test_accuracy(run_dir: Path, lab: str) -> float:
    """Accuracy on the 10,000 MNIST test digits of the network an MNIST run saved for predict
    (checkpoints/model.pt as predict.json describes it): says which of a run's networks it is."""
    import torch

    from mllabs import checkpoints
    from mllabs.data import mnist
    from mllabs.labs._mnist import ARCHITECTURES

    spec = checkpoints.load_spec(run_dir, lab)
    model = checkpoints.load_model(run_dir, spec, lambda s: ARCHITECTURES[s["architecture"]](**s["options"]))
    data = mnist.load()
    with torch.no_grad():
        guesses = model.eval()(mnist.normalise(data.test_x, pad_to=spec["pad_to"])).argmax(1).numpy()
    return float((guesses == data.test_y).mean())
