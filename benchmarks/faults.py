"""Fault campaign: hurt `mllabs run` the ways a machine does, then check that nothing was lost.

    PYTHONPATH=src python benchmarks/faults.py [--out DIR] [--seed N]

Each fault runs real `mllabs` processes into a runs folder that already holds earlier runs:
concurrent runs into one folder; kill -9 during an epoch, during a checkpoint write (its bytes
written, not yet renamed into place) and during report rendering, each followed by `--resume`
or `mllabs report` + `runs reindex`; a full disk (a 2 MB tmpfs, root only); a read-only runs
folder (chmod when not root, a tmpfs remounted read-only when root). After each, every run
directory, runs/mllabs.db and every report are audited: no run lost, every JSON file whole,
every completed run with its report, the database whole and in step with the directories.
Prints one row per fault; exit status 1 when any fault was not survived.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

SMALL = ["--profile", "quick", "--set", "epochs=3", "--quiet"]  # boston-housing: seconds
EPOCHS = ["mnist-lenet", "--profile", "quick", "--set", "epochs=3", "--set", "train_size=1500",
          "--set", "val_size=500"]

# `mllabs` with os.replace slowed for one file name: the fault kills the process while that
# file's bytes sit in their temporary file, before the rename that puts them in place
SLOW_WRITE = r"""
import fnmatch, os, sys, time
real = os.replace
def replace(src, dst, *args, **kwargs):
    if fnmatch.fnmatch(os.path.basename(str(dst)), os.environ["FAULT_PATTERN"]):
        with open(os.environ["FAULT_MARK"], "w") as fh:
            fh.write(str(dst))
        time.sleep(60)
    return real(src, dst, *args, **kwargs)
os.replace = replace
from mllabs.cli import main
sys.exit(main(sys.argv[1:]))
"""


def mllabs(*args, out: Path, wait: bool = True, env: dict | None = None, slow: str | None = None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    cmd = [sys.executable, "-c", SLOW_WRITE] if slow else [sys.executable, "-m", "mllabs"]
    if slow:
        env["FAULT_PATTERN"] = slow
    proc = subprocess.Popen([*cmd, *map(str, args), "--out", str(out)] if args[0] == "run" or
                            args[0] == "runs" else [*cmd, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if not wait:
        return proc
    out_text, err = proc.communicate(timeout=900)
    return proc.returncode, out_text, err


def audit(root: Path, before: set[str]) -> list[str]:
    """What is wrong with a runs folder: lost runs, damaged files, a database out of step."""
    problems = []
    found = {}
    for run in sorted(p for p in root.glob("*/*") if p.is_dir() and p.parent.name != "sweeps"):
        try:
            config = json.loads((run / "config.json").read_text())
            assert isinstance(config, dict)
        except Exception as exc:  # noqa: BLE001 - any way of being unreadable is a finding
            problems.append(f"{run.name}: config.json unreadable ({exc})")
            continue
        status = "running"
        if (run / "metrics.json").exists():
            try:
                status = json.loads((run / "metrics.json").read_text())["status"]
            except Exception as exc:  # noqa: BLE001
                problems.append(f"{run.name}: metrics.json damaged ({exc})")
        if status == "completed":
            html = run / "report.html"
            if not html.exists() or not html.read_text(errors="replace").rstrip().endswith("</html>"):
                problems.append(f"{run.name}: completed without a whole report.html")
        found[run.name] = status
    problems += [f"{rid}: run directory lost" for rid in before - found.keys()]
    db = root / "mllabs.db"
    if db.exists():
        with closing(sqlite3.connect(db)) as conn:
            check = conn.execute("PRAGMA integrity_check").fetchone()[0]
            rows = dict(conn.execute("SELECT id, status FROM runs"))
        if check != "ok":
            problems.append(f"mllabs.db: integrity_check says {check}")
        for rid, status in found.items():
            if rows.get(rid) != status:
                problems.append(f"{rid}: database says {rows.get(rid)}, the directory {status}")
        problems += [f"{rid}: row without a directory" for rid in rows.keys() - found.keys()]
    elif found:
        problems.append("mllabs.db missing")
    return problems


def runs_in(root: Path) -> set[str]:
    return {p.name for p in root.glob("*/*") if p.is_dir() and p.parent.name != "sweeps"}


def new_run(root: Path, before: set[str]) -> Path:
    (name,) = runs_in(root) - before
    return next(root.glob(f"*/{name}"))


# ---------------------------------------------------------------------------- the faults

def concurrent(root: Path, rng: random.Random) -> tuple[str, str]:
    procs = [mllabs("run", "boston-housing", *SMALL, "--seed", str(k), out=root, wait=False)
             for k in range(4)]
    codes = [p.wait(timeout=900) for p in procs]
    done = sum(c == 0 for c in codes)
    return "4 runs started at once into one folder", f"{done}/4 completed, no recovery needed"


def kill_in_epoch(root: Path, rng: random.Random) -> tuple[str, str]:
    before = runs_in(root)
    proc = mllabs("run", *EPOCHS, out=root, wait=False)
    for line in proc.stderr:
        if "epoch 1/3" in line:
            break
    time.sleep(rng.uniform(0.0, 1.5))  # somewhere inside epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = new_run(root, before)
    code, out, err = mllabs("run", "mnist-lenet", "--resume", run, "--quiet", out=root)
    return "kill -9 during epoch 2 of 3", f"--resume: exit {code}" + (f" ({err.strip()[-200:]})" if code else "")


def kill_in_write(pattern: str, what: str, recover: str):
    def fault(root: Path, rng: random.Random) -> tuple[str, str]:
        before = runs_in(root)
        mark = Path(tempfile.mkdtemp()) / "mark"
        proc = mllabs("run", *EPOCHS, "--quiet", out=root, wait=False, slow=pattern,
                      env={"FAULT_MARK": str(mark)})
        deadline = time.time() + 600
        while not mark.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        target = mark.read_text() if mark.exists() else "(never written)"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        run = new_run(root, before)
        status = json.loads((run / "metrics.json").read_text())["status"] if (run / "metrics.json").exists() else None
        if recover == "resume" and status != "completed":
            code, _, err = mllabs("run", "mnist-lenet", "--resume", run, "--quiet", out=root)
            done = f"--resume: exit {code}"
        else:  # metrics.json was written: re-render the report, then refresh the database
            code, _, err = mllabs("report", run, out=root)
            code2, _, err2 = mllabs("runs", "reindex", out=root)
            code, err, done = code or code2, err + err2, f"`report` + `runs reindex`: exit {code or code2}"
        return f"kill -9 {what} ({Path(target).name})", done + (f" ({err.strip()[-200:]})" if code else "")
    return fault


def mount_tmpfs(where: Path, options: str = "size=2m") -> bool:
    return os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True).returncode == 0


def unmount(where: Path) -> None:
    if subprocess.run(["umount", str(where)], capture_output=True).returncode:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def on_tmpfs(body):
    """`body(disk, runs)` on a fresh 2 MB tmpfs whose runs folder already holds one earlier run;
    returns body's (what, outcome) and the audit of that folder, or None when no tmpfs can be
    mounted (not root)."""
    disk = Path(tempfile.mkdtemp(prefix="mllabs-fault-"))
    if not mount_tmpfs(disk):
        return None
    try:
        runs = disk / "runs"
        code, _, err = mllabs("run", "boston-housing", *SMALL, out=runs)
        assert code == 0, err
        before = runs_in(runs)
        what, outcome = body(disk, runs)
        return what, outcome, audit(runs, before)
    finally:
        unmount(disk)
        shutil.rmtree(disk, ignore_errors=True)


def one_line(code: int, err: str) -> str:
    lines = err.strip().splitlines()
    return f"exit {code}, {len(lines)} line(s): {lines[-1][:240] if lines else ''}"


def full_disk(root: Path, rng: random.Random):
    def body(disk: Path, runs: Path):
        filler = disk / "filler"
        filler.write_bytes(b"\0" * max(0, shutil.disk_usage(disk).free - 120_000))
        code, _, err = mllabs("run", "boston-housing", *SMALL, out=runs)
        filler.unlink()  # SQLite needs some room even to open a WAL database
        mllabs("runs", "reindex", out=runs)  # the full disk may have kept the row at running
        return "a full disk (2 MB tmpfs, 120 kB left)", one_line(code, err) + "; then `runs reindex`"
    return on_tmpfs(body) or ("a full disk", "skipped: mounting a tmpfs needs root", [])


def read_only(root: Path, rng: random.Random):
    if os.geteuid() != 0:
        os.chmod(root, 0o555)
        try:
            code, _, err = mllabs("run", "boston-housing", *SMALL, out=root)
        finally:
            os.chmod(root, 0o755)
        return "a read-only runs folder (chmod 555)", one_line(code, err), None

    def body(disk: Path, runs: Path):
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        code, _, err = mllabs("run", "boston-housing", *SMALL, out=runs)
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
        return "a read-only runs folder (tmpfs remounted ro: root ignores chmod)", one_line(code, err)
    return on_tmpfs(body) or ("a read-only runs folder", "skipped: needs a tmpfs as root", [])


FAULTS = [
    concurrent,
    kill_in_epoch,
    kill_in_write("fit-*.pt", "during a checkpoint write", "resume"),
    kill_in_write("report.html", "during report rendering", "report"),
    full_disk,
    read_only,
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="runs folder to use (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0, help="where the random kills land")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    root = args.out or Path(tempfile.mkdtemp(prefix="mllabs-faults-")) / "runs"
    print(f"runs folder: {root}", file=sys.stderr)
    code, _, err = mllabs("run", "boston-housing", *SMALL, out=root)  # an earlier run to keep
    assert code == 0, err
    rows, failed = [], 0
    for fault in FAULTS:
        before = runs_in(root)
        tick = time.perf_counter()
        what, outcome, *own = fault(root, rng)
        # a fault on its own tmpfs audits that folder itself
        problems = own[0] if own and own[0] is not None else audit(root, before)
        failed += bool(problems)
        verdict = "skipped" if outcome.startswith("skipped") else ("survived" if not problems else
                                                                   "NOT SURVIVED: " + "; ".join(problems[:3]))
        rows.append((what, outcome, verdict, f"{time.perf_counter() - tick:.0f}"))
        print(f"  {what}: {verdict}", file=sys.stderr, flush=True)
    print(f"\n{len(runs_in(root))} run directories in {root} after every fault, all audited\n")
    print("| fault | what happened, and the recovery | audit | s |\n| --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(r.replace("|", "/") for r in row) + " |")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
