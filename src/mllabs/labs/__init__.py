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

    What the report opens and ends with (runner._ending reads them when a run completes):
      headline(metrics) -> str    the results box's sentence from metrics.json's metrics: the
                          lab's result with its 95 % interval (and against its baseline)
      HEADLINE = "test_accuracy"  the one metric runs/index.html shows for a run
      example_input(data, run_dir) -> list[str]   writes a small input predict accepts into the
                          run directory and returns predict's arguments after RUN_DIR (paths, or
                          ["--values", "..."]); the report and the CLI print that command
      TRY_NEXT = [(sets, why), ...]   "--set k=v ..." changes worth trying, each with why; the
                          report ends with them as `mllabs run LAB ...` commands
      KEY_FIGURE = "curves"   the results box's figure, by name, for a lab that does not mark
                          one with ctx.report.figure(..., key=True)
      LAYER_NAMES = {network: {layer: name}}   the handout's names in the layer table (C1…F6);
                          layer_names(cfg) -> the same, where they depend on the config
    Figures say what they show: ctx.report.figure(..., conclusion="from this run's numbers"),
    and key=True on the one figure the results box shows.
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
OPTIONAL = {"networks": 1, "predict_values": 2, "predict_network": 1, "headline": 1, "example_input": 2,
            "layer_names": 1}


def get_lab(name: str) -> ModuleType:
    if name not in LABS:
        raise UserError(f"unknown lab {name!r}; available: {', '.join(LABS)} (see `mllabs list`)")
    return importlib.import_module(LABS[name])


def labs_summary() -> list[tuple[str, str]]:
    return [(name, get_lab(name).SUMMARY_LINE) for name in LABS]
