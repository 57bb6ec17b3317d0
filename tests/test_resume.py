"""Interruption and resume: Ctrl-C / SIGTERM leave a resumable run, --resume ends where an
uninterrupted run ends, --max-seconds stops at an epoch boundary with the report written."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import run_cli
from torch import nn

from mllabs.config import TrainConfig
from mllabs.errors import UserError
from mllabs.runner import _sigterm_as_interrupt, execute
from mllabs.session import OutOfTime, Session
from mllabs.checkpoints import load_checkpoint
from mllabs.train import fit


def problem(n=192, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return x, (x[:, :3].sum(1) > 0).long()


def net(seed=0, hidden=16):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, hidden), nn.ReLU(), nn.Dropout(0.3), nn.Linear(hidden, 2))


class Noise:
    """A batch_transform with its own generator, like PhotoBatches and DigitBatches."""

    def __init__(self):
        self.generator = torch.Generator().manual_seed(7)

    def __call__(self, batch, training):
        return batch + 0.1 * torch.randn(batch.shape, generator=self.generator) if training else batch


class Recorder:
    """Keeps one tensor per update, like models/inspect.py's GradientRecorder; can stop the run."""

    def __init__(self, stop_at=None):
        self.steps, self.epochs, self.stop_at = [], [], stop_at

    def __call__(self, model, epoch):
        if epoch == self.stop_at and not self.epochs.count(epoch):
            raise KeyboardInterrupt  # in the middle of an epoch, as Ctrl-C would be
        self.steps.append(model[0].weight.grad.abs().mean().detach())
        self.epochs.append(epoch)


def train(cfg, seed=0, stop_at=None, hidden=16, session=None):
    model, recorder = net(seed, hidden), Recorder(stop_at)
    result = fit(model, problem(), cfg, loss_fn=nn.functional.cross_entropy, val=problem(64, 1),
                 batch_transform=Noise(), after_backward=recorder, progress=False, session=session)
    return model, result, recorder


@pytest.mark.parametrize("optimizer, schedule", [("adam", "onecycle"), ("nesterov", "piecewise"),
                                                 ("rmsprop", "cosine")])
def test_an_interrupted_fit_resumes_to_exactly_the_uninterrupted_result(tmp_path, optimizer, schedule):
    cfg = dataclasses.replace(TrainConfig(epochs=6, batch_size=32, lr=0.05, seed=3), optimizer=optimizer,
                              schedule=schedule, milestones=(2, 4))
    reference, expected, seen = train(cfg)
    after_reference = torch.rand(3)  # where the global stream stands after training

    sess = Session(state_dir=tmp_path, state_share=math.inf)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, stop_at=4, session=sess)  # dies in epoch 4: epochs 1-3 are saved
    assert load_checkpoint(tmp_path / "fit-001.pt")["epoch"] == 3
    sess = Session(state_dir=tmp_path, state_share=math.inf)
    torch.manual_seed(123)  # the resumed process starts from elsewhere; the state puts it back
    model, result, recorder = train(cfg, session=sess)
    assert torch.equal(torch.rand(3), after_reference)
    assert [r["val_loss"] for r in result.history] == [r["val_loss"] for r in expected.history]
    assert [r["lr"] for r in result.history] == [r["lr"] for r in expected.history]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 reference.state_dict().values()))
    assert result.updates == expected.updates and result.best_epoch == expected.best_epoch
    # the recorder holds the epochs trained before the interruption too
    assert recorder.epochs == seen.epochs
    assert all(torch.equal(a, b) for a, b in zip(recorder.steps, seen.steps))


def test_a_finished_fit_is_restored_without_training(tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.01, seed=1)
    sess = Session(state_dir=tmp_path, state_share=math.inf)
    first, done, _ = train(cfg, session=sess)
    after = torch.rand(2)
    sess = Session(state_dir=tmp_path, state_share=math.inf)
    model, again, recorder = train(cfg, session=sess)
    assert len(recorder.epochs) == len(done.history) * 6  # restored, not one update made
    assert again.history == done.history and torch.equal(torch.rand(2), after)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), first.state_dict().values()))


def test_state_of_another_network_is_refused(tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=32, seed=1)
    sess = Session(state_dir=tmp_path, state_share=math.inf)
    train(cfg, session=sess)
    sess = Session(state_dir=tmp_path)
    with pytest.raises(UserError, match=r"fit-001\.pt does not fit .*size mismatch"):
        train(cfg, hidden=32, session=sess)
    sess = Session(state_dir=tmp_path)
    with pytest.raises(UserError, match="another network or config"):
        train(dataclasses.replace(cfg, batch_size=16), session=sess)


class FakeClock:
    """The session's time source, moved on by the training itself: no sleep, no real time."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.mark.parametrize("budget, saved", [(150.0, 2), (190.0, 3)])
def test_time_budget_stops_at_an_epoch_boundary_with_the_state_saved(tmp_path, budget, saved):
    """Each update takes 10 s of the fake clock (6 updates, 60 s an epoch). A 150 s budget:
    after epoch 2 (120 s) the next epoch would end at 180 s, so it is not started; 190 s: epoch 3
    ends at 180 s and epoch 4 would overrun. Without the look-ahead both would run one epoch
    too many, and a clock read anywhere else than the session's would never stop."""
    cfg = TrainConfig(epochs=10, batch_size=32, seed=1)
    clock = FakeClock()

    def slow(model, epoch):
        clock.now += 10.0

    sess = Session(state_dir=tmp_path, max_seconds=budget, clock=clock)
    with pytest.raises(OutOfTime, match=f"before epoch {saved + 1} of 10"):
        fit(net(), problem(), cfg, loss_fn=nn.functional.cross_entropy, after_backward=slow,
            progress=False, session=sess)
    assert load_checkpoint(tmp_path / "fit-001.pt")["epoch"] == saved
    assert clock.now == 60.0 * saved


def test_sigterm_raises_keyboard_interrupt_and_the_old_handler_comes_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), _sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this
    assert signal.getsignal(signal.SIGTERM) == before


QUICK = ["--profile", "quick", "--set", "epochs=4", "--set", "train_size=1500"]


def start(data_root, out, *args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLLABS_DATA": str(data_root), "MLLABS_OFFLINE": "1",
           "MLLABS_PROGRESS_EVERY": "0"}  # a line every epoch: kill_after waits for epoch 2's
    return subprocess.Popen([sys.executable, "-m", "mllabs", "run", *args, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=_signals_as_in_a_terminal)


def _signals_as_in_a_terminal():
    """The child hears Ctrl-C as a user's run would. A child inherits its parent's signal mask,
    and a test process may hold SIGINT blocked or ignored (multiprocessing's resource tracker
    blocks it while it starts; once, in the full suite, the SIGINT below went unheard and the run
    completed)."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def kill_after(proc, line: str, sig) -> str:
    """Send `sig` once stderr shows `line`; returns everything it printed."""
    seen = []
    for text in proc.stderr:
        seen.append(text)
        if line in text:
            proc.send_signal(sig)
            break
    _, err = proc.communicate(timeout=120)
    return "".join(seen) + err


def only_run(out, lab):
    (run,) = (out / lab).iterdir()
    return run


def test_sigint_after_epoch_2_then_resume_ends_like_an_uninterrupted_run(tmp_path, data_root, note):
    tick = time.perf_counter()
    whole = start(data_root, tmp_path / "whole", "mnist-best", *QUICK, "--quiet")  # alongside
    cut = start(data_root, tmp_path / "cut", "mnist-best", *QUICK)
    printed = kill_after(cut, "seed 1 epoch 2/4", signal.SIGINT)
    assert cut.returncode == 130, printed
    run = only_run(tmp_path / "cut", "mnist-best")
    assert "--resume" in printed and str(run) in printed

    # what an interrupted run leaves: checkpoint, history, state and a report marked interrupted
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and metrics["reason"] == "Ctrl-C"
    report = json.loads((run / "report.json").read_text())
    assert report["sections"][-1]["heading"] == "Interrupted"
    assert "interrupted" in (run / "report.html").read_text()
    assert load_checkpoint(run / "checkpoints" / "seed-1" / "epoch-0002.pt")["epoch"] == 2
    history = (run / "history.csv").read_text().splitlines()
    assert [line.split(",")[:2] for line in history[1:]] == (
        [["seed 0", str(e)] for e in range(1, 5)] + [["seed 1", "1"], ["seed 1", "2"]])
    finished, unfinished = (load_checkpoint(run / "checkpoints" / "state" / f"fit-00{k}.pt")
                            for k in (1, 2))
    assert finished["finished"] and not unfinished["finished"] and unfinished["epoch"] == 2

    resumed = start(data_root, tmp_path / "unused", "mnist-best", "--resume", str(run), "--json")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert json.loads(out)["run_dir"] == str(run) and not (tmp_path / "unused").exists()
    assert whole.wait(timeout=120) == 0
    seconds = time.perf_counter() - tick

    expected = json.loads((only_run(tmp_path / "whole", "mnist-best") / "metrics.json").read_text())
    got = json.loads((run / "metrics.json").read_text())
    assert got["status"] == "completed" and "reason" not in got
    timeless = {k for k in expected["metrics"] if "seconds" not in k}
    assert timeless
    assert {k: got["metrics"][k] for k in timeless} == {k: expected["metrics"][k] for k in timeless}
    assert not (run / "checkpoints" / "state").exists()  # nothing left to resume
    note(f"resume: mnist-best quick (2 seeds × 4 epochs, 1,500 digits), SIGINT in seed 1 epoch 3, "
         f"resumed: test_accuracy {got['metrics']['test_accuracy']!r} vs uninterrupted "
         f"{expected['metrics']['test_accuracy']!r} (exact); three runs {seconds:.1f} s")


def test_sigkill_mid_training_then_resume_ends_like_an_uninterrupted_run(tmp_path, data_root, note):
    """kill -9 gives the run no chance to write anything: no metrics.json, the database row left
    at running. What it had saved at the last epoch boundary is enough for --resume to end
    exactly where an uninterrupted run ends."""
    from mllabs import rundb

    whole = start(data_root, tmp_path / "whole", "mnist-best", *QUICK, "--quiet")  # alongside
    cut = start(data_root, tmp_path / "cut", "mnist-best", *QUICK)
    printed = kill_after(cut, "seed 1 epoch 2/4", signal.SIGKILL)
    assert cut.returncode == -signal.SIGKILL, printed
    run = only_run(tmp_path / "cut", "mnist-best")
    assert not (run / "metrics.json").exists()
    assert rundb.get_run(tmp_path / "cut", run.name)["status"] == rundb.RUNNING
    assert load_checkpoint(run / "checkpoints" / "state" / "fit-001.pt")["finished"]

    resumed = start(data_root, tmp_path / "unused", "mnist-best", "--resume", str(run), "--json")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert json.loads(out)["run_dir"] == str(run) and not (tmp_path / "unused").exists()
    assert whole.wait(timeout=300) == 0

    expected = json.loads((only_run(tmp_path / "whole", "mnist-best") / "metrics.json").read_text())
    got = json.loads((run / "metrics.json").read_text())
    assert got["status"] == "completed"
    timeless = {k for k in expected["metrics"] if "seconds" not in k}
    assert timeless and {k: got["metrics"][k] for k in timeless} == \
        {k: expected["metrics"][k] for k in timeless}
    assert rundb.get_run(tmp_path / "cut", run.name)["status"] == "completed"
    assert not list(run.rglob("*.tmp")) and not (run / "checkpoints" / "state").exists()
    note(f"resume after SIGKILL: mnist-best quick, test_accuracy {got['metrics']['test_accuracy']!r} "
         f"vs uninterrupted {expected['metrics']['test_accuracy']!r} (exact)")


def test_max_seconds_ends_interrupted_with_the_report_and_resume_completes(tmp_path, capsys):
    args = ["mnist-lenet", "--profile", "quick", "--set", "train_size=600", "--set", "val_size=200",
            "--out", tmp_path, "--quiet"]
    assert run_cli("run", *args, "--max-seconds", "0.001") == 1
    run = only_run(tmp_path, "mnist-lenet")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and "time budget of 0.001 s" in metrics["reason"]
    assert "Interrupted" in (run / "report.md").read_text()
    assert "--resume" in capsys.readouterr().out

    with pytest.raises(UserError, match=r"epochs=2 \(the run has 1\)"):
        execute("mnist-lenet", resume=run, sets=["epochs=2"])
    with pytest.raises(UserError, match="--profile default"):
        execute("mnist-lenet", resume=run, profile="default")
    assert run_cli("run", *args[:1], "--resume", run, "--quiet") == 0
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
    assert run_cli("run", *args[:1], "--resume", run) == 2
    assert "already ended completed" in capsys.readouterr().err
    assert run_cli("run", "all", "--resume", run) == 2
    assert run_cli("run", *args[:1], "--max-seconds", "0") == 2
    assert "--max-seconds 0 is not a positive number" in capsys.readouterr().err


def test_sigterm_during_a_run_ends_it_interrupted_and_resumable(tmp_path, monkeypatch, capsys):
    from mllabs import train

    real_update = train._Progress.update

    def terminate_after_epoch_1(self, epoch, row, *args, **kwargs):
        real_update(self, epoch, row, *args, **kwargs)
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # as `kill` or a job scheduler would

    monkeypatch.setattr(train._Progress, "update", terminate_after_epoch_1)
    handler = signal.getsignal(signal.SIGTERM)
    assert run_cli("run", "mnist-lenet", "--profile", "quick", "--set", "epochs=2", "--set",
                   "train_size=300", "--set", "val_size=100", "--out", tmp_path) == 130
    run = only_run(tmp_path, "mnist-lenet")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and metrics["reason"] == "SIGTERM"
    assert "stopped (SIGTERM) in LeNet-5, after epoch 1 of 2" in (run / "report.md").read_text()
    assert load_checkpoint(run / "checkpoints" / "state" / "fit-001.pt")["epoch"] == 1
    assert f"--resume {run}" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == handler  # put back after the run
