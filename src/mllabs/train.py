"""fit(): the one training loop every network lab uses.

Data stays in memory as tensors on the training device; an epoch is a shuffled index
permutation cut into slices, so there is no per-sample Python work. Losses are summed on the
device and read once per epoch (no per-step `.item()` sync). train_* metrics are the running
mean over the epoch's batches, as Keras reports them; val_* metrics are exact.
"""

from __future__ import annotations

import copy
import io
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from mllabs.config import TrainConfig
from mllabs.errors import UserError
from mllabs.runs import atomic_write_bytes

Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (output, target) -> batch mean
# (stored batch, training?) -> model input; e.g. uint8 photos -> augmented, normalised floats
BatchTransform = Callable[[torch.Tensor, bool], torch.Tensor]


def accuracy(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (out.argmax(1) == target).float().mean()


def cross_entropy(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(out, target)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The dtype to autocast the forward pass to, or None for plain float32.

    "auto" takes bfloat16 where the hardware computes it natively (CUDA GPUs that support it;
    CPUs with AVX-512 BF16 or AMX, through oneDNN), where it is about 1.6-2x faster per step
    for convolutions; elsewhere bfloat16 would be emulated and slower, so float32 stays."""
    if name == "fp32":
        return None
    if name == "bf16":
        return torch.bfloat16
    if name != "auto":
        raise UserError(f"unknown precision {name!r}; choose auto, bf16 or fp32")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        try:
            native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        except (AttributeError, RuntimeError):  # older or unusual builds: stay with float32
            native = False
        return torch.bfloat16 if native else None
    return None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but this torch build sees no CUDA GPU; "
                        "use --device cpu (or auto)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("--device mps was asked for, but MPS is not available here; use --device cpu")
    return torch.device(name)


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """The update rules by name; `gd` is plain SGD fed the whole training set as one batch."""
    if name in ("gd", "sgd"):
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "nesterov":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        # alpha 0.9 and eps 1e-7 are the Keras defaults the handouts trained with
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-7, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise UserError(f"unknown optimizer {name!r}; choose gd, sgd, momentum, nesterov, adagrad, "
                    "rmsprop, adam or adamw")


def make_scheduler(cfg: TrainConfig, optimizer, steps_per_epoch: int = 1):
    """The learning-rate schedule, or None for a constant rate.

    Every schedule steps once per epoch except onecycle, which steps after every update
    (`scheduler.per_update` is True): it warms up from lr/25 to lr over the first 30 % of the
    updates, then anneals to nearly zero, which is what lets a short budget go far.
    """
    per_update = False
    if cfg.schedule == "constant":
        return None
    if cfg.schedule == "exponential":
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=cfg.gamma)
    elif cfg.schedule == "piecewise":
        if not cfg.milestones:
            raise UserError("schedule=piecewise needs milestones, e.g. --set milestones=30,60")
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(cfg.milestones), gamma=cfg.factor)
    elif cfg.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    elif cfg.schedule == "onecycle":
        # momentum cycling only where there is a momentum to cycle (SGD's, or Adam's beta1)
        group = optimizer.param_groups[0]
        cycle = bool(group.get("momentum")) or "betas" in group
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.3,
            cycle_momentum=cycle)
        per_update = True
    else:
        raise UserError(f"unknown schedule {cfg.schedule!r}; choose constant, exponential, piecewise, "
                        "cosine or onecycle")
    scheduler.per_update = per_update
    return scheduler


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    status: str = "completed"          # completed | diverged
    stopped_early: bool = False
    best_epoch: int = 0
    updates: int = 0
    seconds: float = 0.0


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int | None = None,
            transform: BatchTransform | None = None, autocast: torch.dtype | None = None) -> torch.Tensor:
    model.eval()
    device = next(model.parameters()).device
    batch_size = batch_size or (128 if transform else 4096)  # photos: keep activations small
    outs = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(device)
        with torch.autocast(device.type, dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            outs.append(model(transform(xb, False) if transform else xb).float())
    return torch.cat(outs) if outs else torch.empty(0)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Metric,
             metrics: dict[str, Metric] | None = None, batch_size: int | None = None,
             transform: BatchTransform | None = None,
             autocast: torch.dtype | None = None) -> dict[str, float]:
    out = predict(model, x, batch_size, transform, autocast)
    y = y.to(out.device)
    result = {"loss": float(loss_fn(out, y))}
    for name, fn in (metrics or {}).items():
        result[name] = float(fn(out, y))
    return result


def save_checkpoint(path: Path, weights: dict, **extra) -> None:
    """Tensors and plain values only, so it loads with torch.load(weights_only=True)."""
    buf = io.BytesIO()
    torch.save({"model": weights, **extra}, buf)
    atomic_write_bytes(path, buf.getvalue())


def save_epoch_checkpoint(folder: Path, epoch: int, model: nn.Module, optimizer, keep_last: int) -> None:
    save_checkpoint(folder / f"epoch-{epoch:04d}.pt", model.state_dict(), epoch=epoch,
                    optimizer=optimizer.state_dict())
    for old in sorted(folder.glob("epoch-*.pt"))[:-keep_last]:
        old.unlink(missing_ok=True)


def load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path} does not exist; was the run completed?") from None
    except Exception as exc:  # pickle errors, truncated zips, foreign objects
        raise UserError(f"{path} is not a checkpoint mllabs can load safely ({type(exc).__name__}); "
                        "it may be damaged or not from mllabs: re-run the lab") from None


class _Progress:
    """A bar on a terminal, a few plain lines otherwise; both on stderr (stdout is for --json)."""

    def __init__(self, total: int, label: str, enabled: bool):
        self.total, self.label, self.enabled = total, label, enabled
        self.bar = None
        self.every = max(1, total // 10)
        if enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                TextColumn("{task.completed}/{task.total}"), TimeRemainingColumn(),
                                TextColumn("{task.fields[info]}"), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(label or "training", total=total, info="")

    def update(self, epoch: int, row: dict) -> None:
        if not self.enabled:
            return
        info = "  ".join(f"{k}={v:.4g}" for k, v in row.items()
                         if k.startswith(("train_", "val_")) and isinstance(v, float))
        if self.bar is not None:
            self.bar.update(self.task, completed=epoch, info=info)
        elif epoch % self.every == 0 or epoch == self.total or epoch == 1:
            prefix = f"{self.label} " if self.label else ""
            print(f"{prefix}epoch {epoch}/{self.total}  {info}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def fit(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], cfg: TrainConfig, *,
        loss_fn: Metric, metrics: dict[str, Metric] | None = None,
        val: tuple[torch.Tensor, torch.Tensor] | None = None, device: torch.device | None = None,
        also: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
        stop_when: Callable[[list[dict]], bool] | None = None,
        checkpoint_dir: Path | None = None, checkpoint_every: int = 1, keep_last: int = 3,
        restore_best: bool = True, progress: bool = True, label: str = "",
        batch_transform: BatchTransform | None = None,
        after_backward: Callable[[nn.Module, int], None] | None = None,
        autocast: torch.dtype | None = None) -> FitResult:
    """Train `model` in place on in-memory tensors and return its per-epoch history.

    The monitored quantity is val_loss when `val` is given, else train_loss. `also` names
    further sets evaluated every epoch but never monitored (e.g. {"test": ...} for the
    handouts' per-epoch test curves). With cfg.patience > 0 training stops after that many
    epochs without improvement; `stop_when(history)` returning True stops it too. A loss that
    turns NaN or infinite stops the run as `diverged`. With restore_best the model ends with
    the weights of its best epoch. With `checkpoint_dir`, epoch-NNNN.pt is written every
    `checkpoint_every` epochs (the last `keep_last` kept) and best.pt at the end.
    `batch_transform(batch, training)` turns each stored batch into the model's input (photos
    are stored as uint8 and augmented batch by batch); evaluation calls it with training=False.
    `after_backward(model, epoch)` is called after every backward pass, before the update, while
    the gradients are there to look at (the activations lab records their size per layer).
    `autocast` (e.g. torch.bfloat16, see resolve_precision) runs forward passes and losses in
    that dtype; weights, gradients and optimizer state stay float32.
    """
    device = device or torch.device("cpu")
    metrics = metrics or {}
    model.to(device)
    x, y = train[0].to(device), train[1].to(device)
    n = len(x)
    if n == 0:
        raise UserError("the training set is empty; check the data and the split settings")
    batch_size = n if cfg.optimizer == "gd" else min(cfg.batch_size, n)
    optimizer = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.weight_decay)
    scheduler = make_scheduler(cfg, optimizer, steps_per_epoch=math.ceil(n / batch_size))
    shuffle = torch.Generator().manual_seed(cfg.seed)
    result = FitResult()
    best_value, best_state, since_best = math.inf, None, 0
    bar = _Progress(cfg.epochs, label, progress)
    started = time.perf_counter()
    try:
        for epoch in range(1, cfg.epochs + 1):
            tick = time.perf_counter()
            model.train()
            order = torch.randperm(n, generator=shuffle).to(device)
            sums = torch.zeros(1 + len(metrics), device=device)
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                xb, yb = x[idx], y[idx]
                with torch.autocast(device.type, dtype=autocast or torch.bfloat16,
                                    enabled=autocast is not None):
                    out = model(batch_transform(xb, True) if batch_transform else xb)
                    loss = loss_fn(out, yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if after_backward is not None:
                    after_backward(model, epoch)
                optimizer.step()
                if scheduler is not None and scheduler.per_update:
                    scheduler.step()
                with torch.no_grad():
                    parts = [loss.detach()] + [fn(out.detach(), yb) for fn in metrics.values()]
                    sums += torch.stack(parts) * len(idx)
                result.updates += 1
            means = (sums / n).tolist()
            row: dict = {"epoch": epoch, "train_loss": means[0]}
            row.update({f"train_{k}": v for k, v in zip(metrics, means[1:])})
            sets = ({"val": val} if val is not None else {}) | (also or {})
            for name, data in sets.items():
                row.update({f"{name}_{k}": v for k, v in
                            evaluate(model, data[0], data[1], loss_fn, metrics,
                                     transform=batch_transform, autocast=autocast).items()})
            row["lr"] = optimizer.param_groups[0]["lr"]  # onecycle: the rate the epoch ended at
            if scheduler is not None and not scheduler.per_update:
                scheduler.step()
            row["seconds"] = time.perf_counter() - tick
            result.history.append(row)
            bar.update(epoch, row)

            watched = row["val_loss"] if val is not None else row["train_loss"]
            if not (math.isfinite(row["train_loss"]) and math.isfinite(watched)):
                result.status = "diverged"
                break
            if watched < best_value:
                best_value, result.best_epoch, since_best = watched, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                since_best += 1
            if checkpoint_dir and epoch % checkpoint_every == 0:
                save_epoch_checkpoint(Path(checkpoint_dir), epoch, model, optimizer, keep_last)
            if (cfg.patience and since_best >= cfg.patience) or (stop_when and stop_when(result.history)):
                result.stopped_early = True
                break
    finally:
        bar.close()
    result.seconds = time.perf_counter() - started
    if checkpoint_dir:
        epochs_run = len(result.history)
        if epochs_run and epochs_run % checkpoint_every:  # the last epoch is always kept
            save_epoch_checkpoint(Path(checkpoint_dir), epochs_run, model, optimizer, keep_last)
        if best_state is not None:
            save_checkpoint(Path(checkpoint_dir) / "best.pt", best_state, epoch=result.best_epoch)
    if restore_best and best_state is not None:
        model.load_state_dict(best_state)
    return result
