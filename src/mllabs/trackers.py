"""Hand a finished run to the trackers people already use: TensorBoard and MLflow.

The run directory stays the record; a tracker gets a copy when the run ends: the config as
parameters, every history.csv column as a curve over epochs, the final metrics, and (MLflow)
the report and figures as artifacts. Each tracker is an optional extra, imported only when
asked for.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from mllabs.errors import UserError

TRACKERS = ("tensorboard", "mlflow")
GROUP_COLUMNS = ("model", "seed", "optimizer", "activation", "weight_decay", "cell")


def parse_trackers(names: list[str] | None) -> list[str]:
    chosen = []
    for item in names or []:
        for name in filter(None, (n.strip() for n in item.split(","))):
            if name not in TRACKERS:
                raise UserError(f"--log {name!r}: choose from {', '.join(TRACKERS)}")
            chosen.append(name)
    for name in chosen:  # a missing extra is reported before the run spends any time
        module = {"tensorboard": "tensorboard", "mlflow": "mlflow"}[name]
        try:
            __import__(module)
        except ImportError:
            raise UserError(f"--log {name} needs the {module} package: pip install 'mllabs[{name}]'") from None
    return list(dict.fromkeys(chosen))


def curves(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """history.csv as named series of (epoch, value); rows that belong to one of several
    networks (a model or seed column) get that name as a prefix: `resnet18/val_accuracy`."""
    try:
        with open(Path(run_dir) / "history.csv", newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError:
        return {}
    series: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        tags = [f"{c}={row[c]}" if c != "model" else row[c]
                for c in GROUP_COLUMNS if row.get(c) not in (None, "")]
        prefix = "/".join(tags) + "/" if tags else ""
        try:
            epoch = int(float(row.get("epoch") or 0))
        except ValueError:
            continue
        for key, text in row.items():
            if key in GROUP_COLUMNS or key == "epoch" or text in (None, ""):
                continue
            try:
                value = float(text)
            except ValueError:
                continue
            if math.isfinite(value):
                series.setdefault(prefix + key, []).append((epoch, value))
    return series


def final_metrics(run_dir: Path) -> dict[str, float]:
    result = json.loads((Path(run_dir) / "metrics.json").read_text(encoding="utf-8"))
    return {k: float(v) for k, v in (result.get("metrics") or {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))}


def params(run_dir: Path) -> dict[str, str]:
    config = json.loads((Path(run_dir) / "config.json").read_text(encoding="utf-8"))
    return {k: (",".join(map(str, v)) if isinstance(v, list) else str(v)) for k, v in config.items()}


def to_tensorboard(run_dir: Path, logdir: Path | None = None) -> Path:
    """Event files under <run_dir>/tensorboard (or `logdir`): `tensorboard --logdir runs`."""
    from torch.utils.tensorboard import SummaryWriter

    run_dir = Path(run_dir)
    target = Path(logdir) / run_dir.name if logdir else run_dir / "tensorboard"
    writer = SummaryWriter(log_dir=str(target))
    try:
        for name, points in curves(run_dir).items():
            for epoch, value in points:
                writer.add_scalar(name, value, epoch)
        config = params(run_dir)
        writer.add_text("config", "\n".join(f"    {k} = {v}" for k, v in config.items()))
        final = final_metrics(run_dir)
        writer.add_hparams({k: v for k, v in config.items() if len(v) < 100},
                           {f"final/{k}": v for k, v in final.items()}, run_name=".")
    finally:
        writer.close()
    return target


def to_mlflow(run_dir: Path, tracking_uri: str | None = None, experiment: str | None = None) -> str:
    """One MLflow run per mllabs run: params, per-epoch metrics, final metrics, the report.
    The tracking URI comes from the argument, else MLFLOW_TRACKING_URI, else ./mlruns."""
    import os

    import mlflow

    run_dir = Path(run_dir)
    config = params(run_dir)
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or Path("mlruns").resolve().as_uri()
    if uri.startswith("file:"):
        # MLflow 3 keeps the plain-folder store only on request; it is what `mlflow ui` reads
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment or f"mllabs-{config.get('lab', 'run')}")
    with mlflow.start_run(run_name=run_dir.name) as active:
        mlflow.log_params({k: v[:500] for k, v in config.items()})
        for name, points in curves(run_dir).items():
            safe = "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name)
            for epoch, value in points:
                mlflow.log_metric(safe, value, step=epoch)
        for name, value in final_metrics(run_dir).items():
            mlflow.log_metric("final." + "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name), value)
        for name in ("report.html", "report.md", "metrics.json", "config.json", "env.json", "history.csv"):
            if (run_dir / name).exists():
                mlflow.log_artifact(str(run_dir / name))
        if (run_dir / "figures").is_dir():
            mlflow.log_artifacts(str(run_dir / "figures"), artifact_path="figures")
        return active.info.run_id


def export(run_dir: Path, trackers: list[str]) -> list[str]:
    """Send a finished run to each tracker; returns one line per tracker saying where it went."""
    lines = []
    for name in trackers:
        if name == "tensorboard":
            lines.append(f"tensorboard: {to_tensorboard(run_dir)} (tensorboard --logdir {Path(run_dir).parent})")
        elif name == "mlflow":
            lines.append(f"mlflow: run {to_mlflow(run_dir)} (mlflow ui)")
    return lines
