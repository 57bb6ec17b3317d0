import pytest
from hypothesis import given, settings, strategies as st

from mllabs.config import build_config, config_from_dict, config_to_dict, parse_sets
from mllabs.errors import UserError
from mllabs.labs import auto_mpg


def test_values_are_parsed_by_field_type():
    cfg = build_config(auto_mpg.Config, auto_mpg.PROFILES, "default",
                       ["epochs=12", "lr=0.05", "hidden=32, 16", "refit=false", "optimizer=adam"])
    assert cfg.epochs == 12 and isinstance(cfg.epochs, int)
    assert cfg.lr == 0.05
    assert cfg.hidden == (32, 16)
    assert cfg.refit is False
    assert cfg.optimizer == "adam"


def test_every_lab_trained_by_fit_accepts_every_schedule_fit_knows():
    """A schedule fit() implements must not be refused by a lab's option list (mnist-lenet once
    refused onecycle, which the LeNet benchmark's fastest recipe uses)."""
    import dataclasses

    from mllabs.config import SCHEDULES, TrainConfig
    from mllabs.labs import LABS, get_lab

    import inspect

    from mllabs import stacked
    from mllabs.errors import UserError

    checked = 0
    for name in LABS:
        lab = get_lab(name)
        if not issubclass(lab.Config, TrainConfig):
            continue  # labs with their own training loop (boston-housing's NumPy) list their own
        assert "schedule" in {f.name for f in dataclasses.fields(lab.Config)}
        known = SCHEDULES
        if "train_stack(" in inspect.getsource(lab):
            # stacked training has the per-epoch schedules only (no one-cycle's per-update
            # momentum cycling): the lab offers those and refuses the rest in one line
            known = stacked.SCHEDULES
            for schedule in set(SCHEDULES) - set(known):
                with pytest.raises(UserError, match=f"schedule='{schedule}' is not one of"):
                    build_config(lab.Config, lab.PROFILES, "default", [f"schedule={schedule}"])
        for schedule in known:
            sets = [f"schedule={schedule}"] + (["milestones=2"] if schedule == "piecewise" else [])
            assert build_config(lab.Config, lab.PROFILES, "default", sets).schedule == schedule
        checked += 1
    assert checked >= 8


def test_every_optimizer_a_lab_offers_is_one_fit_knows():
    """config.OPTIMIZERS is the one list: make_optimizer builds each name, every lab's choices
    come from it, and the error for an unknown name lists exactly it."""
    import dataclasses

    import torch

    from mllabs.config import OPTIMIZERS
    from mllabs.labs import LABS, get_lab
    from mllabs.train import make_optimizer

    params = [torch.nn.Parameter(torch.zeros(2))]
    for name in OPTIMIZERS:
        assert make_optimizer(name, params, lr=0.1)
    with pytest.raises(UserError, match="choose " + ", ".join(OPTIMIZERS[:-1]) + " or adamw"):
        make_optimizer("lbfgs", params, lr=0.1)
    for lab_name in LABS:
        for f in dataclasses.fields(get_lab(lab_name).Config):
            if f.name in ("optimizer", "optimizers"):
                assert set(f.metadata["choices"]) <= set(OPTIMIZERS), (lab_name, f.name)


def test_profile_then_sets_then_explicit_overrides():
    quick = build_config(auto_mpg.Config, auto_mpg.PROFILES, "quick")
    assert quick.epochs == auto_mpg.PROFILES["quick"]["epochs"]
    cfg = build_config(auto_mpg.Config, auto_mpg.PROFILES, "quick", ["epochs=7", "seed=3"], seed=9)
    assert cfg.epochs == 7 and cfg.seed == 9


def test_unknown_key_lists_the_valid_keys():
    with pytest.raises(UserError) as err:
        parse_sets(auto_mpg.Config, ["epoch=3"])
    message = str(err.value)
    assert "'epoch'" in message and "epochs (int)" in message and "lr (float)" in message


@pytest.mark.parametrize("pair, fragment", [
    ("epochs=ten", "epochs"), ("epochs=2.5", "whole number"), ("epochs=0", "minimum"),
    ("lr=0", "greater than 0"), ("lr=-1", "greater than"), ("optimizer=sgdd", "not one of"),
    ("lr=nan", "NaN"), ("lr=inf", "finite"), ("refit=maybe", "true or false"), ("noequals", "key=value"),
])
def test_bad_values_are_one_line_errors(pair, fragment):
    with pytest.raises(UserError) as err:
        parse_sets(auto_mpg.Config, [pair])
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_profile():
    with pytest.raises(UserError, match="quick, default, full"):
        build_config(auto_mpg.Config, auto_mpg.PROFILES, "fast")


def test_saved_config_round_trips():
    cfg = build_config(auto_mpg.Config, auto_mpg.PROFILES, "default", ["hidden=8,8", "lr=0.01"])
    assert config_from_dict(auto_mpg.Config, config_to_dict(cfg)) == cfg


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(["epochs", "lr", "hidden", "refit", "optimizer", "dropout", "bogus"]),
       text=st.text(max_size=20))
def test_any_set_string_parses_or_raises_user_error(key, text):
    try:
        values = parse_sets(auto_mpg.Config, [f"{key}={text}"])
    except UserError:
        return
    assert key in values


@settings(max_examples=100, deadline=None)
@given(epochs=st.integers(1, 10**6), lr=st.floats(1e-9, 10, allow_nan=False),
       hidden=st.lists(st.integers(1, 4096), min_size=1, max_size=4))  # empty: refused
def test_valid_values_round_trip_through_text(epochs, lr, hidden):
    values = parse_sets(auto_mpg.Config, [f"epochs={epochs}", f"lr={lr!r}",
                                          "hidden=" + ",".join(map(str, hidden))])
    assert values == {"epochs": epochs, "lr": lr, "hidden": tuple(hidden)}
