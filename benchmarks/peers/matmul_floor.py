"""The compute floor of a LeNet-5 epoch on this machine: how long its multiply-adds would take
if every one ran at the speed of a large float32 matrix multiplication.

Runs with the project's venv. Throughput: a 2048×2048 float32 matmul with the benchmark's thread
count, repeated after a warm-up; the best of several timings (the machine's capability, not its
noise) and their median are both reported, as multiply-adds per second. LeNet-5's multiply-adds
per digit come from mllabs.models.count_macs (convolutions and dense layers, as `mllabs summary
mnist-lenet` lists them); one training step costs about 3× the forward pass (forward, then the
gradients with respect to the inputs and to the weights, each as large as the forward), so

    floor seconds per epoch = 3 × MACs per digit × digits per epoch ÷ MACs per second.

It is a floor, not an estimate: LeNet's layers are small (6 and 16 channels, 5×5 kernels) and
reach a fraction of a big matmul's speed, and pooling, activations, the loss and the optimizer
step are not counted.
"""

from __future__ import annotations

import statistics
import time

import _common as common

args = common.arguments(__doc__, size={"type": int, "default": 2048})
threads = common.set_threads(args.threads)

import torch

import mllabs
from mllabs.models import count_macs
from mllabs.models.lenet import LeNet5

torch.set_num_threads(threads)
torch.set_num_interop_threads(1)

n = 512 if args.smoke else args.size
a, b = torch.randn(n, n), torch.randn(n, n)
for _ in range(3):
    a @ b
per_call = []
for _ in range(5 if args.smoke else 20):
    tick = time.perf_counter()
    a @ b
    per_call.append(time.perf_counter() - tick)
macs_per_call = n ** 3
best = macs_per_call / min(per_call)
median = macs_per_call / statistics.median(per_call)

forward = count_macs(LeNet5(), (1, 32, 32))
floors = {}
for name, digits in (("60000", 60000), ("55000", 55000)):
    floors[name] = 3 * forward * digits / best
common.emit({
    "benchmark": "floor", "framework": "torch", "variant": f"float32 matmul {n}×{n}",
    "threads": threads, "versions": {"torch": torch.__version__, "mllabs": mllabs.__version__},
    "matmul_size": n, "macs_per_second_best": best, "macs_per_second_median": median,
    "gflops_best": 2 * best / 1e9, "lenet_forward_macs": forward, "train_factor": 3,
    "floor_seconds_per_epoch": floors,
})
