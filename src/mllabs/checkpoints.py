"""Model files: checkpoints that hold tensors and plain values only, read with weights_only=True."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import torch
from torch import nn

from mllabs.errors import UserError
from mllabs.runs import atomic_write_bytes


def save_checkpoint(path: Path, weights: dict, **extra) -> None:
    """Tensors and plain values only, so it loads with torch.load(weights_only=True)."""
    buf = io.BytesIO()
    torch.save({"model": weights, **extra}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path) -> dict:
    """A checkpoint's dict, read with weights_only=True: a file that holds anything but tensors
    and plain values (pickled code, foreign objects) is refused before any of it runs."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path} does not exist; was the run completed?") from None
    except pickle.UnpicklingError:
        with open(path, "rb") as fh:
            head = fh.read(4)
        if not head.startswith((b"PK\x03\x04", b"\x80")):  # neither torch's zip nor a legacy pickle
            raise UserError(f"{path} is not a PyTorch checkpoint at all (damaged, or another file saved "
                            "under that name); re-run the lab") from None
        raise UserError(f"{path} is not a checkpoint mllabs can load safely: it holds pickled Python "
                        "objects, not only tensors, and was refused unread; it may have been "
                        "tampered with or not come from mllabs: re-run the lab") from None
    except Exception as exc:  # truncated zips, foreign formats
        raise UserError(f"{path} is not a checkpoint mllabs can load safely ({type(exc).__name__}); "
                        "it may be damaged or not from mllabs: re-run the lab") from None
    if not isinstance(state, dict):
        raise UserError(f"{path} holds a {type(state).__name__}, not an mllabs checkpoint; re-run the lab")
    return state


def _first_problem(exc: Exception) -> str:
    """load_state_dict's first complaint ("size mismatch for fc.weight: ..."), on one line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[1] if len(lines) > 1 else lines[0]) if lines else type(exc).__name__


def load_weights(model: nn.Module, path: Path) -> dict:
    """Load a checkpoint's weights into `model`; a file saved by another architecture or with other
    layer sizes is refused with a message that names the file and the first mismatch."""
    state = load_checkpoint(path)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path} does not fit the {type(model).__name__} network "
                        f"({_first_problem(exc)}); it was saved by "
                        "another network or config: re-run the lab to make a matching one") from None
    return state
