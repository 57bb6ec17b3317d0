"""Safety: checkpoints never run code or load into the wrong network, a failing write never
damages what was on disk, paths never leave the run directory, and a run too big for memory
says so before it trains."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from torch import nn

from mllabs import files, memory
from mllabs.checkpoints import load_checkpoint, load_weights, save_checkpoint
from mllabs.config import TrainConfig
from mllabs.errors import DataError, UserError
from mllabs.labs import _mnist
from mllabs.models.lenet import LeNet5
from mllabs.models.mlp import MLP
from mllabs.files import atomic_write_bytes, inside
from mllabs.runs import Run
from mllabs.session import Session
from mllabs.train import fit


class Planted:
    """Unpickling this would create `marker`: proof that code ran while loading."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant(path: Path, marker: Path) -> Path:
    torch.save({"model": Planted(marker)}, path)
    return path


def test_pickled_code_in_a_checkpoint_is_refused_unrun(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(UserError, match="holds pickled Python objects") as exc:
        load_checkpoint(plant(tmp_path / "evil.pt", marker))
    assert "evil.pt" in str(exc.value) and len(str(exc.value).splitlines()) == 1
    assert not marker.exists()


def finished_mnist_run(folder: Path) -> Path:
    """A run directory as mnist-lenet leaves it, without the training."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"lab": "mnist-lenet", "profile": "quick"}))
    (folder / "metrics.json").write_text(json.dumps({"lab": "mnist-lenet", "status": "completed"}))
    _mnist.save_classifier(folder, "mnist-lenet", LeNet5("relu"), "lenet5", {"activation": "relu"}, pad_to=32)
    (folder / "digit.png").write_bytes(b"not needed: the checkpoint fails first")
    return folder


def test_predict_refuses_a_tampered_checkpoint_with_one_line_and_exit_2(tmp_path, capsys):
    run = finished_mnist_run(tmp_path / "run")
    marker = tmp_path / "ran"
    plant(run / "checkpoints" / "model.pt", marker)
    assert run_cli("predict", run, run / "digit.png") == 2
    err = capsys.readouterr().err.strip()
    assert "model.pt" in err and "can load safely" in err and len(err.splitlines()) == 1
    assert not marker.exists()


@pytest.mark.parametrize("foreign, fragment", [
    (MLP(1024, (32,), 10), "conv"),               # another architecture: keys missing
    (LeNet5("relu"), "size mismatch"),            # the same one, another layer size
])
def test_predict_refuses_weights_of_another_network(tmp_path, capsys, foreign, fragment):
    run = finished_mnist_run(tmp_path / "run")
    if isinstance(foreign, LeNet5):
        state = foreign.state_dict()
        state[next(iter(state))] = torch.zeros(7, 1, 5, 5)  # conv1 with 7 filters
    else:
        state = foreign.state_dict()
    save_checkpoint(run / "checkpoints" / "model.pt", state)
    assert run_cli("predict", run, run / "digit.png") == 2
    err = capsys.readouterr().err.strip()
    assert "model.pt does not fit" in err and "re-run the lab" in err and len(err.splitlines()) == 1


def test_load_weights_names_the_file_and_the_mismatch(tmp_path):
    save_checkpoint(tmp_path / "w.pt", MLP(5, (16,), 1).state_dict())
    with pytest.raises(UserError, match=r"w\.pt does not fit the MLP network \(size mismatch for "
                                        r"1\.weight.*re-run the lab"):
        load_weights(MLP(5, (32,), 1), tmp_path / "w.pt")
    load_weights(MLP(5, (16,), 1), tmp_path / "w.pt")  # the matching network loads


def test_a_tampered_resume_state_is_refused(tmp_path):
    marker = tmp_path / "ran"
    plant(tmp_path / "fit-001.pt", marker)
    x = torch.randn(32, 5)
    with pytest.raises(UserError, match="fit-001.pt .*pickled"):
        fit(MLP(5, (4,), 1), (x, x[:, :1]), TrainConfig(epochs=1), loss_fn=nn.functional.mse_loss,
            progress=False, session=Session(state_dir=tmp_path))
    assert not marker.exists()


def test_imagenet_weights_that_fail_their_checksum_are_never_unpickled(tmp_path):
    from mllabs.models.resnet import build, load_pretrained

    marker = tmp_path / "ran"
    plant(tmp_path / "resnet18-f37072fd.pth", marker)
    with pytest.raises(DataError, match="fails its checksum"):
        load_pretrained(build("resnet18", 5), "resnet18", cache_dir=tmp_path)
    assert not marker.exists()


# ---------------------------------------------------------------------------- atomic writes

def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_a_write_that_fails_at_the_rename_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "best.pt", {"w": torch.ones(3)}, epoch=1)

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", full_disk)
    with pytest.raises(OSError, match=r"no space left on device writing .*best\.pt; free space"):
        save_checkpoint(tmp_path / "best.pt", {"w": torch.zeros(3)}, epoch=2)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 1
    assert leftovers(tmp_path) == []


def test_a_write_cut_off_halfway_leaves_the_old_report(tmp_path, monkeypatch):
    run = Run.create(tmp_path, "lab")
    run.write_metrics("completed", {"accuracy": 0.9})
    before = (run.path / "metrics.json").read_bytes()
    real_fdopen = os.fdopen

    class HalfWritten:
        """A file whose disk fills after half of what is written."""

        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            self.fh.write(data[:len(data) // 2])
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fdopen", lambda fd, mode: HalfWritten(real_fdopen(fd, mode)))
    with pytest.raises(OSError):
        run.write_metrics("interrupted", {})
    monkeypatch.undo()
    assert (run.path / "metrics.json").read_bytes() == before
    assert leftovers(run.path) == []


def test_an_interrupt_during_a_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    atomic_write_bytes(tmp_path / "state.pt", b"old")
    monkeypatch.setattr(files.os, "fsync", lambda fd: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(tmp_path / "state.pt", b"new")
    assert (tmp_path / "state.pt").read_bytes() == b"old" and leftovers(tmp_path) == []


# ---------------------------------------------------------------------------- paths

@pytest.mark.parametrize("name", ["../escaped.json", "figures/../../escaped.json", "/tmp/escaped.json"])
def test_names_never_leave_the_run_directory(tmp_path, name):
    run = Run.create(tmp_path / "runs", "lab")
    with pytest.raises(UserError, match="outside the run directory"):
        run.write_json(name, {})
    with pytest.raises(UserError, match="outside the run directory"):
        run.write_history([{"epoch": 1}], name)
    assert not (tmp_path / "runs" / "lab" / "escaped.json").exists()
    assert inside(run.path, "figures/curves.png") == (run.path / "figures" / "curves.png").resolve()


def test_a_symlink_out_of_the_run_is_refused(tmp_path):
    run = Run.create(tmp_path / "runs", "lab")
    (run.path / "link").symlink_to(tmp_path)
    with pytest.raises(UserError, match="outside"):
        inside(run.path, "link/escaped.json")


def test_fit_refuses_a_checkpoint_folder_outside_the_run(tmp_path):
    x = torch.randn(32, 5)
    with pytest.raises(UserError, match="outside the run directory"):
        fit(MLP(5, (4,), 1), (x, x[:, :1]), TrainConfig(epochs=1), loss_fn=nn.functional.mse_loss,
            checkpoint_dir=tmp_path / "run" / ".." / "elsewhere", progress=False,
            session=Session(root=tmp_path / "run"))
    assert not (tmp_path / "elsewhere").exists()


# ---------------------------------------------------------------------------- memory

def photos(n=64, size=48):
    return torch.randint(0, 255, (n, 3, size, size), dtype=torch.uint8), torch.randint(0, 5, (n,))


def small_cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(16, 5))


def test_memory_estimate_grows_with_batch_and_image_size():
    model = small_cnn()
    one = memory.memory_estimate(model, torch.zeros(1, 3, 48, 48), 1)
    assert memory.memory_estimate(model, torch.zeros(1, 3, 48, 48), 64) > 50 * one / 2
    # conv output 16×48×48 floats (+ the ReLU's, the input's): at least 3 × 2 × 147 kB per photo
    assert memory.memory_estimate(model, torch.zeros(1, 3, 96, 96), 1) > 3.5 * one > 3.5 * 6 * 147_000


@pytest.mark.parametrize("free, warned", [(10_000, True), (2**40, False)])
def test_a_run_that_would_not_fit_warns_once_before_training(monkeypatch, capsys, free, warned):
    monkeypatch.setattr(memory, "available_memory", lambda device: free)
    x, y = photos()
    model = small_cnn()
    rng_before = torch.get_rng_state()
    assert memory.warn_if_too_big(model, x[:1].float(), 32, torch.device("cpu"), label="cnn") is warned
    assert torch.equal(torch.get_rng_state(), rng_before)  # the dry pass drew no random numbers
    fit(small_cnn(), (x.float() / 255, y), TrainConfig(epochs=1, batch_size=32),
        loss_fn=nn.functional.cross_entropy, progress=False, label="cnn")
    lines = [line for line in capsys.readouterr().err.splitlines() if "may not fit in memory" in line]
    assert len(lines) == (2 if warned else 0)  # once from the call above, once from fit
    if warned:
        assert "batches of 32 × 3×48×48" in lines[0] and "lower batch_size or image_size" in lines[0]


def test_available_memory_reads_the_machine():
    free = memory.available_memory(torch.device("cpu"))
    assert free is None or 2**20 < free < 2**50
