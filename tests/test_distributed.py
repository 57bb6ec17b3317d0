"""--nproc: two CPU processes through torchrun end where one process with the same global batch does."""

import json
import os
import subprocess
import sys

import pytest

from mllabs import distributed


def run_json(tmp_path, *extra):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "mllabs", "run", "mnist-lenet", "--profile", "quick",
                          "--set", "epochs=2", "--set", "train_size=2000", "--out", str(tmp_path / "runs"),
                          "--json", *extra], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)  # only rank 0 prints: stdout is one JSON object


def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    single = run_json(tmp_path)
    ddp = run_json(tmp_path, "--nproc", "2")
    # LeNet-5 has no batch norm or dropout, so the only difference is the order of summation
    assert ddp["metrics"]["test_accuracy"] == pytest.approx(single["metrics"]["test_accuracy"], abs=2e-3)
    assert ddp["metrics"]["test_loss"] == pytest.approx(single["metrics"]["test_loss"], rel=2e-3)
    runs = sorted(p.name for p in (tmp_path / "runs" / "mnist-lenet").iterdir())
    assert len(runs) == 2  # rank 1 wrote nothing under --out


def test_shards_and_loss_scale_reassemble_the_global_batch(monkeypatch):
    import torch

    monkeypatch.setattr(distributed, "active", lambda: True)
    monkeypatch.setenv("WORLD_SIZE", "3")
    idx = torch.arange(10)
    shards = []
    for rank in range(3):
        monkeypatch.setenv("RANK", str(rank))
        shards.append(distributed.shard(idx))
    assert sorted(torch.cat(shards).tolist()) == list(range(10))
    # DDP averages over 3 processes: the scaled shard means must average to the global mean
    losses = torch.rand(10, generator=torch.Generator().manual_seed(0))
    scaled = [losses[s].mean() * distributed.loss_scale(len(s), 10) for s in shards]
    assert float(sum(scaled) / 3) == pytest.approx(float(losses.mean()))


def test_launcher_strips_its_own_options_and_checks_them():
    assert distributed._strip(["run", "mnist-lenet", "--nproc", "2", "--nnodes=1", "--seed", "3"]) == \
        ["run", "mnist-lenet", "--seed", "3"]
    from mllabs.errors import UserError
    with pytest.raises(UserError, match="rdzv-endpoint"):
        distributed.launch(["run", "mnist-lenet"], nproc=2, nnodes=2)
