"""Model files: checkpoints (tensors and plain values only) and the one convention predict uses.

A finished run saves what its `predict` needs with `save_for_predict`: `predict.json` (the lab's
name and everything needed to rebuild the network and prepare raw inputs: architecture, options,
preprocessing, classes) and each network's weights as `checkpoints/<name>.pt` (usually
`model.pt`). `predict` reads them back with `load_spec` and `load_model`, which turn a missing,
damaged or foreign file into one line naming it and what to do; a lab's `predict` keeps only its
input handling.

`runtime("onnx")` makes `load_model` hand back the network exported by `mllabs export`
(onnxruntime) in place of the PyTorch one, so a lab's `predict` runs unchanged, its
preprocessing included, under either runtime.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import io
import pickle
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mllabs.errors import DataError, UserError
from mllabs.files import atomic_write_bytes, read_json, write_json

SPEC = "predict.json"


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


def load_weights(model: nn.Module, path: Path, state: dict | None = None) -> dict:
    """Load a checkpoint's weights into `model` (`state`: the checkpoint already read from
    `path`); a file saved by another architecture or with other layer sizes is refused with a
    message that names the file and the first mismatch."""
    state = load_checkpoint(path) if state is None else state
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path} does not fit the {type(model).__name__} network "
                        f"({_first_problem(exc)}); it was saved by "
                        "another network or config: re-run the lab to make a matching one") from None
    return state


# ---------------------------------------------------------------------------- what predict needs

def save_for_predict(run_dir: Path, lab: str, spec: dict, weights: dict[str, dict] | None = None) -> None:
    """`spec` (plain values) to predict.json under the lab's name, and each of `weights`
    (name → state dict) to checkpoints/<name>.pt; the weights first, so a predict.json on disk
    means its checkpoints are there."""
    for name, state in (weights or {}).items():
        save_checkpoint(Path(run_dir) / "checkpoints" / f"{name}.pt", state)
    write_json(Path(run_dir) / SPEC, {"lab": lab, **spec})


def load_spec(run_dir: Path, lab: str) -> dict:
    """predict.json of a run of `lab`; refused in one line when it is missing, not JSON, or
    another lab's."""
    path = Path(run_dir) / SPEC
    if not path.exists() and path.parent.is_dir():
        raise DataError(f"{path} does not exist, so the run left nothing for predict (made by an "
                        f"older mllabs, or the file was removed); re-run `mllabs run {lab}`")
    spec = read_json(path)
    owner = spec.get("lab") if isinstance(spec, dict) else None
    if owner != lab:
        named = f"names {owner!r} as its lab" if isinstance(owner, str) else "names no lab"
        raise DataError(f"{path} is not {lab}'s: it {named}; re-run `mllabs run {lab}`")
    return spec


@contextlib.contextmanager
def reading(run_dir: Path, lab: str, file: str = SPEC) -> Iterator[None]:
    """A missing key or a value of the wrong kind met while using a saved file (predict.json
    unless named) becomes one line naming the file."""
    try:
        yield
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise DataError(f"{Path(run_dir) / file} is damaged or not what `mllabs run {lab}` saves "
                        f"({type(exc).__name__}: {exc}); re-run `mllabs run {lab}`") from None


# a run that trained the user's own network (predict.json's "user_network") is predicted with a
# copy of that module, which only the user's Python session has: mllabs.api sets it
_USER_NETWORK: contextvars.ContextVar[nn.Module | None] = contextvars.ContextVar("user_network",
                                                                                 default=None)


@contextlib.contextmanager
def user_network(module: nn.Module) -> Iterator[None]:
    """load_model builds a copy of `module` instead of the lab's network inside this block."""
    token = _USER_NETWORK.set(module)
    try:
        yield
    finally:
        _USER_NETWORK.reset(token)


RUNTIMES = ("torch", "onnx")
_RUNTIME: contextvars.ContextVar[str] = contextvars.ContextVar("mllabs_runtime", default="torch")


@contextlib.contextmanager
def runtime(name: str) -> Iterator[None]:
    """Within the block, `load_model` serves the network from `name`'s runtime: "torch" (the
    checkpoint) or "onnx" (the run's exported model.onnx through onnxruntime)."""
    if name not in RUNTIMES:
        raise UserError(f"unknown runtime {name!r}; choose one of {', '.join(RUNTIMES)}")
    token = _RUNTIME.set(name)
    try:
        yield
    finally:
        _RUNTIME.reset(token)


def refuse_user_network(run_dir: Path, spec: dict) -> None:
    """A run that trained the user's own network has nothing the command line can rebuild."""
    if spec.get("user_network"):
        raise UserError(f"{run_dir} trained your own network ({spec['user_network']}), which only "
                        "Python can rebuild: mllabs.load(RUN_DIR, model=YourNetwork()).predict(...)")


def load_model(run_dir: Path, spec: dict, build: Callable[[dict], nn.Module],
               name: str = "model") -> nn.Module:
    """checkpoints/<name>.pt loaded into `build(spec)`, in eval mode. The checkpoint is read
    first (a damaged one is named as such), then the network is built (a spec without what it
    needs is named) and the weights must fit it (the first mismatch is named). Under
    `runtime("onnx")` the exported network stands in for it (mllabs.export.load_onnx)."""
    if _RUNTIME.get() == "onnx":
        from mllabs.export import load_onnx

        return load_onnx(run_dir, spec, name)
    path = Path(run_dir) / "checkpoints" / f"{name}.pt"
    state = load_checkpoint(path)
    mine = _USER_NETWORK.get()
    if mine is None:
        refuse_user_network(run_dir, spec)
    with reading(run_dir, spec["lab"]):
        model = copy.deepcopy(mine).cpu() if mine is not None else build(spec)
    load_weights(model, path, state)
    return model.eval()


def top_k(inputs: Sequence, probs: np.ndarray, classes: Sequence[str], k: int) -> list[dict]:
    """predict's rows for a classifier: each input's likeliest class and its `k` likeliest with
    their probabilities."""
    rows = []
    for name, p in zip(inputs, probs):
        order = np.argsort(p)[::-1][:k]
        rows.append({"input": str(name), "prediction": classes[order[0]],
                     "top": [{"label": classes[j], "probability": round(float(p[j]), 4)} for j in order]})
    return rows


def ranges(frame, columns: Sequence[str]) -> dict[str, list[float]]:
    """Each column's smallest and largest training value, saved in predict.json so that a form
    (`mllabs demo`) can show what the model has seen."""
    return {c: [float(frame[c].min()), float(frame[c].max())] for c in columns}
