import dataclasses

import pytest
import torch

from mllabs.config import TrainConfig
from mllabs.errors import UserError
from mllabs.models.mlp import MLP
from mllabs.checkpoints import load_checkpoint
from mllabs.train import fit, predict


def mse(out, y):
    return ((out - y) ** 2).mean()


def mae(out, y):
    return (out - y).abs().mean()


def linear_problem(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0], [3.0]]) + 0.1 * torch.randn(n, 1, generator=g)
    return x, y


def cfg(**kw):
    return dataclasses.replace(TrainConfig(epochs=20, batch_size=32, optimizer="adam", lr=1e-2), **kw)


def model(seed=0):
    torch.manual_seed(seed)
    return MLP(5, (16,), 1)


def test_loss_decreases_and_history_has_every_metric():
    x, y = linear_problem()
    result = fit(model(), (x, y), cfg(), loss_fn=mse, metrics={"mae": mae}, val=linear_problem(64, 1),
                 progress=False)
    first, last = result.history[0], result.history[-1]
    assert last["train_loss"] < first["train_loss"] / 10
    assert last["val_loss"] < first["val_loss"] / 10
    assert {"epoch", "train_loss", "train_mae", "val_loss", "val_mae", "lr", "seconds"} <= set(last)
    assert result.status == "completed" and len(result.history) == 20
    assert result.updates == 20 * 8


@pytest.mark.parametrize("name", ["gd", "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"])
def test_every_optimizer_trains(name):
    x, y = linear_problem()
    lr = {"gd": 0.1, "sgd": 0.02, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.1}.get(name, 1e-2)
    result = fit(model(), (x, y), cfg(optimizer=name, lr=lr, epochs=15), loss_fn=mse, progress=False)
    assert result.history[-1]["train_loss"] < 0.5 * result.history[0]["train_loss"], name
    if name == "gd":
        assert result.updates == 15  # the whole training set is one batch


def test_divergence_guard_marks_the_run_and_stops():
    x, y = linear_problem()
    result = fit(model(), (x, y * 1e3), cfg(optimizer="sgd", lr=1e3, epochs=50), loss_fn=mse,
                 progress=False)
    assert result.status == "diverged"
    assert len(result.history) < 50


def test_early_stopping_stops_when_validation_stops_improving():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 5, generator=g), torch.randn(64, 1, generator=g)  # pure noise: overfits
    val = (torch.randn(64, 5, generator=g), torch.randn(64, 1, generator=g))
    result = fit(MLP(5, (128, 128), 1), (x, y), cfg(epochs=300, patience=5), loss_fn=mse, val=val,
                 progress=False)
    assert result.stopped_early
    assert len(result.history) == result.best_epoch + 5
    best_val = min(r["val_loss"] for r in result.history)
    assert best_val == result.history[result.best_epoch - 1]["val_loss"]


@pytest.mark.parametrize("schedule, extra, expected", [
    ("constant", {}, [0.1, 0.1, 0.1, 0.1]),
    ("exponential", {"gamma": 0.5}, [0.1, 0.05, 0.025, 0.0125]),
    ("piecewise", {"milestones": (2, 3), "factor": 0.1}, [0.1, 0.1, 0.01, 0.001]),
])
def test_schedules(schedule, extra, expected):
    x, y = linear_problem(64)
    result = fit(model(), (x, y), cfg(optimizer="sgd", lr=0.1, epochs=4, schedule=schedule, **extra),
                 loss_fn=mse, progress=False)
    assert [r["lr"] for r in result.history] == pytest.approx(expected)


def test_cosine_schedule_ends_near_zero():
    x, y = linear_problem(64)
    result = fit(model(), (x, y), cfg(lr=0.1, epochs=10, schedule="cosine"), loss_fn=mse, progress=False)
    lrs = [r["lr"] for r in result.history]
    assert lrs[0] == pytest.approx(0.1) and lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.01


def test_piecewise_without_milestones_is_a_user_error():
    x, y = linear_problem(64)
    with pytest.raises(UserError, match="milestones"):
        fit(model(), (x, y), cfg(schedule="piecewise"), loss_fn=mse, progress=False)


def test_checkpoints_reload_to_identical_predictions(tmp_path):
    x, y = linear_problem()
    net = model()
    fit(net, (x, y), cfg(epochs=5), loss_fn=mse, val=linear_problem(64, 1), checkpoint_dir=tmp_path,
        keep_last=2, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "epoch-0004.pt", "epoch-0005.pt"]
    fresh = MLP(5, (16,), 1)
    fresh.load_state_dict(load_checkpoint(tmp_path / "best.pt")["model"])
    assert torch.equal(predict(net, x), predict(fresh, x))


def test_same_seed_same_history():
    x, y = linear_problem()
    runs = [fit(model(seed=3), (x, y), cfg(seed=3), loss_fn=mse, progress=False) for _ in range(2)]
    assert [r["train_loss"] for r in runs[0].history] == [r["train_loss"] for r in runs[1].history]


def test_checkpoint_with_pickled_code_is_refused(tmp_path):
    class Sneaky:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"model": Sneaky()}, tmp_path / "evil.pt")
    with pytest.raises(UserError, match="cannot load safely|can load safely"):
        load_checkpoint(tmp_path / "evil.pt")


def test_stop_rule_and_extra_evaluation_sets():
    x, y = linear_problem()
    test = linear_problem(64, 2)
    result = fit(model(), (x, y), cfg(epochs=10), loss_fn=mse, metrics={"mae": mae}, also={"test": test},
                 stop_when=lambda history: len(history) == 3, progress=False)
    assert len(result.history) == 3 and result.stopped_early
    assert {"test_loss", "test_mae"} <= set(result.history[-1])


def test_after_backward_sees_every_update_with_gradients_in_place():
    x, y = linear_problem()
    seen = []

    def look(net, epoch):
        grads = [p.grad for p in net.parameters()]
        assert all(g is not None for g in grads)  # called before the update clears nothing
        seen.append((epoch, float(sum(g.abs().sum() for g in grads))))

    result = fit(model(), (x, y), cfg(epochs=3), loss_fn=mse, progress=False, after_backward=look)
    assert len(seen) == result.updates == 3 * 8
    assert [e for e, _ in seen] == [1] * 8 + [2] * 8 + [3] * 8
    assert all(g > 0 for _, g in seen)


def test_onecycle_steps_every_update_warms_up_then_anneals():
    x, y = linear_problem(64)  # 2 updates per epoch at batch 32
    result = fit(model(), (x, y), cfg(optimizer="nesterov", lr=0.1, epochs=10, schedule="onecycle"),
                 loss_fn=mse, progress=False)
    lrs = [r["lr"] for r in result.history]
    peak = lrs.index(max(lrs))
    assert 0 < peak < 9  # up, then down
    assert lrs[:peak + 1] == sorted(lrs[:peak + 1]) and lrs[peak:] == sorted(lrs[peak:], reverse=True)
    assert max(lrs) <= 0.1 + 1e-9 and lrs[-1] < 0.02 * max(lrs)
    assert result.status == "completed" and result.updates == 20


def test_bfloat16_autocast_trains_with_float32_weights_and_differs_from_float32():
    x, y = linear_problem()
    net16, net32 = model(), model()
    half = fit(net16, (x, y), cfg(), loss_fn=mse, val=linear_problem(64, 1), progress=False,
               autocast=torch.bfloat16)
    full = fit(net32, (x, y), cfg(), loss_fn=mse, val=linear_problem(64, 1), progress=False)
    assert half.history[-1]["val_loss"] < half.history[0]["val_loss"] / 10
    assert all(p.dtype == torch.float32 for p in net16.parameters())
    # the forward pass really ran in bfloat16: same seed and batches, different arithmetic
    assert half.history[-1]["train_loss"] != full.history[-1]["train_loss"]
    assert predict(net16, x[:4], autocast=torch.bfloat16).dtype == torch.float32


def test_precision_names_resolve():
    from mllabs.train import resolve_precision
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) is None
    assert resolve_precision("bf16", cpu) is torch.bfloat16
    with pytest.raises(UserError, match="precision"):
        resolve_precision("fp8", cpu)


@pytest.mark.parametrize("flags, onednn, env, native", [
    ({"avx2", "avx512f", "avx512_bf16"}, True, {}, True),         # Cooper Lake, Zen 4
    ({"avx2", "avx512f", "amx_bf16"}, True, {}, True),            # Sapphire Rapids
    ({"avx2", "avx512f"}, True, {}, False),                       # AVX-512 without BF16: emulated
    ({"avx2"}, False, {}, False),                                 # a laptop with AVX2 only
    ({"avx2", "avx512f", "avx512_bf16"}, True, {"ATEN_CPU_CAPABILITY": "avx2"}, False),
    ({"avx2", "avx512f", "avx512_bf16"}, True, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, False),
    (set(), True, {}, True),                                      # no /proc/cpuinfo: oneDNN decides
])
def test_auto_precision_takes_bfloat16_only_where_it_is_native(monkeypatch, flags, onednn, env, native):
    from mllabs import hardware
    from mllabs.train import resolve_precision

    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn)
    for key in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert hardware.native_bf16() is native
    assert resolve_precision("auto", torch.device("cpu")) is (torch.bfloat16 if native else None)



def test_a_run_says_first_what_the_cpu_offers(tmp_path, data_root, monkeypatch, capsys):
    """A run's first line names what its speed depends on, once its input has been checked:
    the CPU, the vector level PyTorch will use and whether bfloat16 is native."""
    from mllabs import hardware
    from mllabs.cli import main

    monkeypatch.setattr(hardware, "native_bf16", lambda: False)
    monkeypatch.setattr(hardware, "cpu_name", lambda: "Test CPU 9000")
    assert main(["run", "car-clustering", "--profile", "quick", "--out", str(tmp_path)]) == 0
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith("[car-clustering] profile quick, device cpu (Test CPU 9000, vector level ")
    assert torch.backends.cpu.get_cpu_capability() in first and "no native bfloat16" in first
    main(["run", "car-clustering", "--profile", "quick", "--quiet", "--out", str(tmp_path)])
    assert "vector level" not in capsys.readouterr().err  # --quiet: nothing but errors
