"""mllabs: the classic ML and deep-learning labs as one package and one CLI.

In Python: mllabs.run(LAB, profile=..., seed=..., KEY=VALUE...) runs a lab as `mllabs run` does,
mllabs.load(RUN_DIR) reads an earlier run, mllabs.lab(LAB) gives its steps one by one (api.py).
"""

__version__ = "0.1.0"

from mllabs.api import Result, lab, load, run  # noqa: E402  (after __version__, which runs.py reads)

__all__ = ["Result", "lab", "load", "run", "__version__"]
