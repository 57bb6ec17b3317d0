"""Every lab's quick profile at a fixed seed, its metrics written to one JSON file.

A refactor that must not change behaviour runs this before and after and diffs the two files:
    python benchmarks/quick_metrics.py before.json
    ... change the code ...
    python benchmarks/quick_metrics.py after.json --compare before.json
On a CPU the metrics must be bit-identical (the same seed, the same operations in the same
order); wall-clock timings (keys with "seconds") are left out of the comparison. eye-screening runs on a small generated two-class photo folder (its real data is the
user's own)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

LABS = ["auto-mpg", "mnist-lenet", "mnist-cnn", "mnist-optimizers", "mnist-best", "bike-sharing",
        "car-clustering", "boston-housing", "flowers", "activations", "regularization",
        "eye-screening"]


def fundus_folder(root: Path) -> Path:
    """Two classes of 24 generated 64 px photos: bright discs and dark discs."""
    rng = np.random.default_rng(0)
    for label, level in (("normal", 200), ("pathologic", 90)):
        (root / label).mkdir(parents=True)
        for i in range(24):
            img = rng.integers(0, 60, (64, 64, 3), dtype=np.uint8)
            yy, xx = np.mgrid[:64, :64]
            disc = (yy - 32 - rng.integers(-6, 7)) ** 2 + (xx - 32 - rng.integers(-6, 7)) ** 2 < 400
            img[disc] = level + rng.integers(0, 40)
            Image.fromarray(img).save(root / label / f"{i:02d}.png")
    return root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--compare", type=Path, help="an earlier output to compare against")
    parser.add_argument("--only", nargs="*", default=LABS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        eye = fundus_folder(Path(tmp) / "eye")
        for lab in args.only:
            cmd = [sys.executable, "-m", "mllabs", "run", lab, "--profile", "quick", "--seed",
                   str(args.seed), "--device", "cpu", "--json", "--out", str(Path(tmp) / "runs")]
            if lab == "eye-screening":
                cmd += ["--data-dir", str(eye)]
            tick = time.time()
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{lab}: exit {done.returncode}\n{done.stderr[-2000:]}", file=sys.stderr)
                return 1
            out = json.loads(done.stdout)
            results[lab] = {"status": out["status"], "metrics": out["metrics"]}
            print(f"{lab}: {out['status']}, {len(out['metrics'])} metrics, "
                  f"{time.time() - tick:.1f} s", file=sys.stderr, flush=True)
    args.output.write_text(json.dumps(results, indent=1, sort_keys=True))
    if args.compare is None:
        return 0
    before = json.loads(args.compare.read_text())
    differ = 0
    for lab, now in results.items():
        was = before.get(lab)
        if was is None:
            print(f"{lab}: not in {args.compare}")
            continue
        changed = sorted(k for k in set(was["metrics"]) | set(now["metrics"])
                         if "seconds" not in k and was["metrics"].get(k) != now["metrics"].get(k))
        same = was["status"] == now["status"] and not changed
        differ += not same
        print(f"{lab:18s} {len(now['metrics']):4d} metrics  "
              + ("bit-identical" if same else f"DIFFER: {', '.join(changed[:6])}"))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
