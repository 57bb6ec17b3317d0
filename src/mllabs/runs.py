"""Run directories: runs/<lab>/<stamp>-<id>/ with config, environment, history, metrics.

Every file goes through mllabs.files' atomic writes, so a crash or a full disk never leaves a
half-written config, checkpoint or report behind.
"""

from __future__ import annotations

import csv
import io
import math
import os
import platform
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from mllabs import __version__
from mllabs.errors import UserError
from mllabs.files import atomic_write_text, inside, read_json, write_json, writing

STATUSES = ("completed", "diverged", "interrupted", "failed")


def git_revision() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment(seed: int, device: str, command: str) -> dict[str, Any]:
    """What a reader needs to reproduce the run: seed, versions, device, threads, revision."""
    import numpy
    import torch

    from mllabs import hardware

    info: dict[str, Any] = {
        "seed": seed,
        "device": device,
        "threads": torch.get_num_threads(),
        "mllabs": __version__,
        "git_revision": git_revision(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        # what timings depend on: the vector level PyTorch uses, native bfloat16, the raw flags
        "cpu": {**hardware.cpu_features(),
                "flags": sorted(hardware.cpu_flags() & set(hardware.WATCHED))},
        "command": command,
    }
    # read from the installed packages' metadata: importing scikit-learn only to ask its version
    # cost every run about 2 CPU-seconds
    for name, distribution in (("pandas", "pandas"), ("sklearn", "scikit-learn"),
                               ("matplotlib", "matplotlib")):
        try:
            info[name] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            pass
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


@dataclass
class Run:
    """One run directory and the helpers that write into it."""

    path: Path
    lab: str
    started: float = field(default_factory=time.time)

    @classmethod
    def create(cls, root: Path, lab: str) -> "Run":
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path(root) / lab / f"{stamp}-{secrets.token_hex(3)}"
        with writing(path):
            path.mkdir(parents=True, exist_ok=False)
            try:
                (path / "figures").mkdir()
                (path / "checkpoints").mkdir()
            except OSError:
                shutil.rmtree(path, ignore_errors=True)  # no half-made run directory left behind
                raise
        return cls(path=path, lab=lab)

    @classmethod
    def open(cls, path: Path) -> "Run":
        """An existing run directory, to resume it: its clock goes on from the seconds it ran."""
        path = Path(path)
        config = read_json(path / "config.json")
        try:
            earlier = float(read_json(path / "metrics.json").get("seconds") or 0)
        except UserError:  # killed before it could write one
            earlier = 0.0
        (path / "figures").mkdir(exist_ok=True)
        (path / "checkpoints").mkdir(exist_ok=True)
        for stray in path.rglob(".*.tmp"):  # a write cut off by kill -9: never renamed into place
            stray.unlink(missing_ok=True)
        return cls(path=path, lab=config.get("lab", path.parent.name), started=time.time() - earlier)

    @property
    def figures(self) -> Path:
        return self.path / "figures"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def write_json(self, name: str, obj: Any) -> Path:
        write_json(inside(self.path, name), obj)
        return self.path / name

    def write_history(self, rows: list[dict[str, Any]], name: str = "history.csv") -> Path:
        """Per-epoch rows to CSV; the columns are the union of every row's keys, in order."""
        columns: list[str] = []
        for row in rows:
            columns += [k for k in row if k not in columns]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(inside(self.path, name), buf.getvalue())
        return self.path / name

    def write_metrics(self, status: str, metrics: dict[str, Any], **extra: Any) -> dict[str, Any]:
        """metrics.json; `extra` adds top-level keys (an interrupted run's `reason`)."""
        assert status in STATUSES, status
        # NaN and infinity are not JSON: a value that is not a finite number is written as null
        metrics = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                   for k, v in metrics.items()}
        result = {"lab": self.lab, "status": status,
                  "seconds": round(time.time() - self.started, 3), **extra, "metrics": metrics}
        self.write_json("metrics.json", result)
        return result
