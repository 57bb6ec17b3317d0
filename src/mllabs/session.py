"""What one run tells every fit() inside it: where training states are saved, the time budget.

The runner makes one Session per run and hands it to fit() through the lab's RunContext
(`ctx.fit(...)`); a fit() called without one (tests, notebooks) saves no state and has no budget.

Each fit() call of a run gets the next state file (checkpoints/state/fit-001.pt, fit-002.pt, ...).
A lab re-run with its saved config builds the same networks from the same seeds in the same
order, so on --resume the n-th call finds its own state: a finished network is restored without
training, an unfinished one continues from its last complete epoch.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mllabs.checkpoints import load_checkpoint, save_checkpoint
from mllabs.errors import UserError


class OutOfTime(KeyboardInterrupt):
    """The run's --max-seconds budget is spent. A KeyboardInterrupt so that it leaves a lab's code
    the way Ctrl-C does (no lab catches it) and the run ends resumable, its report written."""


@dataclass
class Session:
    state_dir: Path | None = None
    root: Path | None = None              # checkpoint folders must stay inside it (the run)
    max_seconds: float | None = None
    state_share: float = 0.02             # of training time, at most, spent saving states
    clock: Callable[[], float] = time.monotonic  # the budget's time source (tests pass a fake one)
    started: float | None = None          # clock() when the run began
    calls: int = 0
    histories: list[tuple[str, list[dict]]] = field(default_factory=list)
    where: str = ""                       # the network and epoch in training, for the report

    def __post_init__(self):
        if self.started is None:
            self.started = self.clock()

    def state_file(self, identity: dict) -> StateFile | None:
        """The next fit() call's state file; its history is shown if the run is interrupted."""
        self.calls += 1
        return StateFile(self.state_dir / f"fit-{self.calls:03d}.pt", identity, self.state_share) \
            if self.state_dir else None

    def out_of_time(self, next_epoch: float) -> bool:
        """The budget is spent, or would be before an epoch as long as `next_epoch` ends."""
        return (self.max_seconds is not None
                and self.clock() - self.started + next_epoch > self.max_seconds)


@dataclass
class StateFile:
    """One fit() call's saved training state: read back on --resume, rewritten after epochs."""

    path: Path
    identity: dict        # what must match for a saved state to belong to this call
    share: float          # the most of training time that saving may take
    saving: float = 0.0   # seconds spent saving so far

    def load(self) -> dict | None:
        if not self.path.exists():
            return None
        saved = load_checkpoint(self.path)
        if saved.get("identity") != self.identity:
            raise UserError(f"{self.path} was saved by another network or config "
                            f"({saved.get('identity')}, here {self.identity}); this run cannot be "
                            "resumed: start a new one")
        return saved

    def due(self, training_seconds: float) -> bool:
        return self.saving <= self.share * training_seconds

    def save(self, weights: dict, state: dict) -> None:
        tick = time.perf_counter()
        save_checkpoint(self.path, weights, identity=self.identity, **state)
        self.saving += time.perf_counter() - tick


def rng_state(device: torch.device) -> dict:
    """The global generators (dropout, torch.rand in a lab, numpy, random) as plain values."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": [torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
             "python": [version, list(internal), gauss_next]}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def recorded(hook) -> dict[str, list]:
    """The lists of plain values a hook keeps (models/inspect.py's recorders keep one tensor per
    update): saved with the state, so a resumed fit's recorder holds every epoch, not only the
    ones trained after the resume."""
    return {k: list(v) for k, v in getattr(hook, "__dict__", {}).items()
            if isinstance(v, list) and all(isinstance(i, (torch.Tensor, int, float, str)) for i in v)}
