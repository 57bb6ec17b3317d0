"""Stacked training (mllabs.stacked) against fit() and torch.optim, one network at a time."""

from __future__ import annotations


import pytest
import torch

from mllabs import stacked
from mllabs.config import TrainConfig
from mllabs.models.mlp import MLP
from mllabs.session import OutOfTime, Session
from mllabs.stacked import RULES, Arm, train_stack
from mllabs.train import accuracy, cross_entropy, fit


@pytest.fixture(scope="module")
def digits():
    """Small stand-in digits: 600 training and 200 validation images, learnable but not trivial."""
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(10, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (800,), generator=g)
    x = centres[y] + 1.5 * torch.randn(800, 1, 28, 28, generator=g)
    return (x[:600], y[:600]), (x[600:], y[600:])


def train_alone(arm, train, val, epochs=2, schedule="cosine", loss_fn=cross_entropy):
    torch.manual_seed(arm.seed)
    model = MLP(784, (16,), 10)
    cfg = TrainConfig(epochs=epochs, batch_size=64, optimizer=arm.optimizer, lr=arm.lr, seed=arm.seed,
                      weight_decay=arm.weight_decay, schedule=schedule)
    result = fit(model, train, cfg, loss_fn=loss_fn, metrics={"accuracy": accuracy}, val=val,
                 restore_best=False, progress=False)
    return model.state_dict(), result


@pytest.mark.parametrize("fused", [True, False], ids=["fused kernels", "written out"])
@pytest.mark.parametrize("rule", RULES)
def test_each_rule_trains_every_network_as_fit_would(rule, fused, digits, monkeypatch):
    """Two networks with different rates, seeds and weight decay, stacked: each ends where fit()
    with torch.optim takes it alone (up to float rounding), with the same history; through
    PyTorch's fused kernels (CPU and CUDA) and through the rule written out (other devices)."""
    if not fused:
        monkeypatch.setattr(stacked, "FUSED", ())
    train, val = digits
    arms = [Arm(rule, 0.05, 3, 0.01 if rule == "adamw" else 0.0), Arm(rule, 0.01, 4, 1e-3)]
    together = train_stack(arms, (16,), train, epochs=2, batch_size=64, schedule="cosine",
                           sets={"val": val})
    for arm, result in zip(arms, together):
        weights, alone = train_alone(arm, train, val)
        for key, value in weights.items():
            assert torch.allclose(result.weights[key], value, atol=5e-5), (rule, key)
        for mine, theirs in zip(result.history, alone.history):
            assert mine["val_accuracy"] == pytest.approx(theirs["val_accuracy"], abs=2 / len(val[1]))
            assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-4)
            assert mine["lr"] == pytest.approx(theirs["lr"])
        assert result.updates == alone.updates


def test_the_squared_error_loss_trains_every_network_as_fit_would(digits):
    """loss="mse" (the regularization lab's squared error of the probabilities): the same
    weights and the same per-epoch validation loss as fit() with that loss alone."""
    from mllabs.labs.regularization import squared_error

    train, val = digits
    arms = [Arm("momentum", 0.05, 3, 1e-3), Arm("momentum", 0.01, 4, 0.0)]
    together = train_stack(arms, (16,), train, epochs=2, batch_size=64, schedule="constant",
                           sets={"val": val}, loss="mse")
    for arm, result in zip(arms, together):
        weights, alone = train_alone(arm, train, val, schedule="constant", loss_fn=squared_error)
        for key, value in weights.items():
            assert torch.allclose(result.weights[key], value, atol=5e-5), key
        for mine, theirs in zip(result.history, alone.history):
            assert mine["val_loss"] == pytest.approx(theirs["val_loss"], rel=1e-4)


def test_a_diverging_network_leaves_the_others_untouched(digits):
    train, val = digits
    arms = [Arm("sgd", 1e6, 0), Arm("sgd", 0.05, 1)]
    broken, healthy = train_stack(arms, (16,), train, epochs=2, batch_size=64, sets={"val": val})
    assert broken.status == "diverged" and broken.weights is None
    assert healthy.status == "completed"
    weights, _ = train_alone(arms[1], train, val, schedule="constant")
    for key, value in weights.items():
        assert torch.allclose(healthy.weights[key], value, atol=5e-5), key


def test_a_stack_stopped_by_the_time_budget_resumes_to_the_same_weights(digits, tmp_path):
    train, val = digits
    arms = [Arm("adam", 1e-3, 0), Arm("adam", 1e-2, 1)]
    options = dict(epochs=3, batch_size=64, schedule="cosine", sets={"val": val}, label="adam")
    whole = train_stack(arms, (16,), train, **options)
    with pytest.raises(OutOfTime):  # a spent budget stops it after its first epoch, state saved
        train_stack(arms, (16,), train, session=Session(state_dir=tmp_path, max_seconds=0), **options)
    resumed = train_stack(arms, (16,), train, session=Session(state_dir=tmp_path), **options)
    for a, b in zip(whole, resumed):
        assert [r["val_loss"] for r in a.history] == [r["val_loss"] for r in b.history]
        for key in a.weights:
            assert torch.equal(a.weights[key], b.weights[key]), key


def test_one_rule_per_stack_and_no_per_update_schedules(digits):
    from mllabs.errors import UserError

    train, _ = digits
    with pytest.raises(ValueError, match="one update rule per stack"):
        train_stack([Arm("sgd", 0.1, 0), Arm("adam", 0.1, 0)], (16,), train, epochs=1, batch_size=64)
    with pytest.raises(UserError, match="onecycle.* cannot be used"):
        train_stack([Arm("sgd", 0.1, 0)], (16,), train, epochs=1, batch_size=64, schedule="onecycle")
