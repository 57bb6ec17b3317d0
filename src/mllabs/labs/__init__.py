"""The labs: their registry and the contract every lab module keeps (`Lab`).

The run engine that executes a lab is mllabs.runner; a lab only loads its data, trains and
evaluates through the RunContext it is given, and fills the report.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

from mllabs.errors import UserError

LABS = {
    "auto-mpg": "mllabs.labs.auto_mpg",
    "mnist-lenet": "mllabs.labs.mnist_lenet",
    "mnist-cnn": "mllabs.labs.mnist_cnn",
    "mnist-optimizers": "mllabs.labs.mnist_optimizers",
    "mnist-best": "mllabs.labs.mnist_best",
    "bike-sharing": "mllabs.labs.bike_sharing",
    "car-clustering": "mllabs.labs.car_clustering",
    "boston-housing": "mllabs.labs.boston_housing",
    "flowers": "mllabs.labs.flowers",
    "activations": "mllabs.labs.activations",
    "regularization": "mllabs.labs.regularization",
    "eye-screening": "mllabs.labs.eye_screening",
}


@runtime_checkable
class Lab(Protocol):
    """What a lab module defines. tests/test_labs_contract.py checks every registered lab.

    Optional, where they apply:
      networks(cfg) -> {name: (model, input_shape)}   freshly built networks and the shape of one
                          sample; a lab that defines it gets their layer tables in every report
                          and `mllabs summary`
      predict_values(run_dir, text) -> list[dict]     one typed row (`mllabs predict --values`)
      predict_network(spec) -> nn.Module   the empty PyTorch network predict.json describes, which
                          predict fills from checkpoints/model.pt; `mllabs export` exports it
      USER_DATA = True    the lab runs on the user's own data; `mllabs run all` skips it
      UNUSED_KEYS = {key: why}   config keys the lab inherits (TrainConfig) but its run never
                          reads, because it sets them itself (mnist-optimizers tries every
                          optimizer in `optimizers`); `mllabs sweep` refuses them in --grid.
                          tests/test_sweep_labs.py checks each declaration against the source
    """

    NAME: str            # as on the command line, e.g. "auto-mpg"
    TITLE: str           # the report's title
    SUMMARY: str         # the report's opening paragraph
    SUMMARY_LINE: str    # one line for `mllabs list`
    Config: type         # a config dataclass (config.LabConfig or TrainConfig and the lab's fields)
    PROFILES: dict[str, dict[str, Any]]   # quick / default / full: the values each one changes

    def prepare(self, cfg: Any, data_dir: Path | None) -> Any:
        """Load and check the inputs, before any run directory exists (bad input fails here)."""

    def run(self, cfg: Any, data: Any, ctx: Any) -> tuple[str, dict]:
        """Train, evaluate and fill ctx.report (ctx: runner.RunContext); (status, metrics)."""

    def predict(self, run_dir: Path, inputs: list[Path]) -> list[dict]:
        """{"input", "prediction"[, "top", ...]} per input file, from a finished run."""


# optional functions and how many arguments
OPTIONAL = {"networks": 1, "predict_values": 2, "predict_network": 1}


def get_lab(name: str) -> ModuleType:
    if name not in LABS:
        raise UserError(f"unknown lab {name!r}; available: {', '.join(LABS)} (see `mllabs list`)")
    return importlib.import_module(LABS[name])


def labs_summary() -> list[tuple[str, str]]:
    return [(name, get_lab(name).SUMMARY_LINE) for name in LABS]
