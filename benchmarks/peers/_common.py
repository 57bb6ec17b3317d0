"""What every benchmark script shares: thread settings, the data readers, a clock, the JSON line.

Imported by the peer scripts (benchmarks/peers/.venv) and by the mllabs side (the project's
venv) alike, so it needs nothing beyond the standard library and NumPy. Call `set_threads()`
before importing a framework: the thread counts must be in the environment when it loads.

Each script prints exactly one line starting with RESULT_PREFIX followed by a JSON object:
    framework, versions, recipe, import_seconds, data_seconds, seconds (the benchmark's own
    clock, see each script), epochs, per-epoch rows, and the benchmark's result fields.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import struct
import sys
import time
from pathlib import Path

import numpy as np

RESULT_PREFIX = "BENCH-RESULT "
TARGET = 0.99            # LeNet-5: test accuracy to reach
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
STARTED = time.perf_counter()  # the process's start, near enough: import time is measured from here


def set_threads(n: int | None = None) -> int:
    """The same thread budget for every framework: n compute threads (intra-op), 1 inter-op."""
    n = int(n or os.environ.get("BENCH_THREADS", "2"))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        os.environ[var] = str(n)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    os.environ.setdefault("GLOG_v", "2")                # MindSpore's
    return n


def arguments(description: str, **extra) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", type=Path, default=Path(os.environ.get("MLLABS_DATA", "shared/data")),
                   help="folder laid out like shared/data (default: $MLLABS_DATA)")
    p.add_argument("--smoke", action="store_true", help="a tiny run that checks the plumbing only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--max-seconds", type=float, default=None,
                   help="time budget: no new epoch starts once training and evaluation took this long")
    p.add_argument("--max-epochs", type=int, default=None,
                   help="stop here if the target is not reached (default 20; 1 with --smoke)")
    for name, kw in extra.items():
        p.add_argument(f"--{name.replace('_', '-')}", **kw)
    args = p.parse_args()
    if args.max_epochs is None:
        args.max_epochs = 1 if args.smoke else 20
    return args


# ---------------------------------------------------------------------------- data

def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip or plain), as the array its header describes."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def mnist(data: Path, smoke: bool = False):
    """(train_x, train_y, test_x, test_y) as uint8 (N, 28, 28) and int64 labels; the smoke run
    keeps 3,000 training and 1,000 test digits."""
    folder = data / "mnist"
    xs = [read_idx(folder / f"{p}-images-idx3-ubyte.gz") for p in ("train", "t10k")]
    ys = [read_idx(folder / f"{p}-labels-idx1-ubyte.gz").astype(np.int64) for p in ("train", "t10k")]
    if smoke:
        xs, ys = [xs[0][:3000], xs[1][:1000]], [ys[0][:3000], ys[1][:1000]]
    return xs[0], ys[0], xs[1], ys[1]


# ---------------------------------------------------------------------------- timing and output

class Clock:
    """Seconds spent in named phases; `with clock("train"): ...`."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._name = None

    def __call__(self, name: str):
        self._name = name
        return self

    def __enter__(self):
        self._tick = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds[self._name] = self.seconds.get(self._name, 0.0) + time.perf_counter() - self._tick


def out_of_budget(epochs: list[dict], max_seconds: float | None) -> bool:
    return max_seconds is not None and sum(r["train_seconds"] + r["eval_seconds"] for r in epochs) >= max_seconds


def time_to_target(epochs: list[dict], target: float = TARGET) -> dict:
    """From per-epoch rows {epoch, train_seconds, eval_seconds, test_accuracy}: the wall time up
    to and including the first epoch whose test accuracy reaches `target` (training and the
    per-epoch evaluation both count: that is what it takes to know the target was reached)."""
    total, reached = 0.0, None
    for row in epochs:
        total += row["train_seconds"] + row["eval_seconds"]
        if reached is None and row["test_accuracy"] >= target:
            reached = {"seconds_to_target": total, "epochs_to_target": row["epoch"]}
    return {"target": target, "reached": reached is not None,
            "seconds_to_target": reached["seconds_to_target"] if reached else None,
            "epochs_to_target": reached["epochs_to_target"] if reached else None,
            "final_accuracy": epochs[-1]["test_accuracy"] if epochs else None,
            "epochs": len(epochs),
            "train_seconds_per_epoch": (sum(r["train_seconds"] for r in epochs) / len(epochs)) if epochs else None,
            "eval_seconds_per_epoch": (sum(r["eval_seconds"] for r in epochs) / len(epochs)) if epochs else None}


def emit(result: dict) -> None:
    result.setdefault("python", platform.python_version())
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
