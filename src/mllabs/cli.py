"""The `mllabs` command: argument parsing and output, nothing else.

Every UserError ends as one line on stderr and exit status 2 (--debug shows the traceback).
Progress goes to stderr; with --json, stdout holds only the JSON result.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shlex
import sys
import textwrap
import warnings
from pathlib import Path

from mllabs import __version__
from mllabs.config import DEVICES, PROFILES
from mllabs.errors import UserError

EPILOG = """examples:
  mllabs list
  mllabs run auto-mpg                      # the lab's real result (default profile)
  mllabs run auto-mpg --profile quick --set epochs=50 --set lr=0.01
  mllabs run all                           # every lab, default profile
  mllabs predict runs/auto-mpg/<run> cars.csv
  mllabs config auto-mpg                   # the keys --set accepts
  mllabs summary mnist-lenet               # the network layer by layer, with operation counts
  mllabs ops conv --input 10,3,224,224 --out-channels 64 --kernel 3 --padding 1
  mllabs data verify
  mllabs runs list --lab mnist-lenet --sort test_accuracy:desc
  mllabs sweep mnist-lenet --grid optimizer=sgd,adam --grid lr=0.1,0.01 --seeds 3 --jobs 2
  mllabs compare runs/mnist-lenet/<run1> runs/mnist-lenet/<run2>
  mllabs run mnist-lenet --nproc 2                # data-parallel through torchrun
  mllabs demo runs/mnist-lenet/<run>              # draw a digit in the browser (mllabs[demo])
  mllabs export runs/mnist-lenet/<run>            # the network as ONNX (mllabs[onnx])
"""


class Parser(argparse.ArgumentParser):
    """argparse with the project's one-line errors (argparse prints its whole usage first);
    subcommand parsers are of the same class."""

    def error(self, message: str):
        self.exit(2, f"mllabs: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="mllabs", description="The classic ML and deep-learning labs, one command each.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"mllabs {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    sub.add_parser("list", help="the labs, one line each")

    run = sub.add_parser("run", help="run a lab (or `all`) and write its report",
                         description="Run a lab and write runs/<lab>/<stamp>-<id>/ with its report.")
    run.add_argument("lab", help="lab name (see `mllabs list`) or `all`")
    run.add_argument("--profile", metavar="PROFILE",
                     help=f"{'|'.join(PROFILES)} or one the lab adds (`mllabs config LAB` lists "
                          "them). quick: seconds, for smoke tests; default: the lab's real result "
                          "on a CPU; full: the original handout's budget (default: default)")
    run.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value (repeatable); `mllabs config LAB` lists keys")
    run.add_argument("--seed", type=int, help="seed for python, numpy and torch")
    run.add_argument("--device", choices=DEVICES, help="where to train")
    run.add_argument("--out", type=Path, default=Path("runs"), help="runs folder (default: runs)")
    _data_dir_arg(run)
    run.add_argument("--json", action="store_true", help="print metrics.json (+ run_dir) only")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument("--sweep-id", help=argparse.SUPPRESS)  # set by `mllabs sweep` for its cells
    run.add_argument("--resume", type=Path, metavar="RUN_DIR",
                     help="continue an interrupted run in its own directory, with its saved "
                          "config, from each network's last complete epoch")
    run.add_argument("--max-seconds", type=float, metavar="S",
                     help="stop training at the first epoch boundary after S seconds (per lab); "
                          "the run ends interrupted with its report, and --resume continues it")
    run.add_argument("--nproc", type=int, metavar="N",
                     help="train data-parallel in N processes through torchrun (gloo on CPU, nccl "
                          "on GPUs); each takes the global batch / N; rank 0 writes the run")
    run.add_argument("--nnodes", type=int, default=1, metavar="M",
                     help="machines taking part with --nproc (default: 1)")
    run.add_argument("--rdzv-endpoint", metavar="HOST:PORT",
                     help="rendezvous address shared by all machines (needed with --nnodes > 1)")
    run.add_argument("--log", action="append", default=[], metavar="TRACKER",
                     help="also send the finished run to tensorboard and/or mlflow (repeatable; "
                          "each an optional extra: pip install 'mllabs[tensorboard]')")

    pred = sub.add_parser("predict", help="predict with a finished run on your own files")
    pred.add_argument("run_dir", type=Path, help="a run directory made by `mllabs run`")
    pred.add_argument("inputs", type=Path, nargs="*", metavar="INPUT", help="input file(s)")
    pred.add_argument("--values", metavar="V1,V2,...",
                      help="one input typed as comma-separated numbers, for labs that take a row "
                           "of features (boston-housing)")
    pred.add_argument("--json", action="store_true", help="print a JSON list, one object per input")
    pred.add_argument("--output", type=Path, help="also write the predictions to this CSV file")
    pred.add_argument("--runtime", choices=("torch", "onnx"), default="torch",
                      help="run the network in PyTorch or, after `mllabs export RUN_DIR`, in "
                           "onnxruntime (pip install 'mllabs[onnx]'); the preprocessing is the "
                           "same (default: torch)")

    demo = sub.add_parser(
        "demo", help="try a finished run in the browser (a local Gradio page)",
        description="Serve a page for a finished run: draw or upload a digit (MNIST labs), upload "
                    "a photo (flowers, eye-screening: top classes and Grad-CAM), or fill in a form "
                    "(the tabular labs). Every answer is what `mllabs predict` gives. Needs the "
                    "extra: pip install 'mllabs[demo]'.",
        epilog="example:\n  mllabs demo runs/mnist-lenet/<run> --port 7860",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("run_dir", type=Path, help="a run directory made by `mllabs run`")
    demo.add_argument("--host", default="127.0.0.1",
                      help="address to bind (default: 127.0.0.1, this machine only; 0.0.0.0 "
                           "opens it to your network)")
    demo.add_argument("--port", type=int, help="port (default: the first free one from 7860)")
    demo.add_argument("--share", action="store_true",
                      help="also publish it through a public gradio.live address (off unless given)")

    exp = sub.add_parser(
        "export", help="a finished run's network as ONNX, with its preprocessing as JSON",
        description="Export the network `mllabs predict` uses as ONNX (opset 20, free batch size) "
                    "and write the preprocessing it needs as JSON beside it; `mllabs predict "
                    "RUN_DIR ... --runtime onnx` then runs it in onnxruntime. Needs the extra: "
                    "pip install 'mllabs[onnx]'.",
        epilog="examples:\n  mllabs export runs/mnist-lenet/<run>\n"
               "  mllabs export runs/flowers/<run> --out flowers.onnx",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    exp.add_argument("run_dir", type=Path, help="a run directory made by `mllabs run`")
    exp.add_argument("--format", choices=("onnx",), default="onnx", help="(default: onnx)")
    exp.add_argument("--out", type=Path, metavar="FILE",
                     help="where to write the .onnx (default: RUN_DIR/export/model.onnx, where "
                          "predict --runtime onnx looks); the .json goes beside it")

    rep = sub.add_parser("report", help="re-render a run's report.md and report.html")
    rep.add_argument("run_dir", type=Path)

    cfg = sub.add_parser("config", help="show a lab's config keys, types and profile values")
    cfg.add_argument("lab")
    cfg.add_argument("--profile", default="default", metavar="PROFILE")

    summ = sub.add_parser(
        "summary", help="a lab's network(s) layer by layer: shapes, parameters, operation counts",
        description="Build the lab's network(s) for the profile and --set values (no data, no "
                    "training) and print, per layer, the output shape, parameters, "
                    "multiplications, additions and comparisons for one sample, with totals.",
        epilog="example:\n  mllabs summary mnist-cnn --profile quick --set filters=16",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    summ.add_argument("lab", help="lab name (see `mllabs list`)")
    summ.add_argument("--profile", default="default", metavar="PROFILE")
    summ.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                      help="override a config value (repeatable)")
    summ.add_argument("--json", action="store_true", help="print the rows as JSON")

    ops = sub.add_parser(
        "ops", help="multiplications and additions of one layer, with the working",
        description="How many multiplications and additions one layer performs on a batch, "
                    "worked out step by step: output shape, cost per output element, totals, "
                    "parameters.",
        epilog="examples:\n"
               "  mllabs ops conv --input 10,3,224,224 --out-channels 64 --kernel 3 --stride 1 "
               "--padding 1\n"
               "  mllabs ops conv --input 10,3,224,224 --out-channels 64 --kernel 3 --padding 1 "
               "--no-bias\n"
               "  mllabs ops dense --input 10,512 --out-features 10\n"
               "  mllabs ops pool --input 10,64,112,112 --kernel 2 --stride 2 --kind max",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ops_sub = ops.add_subparsers(dest="layer", metavar="LAYER")
    ops_sub.required = True
    raw = argparse.RawDescriptionHelpFormatter
    conv = ops_sub.add_parser(
        "conv", help="a 2-D convolution", formatter_class=raw,
        description="Multiplications and additions of a 2-D convolution on a batch: each output "
                    "element is C_in/groups·k_h·k_w products summed (+1 addition for the bias).",
        epilog="example:\n  mllabs ops conv --input 10,3,224,224 --out-channels 64 --kernel 3 "
               "--stride 1 --padding 1\n  (10×64×224×224 outputs, 27 × and 27 + each: "
               "867,041,280 of each; 1,792 parameters)")
    conv.add_argument("--input", required=True, metavar="N,C,H,W", help="batch, channels, height, width")
    conv.add_argument("--out-channels", required=True, type=int, metavar="C_OUT", help="number of filters")
    conv.add_argument("--kernel", required=True, metavar="K[,KW]", help="kernel size (square, or height,width)")
    conv.add_argument("--stride", default="1", metavar="S[,SW]", help="(default: 1)")
    conv.add_argument("--padding", default="0", metavar="P[,PW]", help="zeros added on each side (default: 0)")
    conv.add_argument("--groups", type=int, default=1, help="channel groups (default: 1)")
    conv.add_argument("--no-bias", action="store_true", help="a convolution without bias")
    dense = ops_sub.add_parser(
        "dense", help="a fully connected layer", formatter_class=raw,
        description="Multiplications and additions of a fully connected layer on a batch.",
        epilog="example:\n  mllabs ops dense --input 10,512 --out-features 10 --no-bias")
    dense.add_argument("--input", required=True, metavar="N,F", help="batch, input features")
    dense.add_argument("--out-features", required=True, type=int, metavar="OUT")
    dense.add_argument("--no-bias", action="store_true", help="a layer without bias")
    pool = ops_sub.add_parser(
        "pool", help="max or average pooling", formatter_class=raw,
        description="Comparisons (max) or additions and multiplications (average) of a pooling "
                    "layer on a batch.",
        epilog="example:\n  mllabs ops pool --input 10,64,112,112 --kernel 2 --stride 2 --kind max")
    pool.add_argument("--input", required=True, metavar="N,C,H,W", help="batch, channels, height, width")
    pool.add_argument("--kernel", required=True, metavar="K[,KW]", help="window size")
    pool.add_argument("--stride", metavar="S[,SW]", help="(default: the window size)")
    pool.add_argument("--padding", default="0", metavar="P[,PW]", help="(default: 0)")
    pool.add_argument("--kind", default="max", choices=("max", "avg"), help="(default: max)")
    for p in (conv, dense, pool):
        p.add_argument("--json", action="store_true", help="print the counts as JSON")

    runs = sub.add_parser("runs", help="list, show, remove or re-index the recorded runs",
                          description="Every run is recorded in <out>/mllabs.db (SQLite). "
                                      "KEY in --where and --sort is a metric, a config key, or "
                                      "lab/status/seed/profile/sweep.",
                          epilog="examples:\n  mllabs runs list --lab mnist-lenet --sort test_accuracy:desc --limit 5\n"
                                 "  mllabs runs list --where optimizer=adam --where status=completed\n"
                                 "  mllabs runs show 20261123-0631\n  mllabs runs rm 20261123-0631 --yes\n"
                                 "  mllabs runs reindex",
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="ACTION")
    runs_sub.required = True
    listing = runs_sub.add_parser("list", help="a table of runs, newest first")
    listing.add_argument("--lab", help="only this lab's runs")
    listing.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                         help="only runs where KEY equals VALUE (repeatable)")
    listing.add_argument("--sort", metavar="KEY[:desc]", help="order by a metric or config key")
    listing.add_argument("--limit", type=int, metavar="N", help="at most N rows")
    listing.add_argument("--json", action="store_true", help="print the rows as JSON")
    show = runs_sub.add_parser("show", help="one run's config, metrics and directory")
    show.add_argument("run_id", metavar="ID", help="a run id (or a unique start of one)")
    show.add_argument("--json", action="store_true")
    remove = runs_sub.add_parser("rm", help="delete a run's row and its directory")
    remove.add_argument("run_id", metavar="ID")
    remove.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    runs_sub.add_parser("reindex", help="rebuild the database from the run directories")
    for p in (listing, show, remove, runs_sub.choices["reindex"]):
        p.add_argument("--out", type=Path, default=Path("runs"), help="runs folder (default: runs)")

    sw = sub.add_parser(
        "sweep", help="run a lab over a grid of config values × seeds and compare the cells",
        description="Expand the grid (every combination of the --grid values, times --seeds), run "
                    "each cell as its own run in parallel worker processes, skip cells that "
                    "already finished (so an interrupted sweep resumes when run again), and write "
                    "a comparison report to <out>/sweeps/<lab>-<id>/.",
        epilog="examples:\n  mllabs sweep mnist-lenet --grid optimizer=sgd,adam --grid lr=0.1,0.01 --seeds 3\n"
               "  mllabs sweep auto-mpg --grid hidden=64,64/128,128 --profile quick --jobs 2\n"
               "  mllabs sweep mnist-lenet --grid lr=0.1,0.01 --executor ray --address auto",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sw.add_argument("lab", help="lab name (see `mllabs list`)")
    sw.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                    help="a config key and its values, comma-separated (repeatable); for a "
                         "list-valued key separate the values with '/': hidden=64,64/128,128")
    sw.add_argument("--seeds", type=int, default=1, metavar="N", help="seeds per cell (default: 1)")
    sw.add_argument("--seed", type=int, default=0, help="first seed (default: 0)")
    sw.add_argument("--profile", default="default", metavar="PROFILE")
    sw.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="a config value shared by every cell (repeatable)")
    sw.add_argument("--jobs", type=int, metavar="N", help="cells at a time (default: cores / --threads)")
    sw.add_argument("--threads", type=int, default=1, metavar="T", help="threads per run (default: 1)")
    sw.add_argument("--executor", default="local", choices=("local", "ray"),
                    help="local worker processes, or tasks on a Ray cluster (default: local)")
    sw.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    sw.add_argument("--metric", help="the metric to compare (default: the lab's first)")
    sw.add_argument("--device", choices=DEVICES)
    sw.add_argument("--out", type=Path, default=Path("runs"), help="runs folder (default: runs)")
    sw.add_argument("--json", action="store_true", help="print the sweep's result as JSON")
    _data_dir_arg(sw)

    cmp_ = sub.add_parser("compare", help="the sweep report for runs you choose",
                          description="Group the runs by the config values that differ between "
                                      "them (seeds pooled) and write the comparison report.")
    cmp_.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    cmp_.add_argument("--metric", help="the metric to compare (default: the first in metrics.json)")
    cmp_.add_argument("--out", type=Path, default=Path("runs"), help="runs folder (default: runs)")
    cmp_.add_argument("--json", action="store_true")

    data = sub.add_parser("data", help="list, verify, locate or fetch the datasets")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    data_sub.required = True
    for action, text in (("list", "every dataset, its files and where it is found"),
                         ("verify", "check every file's sha256"),
                         ("path", "print the folder a dataset is read from"),
                         ("fetch", "download missing datasets into the cache (verified)")):
        p = data_sub.add_parser(action, help=text)
        p.add_argument("names", nargs="*" if action != "path" else 1, metavar="NAME",
                       help="dataset name(s); default: all")
        _data_dir_arg(p)
    return parser


def _data_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path,
                        help="folder laid out like shared/data (default: $MLLABS_DATA, then the cache)")


SMALLER = "choose a smaller network, batch or image size with --set"  # what to do when memory runs out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    warnings.formatwarning = one_line_warning
    try:
        return COMMANDS[args.command](args, argv)
    except UserError as exc:
        if args.debug:
            raise
        print(f"mllabs: error: {exc}", file=sys.stderr)
        return 2
    except (NotADirectoryError, IsADirectoryError, FileExistsError, PermissionError) as exc:
        if args.debug:
            raise
        # a path the user gave (--out, --output, a run directory) that is the wrong kind of thing
        what = {NotADirectoryError: "is not a folder (a file is in the way)",
                IsADirectoryError: "is a folder where a file was expected",
                FileExistsError: "exists and is not a folder",
                PermissionError: "cannot be written or read (permission denied)"}[type(exc)]
        where = Path(exc.filename) if exc.filename else None
        if isinstance(exc, NotADirectoryError) and where is not None:
            # name the file that is in the way, not the folder that was to be made inside it
            where = next((p for p in [where, *where.parents] if p.is_file()), where)
        print(f"mllabs: error: {where or exc} {what}; choose another path", file=sys.stderr)
        return 2
    except MemoryError:
        if args.debug:
            raise
        print(f"mllabs: error: not enough memory; {SMALLER}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mllabs: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug in mllabs, not the user's input
        if args.debug:
            raise
        if isinstance(exc, RuntimeError) and "allocate" in str(exc):  # torch's out-of-memory
            print(f"mllabs: error: not enough memory ({str(exc).splitlines()[0][:120]}); {SMALLER}",
                  file=sys.stderr)
            return 2
        print(f"mllabs: internal error: {type(exc).__name__}: {exc} (this is a bug in mllabs; "
              "re-run with --debug for the traceback and report it)", file=sys.stderr)
        return 1


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings as the user sees them: what happened, not the source line that noticed it."""
    return f"mllabs: warning: {message}\n"


# ---------------------------------------------------------------------------- commands

def cmd_list(args, argv) -> int:
    from mllabs.labs import labs_summary

    for name, line in labs_summary():
        print(f"{name:<18} {line}")
    return 0


def cmd_run(args, argv) -> int:
    from mllabs.labs import LABS, get_lab
    from mllabs.runner import execute

    names = list(LABS) if args.lab == "all" else [args.lab]
    if args.lab == "all" and args.sets:
        raise UserError("--set applies to one lab; run the lab by name to override its config")
    if args.lab == "all" and args.resume:
        raise UserError("--resume continues one run; give the lab by name: "
                        "mllabs run LAB --resume RUN_DIR")
    if args.max_seconds is not None and not 0 < args.max_seconds < float("inf"):
        raise UserError(f"--max-seconds {args.max_seconds:g} is not a positive number of "
                        "seconds")
    if args.nproc is not None and args.nproc < 1:
        raise UserError(f"--nproc {args.nproc}: give the number of processes, 1 or more")
    if args.nproc is not None and args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        if args.lab == "all":
            raise UserError("--nproc trains one lab; give the lab by name")
        from mllabs import distributed
        return distributed.launch(argv, args.nproc, args.nnodes, args.rdzv_endpoint)
    results, skipped = [], []
    running = [n for n in names if not (args.lab == "all" and getattr(get_lab(n), "USER_DATA", False))]
    if not (args.quiet or args.sets or args.resume) and os.environ.get("RANK", "0") == "0":
        announce_expected_time(running, args.profile or "default", args.device)
    for name in names:
        if name not in running:
            skipped.append(name)  # its data is the user's to bring; `all` cannot supply it
            continue
        command = "mllabs " + shlex.join(["run", name, *argv[argv.index(args.lab) + 1:]]
                                         if args.lab == "all" else argv)
        position = (running.index(name) + 1, len(running)) if args.lab == "all" else None
        results.append(execute(name, profile=args.profile, sets=args.sets, seed=args.seed,
                               device=args.device, out=args.out, data_dir=args.data_dir,
                               progress=not (args.quiet or args.json), command=command,
                               resume=args.resume, max_seconds=args.max_seconds, log=args.log,
                               sweep=args.sweep_id, position=position))
        if not args.json and os.environ.get("RANK", "0") == "0":
            print_ending(results[-1], position)  # as it goes: `run all` takes half an hour
    completed = all(r["status"] == "completed" for r in results)
    if os.environ.get("RANK", "0") != "0":  # torchrun's other processes: rank 0 reports
        return 0 if completed else 1
    if args.json:
        print(json.dumps(results if args.lab == "all" else results[0], indent=2))
        return 0 if completed else 1
    for name in skipped:
        print(f"{name}: skipped (it needs your own data: mllabs run {name} --data-dir PATH)")
    print(f"all runs: {args.out / 'index.html'}")
    return 0 if completed else 1


def announce_expected_time(labs: list[str], profile: str, device: str | None) -> None:
    """Before a long wait: this machine's CPU features and the time expected here (estimate.py)."""
    from mllabs.estimate import announce
    from mllabs.train import resolve_device

    text = announce(labs, profile, resolve_device(device or "auto"))
    if text:
        print("\n".join(f"mllabs: {line}" for line in text.splitlines()), file=sys.stderr, flush=True)


def print_ending(result: dict, position: tuple[int, int] | None) -> None:
    """The closing lines of one lab: status and headline, the report, a predict that works."""
    from mllabs.runner import plain

    tag = f"[{result['lab']} {position[0]}/{position[1]}]" if position else f"[{result['lab']}]"
    headline = f": {plain(result['headline'])}" if result.get("headline") else ""
    print(f"{tag} {result['status']} in {result['seconds']:.1f} s{headline}", flush=True)
    print(f"  report:  {Path(result['run_dir']) / 'report.html'}", flush=True)
    if result.get("predict_command"):
        print(f"  predict: {result['predict_command']}", flush=True)
    if result.get("reason"):
        print(f"  {result['reason']}; continue it with: mllabs run {result['lab']} --resume "
              f"{result['run_dir']}", flush=True)


def finished_run(run_dir: Path):
    """The lab module of a completed run; a missing, unfinished or damaged run is refused in one
    line (predict, demo and export all start here)."""
    from mllabs.labs import get_lab
    from mllabs.files import read_json

    config = read_json(run_dir / "config.json")
    metrics = read_json(run_dir / "metrics.json")
    if not isinstance(config, dict) or not isinstance(metrics, dict):
        raise UserError(f"{run_dir}: config.json or metrics.json is damaged (not a JSON object); "
                        "re-run the lab")
    lab = get_lab(config.get("lab", run_dir.parent.name))
    status = metrics.get("status")
    if status is None:
        raise UserError(f"{run_dir}/metrics.json has no status: the run was cut off or the file "
                        "damaged; use a completed run (see `mllabs runs list`)")
    if status != "completed":
        raise UserError(f"{run_dir} ended {status}, so it has no model to predict with; "
                        "use a completed run (see runs/index.html)")
    return lab


def cmd_predict(args, argv) -> int:
    from mllabs import checkpoints

    lab = finished_run(args.run_dir)
    if args.runtime == "onnx":
        from mllabs import export

        reason = export.refusal(lab, checkpoints.load_spec(args.run_dir, lab.NAME))
        if reason:
            raise UserError(reason.replace("to export", "for --runtime onnx"))
        export.need("onnxruntime")
    if args.output is not None:
        if args.output.is_dir():
            raise UserError(f"--output {args.output} is a folder; give a file name, e.g. "
                            f"{args.output / 'predictions.csv'}")
        if any(args.output.resolve() == Path(p).resolve() for p in args.inputs or []):
            raise UserError(f"--output {args.output} is one of the inputs; writing there would replace "
                            "it, so choose another file name")
    if args.values is not None:
        if not hasattr(lab, "predict_values"):
            raise UserError(f"{lab.NAME} predicts from files, not from --values; pass INPUT files")
        if args.inputs:
            raise UserError("give either INPUT files or --values, not both")
        with checkpoints.runtime(args.runtime):
            results = lab.predict_values(args.run_dir, args.values)
    else:
        if not args.inputs:
            raise UserError("nothing to predict: pass INPUT files"
                            + (" or --values" if hasattr(lab, "predict_values") else ""))
        for path in args.inputs:
            if not path.is_file():
                raise UserError(f"{path} does not exist or is not a file")
        with checkpoints.runtime(args.runtime):
            results = lab.predict(args.run_dir, args.inputs)
    if args.output:
        write_predictions_csv(args.output, results)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            top = r.get("top")
            extra = "  " + ", ".join(f"{t['label']} {t['probability']:.3f}" for t in top) if top else ""
            extra += "".join(f"\t{v}" for k, v in r.items() if k not in ("input", "prediction", "top"))
            print(f"{r['input']}\t{r['prediction']}{extra}")
        if args.output:
            print(f"wrote {args.output}", file=sys.stderr)
    return 0


def cmd_demo(args, argv) -> int:
    from mllabs import demo

    finished_run(args.run_dir)  # predict's one-line refusal before gradio is even imported
    demo.import_gradio()
    if args.port is not None and not 0 < args.port < 65536:
        raise UserError(f"--port {args.port} is not a port number (1-65535)")
    return demo.serve(args.run_dir, args.host, args.port, args.share)


def cmd_export(args, argv) -> int:
    from mllabs import export

    lab = finished_run(args.run_dir)
    out = args.out if args.out is not None else export.default_path(args.run_dir)
    meta = export.export_onnx(args.run_dir, lab, out)
    export.print_summary(meta, out)
    return 0


def write_predictions_csv(path: Path, results: list[dict]) -> None:
    from mllabs.files import atomic_write_text

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    # input, prediction, then whatever else the lab says of each input (cluster segment, table)
    columns = ["input", "prediction"] + list(dict.fromkeys(
        k for r in results for k in r if k not in ("input", "prediction", "top")))
    writer.writerow(columns)
    writer.writerows([[r.get(c, "") for c in columns] for r in results])
    atomic_write_text(path, buf.getvalue(), hint="choose another --output")


def cmd_report(args, argv) -> int:
    from mllabs.report import render_run, write_index

    html = render_run(args.run_dir)
    write_index(args.run_dir.resolve().parent.parent)
    print(html)
    return 0


def cmd_config(args, argv) -> int:
    import typing

    from mllabs.config import _type_name, build_config, field_specs, profile_names
    from mllabs.labs import get_lab

    lab = get_lab(args.lab)
    cfg = build_config(lab.Config, lab.PROFILES, args.profile)
    hints = typing.get_type_hints(lab.Config)
    print(f"{args.lab} — profile {args.profile}; change with --set KEY=VALUE")
    print(f"  profiles: {', '.join(profile_names(lab.PROFILES))}")
    fields = field_specs(lab.Config)
    width = max(len(f.name) for f in fields)
    for f in fields:
        value = getattr(cfg, f.name)
        shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
        choices = f.metadata.get("choices")
        shown_choices = [c if c != "" else '""' for c in choices or ()]  # "" = unset
        extra = f" [{'|'.join(shown_choices)}]" if choices else ""
        print(f"  {f.name:<{width}} {str(shown):<10} {_type_name(hints[f.name]):<16} "
              f"{f.metadata.get('help', '')}{extra}")
    return 0


def cmd_summary(args, argv) -> int:
    from mllabs.config import build_config
    from mllabs.labs import get_lab
    from mllabs.runner import lab_networks
    from mllabs.models.ops import CONVENTIONS

    lab = get_lab(args.lab)
    cfg = build_config(lab.Config, lab.PROFILES, args.profile, args.sets)
    tables = lab_networks(lab, cfg)
    if args.json:
        print(json.dumps([{"network": name, "input": list(shape), "rows": rows}
                          for name, shape, rows in tables], indent=2))
        return 0
    for name, shape, rows in tables:
        print(f"{name}: input {'×'.join(map(str, shape))} (one sample)")
        print(text_table(rows))
        print()
    print(textwrap.fill(CONVENTIONS, 100))
    return 0


def text_table(rows: list[dict]) -> str:
    """Fixed-width columns: text left-aligned, numbers right-aligned with thousands commas."""
    columns = list(rows[0])
    cells = [[f"{r[c]:,}" if isinstance(r[c], int) else str(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    numeric = [isinstance(rows[0][c], int) for c in columns]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(columns), rule, *map(line, cells[:-1]), rule, line(cells[-1])])


def cmd_ops(args, argv) -> int:
    from mllabs.models import ops

    if args.layer == "conv":
        result = ops.conv2d(_numbers(args.input, "--input"), args.out_channels,
                            _pair(args.kernel, "--kernel"), _pair(args.stride, "--stride"),
                            _pair(args.padding, "--padding", zero=True), args.groups,
                            bias=not args.no_bias)
    elif args.layer == "dense":
        result = ops.dense(_numbers(args.input, "--input"), args.out_features,
                           bias=not args.no_bias)
    else:
        result = ops.pool2d(_numbers(args.input, "--input"), _pair(args.kernel, "--kernel"),
                            _pair(args.stride, "--stride") if args.stride else None,
                            _pair(args.padding, "--padding", zero=True), args.kind)
    print(json.dumps(result.to_dict(), indent=2) if args.json else "\n".join(result.working))
    return 0


def _numbers(text: str, option: str, zero: bool = False) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"{option} {text!r} is not a comma-separated list of whole numbers, "
                        "e.g. 10,3,224,224") from None
    bad = [v for v in values if v < 0 or (v == 0 and not zero)]
    if bad:
        raise UserError(f"{option} {text!r} holds {bad[0]}; sizes must be "
                        + ("0 or more" if zero else "positive"))
    return values


def _pair(text: str, option: str, zero: bool = False) -> tuple[int, int]:
    """One number for both height and width, or two (height,width)."""
    values = _numbers(text, option, zero)
    if len(values) not in (1, 2):
        raise UserError(f"{option} takes one number or two (height,width), got {text!r}")
    return (values[0], values[-1])


def cmd_data(args, argv) -> int:
    from mllabs import data

    names = args.names or list(data.DATASETS)
    for name in names:
        data.get(name)  # unknown names fail before any work
    if args.data_command == "path":
        print(data.dataset_dir(names[0], args.data_dir, download=False))
        return 0
    if args.data_command == "fetch":
        for name in names:
            folder = data.dataset_dir(name, args.data_dir, download=True)
            print(f"{name:<16} ok  {folder}")
        return 0
    failures = 0
    for name in names:
        ds = data.get(name)
        if args.data_command == "list":
            where = data.locate(name, args.data_dir)
            files = len(ds.expected())
            found = f"{where[0]}: {where[1]}" if where else "not found (mllabs data fetch " + name + ")"
            print(f"{name:<16} {files:>5} file(s)  {ds.title}\n{'':<16} {found}")
            continue
        result = data.verify(name, args.data_dir)
        failures += not result.ok
        if result.found is None:
            print(f"{name:<16} MISSING  looked in " + ", ".join(map(str, result.looked)))
        elif result.problems:
            print(f"{name:<16} FAILED   {len(result.problems)} problem(s) in {result.found[1]}")
            for p in result.problems[:10]:
                print(f"{'':<18}{p.kind}: {p.path} {p.detail}")
        else:
            print(f"{name:<16} ok       {len(ds.expected())} file(s) verified in {result.found[1]}")
    if failures:
        raise UserError(f"{failures} dataset(s) failed verification; re-fetch them with "
                        "`mllabs data fetch NAME` or fix the mirror")
    return 0



def cmd_runs(args, argv) -> int:
    from mllabs import rundb

    root = args.out
    if root.exists() and not root.is_dir():
        raise UserError(f"--out {root} is a file, not a runs folder; pass the folder your runs "
                        "went to")
    if args.runs_command != "reindex" and not (root / rundb.DB_NAME).exists():
        if not any(root.glob("*/*/config.json")):  # not a runs folder: leave no database in it
            if args.runs_command == "list" and not args.json:
                print(f"no runs in {root} (no {rundb.DB_NAME} and no run directories there; "
                      "pass the --out your runs went to)")
                return 0
            if args.runs_command == "list":
                print("[]")
                return 0
            raise UserError(f"no runs in {root} (no {rundb.DB_NAME} and no run directories there); "
                            "pass the --out your runs went to")
        rundb.reindex(root)  # runs made before the database existed
    if args.runs_command == "reindex":
        counts = rundb.reindex(root)
        print(f"{root / rundb.DB_NAME}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
        return 0
    if args.runs_command == "list":
        if args.lab:
            from mllabs.labs import get_lab

            get_lab(args.lab)  # an unknown lab is an error that lists the labs, not "no runs"
        if args.limit is not None and args.limit < 1:
            raise UserError(f"--limit {args.limit}: give how many runs to show, 1 or more")
        rows = rundb.list_runs(root, args.lab, rundb.parse_where(args.where), args.sort, args.limit)
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        if not rows:
            print(f"no runs in {root}" + (" matching" if args.lab or args.where else ""))
            return 0
        _print_table(_runs_table(rows, (args.sort or "").partition(":")[0]))
        return 0
    if args.runs_command == "show":
        run = rundb.get_run(root, args.run_id)
        if args.json:
            print(json.dumps(run, indent=2))
            return 0
        print(f"{run['id']}  {run['lab']}  {run['status']}  {run['path']}")
        print(f"started {run['started']}, ended {run['ended'] or '-'}, {run['seconds'] or 0:.1f} s"
              + (f", sweep {run['sweep']}" if run["sweep"] else ""))
        print("metrics:")
        for k, v in run["metrics"].items():
            print(f"  {k:<28} {v}")
        print("config:")
        for k, v in run["config"].items():
            print(f"  {k:<28} {v}")
        return 0
    run = rundb.get_run(root, args.run_id)  # rm
    if not args.yes:
        if not sys.stdin.isatty():
            raise UserError(f"removing run {run['id']} needs confirmation; add --yes")
        answer = input(f"remove run {run['id']} ({run['lab']}, {run['status']}) and {run['path']}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing removed")
            return 1
    rundb.remove_run(root, run["id"])
    print(f"removed {run['id']} and {run['path']}")
    return 0


def _runs_table(rows: list[dict], sort_key: str = "") -> list[dict]:
    """`runs list` as table rows. The settings column shows the config keys whose values differ
    between the listed runs of a lab (the seed has its own column), so a sweep's cells can be told
    apart; metric values are padded per metric so the columns line up."""
    varying: dict[str, list[str]] = {}
    for lab in {r["lab"] for r in rows}:
        configs = [r["config"] for r in rows if r["lab"] == lab]
        keys = dict.fromkeys(k for c in configs for k in c if k not in ("seed", "device", "threads"))
        varying[lab] = [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in configs}) > 1][:4]

    def setting(value) -> str:
        return ",".join(map(str, value)) if isinstance(value, list) else str(value)

    cells = []
    for r in rows:
        shown = {k: v for k, v in r["metrics"].items() if isinstance(v, (int, float))}
        headline = _lab_headline(r["lab"])  # the lab's own headline metric before the rest
        lead = [k for k in (sort_key, headline) if k and k in shown]
        first = list(dict.fromkeys(lead + [k for k in shown if k not in lead]))[:max(3, len(lead))]
        cells.append([f"{k}={shown[k]:.4g}" for k in first])
    width = [max((len(c[i]) for c in cells if len(c) > i), default=0) for i in range(3)]
    table = []
    for r, metric_cells in zip(rows, cells):
        row = {"id": r["id"], "lab": r["lab"], "status": r["status"], "seed": r["seed"],
               "seconds": f"{r['seconds']:.1f}" if r["seconds"] is not None else ""}
        if any(varying.values()):
            row["settings"] = " ".join(f"{k}={setting(r['config'].get(k))}" for k in varying[r["lab"]])
        row["metrics"] = "  ".join(c.ljust(w) for c, w in zip(metric_cells, width)).rstrip()
        report = Path(r["path"]) / "report.html"
        row["report"] = str(report) if report.exists() else "-"
        table.append(row)
    return table


def _lab_headline(lab: str) -> str:
    from mllabs.labs import LABS, get_lab

    return getattr(get_lab(lab), "HEADLINE", "") if lab in LABS else ""


def _print_table(rows: list[dict]) -> None:
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in columns).rstrip())


def cmd_sweep(args, argv) -> int:
    from mllabs import sweep
    from mllabs.labs import get_lab

    lab = get_lab(args.lab)  # an unknown lab fails here, with the list of labs
    if args.seeds < 1 or (args.jobs is not None and args.jobs < 1) or args.threads < 1:
        raise UserError("--seeds, --jobs and --threads must be at least 1")
    spec = sweep.Spec(args.lab, sweep.parse_grid(args.grid), seeds=args.seeds, seed=args.seed,
                      profile=args.profile, sets=args.sets,
                      data_dir=str(args.data_dir) if args.data_dir else None, device=args.device)
    sweep.check_cells(spec, lab.Config, lab.PROFILES, getattr(lab, "UNUSED_KEYS", {}))
    result = sweep.run_sweep(spec, args.out, jobs=args.jobs, threads=args.threads,
                             executor=args.executor, address=args.address, metric=args.metric)
    result.pop("rows", None)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(f"sweep {result['sweep']}: best {result['best_cell']} ({result['metric']} "
              f"{result['best_mean']:.4f} ± {result['best_std']:.4f}), {result['failed']} of "
              f"{result['cells']} cells not completed, {result['wall_seconds']:.0f} s"
              if result["best_cell"] else f"sweep {result['sweep']}: no cell completed")
        print(f"  report: {result['report']}")
    return 0 if result["best_cell"] else 1


def cmd_compare(args, argv) -> int:
    from mllabs import sweep

    result = sweep.compare(args.out, args.run_dirs, metric=args.metric)
    result.pop("rows", None)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(f"best {result['best_cell']} ({result['metric']} {result['best_mean']:.4f})"
              if result["best_cell"] else "no run completed with a numeric metric")
        print(f"  report: {result['report']}")
    return 0


COMMANDS = {"list": cmd_list, "run": cmd_run, "predict": cmd_predict, "report": cmd_report,
            "config": cmd_config, "data": cmd_data, "summary": cmd_summary, "ops": cmd_ops,
            "runs": cmd_runs, "sweep": cmd_sweep, "compare": cmd_compare, "demo": cmd_demo,
            "export": cmd_export}

if __name__ == "__main__":
    raise SystemExit(main())
