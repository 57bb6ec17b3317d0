"""fit(): the one training loop every network lab uses.

Data stays in memory as tensors on the training device; an epoch is a shuffled index
permutation cut into slices, so there is no per-sample Python work. Losses are summed on the
device and read once per epoch (no per-step `.item()` sync). train_* metrics are the running
mean over the epoch's batches, as Keras reports them; val_* metrics are exact.
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from mllabs import distributed
from mllabs.checkpoints import _first_problem, load_checkpoint, save_checkpoint
from mllabs.config import TrainConfig
from mllabs.errors import UserError
from mllabs.runs import inside

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
    raise UserError(f"unknown optimizer {name!r}; choose gd, sgd, momentum, nesterov, adagrad, "
                    "rmsprop, adam or adamw")


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


# ---------------------------------------------------------------------------- resume and budget

class OutOfTime(KeyboardInterrupt):
    """The run's --max-seconds budget is spent. A KeyboardInterrupt so that it leaves a lab's code
    the way Ctrl-C does (no lab catches it) and the run ends resumable, its report written."""


@dataclass
class Session:
    """What execute() tells every fit() of one run.

    Each fit() call gets the next state file in `state_dir` (fit-001.pt, fit-002.pt, ...). A lab
    re-run with its saved config builds the same networks from the same seeds in the same order,
    so on --resume the n-th call finds its own state: a finished network is restored without
    training, an unfinished one continues from its last complete epoch."""

    state_dir: Path | None = None
    root: Path | None = None              # checkpoint folders must stay inside it (the run)
    max_seconds: float | None = None
    state_share: float = 0.02             # of training time, at most, spent saving states
    started: float = field(default_factory=time.monotonic)
    calls: int = 0
    histories: list[tuple[str, list[dict]]] = field(default_factory=list)
    where: str = ""                       # the network and epoch in training, for the report

    def next_state(self) -> Path | None:
        self.calls += 1
        return self.state_dir / f"fit-{self.calls:03d}.pt" if self.state_dir else None

    def out_of_time(self, next_epoch: float) -> bool:
        """The budget is spent, or would be before an epoch as long as `next_epoch` ends."""
        return (self.max_seconds is not None
                and time.monotonic() - self.started + next_epoch > self.max_seconds)


_session: Session | None = None


@contextlib.contextmanager
def session(**kw) -> Iterator[Session]:
    """Every fit() inside the block saves and resumes its state through one Session."""
    global _session
    previous, _session = _session, Session(**kw)
    try:
        yield _session
    finally:
        _session = previous


def _rng_state(device: torch.device) -> dict:
    """The global generators (dropout, torch.rand in a lab, numpy, random) as plain values."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": [torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
             "python": [version, list(internal), gauss_next]}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def _recorded(hook) -> dict[str, list]:
    """The lists of plain values a hook keeps (models/inspect.py's recorders keep one tensor per
    update): saved with the state, so a resumed fit's recorder holds every epoch, not only the
    ones trained after the resume."""
    return {k: list(v) for k, v in getattr(hook, "__dict__", {}).items()
            if isinstance(v, list) and all(isinstance(i, (torch.Tensor, int, float, str)) for i in v)}


def memory_estimate(model: nn.Module, sample: torch.Tensor, batch_size: int) -> int:
    """Rough bytes one training step needs: every layer's output for one sample (one dry forward
    pass) × batch × 3 (the outputs kept for backward, their gradients, workspace), plus weights,
    gradients and two optimizer moments. The stored data is not counted: it is already loaded."""
    sizes: list[int] = []

    def record(_module, _inputs, output):
        if isinstance(output, torch.Tensor):
            sizes.append(output.numel() * 4)  # float32; bfloat16 autocast needs less

    hooks = [m.register_forward_hook(record) for m in model.modules() if not list(m.children())]
    was_training = model.training
    try:
        # an eval-mode pass draws no random numbers; forking the CPU stream makes sure of it
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            model.eval()
            model(sample)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    weights = sum(p.numel() for p in model.parameters()) * 4
    return (sum(sizes) + sample.numel() * 4) * batch_size * 3 + 4 * weights


def available_memory(device: torch.device) -> int | None:
    """Free bytes where training runs: the GPU's free memory, or the system's available memory."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    try:
        import psutil

        return psutil.virtual_memory().available
    except ImportError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def warn_if_too_big(model: nn.Module, sample: torch.Tensor, batch_size: int, device: torch.device,
                    label: str = "") -> bool:
    """One line on stderr when a training step would not fit in memory (estimated); True if so.
    `sample` is one model input, as the model gets it (after any batch_transform)."""
    try:
        need, have = memory_estimate(model, sample, batch_size), available_memory(device)
    except Exception:  # an estimate must never be what stops a run; training will say what fails
        return False
    if have is None or need <= have:
        return False
    shape = "×".join(map(str, sample.shape[1:]))
    print(f"mllabs: warning: {label or 'training'} may not fit in memory: about {_size(need)} for "
          f"batches of {batch_size} × {shape} (estimated), {_size(have)} available on "
          f"{device.type}; lower batch_size or image_size if it fails", file=sys.stderr, flush=True)
    return True


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


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
    Inside a `session()` (every `mllabs run`), the full training state is saved after epochs
    (atomically, at most ~2 % of the time) and at the end, and found again on --resume; the
    session's time budget ends training with OutOfTime at an epoch boundary, its state saved.
    """
    device = device or torch.device("cpu")
    metrics = metrics or {}
    model.to(device)
    x, y = train[0].to(device), train[1].to(device)
    n = len(x)
    if n == 0:
        raise UserError("the training set is empty; check the data and the split settings")
    batch_size = n if cfg.optimizer == "gd" else min(cfg.batch_size, n)
    starts = batch_starts(n, batch_size)
    if distributed.active() and batch_size < distributed.world_size():
        raise UserError(f"batch_size={batch_size} is smaller than --nproc {distributed.world_size()}; "
                        "every process needs at least one example per batch")
    net = distributed.wrap(model, device)  # the model itself unless --nproc > 1
    optimizer = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.weight_decay)
    scheduler = make_scheduler(cfg, optimizer, steps_per_epoch=len(starts))
    shuffle = torch.Generator().manual_seed(cfg.seed)
    result = FitResult()
    best_value, best_state, since_best = math.inf, None, 0

    sess = _session
    state_path = sess.next_state() if sess else None
    if checkpoint_dir and sess and sess.root:
        checkpoint_dir = inside(sess.root, checkpoint_dir)
    hooks = {"loss_fn": loss_fn, "after_backward": after_backward, "stop_when": stop_when,
             **{f"metric {k}": fn for k, fn in metrics.items()}}
    augment_rng = getattr(batch_transform, "generator", None)  # PhotoBatches, DigitBatches
    # what must match for a saved state to belong to this call
    identity = {"label": label, "examples": n, "batch_size": batch_size, "epochs": cfg.epochs,
                "optimizer": cfg.optimizer, "schedule": cfg.schedule, "seed": cfg.seed}
    finished, earlier_seconds = False, 0.0
    if state_path is not None and state_path.exists():
        saved = load_checkpoint(state_path)
        if saved.get("identity") != identity:
            raise UserError(f"{state_path} was saved by another network or config "
                            f"({saved.get('identity')}, here {identity}); this run cannot be "
                            "resumed: start a new one")
        try:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            if scheduler is not None:
                scheduler.load_state_dict(saved["scheduler"])
            shuffle.set_state(saved["shuffle"])
            if augment_rng is not None and saved["augment"] is not None:
                augment_rng.set_state(saved["augment"])
            _set_rng_state(saved["rng"])
            for role, lists in saved["recorded"].items():
                for key, values in lists.items():
                    setattr(hooks[role], key, [v.to(device) if isinstance(v, torch.Tensor) else v
                                               for v in values])
            result = FitResult(saved["history"], saved["status"], saved["stopped_early"],
                               saved["best_epoch"], saved["updates"])
            best_value, best_state, since_best = saved["best_value"], saved["best_state"], saved["since_best"]
            finished, earlier_seconds = saved["finished"], saved["seconds"]
        except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"{state_path} does not fit this network or is damaged "
                            f"({_first_problem(exc)}); the code or the file changed since it was "
                            "saved: start a new run instead of --resume") from None
    if sess is not None:
        sess.histories.append((label or f"network {sess.calls}", result.history))

    def save_state(done: bool) -> None:
        """Everything the next epoch depends on, so that a resumed run ends as this one would."""
        save_checkpoint(state_path, model.state_dict(), identity=identity, finished=done,
                        epoch=len(result.history),
                        optimizer=optimizer.state_dict(),
                        scheduler=scheduler.state_dict() if scheduler is not None else None,
                        shuffle=shuffle.get_state(),
                        augment=augment_rng.get_state() if augment_rng is not None else None,
                        rng=_rng_state(device), recorded={k: _recorded(h) for k, h in hooks.items()},
                        history=result.history, status=result.status,
                        stopped_early=result.stopped_early, best_epoch=result.best_epoch,
                        updates=result.updates, best_value=best_value, best_state=best_state,
                        since_best=since_best,
                        seconds=earlier_seconds + time.perf_counter() - started)

    bar = _Progress(cfg.epochs, label, progress and not finished)
    started = time.perf_counter()
    saving = 0.0  # seconds spent writing states: kept under sess.state_share of training time
    guard = not finished  # images: say before the first update if a step may not fit in memory
    stopping = sess is not None and not finished and sess.out_of_time(0)
    try:
        for epoch in range(len(result.history) + 1, 0 if finished else cfg.epochs + 1):
            if stopping:
                raise OutOfTime(f"time budget of {sess.max_seconds:g} s spent: "
                                f"{label or 'training'} stopped before epoch {epoch} of {cfg.epochs}")
            if sess is not None:
                sess.where = f"in {label or 'training'}, epoch {epoch} of {cfg.epochs}"
            tick = time.perf_counter()
            model.train()
            order = torch.randperm(n, generator=shuffle).to(device)
            sums = torch.zeros(1 + len(metrics), device=device)
            for start, end in zip(starts, starts[1:] + [n]):
                idx = order[start:end]
                local = distributed.shard(idx)  # all of idx in a single process
                xb, yb = x[local], y[local]
                with torch.autocast(device.type, dtype=autocast or torch.bfloat16,
                                    enabled=autocast is not None):
                    inputs = batch_transform(xb, True) if batch_transform else xb
                    if guard and inputs.dim() == 4:  # the first batch shows the real input size
                        warn_if_too_big(model, inputs[:1], batch_size, device, label)
                    guard = False
                    out = net(inputs)
                    loss = loss_fn(out, yb)
                optimizer.zero_grad(set_to_none=True)
                (loss * distributed.loss_scale(len(local), len(idx))).backward()
                if after_backward is not None:
                    after_backward(model, epoch)
                optimizer.step()
                if scheduler is not None and scheduler.per_update:
                    scheduler.step()
                with torch.no_grad():
                    parts = [loss.detach()] + [fn(out.detach(), yb) for fn in metrics.values()]
                    sums += torch.stack(parts) * len(local)
                result.updates += 1
            means = (distributed.all_sum(sums) / n).tolist()
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

            watched = row["val_loss"] if val is not None else row["train_loss"]
            stop = False
            if not (math.isfinite(row["train_loss"]) and math.isfinite(watched)):
                result.status, stop = "diverged", True
            else:
                if watched < best_value:
                    best_value, result.best_epoch, since_best = watched, epoch, 0
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    since_best += 1
                if checkpoint_dir and epoch % checkpoint_every == 0:
                    save_epoch_checkpoint(Path(checkpoint_dir), epoch, model, optimizer, keep_last)
                if (cfg.patience and since_best >= cfg.patience) or (stop_when and stop_when(result.history)):
                    result.stopped_early, stop = True, True
            stopping = (sess is not None and not stop and epoch < cfg.epochs
                        and sess.out_of_time(row["seconds"]))
            # the state is on disk before the epoch is reported, and always before a budget stop
            if state_path and not stop and epoch < cfg.epochs and (
                    stopping or saving <= sess.state_share * (time.perf_counter() - started)):
                tick = time.perf_counter()
                save_state(done=False)
                saving += time.perf_counter() - tick
            if sess is not None:
                sess.where = f"in {label or 'training'}, after epoch {epoch} of {cfg.epochs}"
            bar.update(epoch, row)
            if stop:
                break
    finally:
        bar.close()
    result.seconds = earlier_seconds + time.perf_counter() - started
    if checkpoint_dir and not finished:  # a restored network's files are on disk already
        epochs_run = len(result.history)
        if epochs_run and epochs_run % checkpoint_every:  # the last epoch is always kept
            save_epoch_checkpoint(Path(checkpoint_dir), epochs_run, model, optimizer, keep_last)
        if best_state is not None:
            save_checkpoint(Path(checkpoint_dir) / "best.pt", best_state, epoch=result.best_epoch)
    if state_path is not None and not finished:
        save_state(done=True)  # after the checkpoints: a finished state means they are there
    if restore_best and best_state is not None:
        model.load_state_dict(best_state)
    return result
