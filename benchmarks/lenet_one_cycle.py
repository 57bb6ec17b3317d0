"""LeNet-5 schedules for time to 99 %: at which epoch does each seed first reach 99.0 % test accuracy?

    MLLABS_DATA=../shared/data .venv/bin/python benchmarks/lenet_one_cycle.py [--seeds 0-11]
        [--set schedule=onecycle --set epochs=3 --set lr=0.005 ...]

Trains the mnist-lenet lab's network on its 55,000 training digits with the lab's default config
changed by the --set values (by default the one-cycle recipe of the LeNet benchmark), evaluates
the 10,000 test digits after every epoch, and prints a Markdown table: test accuracy per epoch,
the first epoch at 99.0 % and the seconds to it, per seed. This is how the benchmark's one-cycle
row was chosen (benchmarks/mnist.md); it is not part of benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import torch

import mllabs.train as mtrain
from mllabs.config import parse_sets
from mllabs.data import mnist
from mllabs.labs import _mnist, mnist_lenet

RECIPE = ["schedule=onecycle", "epochs=3", "lr=0.005"]


def seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        out += list(range(int(low), int(high or low) + 1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-11", help="e.g. 0-11 or 0,3,5")
    parser.add_argument("--set", dest="sets", action="append", metavar="KEY=VALUE",
                        help=f"config changes (default: {' '.join(RECIPE)})")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = mnist.load(None)
    changes = parse_sets(mnist_lenet.Config, args.sets or RECIPE)
    print(f"mnist-lenet with {json.dumps(changes)}; torch {torch.__version__}, {args.threads} threads\n")
    rows = []
    for seed in seeds(args.seeds):
        cfg = dataclasses.replace(mnist_lenet.Config(seed=seed), **changes)
        train_idx, _ = _mnist.split_validation(data, cfg.val_size, cfg.seed)
        x_train = mnist.normalise(data.train_x[train_idx], pad_to=32)
        y_train = torch.from_numpy(data.train_y[train_idx].astype(np.int64))
        x_test = mnist.normalise(data.test_x, pad_to=32)
        y_test = torch.from_numpy(data.test_y.astype(np.int64))
        torch.manual_seed(seed)
        model = mnist_lenet.build(cfg)
        tick = time.perf_counter()
        result = mtrain.fit(model, (x_train, y_train), cfg, loss_fn=mtrain.cross_entropy,
                            metrics={"accuracy": mtrain.accuracy}, also={"test": (x_test, y_test)},
                            restore_best=False, progress=False)
        total = time.perf_counter() - tick
        accs = [r["test_accuracy"] for r in result.history]
        elapsed = np.cumsum([r["seconds"] for r in result.history])
        first = next((k for k, a in enumerate(accs) if a >= 0.99), None)
        rows.append((seed, accs, first, None if first is None else elapsed[first], total))
        print(f"seed {seed}: " + " ".join(f"{a:.4f}" for a in accs), flush=True)
    print("\n| seed | test accuracy per epoch | first epoch at 99.0 % | seconds to it | run seconds |")
    print("| --- | --- | --- | --- | --- |")
    for seed, accs, first, to_target, total in rows:
        print(f"| {seed} | {' / '.join(f'{a:.4f}' for a in accs)} | {'–' if first is None else first + 1} | "
              f"{'–' if to_target is None else f'{to_target:.1f}'} | {total:.1f} |")
    reached = [r for r in rows if r[2] is not None]
    last = [r[1][-1] for r in rows]
    print(f"\nreached 99.0 %: {len(reached)}/{len(rows)} seeds; final accuracy {min(last):.4f}–{max(last):.4f} "
          f"(mean {np.mean(last):.4f})")


if __name__ == "__main__":
    main()
