"""Tiny finished runs shared by test_demo.py and test_export.py: each lab is run once per test
session (the first module that asks makes it, the next one reuses it), as small as the lab
allows, since these tests check the plumbing around a run, not what it learns."""

from __future__ import annotations

from pathlib import Path

from conftest import cache_in, run_cli

TINY = {
    "mnist-lenet": ["--set", "epochs=1", "--set", "train_size=2000", "--set", "val_size=500"],
    "flowers": ["--set", "models=cnn", "--set", "image_size=32", "--set", "limit=150",
                "--set", "epochs=1", "--set", "cam_photos=0"],
    "auto-mpg": ["--set", "epochs=3", "--set", "seeds=1"],
    "boston-housing": ["--set", "epochs=5"],
    "bike-sharing": ["--set", "epochs=1", "--set", "mlp_epochs=1", "--set", "gbm_iterations=5"],
    "car-clustering": ["--set", "k_max=3"],
}

_MADE: dict[str, Path] = {}


def tiny_run(lab: str, tmp_path_factory) -> Path:
    """The run directory of one quick, tiny run of `lab` (made on first use)."""
    if lab not in _MADE:
        out = tmp_path_factory.mktemp(f"tiny-{lab}")
        with cache_in(out / "cache"):  # decoded photos stay inside the test's folder
            assert run_cli("run", lab, "--profile", "quick", "--quiet", "--out", out / "runs",
                           *TINY[lab]) == 0
        _MADE[lab] = next((out / "runs" / lab).iterdir())
    return _MADE[lab]
