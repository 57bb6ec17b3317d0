"""Execution time of the notebooks in notebooks/, top to bottom, on one profile.

    python benchmarks/notebook_times.py --profile quick            # every notebook
    python benchmarks/notebook_times.py --profile default boston-housing auto-mpg

Every notebook runs in one kernel (started once, as tests/test_notebooks.py does), with
MLLABS_PROFILE set and --threads OpenMP threads; eye-screening gets a generated two-class photo
folder as DATA_DIR. Prints a Markdown table: wall seconds and the kernel's CPU seconds (user +
system, all its threads) per notebook, and the `seconds` of the two runs each one makes (its
training step and its "your turn" cell). Needs mllabs[notebook]."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
MARK = "MLLABS-TIMES "
# the kernel's CPU time so far, and the two runs the notebook made
PROBE = ("import json, os, resource\n"
         "_u = resource.getrusage(resource.RUSAGE_SELF)\n"
         f"print({MARK!r} + json.dumps({{'cpu': _u.ru_utime + _u.ru_stime, "
         "'train': str(result.run_dir) if 'result' in globals() else None, "
         "'yours': str(yours.run_dir) if 'yours' in globals() else None}))\n"
         "for _name in ('result', 'yours'):\n    globals().pop(_name, None)  # the kernel is shared")


def run_seconds(folder: Path, run_dir: str | None) -> str:
    if not run_dir:
        return "–"
    return f"{json.loads((folder / run_dir / 'metrics.json').read_text())['seconds']:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labs", nargs="*", help="notebooks to execute (default: all)")
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--threads", default="1", help="OMP_NUM_THREADS of the kernel (default 1)")
    args = ap.parse_args()
    paths = sorted((ROOT / "notebooks").glob("*.ipynb"))
    if args.labs:
        paths = [p for p in paths if p.stem in args.labs]
    folder = Path(tempfile.mkdtemp(prefix="notebook-times-"))
    env = {**os.environ, "MLLABS_PROFILE": args.profile, "OMP_NUM_THREADS": args.threads,
           "MKL_NUM_THREADS": args.threads,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    for name in ("MLLABS_DATA", "MLLABS_CACHE"):
        if env.get(name):
            env[name] = str(Path(env[name]).resolve())
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(folder), env=env)
    rows, cpu_before = [], 0.0
    try:
        for path in paths:
            nb = nbformat.read(path, 4)
            if path.stem == "eye-screening":
                sys.path.insert(0, str(ROOT / "benchmarks"))
                from quick_metrics import fundus_folder

                at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
                photos = fundus_folder(folder / "eyes")
                nb.cells.insert(at + 1, nbformat.v4.new_code_cell(f"DATA_DIR = {str(photos)!r}"))
            nb.cells.append(nbformat.v4.new_code_cell(PROBE))
            tick = time.perf_counter()
            NotebookClient(nb, km=km, timeout=3600, allow_errors=False).execute()
            wall = time.perf_counter() - tick
            out = "".join(o.get("text", "") for o in nb.cells[-1].get("outputs", []))
            got = json.loads(out[out.index(MARK) + len(MARK):].splitlines()[0])
            rows.append((path.stem, wall, got["cpu"] - cpu_before, run_seconds(folder, got["train"]),
                         run_seconds(folder, got["yours"])))
            cpu_before = got["cpu"]
            print(f"{path.stem}: {wall:.1f} s", file=sys.stderr, flush=True)
    finally:
        km.shutdown_kernel(now=True)
    print(f"| notebook ({args.profile}) | wall, s | kernel CPU, s | training step run, s | \"your turn\" run, s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, wall, cpu, train, yours in rows:
        print(f"| {name} | {wall:.1f} | {cpu:.1f} | {train} | {yours} |")
    print(f"| **all** | **{sum(r[1] for r in rows):.0f}** | **{sum(r[2] for r in rows):.0f}** | | |")


if __name__ == "__main__":
    main()
