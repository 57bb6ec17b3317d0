#!/usr/bin/env python3
"""Where a LeNet-5 training step spends its time on this CPU, and what each candidate change buys.

    MLLABS_DATA=../shared/data .venv/bin/python benchmarks/optimise_lenet.py [--steps 300] [--profile]

The step is fit()'s (mllabs.train): index a shuffled batch out of the in-memory digits, forward,
cross-entropy, backward, optimizer step, the running loss/accuracy sums kept on the device. The
recipe is the mnist-lenet lab's (Adam 2e-3, batch 128) and the handout's (Momentum 0.01/0.9,
batch 32). Each variant changes one thing against `baseline`; milliseconds per step are the
median of --repeat timed blocks of --steps steps after a warm-up. `--profile` prints the
torch.profiler table of the baseline step (self CPU time per operator), the evidence for what to
change. Evaluation (10,000 test digits) is timed for several batch sizes.

Results of this script, with the decisions taken, are kept in benchmarks/optimisations.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--data", type=Path, default=Path(os.environ.get("MLLABS_DATA", "../shared/data")))
p.add_argument("--threads", type=int, default=2)
p.add_argument("--steps", type=int, default=300, help="steps per timed block (300)")
p.add_argument("--repeat", type=int, default=5, help="timed blocks per variant (5)")
p.add_argument("--profile", action="store_true", help="print the torch.profiler table of the baseline")
p.add_argument("--only", action="append", help="run only these variants")
args = p.parse_args()
os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from mllabs.data import mnist  # noqa: E402
from mllabs.models.lenet import LeNet5  # noqa: E402
from mllabs.train import accuracy  # noqa: E402

torch.set_num_threads(args.threads)
data = mnist.load(args.data)
x_all = mnist.normalise(data.train_x, pad_to=32)
y_all = torch.from_numpy(data.train_y.astype("int64"))
x_test = mnist.normalise(data.test_x, pad_to=32)


def make_step(batch: int, optimizer: str = "adam", fused: bool = False, channels_last: bool = False,
              compiled: bool = False, bf16: bool = False, metrics: bool = True):
    torch.manual_seed(0)
    model = LeNet5()
    x = x_all
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x_all.contiguous(memory_format=torch.channels_last)
    kw = {"fused": True} if fused else {}
    opt = (torch.optim.Adam(model.parameters(), lr=2e-3, **kw) if optimizer == "adam"
           else torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, **kw))
    net = torch.compile(model) if compiled else model
    sums = torch.zeros(2)
    gen = torch.Generator().manual_seed(0)
    state = {"order": torch.randperm(len(x), generator=gen), "at": 0}

    def step():
        at = state["at"]
        if at + batch > len(x):
            state["order"], at = torch.randperm(len(x), generator=gen), 0
        idx = state["order"][at:at + batch]
        state["at"] = at + batch
        xb, yb = x[idx], y_all[idx]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = net(xb)
            loss = nn.functional.cross_entropy(out, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if metrics:
            with torch.no_grad():
                sums.add_(torch.stack([loss.detach(), accuracy(out.detach(), yb)]) * len(idx))

    return model, step


def time_steps(step) -> float:
    for _ in range(30):  # warm-up (and, for compiled variants, the compile itself)
        step()
    blocks = []
    for _ in range(args.repeat):
        tick = time.perf_counter()
        for _ in range(args.steps):
            step()
        blocks.append((time.perf_counter() - tick) / args.steps * 1000)
    return statistics.median(blocks)


VARIANTS = {
    "baseline": {},
    "no per-step metrics": {"metrics": False},
    "fused optimizer": {"fused": True},
    "channels-last": {"channels_last": True},
    "bfloat16 autocast": {"bf16": True},
    "torch.compile": {"compiled": True},
}

print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} steps × {args.repeat}")
for recipe, batch, optimizer in (("lab (Adam, batch 128)", 128, "adam"), ("handout (Momentum, batch 32)", 32, "momentum")):
    base = None
    for name, kw in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        tick = time.perf_counter()
        model, step = make_step(batch, optimizer, **kw)
        if name == "torch.compile":
            step()
            first = time.perf_counter() - tick
        ms = time_steps(step)
        base = ms if name == "baseline" else base
        extra = f"  (first step incl. compile {first:.1f} s)" if name == "torch.compile" else ""
        vs = f"  {base / ms:.2f}× baseline" if base and name != "baseline" else ""
        print(f"{recipe:30s} {name:22s} {ms:7.3f} ms/step  {ms * (55000 / batch) / 1000:5.2f} s/epoch{vs}{extra}",
              flush=True)

if args.profile:
    from torch.profiler import ProfilerActivity, profile
    for batch, optimizer in ((128, "adam"), (32, "momentum")):
        _, step = make_step(batch, optimizer)
        for _ in range(30):
            step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(200):
                step()
        print(f"\n== torch.profiler, 200 steps, batch {batch}, {optimizer} ==")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18))

model = LeNet5().eval()
print("\nevaluation of 10,000 test digits:")
with torch.no_grad():
    for batch in (256, 1024, 4096, 10000):
        times = []
        for _ in range(args.repeat):
            tick = time.perf_counter()
            for i in range(0, len(x_test), batch):
                model(x_test[i:i + batch])
            times.append(time.perf_counter() - tick)
        print(f"  batch {batch:5d}: {statistics.median(times) * 1000:6.1f} ms")
