"""Data-parallel training across processes: `mllabs run LAB --nproc N` through torchrun.

torchrun starts N copies of the same `mllabs run` command and sets RANK, WORLD_SIZE and the
rendezvous variables. Every process holds the whole (in-memory) training set and draws the
same shuffled order; each global batch is cut into N strided shards, one per process, so the
per-process batch is the global batch divided by N. DistributedDataParallel averages the
gradients, and the loss of each shard is scaled so that the average equals the gradient of
the whole batch's mean loss: the updates match a single process with the same global batch
(up to summation order). Epoch metrics are summed across processes; evaluation runs on every
process with identical weights. Only rank 0 writes the run directory.
"""

from __future__ import annotations

import os
import subprocess
import sys

import torch
import torch.distributed as dist

from mllabs.errors import UserError


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init(device: torch.device) -> bool:
    """Join the process group torchrun prepared (gloo on CPU, nccl on CUDA); False when this
    process was not started by torchrun."""
    if world_size() <= 1 or active():
        return active()
    if not dist.is_available():
        raise UserError("this torch build has no torch.distributed; run without --nproc")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return True


def shard(indices: torch.Tensor) -> torch.Tensor:
    """This process's share of one global batch (every N-th sample from its rank on)."""
    return indices[rank()::world_size()] if active() else indices


def check_batch_size(batch_size: int) -> None:
    if active() and batch_size < world_size():
        raise UserError(f"batch_size={batch_size} is smaller than --nproc {world_size()}; "
                        "every process needs at least one example per batch")


def loss_scale(local: int, total: int) -> float:
    """DDP averages gradients over processes; scaling each shard's mean loss by
    local × N / total makes that average the gradient of the global batch's mean loss,
    also when the last batch does not split evenly."""
    return local * world_size() / total if active() else 1.0


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    if active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    if not active():
        return model
    ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def finish() -> None:
    if active():
        dist.barrier()
        dist.destroy_process_group()


def launch(argv: list[str], nproc: int, nnodes: int = 1, rdzv_endpoint: str | None = None,
           threads: int | None = None) -> int:
    """Re-run this very command under torchrun with `nproc` processes per node."""
    if nproc < 1 or nnodes < 1:
        raise UserError("--nproc and --nnodes must be at least 1")
    if nnodes > 1 and not rdzv_endpoint:
        raise UserError("--nnodes > 1 needs --rdzv-endpoint HOST:PORT (the same on every machine)")
    inner = _strip(argv)
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}",
           f"--nnodes={nnodes}"]
    if rdzv_endpoint:
        cmd += ["--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}"]
    else:
        cmd += ["--standalone"]
    cmd += ["-m", "mllabs", *inner]
    env = dict(os.environ)
    # N processes on the same cores: split them, or each would start one thread per core
    per_process = threads or max(1, (os.cpu_count() or 1) // nproc)
    env.setdefault("OMP_NUM_THREADS", str(per_process))
    return subprocess.call(cmd, env=env)


def _strip(argv: list[str]) -> list[str]:
    """argv without the launcher's own options (--nproc N, --nnodes N, --rdzv-endpoint E)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in ("--nproc", "--nnodes", "--rdzv-endpoint"):
            skip = "=" not in arg
            continue
        out.append(arg)
    return out
