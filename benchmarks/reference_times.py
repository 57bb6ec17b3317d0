"""Time labs' runs on this machine and record them as the reference `mllabs run` scales from.

    python benchmarks/reference_times.py auto-mpg mnist-lenet          # run each, time it, record
    python benchmarks/reference_times.py --from-run runs/flowers/2026…  # record a run timed already
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 python …  # AVX2 class

Each lab runs as a new user's first run would (`mllabs run LAB --profile P`, an empty
MLLABS_CACHE), with estimate.calibrate() just before and just after it. A calibration of a second
or two swings by up to a fifth on a shared VM, more than the machine drifts in an hour, so the
table's calibration, the one estimates scale by, is the median of every calibration sample taken
while its labs were timed. `--recalibrate N` replaces the samples with N new ones (after
calibrate()'s workload changed). src/mllabs/reference_times.json keeps the other labs' entries:
labs can be timed in separate sittings, on the one machine. Run it on a quiet machine."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from mllabs import estimate, hardware  # noqa: E402

TABLE = ROOT / "src" / "mllabs" / "reference_times.json"
# what dominates each lab's time: convolutions, or dense layers and table arithmetic
CONV = {"flowers", "mnist-lenet", "mnist-cnn", "mnist-best", "activations", "eye-screening"}


def commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()


def timed_run(lab: str, profile: str) -> float:
    """The lab's own `seconds` from a fresh run in a temporary folder with an empty cache."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MLLABS_CACHE": str(Path(tmp) / "cache")}
        out = subprocess.run([sys.executable, "-m", "mllabs", "run", lab, "--profile", profile,
                              "--out", str(Path(tmp) / "runs"), "--json", "--quiet"],
                             env=env, capture_output=True, text=True, check=True).stdout
        result = json.loads(out)
    if result["status"] != "completed":
        raise SystemExit(f"{lab} ended {result['status']}; nothing recorded")
    return result["seconds"]


def record(table: dict, lab: str, profile: str, seconds: float, samples: list[dict]) -> None:
    kind = "conv" if lab in CONV else "dense"
    table["labs"].setdefault(lab, {})[profile] = {
        "seconds": round(seconds, 1), "kind": kind,
        "measured": datetime.date.today().isoformat(), "commit": commit()}
    add_samples(table, samples)
    print(f"{lab} {profile}: {seconds:.1f} s; calibration before and after: "
          + ", ".join(f"{k} {samples[0][k]:.2f} → {samples[-1][k]:.2f}" for k in estimate.KINDS)
          + " steps/s", flush=True)


def add_samples(table: dict, samples: list[dict]) -> None:
    held = table.setdefault("calibration_samples", {k: [] for k in estimate.KINDS})
    for sample in samples:
        for k in estimate.KINDS:
            held[k].append(round(sample[k], 2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labs", nargs="*", help="labs to run and time")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--from-run", type=Path, action="append", default=[],
                    help="record this finished run's seconds instead of running its lab")
    ap.add_argument("--machine", help="how the table names the machine (kept if not given)")
    ap.add_argument("--recalibrate", type=int, default=0, metavar="N",
                    help="replace the table's calibration samples with N new ones")
    args = ap.parse_args()
    table = json.loads(TABLE.read_text()) if TABLE.exists() else {"labs": {}}
    features = hardware.cpu_features()
    this = {"flags": sorted(hardware.cpu_flags() & set(hardware.WATCHED)),
            "capability": features["capability"], "native_bf16": features["native_bf16"],
            "cpu": hardware.cpu_name(), "threads": hardware.torch.get_num_threads()}
    if table.get("labs") and {k: table.get(k) for k in this} != this:
        raise SystemExit(f"this machine ({this}) is not the table's; time every lab on one machine")
    table |= this
    if args.machine:
        table["machine"] = args.machine
    if args.recalibrate:
        table["calibration_samples"] = {k: [] for k in estimate.KINDS}
        add_samples(table, [estimate.calibrate() for _ in range(args.recalibrate)])
        save(table)
    for run_dir in args.from_run:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        config = json.loads((run_dir / "config.json").read_text())
        samples = [estimate.calibrate(), estimate.calibrate()]
        record(table, metrics["lab"], config.get("profile", args.profile), metrics["seconds"], samples)
        save(table)
    for lab in args.labs:
        before = estimate.calibrate()
        seconds = timed_run(lab, args.profile)
        record(table, lab, args.profile, seconds, [before, estimate.calibrate()])
        save(table)  # after each lab: an hour's sitting interrupted keeps what it measured


def save(table: dict) -> None:
    """The table with its calibration: for each kind, the median of its samples."""
    table["calibration"] = {k: round(statistics.median(v), 2)
                            for k, v in table["calibration_samples"].items() if v}
    TABLE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
