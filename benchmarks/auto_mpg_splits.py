"""Auto MPG over several splits: is the default profile's result the split's luck?

    python benchmarks/auto_mpg_splits.py [--seeds 0,1,2,3,4] [--out /tmp/mllabs-bench]

Runs `mllabs run auto-mpg --seed S` (default profile) for each seed. The seed picks the 80/20
split (seed 0 is the handout's split) and the five network seeds S..S+4. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--out", default="/tmp/mllabs-bench")
    args = parser.parse_args()
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        out = subprocess.run([sys.executable, "-m", "mllabs", "run", "auto-mpg", "--seed", str(seed),
                              "--out", args.out, "--json"], capture_output=True, text=True, check=True)
        result = json.loads(out.stdout)
        rows.append((seed, result["seconds"], result["metrics"]))
    print(f"auto-mpg default profile, {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)\n")
    print("| seed (split) | test MAE, network (mean ± std, 5 seeds) | test MAE, least squares | reduction | wall s |")
    print("| --- | --- | --- | --- | --- |")
    for seed, seconds, m in rows:
        print(f"| {seed}{' (handout)' if seed == 0 else ''} | {m['test_mae']:.3f} ± {m['test_mae_std']:.3f} | "
              f"{m['linear.test_mae']:.3f} | {100 * m['mae_reduction_vs_linear']:.1f} % | {seconds:.1f} |")
    mean = lambda key: sum(m[key] for _, _, m in rows) / len(rows)  # noqa: E731
    print(f"| mean | {mean('test_mae'):.3f} | {mean('linear.test_mae'):.3f} | "
          f"{100 * mean('mae_reduction_vs_linear'):.1f} % | {sum(r[1] for r in rows) / len(rows):.1f} |")


if __name__ == "__main__":
    main()
