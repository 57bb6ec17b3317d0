"""How well does predict read digits that are not MNIST? Font-rendered digits, dark on light.

    python benchmarks/mnist_rendered_digits.py RUN_DIR [--seeds 7,11,23] [--per-digit 6]

Draws `per-digit` images of each digit for every seed with tests/digit_images.py (sizes,
positions, inks, papers and file formats vary with the seed), runs `mllabs predict RUN_DIR`
on them and prints how many came back right, per seed and per digit. Seed 7 is the set the
tests use; other seeds are images the tests never saw.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from digit_images import render_digits  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--seeds", default="7,11,23")
    parser.add_argument("--per-digit", type=int, default=6)
    args = parser.parse_args()
    wrong_by_digit: Counter = Counter()
    total_right = total = 0
    print("| image seed | correct |\n| --- | --- |")
    for seed in [int(s) for s in args.seeds.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            made = render_digits(Path(tmp), per_digit=args.per_digit, seed=seed)
            out = subprocess.run([sys.executable, "-m", "mllabs", "predict", str(args.run_dir),
                                  *[str(p) for p, _ in made], "--json"],
                                 capture_output=True, text=True, check=True)
        answers = json.loads(out.stdout)
        right = 0
        for (_, digit), answer in zip(made, answers, strict=True):
            if str(answer["prediction"]) == str(digit):
                right += 1
            else:
                wrong_by_digit[digit] += 1
        total_right, total = total_right + right, total + len(made)
        print(f"| {seed} | {right}/{len(made)} ({100 * right / len(made):.0f} %) |")
    print(f"| all | {total_right}/{total} ({100 * total_right / total:.0f} %) |")
    print("\nmisread, by true digit:", dict(sorted(wrong_by_digit.items())) or "none")


if __name__ == "__main__":
    main()
