"""The flowers depth study (labs/_depth.py) on the full photos, outside the flowers lab, through a
real RunContext: a run directory with the study's report, metrics.json and depth_history.csv.

    PYTHONPATH=src MLLABS_DATA=../shared/data python benchmarks/depth_study.py \
        --set study_image_size=48 --set study_epochs=6 --set study_seeds=2 [--out runs]

Any StudyConfig key can be --set (flowers' budget: AdamW 2e-3, cosine, label smoothing 0.1,
augmentation, batch 32; the split is the lab's, seed 0). Once `flowers` offers `study=depth`,
`mllabs run flowers --set study=depth ...` does the same inside the lab.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path

import torch

from mllabs import data as datasets
from mllabs.config import build_config, config_to_dict
from mllabs.labs import _depth
from mllabs.report import Report, render_run
from mllabs.runner import RunContext
from mllabs.runs import Run, environment
from mllabs.session import Session
from mllabs.train import resolve_device, resolve_precision, seed_everything


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=Path("runs"))
    parser.add_argument("--seeds", help="train only these seeds, e.g. 1 (the split stays seed's); "
                        "with --save, to run seeds in parallel processes and --merge them")
    parser.add_argument("--resume", type=Path, help="a run directory of this script: arms it "
                        "finished are restored from checkpoints/state, the rest trained")
    parser.add_argument("--save", type=Path, help="also pickle the per-seed results here")
    parser.add_argument("--merge", type=Path, nargs="+", help="report the pickled results of "
                        "several --save runs as one study (no training)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    cfg = build_config(_depth.StudyConfig, {"default": {"study": "depth"}}, "default", args.set)
    device = resolve_device(cfg.device)
    root = datasets.dataset_dir("flowers", None) / "flower_photos"
    photos = _depth.prepare(cfg, root)
    command = "python benchmarks/depth_study.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.resume:
        run = Run.open(args.resume)
    else:
        run = Run.create(args.out, "flowers-depth")
        run.write_json("config.json", {"lab": "flowers-depth", **config_to_dict(cfg)})
        run.write_json("env.json", environment(cfg.seed, str(device), command))
    seed_everything(cfg.seed)
    ctx = RunContext(run, Report(run, "Flowers: the depth study", "ResNet-18/34 against their "
                                 "plain twins, everything else equal."), device, True,
                     resolve_precision(cfg.precision, device),
                     Session(state_dir=run.checkpoints / "state", root=run.path))
    ctx.log(f"{len(photos.labels):,} photos at {cfg.study_image_size} px ({photos.cache['cache']}), "
            f"{len(photos.split['train']):,} training, {len(photos.split['test']):,} test; "
            f"{torch.get_num_threads()} threads, device {device}, "
            f"{'bfloat16' if ctx.autocast else 'float32'}")
    if args.merge:
        runs: dict[str, list[dict]] = {}
        for file in args.merge:
            with open(file, "rb") as fh:
                for name, rs in pickle.load(fh).items():
                    runs.setdefault(name, []).extend(rs)
        runs = {name: sorted(rs, key=lambda r: r["seed"]) for name, rs in runs.items()}
    else:
        seeds = ([int(s) for s in args.seeds.split(",")] if args.seeds
                 else [cfg.seed + k for k in range(cfg.study_seeds)])
        runs = _depth.train_arms(cfg, photos, ctx, seeds)
        if args.save:
            with open(args.save, "wb") as fh:
                pickle.dump(runs, fh)
    metrics = _depth.report(cfg, runs, ctx, len(photos.split["train"]))
    metrics["depth.wall_seconds"] = time.perf_counter() - started
    ctx.report.save(command)
    run.write_metrics("completed", metrics)
    render_run(run.path)
    print(run.path)
    for key, value in metrics.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
