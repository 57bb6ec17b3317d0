"""Many small networks trained as one: the same MLP at several learning rates, seeds and rules.

An optimizer comparison trains dozens of identical small networks that differ only in their
update rule, learning rate and seed. One at a time, each step is a few small matrix products
and a dozen tiny optimizer calls; stacked, the weights of N networks are one (N, out, in)
tensor, a step is one batched product per layer and one elementwise update per tensor, and the
arithmetic per network is unchanged. Each network still gets exactly what fit() would give it:
the initial weights MLP draws under torch.manual_seed(seed), its own seeded batch order, its own
learning rate and schedule, PyTorch's update rule (its fused kernels, or the rule written out
where it has none; tests/test_stacked.py checks each against torch.optim step by step).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from mllabs.errors import UserError
from mllabs.models.mlp import MLP
from mllabs.session import OutOfTime, Session
from mllabs.train import batch_starts

# What each rule keeps besides the weights, and its fixed settings (those of train.make_optimizer)
MOMENTUM = 0.9
RMSPROP_ALPHA, RMSPROP_EPS = 0.9, 1e-7
ADAGRAD_EPS = 1e-10
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8
RULES = ("gd", "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
FUSED = ("gd", "sgd", "momentum", "nesterov", "adagrad", "adam", "adamw")  # PyTorch has one-pass kernels
SCHEDULES = ("constant", "cosine", "exponential", "piecewise")
LOSSES = ("cross_entropy", "mse")


def refuse_early_stopping(patience: int) -> None:
    """Stacked networks all train every epoch: a lab trained this way refuses `patience` in one
    line before anything runs, rather than ignoring it."""
    if patience:
        raise UserError(f"patience={patience}: this lab trains its networks together for every "
                        "epoch, so it cannot stop one early; leave patience at 0")


def example_losses(out: torch.Tensor, target: torch.Tensor, loss: str = "cross_entropy") -> torch.Tensor:
    """Each network's loss on each example, (N, B), from logits (N, B, classes): cross-entropy,
    or "mse", the squared error of the softmax probabilities against the one-hot target (as
    labs.regularization.squared_error, there averaged over the batch)."""
    if loss == "mse":
        probs = torch.softmax(out, 2)
        return (probs - nn.functional.one_hot(target, out.shape[2]).to(probs.dtype)).pow(2).sum(2)
    return nn.functional.cross_entropy(out.transpose(1, 2), target, reduction="none")


@dataclass
class Arm:
    """One network of a stack: how it is trained."""

    optimizer: str
    lr: float
    seed: int
    weight_decay: float = 0.0


@dataclass
class ArmResult:
    arm: Arm
    history: list[dict] = field(default_factory=list)
    status: str = "completed"
    updates: int = 0
    seconds: float = 0.0          # its share of the stack's training time
    weights: dict | None = None   # an MLP state dict, for evaluation and predict


class StackedMLP(nn.Module):
    """N copies of models.mlp.MLP(in, hidden, out) (ReLU), weights stacked on a first axis.

    Each weight is kept as (N, in, out), the transpose of nn.Linear's: the forward product then
    needs no transposed view, so its gradient comes out of the batched product in the weight's
    own layout instead of being copied into it, a whole weight's copy every step."""

    def __init__(self, in_features: int, hidden: tuple[int, ...], out_features: int, seeds: list[int]):
        super().__init__()
        nets = []
        for seed in seeds:  # drawn as the lab draws one network, so network i is the one fit() trains
            torch.manual_seed(seed)
            nets.append(MLP(in_features, hidden, out_features))
        linears = [[m for m in net if isinstance(m, nn.Linear)] for net in nets]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([layers[i].weight.detach().t() for layers in linears]))
            for i in range(len(linears[0])))
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([layers[i].bias.detach() for layers in linears]))
            for i in range(len(linears[0])))
        self.shapes = (in_features, tuple(hidden), out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, B, in) or (B, in) for all networks alike → logits (N, B, out)."""
        if x.dim() == 2:
            x = x.expand(len(self.weights[0]), *x.shape)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b.unsqueeze(1), x, w)
            if i < last:
                x = torch.relu(x)
        return x

    def network(self, i: int) -> dict:
        """Network i as an MLP state dict (keys as MLP names them)."""
        net = MLP(*self.shapes)
        linears = [name for name, m in net.named_children() if isinstance(m, nn.Linear)]
        state = {}
        for name, w, b in zip(linears, self.weights, self.biases):
            state[f"{name}.weight"] = w[i].detach().t().cpu().contiguous()
            state[f"{name}.bias"] = b[i].detach().cpu().clone()
        return state


def lr_factor(schedule: str, epoch: int, epochs: int, gamma: float = 0.9,
              milestones: tuple[int, ...] = (), factor: float = 0.1) -> float:
    """The learning rate's multiplier during `epoch` (0-based), as train.make_scheduler's
    per-epoch schedules give it in closed form."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return (1 + math.cos(math.pi * epoch / epochs)) / 2
    if schedule == "exponential":
        return gamma ** epoch
    if schedule == "piecewise":
        return factor ** sum(epoch >= m for m in milestones)
    raise UserError(f"schedule {schedule!r} cannot be used when networks are trained stacked; "
                    f"choose {', '.join(SCHEDULES)}")


class StackedRule:
    """One update rule applied to every network of a stack, each at its own learning rate and
    weight decay: PyTorch's fused kernel, called per network on its slices (FUSED), or its
    algorithm (torch.optim's documentation) written for stacked tensors (RMSProp, other devices)."""

    def __init__(self, name: str, params: list[nn.Parameter], lrs: torch.Tensor, decays: torch.Tensor):
        if name not in RULES:
            raise UserError(f"unknown optimizer {name!r}; choose {', '.join(RULES)}")
        self.name, self.params, self.step_count = name, params, 0
        self.lrs, self.decays = lrs, decays  # (N,) each
        self.state: list[dict[str, torch.Tensor]] = [{} for _ in params]
        self.fused = name in FUSED and params[0].device.type in ("cpu", "cuda")
        self.scratch = [torch.empty_like(p) if name in ("adagrad", "rmsprop", "adam", "adamw")
                        and not self.fused else None for p in params]  # work tensors, never saved

    def _per_net(self, values: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return values.view(-1, *([1] * (p.dim() - 1)))

    @torch.no_grad()
    def step(self, scale: float) -> None:
        """One update; `scale` is the schedule's multiplier for every network's rate.

        Every operation works in place on the gradient, the rule's state or the weight's scratch
        tensor: a stack's tensors are tens of megabytes, and a fresh temporary of that
        size per operation (each first touched page a fault) cost more than the update's
        arithmetic."""
        self.step_count += 1
        t = self.step_count
        if self.fused:
            self._fused_step(scale, t)
            return
        decayed = bool((self.decays != 0).any())
        for p, state, scratch in zip(self.params, self.state, self.scratch):
            lr = self._per_net(self.lrs, p) * scale
            wd = self._per_net(self.decays, p)
            g = p.grad  # (re)made by every backward pass, so it may be overwritten here
            if self.name == "adamw":
                p.mul_(1 - lr * wd)
            elif decayed:
                g.addcmul_(wd.expand_as(p), p)
            if self.name in ("gd", "sgd"):
                p.sub_(g.mul_(lr))
            elif self.name in ("momentum", "nesterov"):
                if "momentum" not in state:
                    state["momentum"] = g.clone()
                else:
                    state["momentum"].mul_(MOMENTUM).add_(g)
                buf = state["momentum"]
                step = g.add_(buf, alpha=MOMENTUM) if self.name == "nesterov" else g.copy_(buf)
                p.sub_(step.mul_(lr))
            elif self.name == "adagrad":
                total = self._zeros(state, "sum", p).addcmul_(g, g)
                denom = torch.sqrt(total, out=scratch).add_(ADAGRAD_EPS)
                p.sub_(g.div_(denom).mul_(lr))
            elif self.name == "rmsprop":
                sq = self._zeros(state, "square_avg", p)
                sq.mul_(RMSPROP_ALPHA).addcmul_(g, g, value=1 - RMSPROP_ALPHA)
                denom = torch.sqrt(sq, out=scratch).add_(RMSPROP_EPS)
                p.sub_(g.div_(denom).mul_(lr))
            else:  # adam, adamw
                b1, b2 = ADAM_BETAS
                m = self._zeros(state, "exp_avg", p).lerp_(g, 1 - b1)
                v = self._zeros(state, "exp_avg_sq", p)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = torch.sqrt(v, out=scratch)
                denom.div_(math.sqrt(1 - b2 ** t)).add_(ADAM_EPS)
                p.sub_(torch.div(m, denom, out=g).mul_(lr / (1 - b1 ** t)))

    def _fused_step(self, scale: float, t: int) -> None:
        """The update through PyTorch's one-pass kernels (those torch.optim's fused=True runs,
        and fit() with it), called once per network on its slices of the stacked tensors: each
        tensor is read and written once instead of once per operation (16 networks' Adam update
        of 784-256-10 held to AVX2: 3.2 ms against 10 ms in place)."""
        grads = [p.grad for p in self.params]
        step = [torch.tensor(float(t), device=self.params[0].device)]  # the kernels' bias correction
        if self.name in ("adam", "adamw"):
            buffers = [[self._zeros(st, key, p) for p, st in zip(self.params, self.state)]
                       for key in ("exp_avg", "exp_avg_sq")]
        elif self.name == "adagrad":
            buffers = [[self._zeros(st, "sum", p) for p, st in zip(self.params, self.state)]]
        else:  # the SGD family: momentum buffers, which the kernel fills on the first step
            moving, first = self.name in ("momentum", "nesterov"), "momentum" not in self.state[0]
            if moving and first:
                for p, st in zip(self.params, self.state):
                    st["momentum"] = torch.empty_like(p)
            buffers = [[st["momentum"] for st in self.state] if moving else []]
        for i, (lr, wd) in enumerate(zip((self.lrs * scale).tolist(), self.decays.tolist())):
            ps, gs = [p.data[i] for p in self.params], [g[i] for g in grads]
            mine = [[b[i] for b in kind] for kind in buffers]
            if self.name in ("adam", "adamw"):
                kernel = torch._fused_adam_ if self.name == "adam" else torch._fused_adamw_
                kernel(ps, gs, *mine, [], step * len(ps), lr=lr, beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1],
                       weight_decay=wd, eps=ADAM_EPS, amsgrad=False, maximize=False)
            elif self.name == "adagrad":
                torch._fused_adagrad_(ps, gs, *mine, step * len(ps), lr=lr, lr_decay=0.0, weight_decay=wd,
                                      eps=ADAGRAD_EPS, maximize=False)
            else:
                torch._fused_sgd_(ps, gs, mine[0], weight_decay=wd,
                                  momentum=MOMENTUM if moving else 0.0, lr=lr, dampening=0.0,
                                  nesterov=self.name == "nesterov", maximize=False, is_first_step=first)

    @staticmethod
    def _zeros(state: dict, key: str, p: torch.Tensor) -> torch.Tensor:
        """state[key], made as zeros like p the first time it is asked for."""
        if key not in state:
            state[key] = torch.zeros_like(p)
        return state[key]

    def state_dict(self) -> dict:
        return {"step": self.step_count, "state": self.state}

    def load_state_dict(self, saved: dict) -> None:
        self.step_count, self.state = saved["step"], saved["state"]


def _evaluate(model: StackedMLP, x: torch.Tensor, y: torch.Tensor, loss_name: str = "cross_entropy",
              chunk: int = 4096) -> torch.Tensor:
    """Mean loss and accuracy of every network on (x, y): a (N, 2) tensor."""
    sums = torch.zeros(len(model.weights[0]), 2, device=x.device)
    with torch.no_grad():
        for start in range(0, len(x), chunk):
            out = model(x[start:start + chunk])
            target = y[start:start + chunk].expand(out.shape[0], -1)
            loss = example_losses(out, target, loss_name).sum(1)
            hits = (out.argmax(2) == target).sum(1)
            sums += torch.stack([loss, hits.float()], 1)
    return sums / len(x)


def train_stack(arms: list[Arm], hidden: tuple[int, ...], train: tuple[torch.Tensor, torch.Tensor],
                *, epochs: int, batch_size: int, schedule: str = "constant", gamma: float = 0.9,
                milestones: tuple[int, ...] = (), factor: float = 0.1,
                sets: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
                loss: str = "cross_entropy", session: Session | None = None, label: str = "",
                progress=None, device: torch.device | None = None) -> list[ArmResult]:
    """Train one MLP per arm, all with the same update rule, as one stacked model.

    Every network sees its seed's batch order (the permutation fit() draws from
    torch.Generator().manual_seed(seed)); `gd` uses the whole training set as one batch.
    `sets` (e.g. val, test) are evaluated after every epoch; `loss` (example_losses) is what is
    trained on and reported, in every set. A network whose loss stops being
    finite is recorded as diverged and frozen; the others go on. With a session the stack's state
    is saved after epochs and found again on --resume, as fit() does."""
    rules = {a.optimizer for a in arms}
    if len(rules) != 1:
        raise ValueError(f"one update rule per stack, got {sorted(rules)}")
    rule_name = rules.pop()
    if loss not in LOSSES:
        raise UserError(f"unknown loss {loss!r}; choose {', '.join(LOSSES)}")
    device = device or torch.device("cpu")
    x, y = train[0].flatten(1).to(device), train[1].to(device)
    n, count = len(arms), len(x)
    full_batch = rule_name == "gd"
    size = count if full_batch else min(batch_size, count)
    starts = batch_starts(count, size)
    model = StackedMLP(x.shape[1], hidden, int(y.max()) + 1 if len(y) else 10,
                       [a.seed for a in arms]).to(device)
    rule = StackedRule(rule_name, list(model.parameters()), torch.tensor([a.lr for a in arms], device=device),
                       torch.tensor([a.weight_decay for a in arms], device=device))
    seeds = sorted({a.seed for a in arms})
    shuffles = {s: torch.Generator().manual_seed(s) for s in seeds}
    row_of = torch.tensor([seeds.index(a.seed) for a in arms], device=device)
    results = [ArmResult(a) for a in arms]
    alive = torch.ones(n, dtype=torch.bool, device=device)
    frozen = rule.lrs.clone()
    sets = {k: (v[0].flatten(1).to(device), v[1].to(device)) for k, v in (sets or {}).items()}
    store = session.state_file({"label": label, "arms": [vars(a) for a in arms], "hidden": list(hidden),
                                "examples": count, "batch_size": size, "epochs": epochs,
                                "schedule": schedule, "loss": loss, "layout": "in-out"}) \
        if session is not None else None
    first, earlier = 1, 0.0
    if store is not None and (saved := store.load()) is not None:
        model.load_state_dict(saved["model"])
        rule.load_state_dict(saved["rule"])
        for s, state in zip(seeds, saved["shuffles"]):
            shuffles[s].set_state(state)
        alive = saved["alive"].to(device)
        for r, h, st in zip(results, saved["histories"], saved["statuses"]):
            r.history, r.status = h, st
        first, earlier = len(results[0].history) + 1, saved["seconds"]
    rule.lrs = torch.where(alive, frozen, torch.zeros((), device=device))
    started = time.perf_counter()
    for epoch in range(first, epochs + 1):
        if session is not None:
            session.where = f"in {label}, epoch {epoch} of {epochs}"
        tick = time.perf_counter()
        scale = lr_factor(schedule, epoch - 1, epochs, gamma, milestones, factor)
        orders = torch.stack([torch.randperm(count, generator=shuffles[s]) for s in seeds]).to(device)
        sums = torch.zeros(n, 2, device=device)
        for start, end in zip(starts, starts[1:] + [count]):
            if full_batch:  # the whole set in chunks, gradients summed: memory stays bounded
                chunks = [(x[i:i + 8192], y[i:i + 8192]) for i in range(0, count, 8192)]
            else:
                idx = orders[:, start:end][row_of]            # (N, B): each network's own batch
                chunks = [(x[idx], y[idx])]
            model.zero_grad(set_to_none=True)
            for xb, yb in chunks:
                out = model(xb)
                target = yb.expand(n, -1) if yb.dim() == 1 else yb
                losses = example_losses(out, target, loss)
                per_net = losses.sum(1) / (end - start)
                per_net.sum().backward()  # networks are independent: each gets its own gradient
                with torch.no_grad():
                    sums += torch.stack([losses.sum(1), (out.argmax(2) == target).sum(1).float()], 1)
            rule.step(scale)
        with torch.no_grad():
            means = sums / count
            rows = [{"epoch": epoch, "train_loss": float(means[i, 0]), "train_accuracy": float(means[i, 1])}
                    for i in range(n)]
            for set_name, (xs, ys) in sets.items():
                scores = _evaluate(model, xs, ys, loss)
                for i in range(n):
                    rows[i].update({f"{set_name}_loss": float(scores[i, 0]),
                                    f"{set_name}_accuracy": float(scores[i, 1])})
        seconds = time.perf_counter() - tick
        for i, (r, row) in enumerate(zip(results, rows)):
            row["lr"], row["seconds"] = r.arm.lr * scale, seconds / n
            if not alive[i]:
                continue
            r.history.append(row)
            if not all(math.isfinite(v) for k, v in row.items() if k.endswith("_loss")):
                r.status, alive[i] = "diverged", False
        rule.lrs = torch.where(alive, frozen, torch.zeros((), device=device))
        if progress is not None:
            progress(epoch, epochs, [r for r, a in zip(results, alive) if a])
        stopping = session is not None and epoch < epochs and session.out_of_time(seconds)
        if store is not None and epoch < epochs and (
                stopping or store.due(time.perf_counter() - started)):
            store.save(model.state_dict(), _state(rule, shuffles, seeds, alive, results,
                                                  earlier + time.perf_counter() - started))
        if stopping:
            raise OutOfTime(f"time budget of {session.max_seconds:g} s spent: {label} stopped "
                            f"after epoch {epoch} of {epochs}")
    total = earlier + time.perf_counter() - started
    if store is not None and first <= epochs:
        store.save(model.state_dict(), _state(rule, shuffles, seeds, alive, results, total))
    for i, r in enumerate(results):
        r.updates = len(r.history) * len(starts)
        r.seconds = total / n
        r.weights = model.network(i) if r.status == "completed" else None
    return results


def _state(rule, shuffles, seeds, alive, results, seconds) -> dict:
    return {"rule": rule.state_dict(), "shuffles": [shuffles[s].get_state() for s in seeds],
            "alive": alive.clone(), "histories": [r.history for r in results],
            "statuses": [r.status for r in results], "seconds": seconds}
