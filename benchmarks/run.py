#!/usr/bin/env python3
"""mllabs against its peers, measured in one run on one machine; writes benchmarks/results.md.

    python benchmarks/run.py                      # every benchmark, 3 repeats (1.5-2.5 hours)
    python benchmarks/run.py --only lenet --repeat 5
    python benchmarks/run.py --only race          # LeNet-5 vs the one-epoch recipe, both CPU classes (~20 min)
    python benchmarks/run.py --only suite         # every lab's default profile (35+ minutes)
    python benchmarks/run.py --smoke              # a few minutes: checks the plumbing only
    python benchmarks/run.py --held-to-avx2       # the same as an AVX2-only CPU: results-avx2.md

Benchmarks (one function each below):
  floor     this machine's float32 matmul throughput → LeNet-5's compute floor per epoch
  lenet     LeNet-5 on MNIST to 99.0 % test accuracy: mllabs (the lab's default, the lab with a
            3-epoch one-cycle schedule, and the handout's Momentum 0.01/0.9, batch 32) vs
            MindSpore, Keras and a PyTorch DataLoader loop
  auto-mpg  the TensorFlow regression tutorial's network: mllabs vs Keras, test MAE and time;
            and the auto-mpg lab's default profile as a user runs it
  flowers   the plain CNN, a fixed number of epochs: images per second, training and inference
  race      mllabs' fastest LeNet-5 to 99.0 % against the published one-epoch "99 % MNIST" recipe
            (tuomaso/train_mnist_fast, written from its description in peers/torch_mnist_fast.py),
            5 seeds each, on both CPU classes: as the machine is, and held to AVX2 (no AVX-512, no
            native bfloat16) when it has AVX-512; each side counts with its fewest epochs that reach
            99 % on at least 4 of 5 seeds; the matmul floor is measured in each class too
  suite     `mllabs run LAB` for every lab on its default profile, total wall time

Each measurement is its own subprocess with the same thread settings (--threads, default 2), and
prints one JSON line (see benchmarks/peers/_common.py). Repeats are interleaved: every variant
once, then every variant again. The peer frameworks (TensorFlow/Keras, MindSpore) live only in
benchmarks/peers/.venv (git-ignored), which this script creates on first use from
benchmarks/peers/requirements.txt; the mllabs side and the PyTorch peer run with the project's
own interpreter (.venv/bin/python). Only the standard library is imported here, so any Python 3
can run this file.

Results: benchmarks/results.md (tables, headline sentences) and beside it results.json (every
raw number). `--only NAME` replaces that benchmark's section and keeps the others. Each
subprocess's full output is kept in a temporary folder whose path is printed.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = HERE / "peers"
PEER_VENV = PEERS / ".venv"
REQUIREMENTS = PEERS / "requirements.txt"
RESULTS = HERE / "results.md"
RESULTS_AVX2 = HERE / "results-avx2.md"  # --held-to-avx2
OPTIMISATIONS = HERE / "optimisations.md"
THREADS = 2
BENCHMARKS = ("floor", "lenet", "race", "auto-mpg", "flowers", "suite")
# keeps PyTorch, oneDNN and MKL off AVX-512 and native bfloat16: a laptop's AVX2-only CPU, emulated
HELD_TO_AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


# ---------------------------------------------------------------------------- the peers' venv

def peer_python(log) -> tuple[Path | None, str]:
    """benchmarks/peers/.venv's python, created and filled from requirements.txt on first use
    (and again when requirements.txt changes). Returns (python, "") or (None, why not)."""
    python = PEER_VENV / "bin" / "python"
    stamp = PEER_VENV / "requirements.sha256"
    want = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == want:
        return python, ""
    base = shutil.which("python3.11") or shutil.which("python3") or sys.executable
    log(f"creating {PEER_VENV.relative_to(ROOT)} with {base} and installing {REQUIREMENTS.name} "
        "(a few GB, several minutes the first time)")
    if not python.exists():
        subprocess.run([base, "-m", "venv", str(PEER_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    subprocess.run(pip + ["--upgrade", "pip"], check=False)
    done = subprocess.run(pip + ["-r", str(REQUIREMENTS)], check=False)
    if done.returncode != 0:
        # install what can be installed, one by one, so one missing wheel costs one peer only
        failed = []
        for line in REQUIREMENTS.read_text().splitlines():
            req = line.split("#")[0].strip()
            if req and subprocess.run(pip + [req], check=False).returncode != 0:
                failed.append(req)
        return python, (f"pip could not install {', '.join(failed) or 'the peers together'} into "
                        f"{PEER_VENV.relative_to(ROOT)} (made with {base}) "
                        "(pip's output is in the runner's log); those peers are not measured")
    stamp.write_text(want + "\n")
    return python, ""



# ---------------------------------------------------------------------------- running one measurement

class Context:
    """The run's settings and where everything goes."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.smoke = args.smoke
        self.threads = args.threads
        self.repeat = args.repeat
        self.work = Path(tempfile.mkdtemp(prefix="mllabs-bench-"))
        self.logs = self.work / "logs"
        self.logs.mkdir()
        project = ROOT / ".venv" / "bin" / "python"
        self.python = project if project.exists() else Path(sys.executable)
        self.peer_python: Path | None = None
        self.peer_problem = ""
        self.count = 0
        self.stored: dict = {}  # results.json's benchmarks, for --keep-slow

    def log(self, message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)

    def env(self) -> dict:
        env = dict(os.environ)
        env.update({"BENCH_THREADS": str(self.threads), "OMP_NUM_THREADS": str(self.threads),
                    "MKL_NUM_THREADS": str(self.threads), "TF_NUM_INTRAOP_THREADS": str(self.threads),
                    "TF_NUM_INTEROP_THREADS": "1", "MLLABS_DATA": str(self.args.data),
                    "MLLABS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
        if self.args.held_to_avx2:
            env.update(HELD_TO_AVX2)
        return env

    def peers(self) -> Path | None:
        if self.args.no_peers:
            self.peer_problem = "not run (--no-peers)"
        if self.peer_python is None and not self.peer_problem:
            try:
                self.peer_python, self.peer_problem = peer_python(self.log)
            except (OSError, subprocess.CalledProcessError) as exc:
                self.peer_problem = f"could not create {PEER_VENV}: {exc}"
        return self.peer_python

    def measure(self, python: Path | None, script: str, *extra: str, timeout: float = 3600,
                env: dict | None = None) -> dict:
        """Run benchmarks/peers/<script> in its own process (with `env` added to the environment);
        its JSON line, or {"error": ...}."""
        self.count += 1
        label = f"{script} {' '.join(extra)}".strip()
        if python is None:
            return {"error": self.peer_problem or "no interpreter for this peer"}
        cmd = [str(python), str(PEERS / script), "--data", str(self.args.data), "--threads",
               str(self.threads), *(["--smoke"] if self.smoke else []), *extra]
        log = self.logs / f"{self.count:03d}-{script.removesuffix('.py')}.log"
        self.log(f"{label} ...")
        tick = time.perf_counter()
        try:
            done = subprocess.run(cmd, cwd=ROOT, env={**self.env(), **(env or {})}, capture_output=True,
                                  text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            log.write_text(f"$ {' '.join(cmd)}\n(timed out after {timeout:g} s)\n{exc.stderr or ''}")
            return {"error": f"timed out after {timeout:g} s", "log": str(log)}
        wall = time.perf_counter() - tick
        log.write_text(f"$ {' '.join([f'{k}={v}' for k, v in (env or {}).items()] + cmd)}\n"
                       f"(exit {done.returncode}, {wall:.1f} s)\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}")
        for line in done.stdout.splitlines():
            if line.startswith("BENCH-RESULT "):
                result = json.loads(line.removeprefix("BENCH-RESULT "))
                result["process_seconds"] = wall
                self.log(f"  done in {wall:.1f} s: {headline(result)}")
                return result
        tail = [l for l in done.stderr.strip().splitlines() if l.strip()][-3:]
        self.log(f"  FAILED (exit {done.returncode}): {' | '.join(tail)}")
        return {"error": f"exit {done.returncode}: {tail[-1] if tail else 'no output'}", "log": str(log)}

    def mllabs_run(self, lab: str, timeout: float = 3600) -> dict:
        """`mllabs run LAB` (default profile; quick with --smoke) as a user runs it, timed whole."""
        self.count += 1
        out = self.work / "runs"
        cmd = [str(self.python), "-m", "mllabs", "run", lab, "--quiet", "--json", "--out", str(out)]
        if self.smoke:
            cmd += ["--profile", "quick"]
        log = self.logs / f"{self.count:03d}-mllabs-run-{lab}.log"
        self.log(f"mllabs run {lab}{' --profile quick' if self.smoke else ''} ...")
        tick = time.perf_counter()
        try:
            done = subprocess.run(cmd, cwd=ROOT, env=self.env(), capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return {"lab": lab, "error": f"timed out after {timeout:g} s"}
        wall = time.perf_counter() - tick
        log.write_text(f"$ {' '.join(cmd)}\n(exit {done.returncode}, {wall:.1f} s)\n"
                       f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}")
        try:
            metrics = json.loads(done.stdout)
        except json.JSONDecodeError:
            tail = [l for l in done.stderr.strip().splitlines() if l.strip()][-1:]
            self.log(f"  FAILED (exit {done.returncode}): {' '.join(tail)}")
            return {"lab": lab, "error": f"exit {done.returncode}: {' '.join(tail) or 'no output'}",
                    "wall_seconds": wall, "log": str(log)}
        if metrics.get("run_dir"):
            shutil.rmtree(metrics["run_dir"], ignore_errors=True)  # checkpoints and figures: not needed
        self.log(f"  {metrics.get('status')} in {wall:.1f} s")
        return {"lab": lab, "wall_seconds": wall, "status": metrics.get("status"),
                "seconds": metrics.get("seconds"), "metrics": metrics.get("metrics", {})}


def headline(r: dict) -> str:
    if r.get("benchmark") == "lenet":
        return (f"{r['variant']}: final accuracy {r['final_accuracy']:.4f} after {r['epochs']} epochs, "
                + (f"99 % in {r['seconds_to_target']:.1f} s" if r["reached"] else "99 % not reached"))
    if r.get("benchmark") == "auto-mpg":
        return f"{r['variant']}: test MAE {r['test_mae']:.3f}, {r['seconds']:.2f} s"
    if r.get("benchmark") == "flowers":
        return (f"{r['variant']}: train {r['train_images_per_second']:.0f} img/s, "
                f"inference {r['inference_images_per_second']:.0f} img/s")
    if r.get("benchmark") == "floor":
        return f"{r['macs_per_second_best'] / 1e9:.1f} G multiply-adds/s"
    return ""


# ---------------------------------------------------------------------------- the benchmarks

def bench_floor(ctx: Context) -> dict:
    """float32 matmul throughput and LeNet-5's multiply-adds → the floor of an epoch."""
    return {"runs": [ctx.measure(ctx.python, "matmul_floor.py") for _ in range(ctx.repeat)]}


def lenet_variants(ctx: Context) -> list[tuple[str, Path | None, str, list[str]]]:
    peers = ctx.peers()
    return [("mllabs (lab recipe)", ctx.python, "mllabs_lenet.py", ["--recipe", "lab"]),
            ("mllabs (one-cycle recipe)", ctx.python, "mllabs_lenet.py", ["--recipe", "onecycle"]),
            ("mllabs (handout recipe)", ctx.python, "mllabs_lenet.py", ["--recipe", "handout"]),
            ("PyTorch (Dataset + DataLoader)", ctx.python, "torch_lenet.py", []),
            ("Keras 3 / TensorFlow", peers, "keras_lenet.py", []),
            ("MindSpore 2.x", peers, "mindspore_lenet.py", [])]


def bench_lenet(ctx: Context) -> dict:
    """LeNet-5 to 99.0 % MNIST test accuracy. The repeats are interleaved (every variant once,
    then again) so that a slow spell of the machine does not land on one framework; a variant
    whose first run took longer than --slow-after is not repeated."""
    runs: dict[str, list[dict]] = {}
    if ctx.args.keep_slow and not ctx.smoke:
        # a variant that took longer than --slow-after last time keeps its stored run (and its date)
        for name, stored in ctx.stored.get("lenet", {}).get("result", {}).get("variants", {}).items():
            if stored and stored[0].get("process_seconds", 0) > ctx.args.slow_after:
                # a run kept before keeps the date it was measured, not the date of the last section
                measured = stored[0].get("kept_from") or ctx.stored["lenet"].get("date")
                runs[name] = [dict(r, kept_from=measured) for r in stored]
                ctx.log(f"{name}: keeping the stored run of {measured} (--keep-slow)")
    budget = ["--max-seconds", str(ctx.args.lenet_budget), "--max-epochs", str(ctx.args.lenet_epochs)]
    if ctx.smoke:
        budget = []
    for k in range(ctx.repeat):
        for name, python, script, extra in lenet_variants(ctx):
            done = runs.setdefault(name, [])
            slow = done and not ctx.smoke and done[0].get("process_seconds", 0) > ctx.args.slow_after
            if done and (done[-1].get("error") or slow):
                continue  # a run of many minutes (MindSpore's half hour) is not repeated; a fast miss is
            done.append(ctx.measure(python, script, "--seed", str(k), *extra, *budget,
                                    timeout=ctx.args.lenet_budget * 1.5 + 600))
    return {"variants": runs, "budget_seconds": ctx.args.lenet_budget, "max_epochs": ctx.args.lenet_epochs,
            "slow_after": ctx.args.slow_after}


RACE_SEEDS = 5
RACE_MIN_REACHED = 4  # "reaches 99 %" = on at least 4 of the 5 seeds


# (side, name, script, epochs of the schedule, arguments): each side's schedules, shortest first
RACE_VARIANTS = [("recipe", "train_mnist_fast recipe, 1 epoch", "torch_mnist_fast.py", 1, ["--epochs", "1"]),
                 ("recipe", "train_mnist_fast recipe, 2 epochs", "torch_mnist_fast.py", 2, ["--epochs", "2"]),
                 ("mllabs", "mllabs LeNet-5, one-cycle over 2 epochs (batch 64)", "mllabs_lenet.py", 2,
                  ["--recipe", "onecycle2"]),
                 ("mllabs", "mllabs LeNet-5, one-cycle over 3 epochs (batch 128)", "mllabs_lenet.py", 3,
                  ["--recipe", "onecycle"])]


def cpu_classes(held_only: bool = False) -> dict[str, dict]:
    """The CPU classes this machine can stand for, label → environment: itself, and AVX2-only
    when it has AVX-512 (only that one with held_only; a CPU without AVX-512 is that class)."""
    simd = machine(THREADS)["simd"]
    as_is = {"as is (" + (", ".join(simd) or "no AVX2") + ")": {}}
    if "avx512f" not in simd:
        return as_is
    held = {"held to AVX2 (" + ", ".join(f"{k}={v}" for k, v in HELD_TO_AVX2.items()) + ")": HELD_TO_AVX2}
    return held if held_only else {**as_is, **held}


def bench_race(ctx: Context) -> dict:
    """The published one-epoch recipe against mllabs' fastest LeNet-5 schedules, per CPU class:
    the floor once, then every schedule for seed 0, then seed 1, ... (interleaved)."""
    classes = {}
    seeds = 1 if ctx.smoke else RACE_SEEDS
    for label, env in cpu_classes(held_only=ctx.args.held_to_avx2).items():
        ctx.log(f"race, CPU {label}")
        floor = [ctx.measure(ctx.python, "matmul_floor.py", env=env)]
        runs: dict[str, list[dict]] = {}
        for seed in range(seeds):
            for side, name, script, epochs, extra in RACE_VARIANTS:
                r = ctx.measure(ctx.python, script, "--seed", str(seed), *extra, env=env, timeout=1800)
                runs.setdefault(name, []).append(dict(r, side=side, schedule_epochs=epochs))
        classes[label] = {"env": env, "floor": floor, "variants": runs}
    return {"classes": classes, "seeds": seeds, "min_reached": min(RACE_MIN_REACHED, seeds)}


def epoch_macs(forward_macs: int, digits: int) -> int:
    """Multiply-adds of a LeNet-5 training epoch: a step costs about 3 forward passes (forward,
    input gradients, weight gradients; see peers/matmul_floor.py)."""
    return 3 * forward_macs * digits


def race_choice(variants: dict, side: str, min_reached: int) -> tuple[str, float] | None:
    """The side's fewest-epoch schedule that reached 99 % on at least min_reached seeds, and its
    median seconds to 99 % (a missed seed counts as never reaching it)."""
    mine = sorted(((runs[0]["schedule_epochs"], name) for name, runs in variants.items()
                   if ok(runs) and runs[0].get("side") == side))
    for _, name in mine:
        good = ok(variants[name])
        seconds = time_to_target(good)  # None unless most seeds reached it
        if sum(bool(r.get("reached")) for r in good) >= min_reached and seconds is not None:
            return name, seconds
    return None


def race_floor(cls: dict) -> tuple[float, int] | tuple[None, None]:
    """(best matmul multiply-adds/s in this class, LeNet-5's forward multiply-adds per digit)."""
    good = ok(cls["floor"])
    return (max(r["macs_per_second_best"] for r in good), good[0]["lenet_forward_macs"]) if good else (None, None)


def render_race(b: dict) -> list[str]:
    lines = [(f"Both sides from data in memory: the seconds are training plus each per-epoch evaluation of "
              f"the 10,000 test digits up to the first at or above 99.0 % (import and data loading "
              f"excluded). Seeds 0–{b['seeds'] - 1}; a schedule counts when it reaches 99.0 % on at least "
              f"{b['min_reached']} of {b['seeds']} seeds, and each side is timed with its fewest such epochs "
              "(median over the seeds, a miss counting as never). The recipe is the last step of "
              "tuomaso/train_mnist_fast as its README describes it (benchmarks/peers/torch_mnist_fast.py); "
              "mllabs is the mnist-lenet lab's network and `fit()`.")]
    for label, cls in b["classes"].items():
        best, macs = race_floor(cls)
        lines += ["", f"**CPU {label}**" + (f"; float32 matmul floor {best / 1e9:.0f} G multiply-adds/s" if best else ""),
                  "", ("| side | schedule | reached 99.0 % | time to 99.0 % (s), median (min–max) | "
                       "test accuracy at its end | training s/epoch | LeNet-5 epoch ÷ floor |"),
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for name, runs in cls["variants"].items():
            err = error_row(name, runs, 7)
            if err:
                lines.append(err)
                continue
            good = ok(runs)
            reached = [r for r in good if r.get("reached")]
            sec = median([r["train_seconds_per_epoch"] for r in good])
            floor_ratio = "–"
            if best and good[0]["side"] == "mllabs":
                floor = epoch_macs(macs, good[0]["train_examples"]) / best
                floor_ratio = f"{sec / floor:.1f}× ({floor:.2f} s)"
            lines.append(f"| {good[0]['side']} | {name} | {len(reached)}/{len(good)} | "
                         f"{time_cell(time_to_target(good), reached)} | "
                         f"{spread([r['final_accuracy'] for r in good], '{:.4f}')} | {sec:.2f} | {floor_ratio} |")
        lines += ["", race_sentence(label, cls, b["min_reached"])]
    return lines


def race_sentence(label: str, cls: dict, min_reached: int) -> str:
    recipe = race_choice(cls["variants"], "recipe", min_reached)
    mine = race_choice(cls["variants"], "mllabs", min_reached)
    if not recipe or not mine:
        return f"Fastest to 99.0 % MNIST, CPU {label}: " + ("neither side" if not (recipe or mine) else "one side") + \
            f" reached 99.0 % on {min_reached} seeds with any schedule tried; no ratio."
    return (f"Fastest to 99.0 % MNIST, CPU {label}: mllabs' LeNet-5 {mine[1]:.1f} s ({mine[0]}) against "
            f"the published one-epoch recipe's {recipe[1]:.1f} s ({recipe[0]}): **{recipe[1] / mine[1]:.2f}×** faster.")


def bench_auto_mpg(ctx: Context) -> dict:
    """The tutorial's network in mllabs and in Keras (test MAE, fit() time), and the lab's own
    default profile as a user runs it (`mllabs run auto-mpg`, wall time of the whole command)."""
    peers = ctx.peers()
    runs: dict[str, list[dict]] = {}
    for k in range(ctx.repeat):
        runs.setdefault("mllabs (tutorial recipe)", []).append(
            ctx.measure(ctx.python, "mllabs_auto_mpg.py", "--seed", str(k)))
        runs.setdefault("Keras 3 / TensorFlow (tutorial recipe)", []).append(
            ctx.measure(peers, "keras_auto_mpg.py", "--seed", str(k)))
        runs.setdefault("mllabs run auto-mpg (lab default)", []).append(ctx.mllabs_run("auto-mpg"))
    return {"variants": runs}


def bench_flowers(ctx: Context) -> dict:
    """The flowers plain CNN for a fixed number of epochs: images per second, training and
    inference. mllabs decodes the photos and exports them, so Keras trains on the same pixels."""
    peers = ctx.peers()
    photos = ctx.work / "flowers-96px.npz"
    epochs = ["--epochs", str(ctx.args.flowers_epochs)]
    variants = [("mllabs (precision auto)", ctx.python, "mllabs_flowers.py", ["--precision", "auto"]),
                ("mllabs (float32)", ctx.python, "mllabs_flowers.py", ["--precision", "fp32"]),
                ("Keras (float32)", peers, "keras_flowers.py", ["--precision", "fp32", "--photos", str(photos)]),
                ("Keras (mixed_bfloat16)", peers, "keras_flowers.py", ["--precision", "bf16", "--photos", str(photos)])]
    runs: dict[str, list[dict]] = {}
    for k in range(ctx.repeat):
        for name, python, script, extra in variants:
            if name == variants[0][0] and k == 0:
                extra = extra + ["--export", str(photos)]
            runs.setdefault(name, []).append(ctx.measure(python, script, "--seed", str(k), *epochs, *extra))
    photos.unlink(missing_ok=True)  # about 100 MB at 96 px
    return {"variants": runs, "epochs": 1 if ctx.smoke else ctx.args.flowers_epochs}


def suite_labs(ctx: Context) -> list[str]:
    """Every lab of `mllabs list` except those that need the user's own data."""
    code = ("import json, platform, torch, mllabs; from mllabs.labs import LABS, get_lab; "
            "print(json.dumps({'labs': [n for n in LABS if not getattr(get_lab(n), 'USER_DATA', False)], "
            "'versions': {'mllabs': mllabs.__version__, 'torch': torch.__version__}, "
            "'python': platform.python_version()}))")
    done = subprocess.run([str(ctx.python), "-c", code], cwd=ROOT, env=ctx.env(), capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout)


def bench_suite(ctx: Context) -> dict:
    """`mllabs run LAB` for every lab on its default profile, one after the other, each timed."""
    found = suite_labs(ctx)
    rounds = []
    for _ in range(min(ctx.repeat, ctx.args.suite_repeat)):
        rounds.append([ctx.mllabs_run(lab, timeout=3600) for lab in found["labs"]])
    return {"labs": found["labs"], "rounds": rounds, "versions": found["versions"],
            "python": found["python"], "profile": "quick" if ctx.smoke else "default"}


RUNNERS = {"floor": bench_floor, "lenet": bench_lenet, "race": bench_race, "auto-mpg": bench_auto_mpg,
           "flowers": bench_flowers, "suite": bench_suite}


# ---------------------------------------------------------------------------- the machine

def machine(threads: int) -> dict:
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu in ("", platform.machine(), platform.processor()):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    simd = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return {"cpu": cpu, "cores": os.cpu_count(), "simd": simd, "memory_gib": memory,
            "os": platform.platform(), "python": platform.python_version(), "threads": threads,
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def revision() -> str:
    """The checkout's commit, read from .git without running git ('' when there is none)."""
    try:
        head = (ROOT / ".git" / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = ROOT / ".git" / head[5:]
            if ref.exists():
                return ref.read_text().strip()[:12]
            for line in (ROOT / ".git" / "packed-refs").read_text().splitlines():
                if line.endswith(" " + head[5:]):
                    return line.split()[0][:12]
        return head[:12]
    except OSError:
        return ""


# ---------------------------------------------------------------------------- results.md

def ok(runs: list[dict]) -> list[dict]:
    return [r for r in runs if not r.get("error")]


def spread(values, fmt: str = "{:.1f}", unit: str = "") -> str:
    """median (min–max) of the numbers present; '–' when there are none."""
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    med = fmt.format(statistics.median(values)) + unit
    if len(values) == 1:
        return med
    return f"{med} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def time_to_target(runs: list[dict]):
    """Median seconds to the target over every measured run, a run that missed it counting as
    never reaching it: None unless more than half of the runs reached it."""
    times = [r["seconds_to_target"] if r.get("reached") else float("inf") for r in ok(runs)]
    if not times:
        return None
    mid = statistics.median(times)
    return mid if mid != float("inf") else None


def ratio(a, b) -> str:
    return f"{a / b:.2f}×" if a and b else "–"


def error_row(name: str, runs: list[dict], width: int) -> str | None:
    bad = [r for r in runs if r.get("error")]
    if ok(runs) or not bad:
        return None
    return f"| {name} | " + f"not measured: {bad[0]['error']}" + " |" + " |" * (width - 2)


def render_floor(b: dict, lenet: dict | None) -> list[str]:
    runs = ok(b["runs"])
    if not runs:
        return ["Not measured: " + (b["runs"][0].get("error", "") if b["runs"] else "no run") + "."]
    best = max(r["macs_per_second_best"] for r in runs)
    r0 = runs[0]
    macs = r0["lenet_forward_macs"]
    lines = [(f"float32 matmul {r0['matmul_size']}×{r0['matmul_size']} with {r0['threads']} threads "
             f"(torch {r0['versions']['torch']}): best {best / 1e9:.1f} G multiply-adds/s "
             f"({2 * best / 1e9:.0f} GFLOP/s); median of the timings "
             f"{spread([r['macs_per_second_median'] / 1e9 for r in runs])} G/s over {len(runs)} repeat(s)."),
             "",
             (f"LeNet-5 (32×32 input): {macs:,} multiply-adds per digit forward (`mllabs summary "
             f"mnist-lenet`: convolutions and dense layers), × 3 for a training step "
             "(forward, input gradients, weight gradients)."), "",
             "| training epoch | multiply-adds | floor (s) | measured, training only (s) | measured ÷ floor |",
             "| --- | --- | --- | --- | --- |"]
    measured = {}
    if lenet:
        for name, runs_l in lenet["variants"].items():
            good = ok(runs_l)
            if good:
                measured[name] = (good[0]["train_examples"],
                                  median([g["train_seconds_per_epoch"] for g in good]))
    for name, (digits, sec) in sorted(measured.items()):
        total = epoch_macs(macs, digits)
        floor = total / best
        lines.append(f"| {name}, {digits:,} digits | {total / 1e9:.1f} G | {floor:.2f} | {sec:.2f} | "
                     f"{sec / floor:.1f}× |")
    if not measured:
        for digits in (60000, 55000):
            lines.append(f"| {digits:,} digits | {epoch_macs(macs, digits) / 1e9:.1f} G | "
                         f"{epoch_macs(macs, digits) / best:.2f} | – | – |")
    lines += ["", ("The floor is what the arithmetic alone would take at large-matmul speed; LeNet's "
              "layers are small (6 and 16 channels), so no framework gets near it, and pooling, "
              "activations, the loss, the optimizer step and data handling are not in it.")]
    return lines


def time_cell(t, reached: list[dict]) -> str:
    """The median time to target (misses counted) with the min–max of the runs that reached it."""
    if not reached:
        return "–"
    times = [r["seconds_to_target"] for r in reached]
    shown = f"{t:.1f}" if t is not None else "– (most runs missed)"
    return shown if len(times) == 1 else f"{shown} ({min(times):.1f}–{max(times):.1f})"


def render_lenet(b: dict) -> list[str]:
    variants = b["variants"]
    base = {k: time_to_target(v) for k, v in variants.items() if k.startswith("mllabs")}
    lab, handout = base.get("mllabs (lab recipe)"), base.get("mllabs (handout recipe)")
    onecycle = base.get("mllabs (one-cycle recipe)")
    lines = [(f"Target: {100 * 0.99:.1f} % test accuracy on the 10,000 test digits, evaluated after every "
             f"epoch. Time to target = training plus the per-epoch evaluations up to the first epoch "
             f"at or above it (framework import and data loading excluded, listed separately). "
             f"At most {b['max_epochs']} epochs and {b['budget_seconds']:g} s per run. The median "
             "counts a run that missed the target as never reaching it; a variant whose first run took "
             f"over {b.get('slow_after', 600):g} s is not repeated."), "",
             ("| variant | recipe | time to 99.0 % (s), median (min–max) | reached | epochs to 99.0 % | "
             "final test accuracy | training s/epoch | evaluation s/epoch | import s | data s | "
             "÷ mllabs one-cycle | ÷ mllabs lab recipe | ÷ mllabs handout recipe |"),
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, runs in variants.items():
        err = error_row(name, runs, 13)
        if err:
            lines.append(err)
            continue
        good = ok(runs)
        reached = [r for r in good if r.get("reached")]
        t = time_to_target(good)
        kept = f" (kept from {good[0]['kept_from']}, `--keep-slow`)" if good[0].get("kept_from") else ""
        lines.append(
            f"| {name}{kept} | {good[0]['recipe']} | {time_cell(t, reached)} | "
            f"{len(reached)}/{len(good)} | {spread([r['epochs_to_target'] for r in reached], '{:.0f}')} | "
            f"{spread([r['final_accuracy'] for r in good], '{:.4f}')} | "
            f"{spread([r['train_seconds_per_epoch'] for r in good], '{:.2f}')} | "
            f"{spread([r['eval_seconds_per_epoch'] for r in good], '{:.2f}')} | "
            f"{spread([r['import_seconds'] for r in good], '{:.1f}')} | "
            f"{spread([r['data_seconds'] for r in good], '{:.1f}')} | "
            f"{ratio(t, onecycle)} | {ratio(t, lab)} | {ratio(t, handout)} |")
    for name, runs in variants.items():
        diag = [r["diagnostic"] for r in ok(runs) if r.get("diagnostic")]
        if diag:
            conv = median([d["conv_macs_per_second"] for d in diag])
            dense = median([d["dense_macs_per_second"] for d in diag])
            lines += ["", f"{name}, measured in the same process after training: its CPU convolution "
                      f"(LeNet's C1, batch 32, jitted) ran at {conv / 1e9:.2f} G multiply-adds/s, its "
                      f"dense layer (784×784, batch 256) at {dense / 1e9:.1f} G/s"
                      + ("; its convolutions, not its matrix products, set its epoch time."
                         if conv * 20 < dense else ".")]
    return lines


def lenet_headline(b: dict) -> str | None:
    v = b["variants"]
    times = {k: time_to_target(runs) for k, runs in v.items()}
    peers = {k: t for k, t in times.items() if not k.startswith("mllabs") and t}
    missed = [k for k in v if not k.startswith("mllabs") and not times.get(k) and ok(v[k])]
    unmeasured = [k for k in v if not k.startswith("mllabs") and not ok(v[k])]
    lab, handout = times.get("mllabs (lab recipe)"), times.get("mllabs (handout recipe)")
    onecycle = times.get("mllabs (one-cycle recipe)")
    if not peers or not (lab or handout or onecycle):
        return None
    fastest = min(peers, key=peers.get)
    text = (f"LeNet-5 to 99.0 % MNIST test accuracy: fastest peer {fastest}, {peers[fastest]:.1f} s; "
            + (f"mllabs with the lab and a 3-epoch one-cycle schedule {onecycle:.1f} s "
               f"({peers[fastest] / onecycle:.2f}× faster)" if onecycle else "")
            + (", " if onecycle and (lab or handout) else "")
            + (f"mllabs with the lab's recipe {lab:.1f} s ({peers[fastest] / lab:.2f}× faster)" if lab else "")
            + (", " if lab and handout else "")
            + (f"mllabs with the same recipe as the peers {handout:.1f} s "
               f"({peers[fastest] / handout:.2f}× faster)" if handout else "") + ".")
    if missed:
        text += f" Not reaching 99.0 % within the budget: {', '.join(missed)}."
    if unmeasured:
        text += f" Not measured: {', '.join(unmeasured)}."
    return text


def headlines(benches: dict) -> list[str]:
    """One sentence per benchmark with its ratio to mllabs, for the README to quote."""
    heads = []
    if "lenet" in benches:
        heads.append(lenet_headline(benches["lenet"]["result"]))
    if "floor" in benches and "lenet" in benches:
        runs = ok(benches["floor"]["result"]["runs"])
        good = ok(benches["lenet"]["result"]["variants"].get("mllabs (handout recipe)", []))
        if runs and good:
            best = max(r["macs_per_second_best"] for r in runs)
            total = epoch_macs(runs[0]["lenet_forward_macs"], good[0]["train_examples"])
            floor = total / best
            sec = median([g["train_seconds_per_epoch"] for g in good])
            heads.append(f"LeNet-5 epoch (mllabs, batch 32, {good[0]['train_examples']:,} digits): "
                         f"{sec:.2f} s measured against a compute floor of {floor:.2f} s "
                         f"({total / 1e9:.0f} G "
                         f"multiply-adds at {best / 1e9:.0f} G/s): {sec / floor:.1f}× the floor.")
    if "race" in benches:
        race = benches["race"]["result"]
        heads += [race_sentence(label, cls, race["min_reached"]) for label, cls in race["classes"].items()]
    if "auto-mpg" in benches:
        v = benches["auto-mpg"]["result"]["variants"]
        m = ok(v.get("mllabs (tutorial recipe)", []))
        k = ok(v.get("Keras 3 / TensorFlow (tutorial recipe)", []))
        if m and k:
            tm, tk = median([r["seconds"] for r in m]), median([r["seconds"] for r in k])
            heads.append(f"Auto MPG, the tutorial's network, {m[0]['epochs']} epochs: mllabs {tm:.2f} s, test MAE "
                         f"{median([r['test_mae'] for r in m]):.2f} MPG; Keras {tk:.2f} s, test MAE "
                         f"{median([r['test_mae'] for r in k]):.2f} MPG ({tk / tm:.1f}× faster).")
    if "flowers" in benches:
        v = benches["flowers"]["result"]["variants"]
        m = ok(v.get("mllabs (precision auto)", []))
        peers = {n: ok(r) for n, r in v.items() if n.startswith("Keras") and ok(r)}
        if m and peers:
            mt = median([r["train_images_per_second"] for r in m])
            mi = median([r["inference_images_per_second"] for r in m])
            bt = max(peers, key=lambda n: median([r["train_images_per_second"] for r in peers[n]]))
            bi = max(peers, key=lambda n: median([r["inference_images_per_second"] for r in peers[n]]))
            kt = median([r["train_images_per_second"] for r in peers[bt]])
            ki = median([r["inference_images_per_second"] for r in peers[bi]])
            heads.append(f"Flowers plain CNN, 96 px: training {mt:.0f} images/s with mllabs against "
                         f"{kt:.0f} with {bt} ({mt / kt:.2f}×); inference {mi:.0f} against {ki:.0f} "
                         f"with {bi} ({mi / ki:.2f}×).")
    if "suite" in benches:
        rounds = benches["suite"]["result"]["rounds"]
        totals = [sum(r.get("wall_seconds") or 0 for r in rnd) for rnd in rounds]
        failed = sorted({r["lab"] for rnd in rounds for r in rnd if r.get("error") or r.get("status") != "completed"})
        if totals:
            t = median(totals)
            heads.append(f"The whole suite ({len(benches['suite']['result']['labs'])} labs, "
                         f"{benches['suite']['result'].get('profile', 'default')} profiles, one after "
                         f"the other): {t / 60:.1f} min"
                         + (f"; not completed: {', '.join(failed)}" if failed else "") + ".")
    return [h for h in heads if h]


def render_auto_mpg(b: dict) -> list[str]:
    variants = b["variants"]
    ref = median([r["seconds"] for r in ok(variants.get("mllabs (tutorial recipe)", []))])
    lines = [("Test MAE in MPG on the tutorial's 78 test cars. For the two tutorial-recipe rows the time "
             "is fit()'s wall time (100 epochs with the validation split evaluated after each); for "
             "`mllabs run auto-mpg` it is the whole command as a user runs it (start-up, 5 seeds × "
             "train/validation run + refit, least squares, report), and its MAE is the mean over its "
             "5 seeds."), "",
             ("| variant | recipe | test MAE (MPG), median (min–max) | time (s), median (min–max) | "
             "import s | ÷ mllabs (tutorial recipe) time |"), "| --- | --- | --- | --- | --- | --- |"]
    for name, runs in variants.items():
        err = error_row(name, runs, 6)
        if err:
            lines.append(err)
            continue
        good = ok(runs)
        if "lab" in good[0] and "wall_seconds" in good[0]:
            lines.append(f"| {name} | the lab's default profile (5 seeds, log MPG, 128-128, dropout 0.2, "
                         f"RMSprop, cosine, 200 epochs, refit) | "
                         f"{spread([g['metrics'].get('test_mae') for g in good], '{:.3f}')} | "
                         f"{spread([g['wall_seconds'] for g in good])} (lab's own clock "
                         f"{spread([g['seconds'] for g in good])}) | – | – |")
            continue
        t = median([g["seconds"] for g in good])
        lines.append(f"| {name} | {good[0]['recipe']} | {spread([g['test_mae'] for g in good], '{:.3f}')} | "
                     f"{spread([g['seconds'] for g in good], '{:.2f}')} | "
                     f"{spread([g['import_seconds'] for g in good])} | {ratio(t, ref)} |")
    return lines


def render_flowers(b: dict) -> list[str]:
    variants = b["variants"]
    ref_t = median([r["train_images_per_second"] for r in ok(variants.get("mllabs (precision auto)", []))])
    ref_i = median([r["inference_images_per_second"] for r in ok(variants.get("mllabs (precision auto)", []))])
    lines = [(f"The plain CNN at 96 px, batch 32, {b['epochs']} epoch(s) over the training photos with "
             "augmentation, nothing evaluated in between; then one inference pass over the held-out "
             "photos (validation + test) in batches of 32 (both frameworks' default) after a warm-up. Images per second: "
             "median (min–max). Test accuracy after so few epochs is a sanity check, not a result."), "",
             ("| variant | training img/s | training img/s without epoch 1 | inference img/s | "
             "test accuracy | import s | mllabs (auto) training ÷ this | mllabs (auto) inference ÷ this |"),
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, runs in variants.items():
        err = error_row(name, runs, 8)
        if err:
            lines.append(err)
            continue
        good = ok(runs)
        tr = median([g["train_images_per_second"] for g in good])
        inf = median([g["inference_images_per_second"] for g in good])
        lines.append(f"| {name} | {spread([g['train_images_per_second'] for g in good], '{:.0f}')} | "
                     f"{spread([g['train_images_per_second_steady'] for g in good], '{:.0f}')} | "
                     f"{spread([g['inference_images_per_second'] for g in good], '{:.0f}')} | "
                     f"{spread([g['test_accuracy'] for g in good], '{:.3f}')} | "
                     f"{spread([g['import_seconds'] for g in good])} | "
                     f"{ratio(ref_t, tr)} | {ratio(ref_i, inf)} |")
    return lines


def render_suite(b: dict) -> list[str]:
    rounds = b["rounds"]
    lines = [(f"`mllabs run LAB --profile {b.get('profile', 'default')}` for every lab in `mllabs list` that "
             f"runs on the shipped data, one after the other; {len(rounds)} round(s). Wall time of each "
             "command, start-up included."), "",
             "| lab | status | wall time (s) | lab's own seconds |", "| --- | --- | --- | --- |"]
    totals = []
    for lab in b["labs"]:
        runs = [r for rnd in rounds for r in rnd if r["lab"] == lab]
        good = [r for r in runs if not r.get("error")]
        status = ", ".join(sorted({r.get("status") or "failed" for r in runs} |
                                  {"error: " + r["error"] for r in runs if r.get("error")}))
        lines.append(f"| {lab} | {status} | {spread([r.get('wall_seconds') for r in good])} | "
                     f"{spread([r.get('seconds') for r in good])} |")
    for rnd in rounds:
        totals.append(sum(r.get("wall_seconds") or 0 for r in rnd))
    total = median(totals)
    lines.append(f"| **all** | | **{spread(totals)}** ({total / 60:.1f} min) | |" if total else "| **all** | | – | |")
    return lines


TITLES = {"floor": "Compute floor of a LeNet-5 epoch", "lenet": "LeNet-5 on MNIST: time to 99.0 % test accuracy",
          "race": "Fastest to 99 % MNIST: mllabs' LeNet-5 against the published one-epoch recipe, per CPU class",
          "auto-mpg": "Auto MPG: the tutorial's network", "flowers": "Flowers plain CNN: images per second",
          "suite": "The whole suite: every lab's default profile"}


def render(data: dict, smoke: bool) -> str:
    benches = data["benchmarks"]
    held = data.get("held_to_avx2", False)
    out = ["# mllabs against its peers" + (", held to AVX2" if held else "") + ": measured results", ""]
    if held:
        out += [("Every process ran with " + ", ".join(f"`{k}={v}`" for k, v in HELD_TO_AVX2.items())
                 + ": PyTorch, oneDNN and MKL kept off AVX-512 and native bfloat16, as on a laptop CPU "
                 "with AVX2 only. The machine line of each section still lists what the CPU has."), ""]
    if smoke:
        out += [("**SMOKE RUN (`--smoke`): a few thousand digits, 1 epoch, a few hundred photos, quick "
                "profiles. These numbers check the plumbing only; they are not results.**"), ""]
    out += [("Generated by `benchmarks/run.py`; do not edit by hand. Each section says when and how it "
            "was measured; re-run one with `python benchmarks/run.py --only NAME`."), ""]
    heads = headlines(benches)
    if heads:
        out += ["## Headline", "", ("Medians over the repeats; each line's command and date are in its "
                "section below."), ""] + [f"- {h}" for h in heads] + [""]
    for name in BENCHMARKS:
        if name not in benches:
            continue
        b = benches[name]
        m = b["machine"]
        out += [f"## {TITLES[name]}", "",
                f"Command: `{b['command']}`; {b['date']}; {b['repeat']} repeat(s)"
                + (f"; commit {b['revision']}" if b.get("revision") else "") + ".  ",
                (f"Machine: {m['cpu']}, {m['cores']} cores ({', '.join(m['simd']) or 'no AVX2'}), "
                f"{m['memory_gib']} GiB, {m['os']}; {m['threads']} compute threads per framework "
                f"(OMP/MKL, torch.set_num_threads, TF intra-op {m['threads']} / inter-op 1, MindSpore "
                f"op threads {m['threads']}); load average at start {m['load_average'][0]}.  "),
                f"Versions: {versions(b['result'])}.", ""]
        if name == "floor":
            out += render_floor(b["result"], benches.get("lenet", {}).get("result"))
        elif name == "lenet":
            out += render_lenet(b["result"])
        elif name == "race":
            out += render_race(b["result"])
        elif name == "auto-mpg":
            out += render_auto_mpg(b["result"])
        elif name == "flowers":
            out += render_flowers(b["result"])
        elif name == "suite":
            out += render_suite(b["result"])
        problems = b.get("problems")
        if problems:
            out += ["", "Problems: " + "; ".join(problems)]
        out.append("")
    if OPTIMISATIONS.exists() and not smoke and not held:
        # written by hand from benchmarks/optimise_lenet.py and before/after runs: what was changed
        # in mllabs because of these numbers, and what each change bought
        body = OPTIMISATIONS.read_text().split("\n", 1)[1].strip().replace("\n## ", "\n### ")
        out += ["## Optimisations and their effect", "",
                f"From [`{OPTIMISATIONS.name}`]({OPTIMISATIONS.name}), included here by `run.py`.", "", body, ""]
    return "\n".join(out)


def versions(result: dict) -> str:
    found: dict[str, str] = {}

    def walk(x):
        if isinstance(x, dict):
            if isinstance(x.get("versions"), dict):
                found.update(x["versions"])
            if x.get("python") and isinstance(x["python"], str):
                found.setdefault("python", x["python"])
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(result)
    return ", ".join(f"{k} {v}" for k, v in sorted(found.items())) or "–"


# ---------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--only", action="append", choices=BENCHMARKS,
                   help="run only this benchmark (repeatable); default: all of them")
    p.add_argument("--repeat", type=int, default=3, help="repeats of each measurement (default 3)")
    p.add_argument("--suite-repeat", type=int, default=1,
                   help="rounds of the suite, at most --repeat (default 1: it takes 35+ minutes)")
    p.add_argument("--threads", type=int, default=THREADS, help=f"compute threads per framework ({THREADS})")
    p.add_argument("--smoke", action="store_true",
                   help="tiny data and 1 epoch everywhere, quick profiles for the suite: checks the "
                        "plumbing in seconds; results go to a temporary folder unless --out is given")
    p.add_argument("--lenet-budget", type=float, default=1800,
                   help="seconds one LeNet run may train before giving up on 99 %% (default 1800)")
    p.add_argument("--lenet-epochs", type=int, default=20, help="epochs one LeNet run may take (20)")
    p.add_argument("--slow-after", type=float, default=900,
                   help="a LeNet variant whose first run took longer than this is not repeated (900 s)")
    p.add_argument("--keep-slow", action="store_true",
                   help="LeNet: do not re-run a variant whose stored run took longer than --slow-after "
                        "(MindSpore, ~30 min); keep its numbers from results.json, marked with their date")
    p.add_argument("--held-to-avx2", action="store_true",
                   help="run every process with " + " ".join(f"{k}={v}" for k, v in HELD_TO_AVX2.items())
                        + " (an AVX2-only CPU on an AVX-512 one); results go to results-avx2.md")
    p.add_argument("--no-peers", action="store_true",
                   help="skip the TensorFlow/Keras and MindSpore peers (their venv is a few GB); the "
                        "PyTorch peers and the recipe run with the project's interpreter")
    p.add_argument("--render-only", action="store_true",
                   help="write results.md again from results.json (e.g. after editing optimisations.md)")
    p.add_argument("--flowers-epochs", type=int, default=3, help="epochs of the flowers benchmark (3)")
    p.add_argument("--data", type=Path, default=Path(os.environ.get("MLLABS_DATA", ROOT.parent / "shared" / "data")),
                   help="folder laid out like shared/data (default: $MLLABS_DATA)")
    p.add_argument("--out", type=Path, default=None, help="results.md to write (default benchmarks/results.md)")
    args = p.parse_args(argv)
    args.data = args.data.resolve()
    if not (args.data / "mnist").is_dir():
        p.error(f"{args.data} has no mnist/ folder; set MLLABS_DATA or pass --data")
    ctx = Context(args)
    out = args.out or (Path(tempfile.gettempdir()) / "mllabs-bench-smoke" / "results.md" if args.smoke
                       else RESULTS_AVX2 if args.held_to_avx2 else RESULTS)
    out.parent.mkdir(parents=True, exist_ok=True)
    store = out.with_suffix(".json")
    data = json.loads(store.read_text()) if store.exists() else {"benchmarks": {}}
    data["held_to_avx2"] = args.held_to_avx2
    ctx.stored = data["benchmarks"]
    if args.render_only:
        out.write_text(render(data, args.smoke))
        ctx.log(f"{out} rendered again from {store}; nothing measured")
        return 0
    selected = args.only or [b for b in BENCHMARKS]
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    ctx.log(f"benchmarks {', '.join(selected)}; {args.repeat} repeat(s); {args.threads} threads; "
            f"logs in {ctx.logs}")
    started = time.perf_counter()
    for name in selected:
        tick = time.perf_counter()
        info = machine(args.threads)
        result = RUNNERS[name](ctx)
        problems = []
        if ctx.peer_problem and name in ("lenet", "auto-mpg", "flowers"):
            problems.append(ctx.peer_problem)
        data["benchmarks"][name] = {
            "command": command.strip(), "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "repeat": args.repeat, "revision": revision(), "machine": info, "result": result,
            "seconds": time.perf_counter() - tick, "problems": problems}
        store.write_text(json.dumps(data, indent=1))
        out.write_text(render(data, args.smoke))
        ctx.log(f"{name} done in {time.perf_counter() - tick:.0f} s; {out} updated")
    ctx.log(f"all done in {time.perf_counter() - started:.0f} s: {out} (raw numbers: {store}; logs: {ctx.logs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
