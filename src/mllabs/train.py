"""fit(): the one training loop every network lab uses.

Data stays in memory as tensors on the training device; an epoch is a shuffled index
permutation cut into slices, so there is no per-sample Python work. Losses are summed on the
device and read once per epoch (no per-step `.item()` sync). train_* metrics are the running
mean over the epoch's batches, as Keras reports them; val_* metrics are exact.
"""

from __future__ import annotations

import copy
import math
import os
import random
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from mllabs import distributed, hardware
from mllabs.checkpoints import _first_problem, save_checkpoint
from mllabs.config import OPTIMIZERS, SCHEDULES, TrainConfig
from mllabs.errors import UserError
from mllabs.files import inside
from mllabs.memory import warn_if_too_big
from mllabs.session import OutOfTime, Session, recorded, rng_state, set_rng_state

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
    CPUs with AVX-512 BF16 or AMX, see hardware.native_bf16), where it is about 1.6-2x faster
    per step for convolutions; elsewhere bfloat16 would be emulated and slower, so float32 stays."""
    if name == "fp32":
        return None
    if name == "bf16":
        return torch.bfloat16
    if name != "auto":
        raise UserError(f"unknown precision {name!r}; choose auto, bf16 or fp32")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        return torch.bfloat16 if hardware.native_bf16() else None
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
    """The update rules by name; `gd` is plain SGD fed the whole training set as one batch.

    SGD, Adagrad, Adam and AdamW use PyTorch's fused kernels where the parameters are float32 on
    a CPU or CUDA device: one call per step instead of a few small ops per tensor (Adam on LeNet-5
    at batch 128: 1.12x per step on 2 CPU cores). RMSprop has no fused kernel."""
    params = list(params)
    fused = {"fused": True} if params and all(
        p.dtype == torch.float32 and p.device.type in ("cpu", "cuda") for p in params) else {}
    if name in ("gd", "sgd"):
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, **fused)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay, **fused)
    if name == "nesterov":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay, **fused)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=weight_decay, **fused)
    if name == "rmsprop":
        # alpha 0.9 and eps 1e-7 are the Keras defaults the handouts trained with
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-7, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, **fused)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, **fused)
    raise UserError(f"unknown optimizer {name!r}; choose {', '.join(OPTIMIZERS[:-1])} or "
                    f"{OPTIMIZERS[-1]}")


def batch_starts(n: int, batch_size: int) -> list[int]:
    """Where each batch of an epoch starts. A last batch of a single example joins the one
    before it: batch norm cannot normalise one value per channel."""
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return starts


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
        raise UserError(f"unknown schedule {cfg.schedule!r}; choose {', '.join(SCHEDULES[:-1])} "
                        f"or {SCHEDULES[-1]}")
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
    # Batches small enough that a layer's activations stay in cache: on a 2-core CPU, 10,000 test
    # digits through LeNet-5 take 184 ms in batches of 256 against 453 ms in one of 4096, and
    # photos at 96 px go twice as fast in batches of 32 as of 128 (benchmarks/optimisations.md).
    batch_size = batch_size or (32 if transform else 256)
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


def save_epoch_checkpoint(folder: Path, epoch: int, model: nn.Module, optimizer, keep_last: int) -> None:
    save_checkpoint(folder / f"epoch-{epoch:04d}.pt", model.state_dict(), epoch=epoch,
                    optimizer=optimizer.state_dict())
    for old in sorted(folder.glob("epoch-*.pt"))[:-keep_last]:
        old.unlink(missing_ok=True)




@dataclass
class ProgressLine:
    """How a run's progress lines begin and where its ETA counts from: one per lab run."""

    tag: str = ""                  # "[auto-mpg 1/11]" in `run all`, "[auto-mpg]" alone
    started: float = field(default_factory=time.monotonic)  # when the lab began


PRINT_EVERY = 10.0  # seconds between plain progress lines of one fit (its last epoch always prints)


def print_every() -> float:
    """PRINT_EVERY, or $MLLABS_PROGRESS_EVERY seconds (0: every epoch, for a script or test that
    waits for a given epoch's line)."""
    try:
        return max(0.0, float(os.environ.get("MLLABS_PROGRESS_EVERY", PRINT_EVERY)))
    except ValueError:
        return PRINT_EVERY
_PART = re.compile(r"(\d+)/(\d+)")


def progress_metrics(row: dict) -> str:
    """What a progress line shows of an epoch: the validation metrics (never test: choosing by
    what is printed must not mean choosing by test), or the training ones when nothing is held
    out; the loss only where no other metric has a unit of its own (a standardised log loss
    next to MAE in MPG would read as MPG)."""
    split = "val" if any(k.startswith("val_") for k in row) else "train"
    values = {k[len(split) + 1:]: v for k, v in row.items()
              if k.startswith(f"{split}_") and isinstance(v, float)}
    in_units = {"mae", "mse", "rmse", "r2"} & set(values)  # metrics in the target's own units
    shown = {k: v for k, v in values.items() if not (k == "loss" and in_units)}
    name = "validation" if split == "val" else "train"
    parts = [f"{100 * v:.2f} %" if "accuracy" in k else f"{v:.4g}" for k, v in shown.items()]
    words = {"mae": "MAE", "mse": "MSE", "rmse": "RMSE", "r2": "R²"}
    return ", ".join(f"{name} {words.get(k, k.replace('_', ' '))} {p}" for k, p in zip(shown, parts))


def eta_text(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


class _Progress:
    """`[lab i/N] seed j/S epoch e/E  validation metrics  ETA` on stderr (stdout is for --json):
    a bar on a terminal; otherwise a line at most every PRINT_EVERY seconds and at each fit's
    last epoch, so a lab of many short fits prints one line per fit."""

    def __init__(self, total: int, label: str, line: ProgressLine | None):
        self.total, self.label, self.line = total, label, line
        self.bar = self.cell = None
        self.started = self.last = time.monotonic()
        part = _PART.search(label or "")
        # "seed 2/5": the ETA covers the lab's remaining parts, not only this fit
        self.part = (int(part[1]), int(part[2])) if part and 0 < int(part[1]) <= int(part[2]) else None
        if line is not None and _jupyter_kernel():  # one notebook line, updated in place
            from IPython.display import HTML, display

            self.html = HTML
            self.cell = display(HTML(self._line(0, "")), display_id=True)
        elif line is not None and sys.stderr.isatty():
            from rich.progress import BarColumn, Progress, TextColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                TextColumn("{task.completed}/{task.total}"),
                                TextColumn("{task.fields[info]}"), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(f"{line.tag} {label}".strip(), total=total, info="")

    def _line(self, epoch: int, info: str) -> str:
        import html

        seconds = time.monotonic() - self.started
        head = " ".join(p for p in (self.line.tag, self.label) if p) or "training"
        return (f"<code>{html.escape(head)}</code> "
                f"<progress value='{epoch}' max='{self.total}' style='width:12em'></progress> "
                f"{epoch}/{self.total} epochs, {seconds:.1f} s <code>{html.escape(info)}</code>")

    def eta(self, epoch: int) -> str:
        now = time.monotonic()
        if self.part is not None:
            j, parts = self.part
            done = (j - 1 + epoch / self.total) / parts
            spent = now - self.line.started
        else:
            done, spent = epoch / self.total, now - self.started
        return f"ETA {eta_text(spent * (1 - done) / done)}" if 0 < done < 1 else ""

    def update(self, epoch: int, row: dict, final: bool = False) -> None:
        if self.line is None:
            return
        info = "  ".join(p for p in (progress_metrics(row), "" if final else self.eta(epoch)) if p)
        if self.cell is not None:
            self.cell.update(self.html(self._line(epoch, info)))
        elif self.bar is not None:
            self.bar.update(self.task, completed=epoch, info=info)
        elif final or time.monotonic() - self.last >= print_every():
            self.last = time.monotonic()
            head = " ".join(p for p in (self.line.tag, self.label) if p)
            ended = " (stopped early)" if final and epoch < self.total else ""
            print(f"{head} epoch {epoch}/{self.total}{ended}  {info}".strip(), file=sys.stderr,
                  flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _jupyter_kernel() -> bool:
    """Inside a Jupyter kernel (IPython with a kernel attached), where stderr is no terminal but
    the notebook can show a line that updates."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return getattr(shell, "kernel", None) is not None


@dataclass
class _Training:
    """One fit() call: its data and hooks, and what changes from epoch to epoch (all that a
    resumed call restores to go on exactly as an uninterrupted one would)."""

    model: nn.Module
    net: nn.Module                     # the model, or its DistributedDataParallel wrapper
    x: torch.Tensor
    y: torch.Tensor
    starts: list[int]                  # where each batch of an epoch starts
    batch_size: int
    optimizer: torch.optim.Optimizer
    scheduler: object | None
    loss_fn: Metric
    metrics: dict[str, Metric]
    transform: BatchTransform | None
    after_backward: Callable[[nn.Module, int], None] | None
    autocast: torch.dtype | None
    hooks: dict[str, object]           # callables whose recorded lists are saved with the state
    shuffle: torch.Generator
    augment: torch.Generator | None    # PhotoBatches' and DigitBatches' own stream
    check_memory: str | None = None    # a label: say before the first update if it may not fit
    result: FitResult = field(default_factory=FitResult)
    best_value: float = math.inf
    best_state: dict | None = None
    since_best: int = 0
    finished: bool = False             # restored from a state saved after the last epoch
    earlier_seconds: float = 0.0       # training time before a resume

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the shuffled training set; the mean loss and metrics of its batches."""
        model, x, y, device = self.model, self.x, self.y, self.x.device
        model.train()
        order = torch.randperm(len(x), generator=self.shuffle).to(device)
        sums = torch.zeros(1 + len(self.metrics), device=device)
        for start, end in zip(self.starts, self.starts[1:] + [len(x)]):
            idx = order[start:end]
            local = distributed.shard(idx)  # all of idx in a single process
            xb, yb = x[local], y[local]
            with torch.autocast(device.type, dtype=self.autocast or torch.bfloat16,
                                enabled=self.autocast is not None):
                inputs = self.transform(xb, True) if self.transform else xb
                if self.check_memory is not None and inputs.dim() == 4:  # the real input size
                    warn_if_too_big(model, inputs[:1], self.batch_size, device, self.check_memory)
                self.check_memory = None
                out = self.net(inputs)
                loss = self.loss_fn(out, yb)
            self.optimizer.zero_grad(set_to_none=True)
            (loss * distributed.loss_scale(len(local), len(idx))).backward()
            if self.after_backward is not None:
                self.after_backward(model, epoch)
            self.optimizer.step()
            if self.scheduler is not None and self.scheduler.per_update:
                self.scheduler.step()
            with torch.no_grad():
                parts = [loss.detach()] + [fn(out.detach(), yb) for fn in self.metrics.values()]
                sums += torch.stack(parts) * len(local)
            self.result.updates += 1
        means = (distributed.all_sum(sums) / len(x)).tolist()
        return {"train_loss": means[0], **{f"train_{k}": v for k, v in zip(self.metrics, means[1:])}}

    def evaluate(self, data: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        return evaluate(self.model, data[0], data[1], self.loss_fn, self.metrics,
                        transform=self.transform, autocast=self.autocast)

    def judge(self, row: dict, watched: str, patience: int, stop_when) -> bool:
        """Keep the best epoch's weights; True when training should stop: a loss that is no longer
        finite (diverged), `patience` epochs without improvement, or stop_when(history)."""
        if not (math.isfinite(row["train_loss"]) and math.isfinite(row[watched])):
            self.result.status = "diverged"
            return True
        if row[watched] < self.best_value:
            self.best_value, self.result.best_epoch, self.since_best = row[watched], row["epoch"], 0
            self.best_state = copy.deepcopy(self.model.state_dict())
        else:
            self.since_best += 1
        self.result.stopped_early = bool((patience and self.since_best >= patience)
                                         or (stop_when and stop_when(self.result.history)))
        return self.result.stopped_early

    def state_dict(self, done: bool, seconds: float) -> dict:
        r = self.result
        return {"finished": done, "epoch": len(r.history), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "shuffle": self.shuffle.get_state(),
                "augment": self.augment.get_state() if self.augment is not None else None,
                "rng": rng_state(self.x.device),
                "recorded": {role: recorded(hook) for role, hook in self.hooks.items()},
                "history": r.history, "status": r.status, "stopped_early": r.stopped_early,
                "best_epoch": r.best_epoch, "updates": r.updates, "best_value": self.best_value,
                "best_state": self.best_state, "since_best": self.since_best,
                "seconds": self.earlier_seconds + seconds}

    def load_state_dict(self, saved: dict, path: Path) -> None:
        try:
            self.model.load_state_dict(saved["model"])
            self.optimizer.load_state_dict(saved["optimizer"])
            if self.scheduler is not None:
                self.scheduler.load_state_dict(saved["scheduler"])
            self.shuffle.set_state(saved["shuffle"])
            if self.augment is not None and saved["augment"] is not None:
                self.augment.set_state(saved["augment"])
            set_rng_state(saved["rng"])
            for role, lists in saved["recorded"].items():
                for key, values in lists.items():
                    setattr(self.hooks[role], key, [v.to(self.x.device) if isinstance(v, torch.Tensor)
                                                    else v for v in values])
            self.result = FitResult(saved["history"], saved["status"], saved["stopped_early"],
                                    saved["best_epoch"], saved["updates"])
            self.best_value, self.best_state = saved["best_value"], saved["best_state"]
            self.since_best, self.finished = saved["since_best"], saved["finished"]
            self.earlier_seconds = saved["seconds"]
        except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"{path} does not fit this network or is damaged "
                            f"({_first_problem(exc)}); the code or the file changed since it was "
                            "saved: start a new run instead of --resume") from None

    def save_checkpoints(self, folder: Path, every: int, keep_last: int) -> None:
        """At the end: the last epoch (always kept) and the best epoch's weights as best.pt."""
        epochs_run = len(self.result.history)
        if epochs_run and epochs_run % every:
            save_epoch_checkpoint(folder, epochs_run, self.model, self.optimizer, keep_last)
        if self.best_state is not None:
            save_checkpoint(folder / "best.pt", self.best_state, epoch=self.result.best_epoch)


def fit(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], cfg: TrainConfig, *,
        loss_fn: Metric, metrics: dict[str, Metric] | None = None,
        val: tuple[torch.Tensor, torch.Tensor] | None = None, device: torch.device | None = None,
        also: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
        stop_when: Callable[[list[dict]], bool] | None = None,
        checkpoint_dir: Path | None = None, checkpoint_every: int = 1, keep_last: int = 3,
        restore_best: bool = True, progress: bool | ProgressLine = True, label: str = "",
        batch_transform: BatchTransform | None = None,
        after_backward: Callable[[nn.Module, int], None] | None = None,
        autocast: torch.dtype | None = None, session: Session | None = None) -> FitResult:
    """Train `model` in place on in-memory tensors and return its per-epoch history.

    `device` defaults to where the model's weights are; a lab calls `ctx.fit(...)`, which fills in
    the run's device, precision, progress and session. The monitored quantity is val_loss when
    `val` is given, else train_loss; `also` names further sets evaluated every epoch but never
    monitored (the handouts' per-epoch test curves). cfg.patience > 0 or `stop_when(history)`
    stop early; a loss that turns NaN or infinite ends it as `diverged`; with restore_best the
    model ends with its best epoch's weights. `checkpoint_dir` gets epoch-NNNN.pt every
    `checkpoint_every` epochs (the last `keep_last` kept) and best.pt. `batch_transform(batch,
    training)` makes each stored batch the model's input (uint8 photos → augmented floats);
    `after_backward(model, epoch)` sees the gradients before each update; `autocast` (e.g.
    torch.bfloat16) runs forward passes in that dtype, weights and optimizer state in float32.
    With a `session` (every `mllabs run`) the training state is saved after epochs (at most ~2 %
    of the time) and found again on --resume, and the time budget ends training with OutOfTime
    at an epoch boundary, its state saved."""
    device = device or next(model.parameters(), torch.empty(0)).device
    metrics = metrics or {}
    model.to(device)
    x, y = train[0].to(device), train[1].to(device)
    if len(x) == 0:
        raise UserError("the training set is empty; check the data and the split settings")
    batch_size = len(x) if cfg.optimizer == "gd" else min(cfg.batch_size, len(x))
    distributed.check_batch_size(batch_size)
    net = distributed.wrap(model, device)  # the model itself unless --nproc > 1
    optimizer = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.weight_decay)
    starts = batch_starts(len(x), batch_size)
    hooks = {"loss_fn": loss_fn, "after_backward": after_backward, "stop_when": stop_when,
             **{f"metric {k}": fn for k, fn in metrics.items()}}
    t = _Training(model, net, x, y, starts, batch_size, optimizer, make_scheduler(cfg, optimizer, len(starts)),
                  loss_fn, metrics, batch_transform, after_backward, autocast, hooks,
                  torch.Generator().manual_seed(cfg.seed), getattr(batch_transform, "generator", None))
    identity = {"label": label, "examples": len(x), "batch_size": batch_size, "epochs": cfg.epochs,
                "optimizer": cfg.optimizer, "schedule": cfg.schedule, "seed": cfg.seed}
    store = session.state_file(identity) if session is not None else None
    if checkpoint_dir and session is not None and session.root:
        checkpoint_dir = inside(session.root, checkpoint_dir)
    if store is not None and (saved := store.load()) is not None:
        t.load_state_dict(saved, store.path)
    if session is not None:
        session.histories.append((label or f"network {session.calls}", t.result.history))
    name, t.check_memory = label or "training", None if t.finished else label

    line = progress if isinstance(progress, ProgressLine) else ProgressLine() if progress else None
    bar = _Progress(cfg.epochs, label, line if not t.finished else None)
    started = time.perf_counter()
    stopping = session is not None and not t.finished and session.out_of_time(0)
    try:
        for epoch in range(len(t.result.history) + 1, 0 if t.finished else cfg.epochs + 1):
            if stopping:
                raise OutOfTime(f"time budget of {session.max_seconds:g} s spent: {name} stopped "
                                f"before epoch {epoch} of {cfg.epochs}")
            if session is not None:
                session.where = f"in {name}, epoch {epoch} of {cfg.epochs}"
            tick = time.perf_counter()
            began = session.clock() if session is not None else 0.0  # the budget's own clock
            row = {"epoch": epoch, **t.train_epoch(epoch)}
            for set_name, data in (({"val": val} if val is not None else {}) | (also or {})).items():
                row.update({f"{set_name}_{k}": v for k, v in t.evaluate(data).items()})
            row["lr"] = optimizer.param_groups[0]["lr"]  # onecycle: the rate the epoch ended at
            if t.scheduler is not None and not t.scheduler.per_update:
                t.scheduler.step()
            row["seconds"] = time.perf_counter() - tick
            t.result.history.append(row)
            stop = t.judge(row, "val_loss" if val is not None else "train_loss", cfg.patience, stop_when)
            if checkpoint_dir and t.result.status != "diverged" and epoch % checkpoint_every == 0:
                save_epoch_checkpoint(Path(checkpoint_dir), epoch, model, optimizer, keep_last)
            stopping = (session is not None and not stop and epoch < cfg.epochs
                        and session.out_of_time(session.clock() - began))
            # the state is on disk before the epoch is reported, and always before a budget stop
            if store is not None and not stop and epoch < cfg.epochs and (
                    stopping or store.due(time.perf_counter() - started)):
                store.save(model.state_dict(), t.state_dict(False, time.perf_counter() - started))
            if session is not None:
                session.where = f"in {name}, after epoch {epoch} of {cfg.epochs}"
            bar.update(epoch, row, final=stop or epoch == cfg.epochs)
            if stop:
                break
    finally:
        bar.close()
    t.result.seconds = t.earlier_seconds + time.perf_counter() - started
    if checkpoint_dir and not t.finished:  # a restored network's files are on disk already
        t.save_checkpoints(Path(checkpoint_dir), checkpoint_every, keep_last)
    if store is not None and not t.finished:  # after the checkpoints: "finished" means they exist
        store.save(model.state_dict(), t.state_dict(True, time.perf_counter() - started))
    if restore_best and t.best_state is not None:
        model.load_state_dict(t.best_state)
    return t.result
