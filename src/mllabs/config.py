"""Typed lab configs: defaults <- profile (quick|default|full) <- --set key=value.

A lab's config is a dataclass. Field metadata may carry `help`, `choices`, `min` / `max`
(inclusive bounds), `gt` / `lt` (exclusive bounds) and, for a comma-separated (tuple) field,
`min_items` (default 1: an empty list of layers, optimizers or models is refused); values given
with --set are parsed by the field's annotated type, so `--set epochs=ten` fails with a message
that lists what is valid.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from mllabs.errors import UserError

PROFILES = ("quick", "default", "full")
DEVICES = ("auto", "cpu", "cuda", "mps")
# update rules fit() knows by name (train.make_optimizer); gd is sgd fed the whole training set
OPTIMIZERS = ("gd", "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
# learning-rate schedules fit() knows (train.make_scheduler); every lab trained by fit() offers all
SCHEDULES = ("constant", "exponential", "piecewise", "cosine", "onecycle")


def option(default: Any, help: str, *, choices=None, min=None, gt=None, max=None, lt=None,
           min_items: int = 1):
    """A config field with its help text and the bounds that --set values are checked against;
    `min_items` is how many values a tuple field needs at least."""
    meta = {"help": help, "choices": choices, "min": min, "gt": gt, "max": max, "lt": lt,
            "min_items": min_items}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class LabConfig:
    """Fields every lab has."""

    # numpy's RandomState takes seeds below 2**32; the labs add up to a few thousand to it
    seed: int = option(0, "seed for python, numpy and torch (repeated runs add 1, 2, ...)", min=0,
                       max=2**31 - 1)
    device: str = option("auto", "where networks train", choices=DEVICES)


@dataclass
class TrainConfig(LabConfig):
    """Fields of every lab that trains a network with mllabs.train.fit()."""

    epochs: int = option(100, "passes over the training data", min=1)
    batch_size: int = option(32, "examples per update (ignored by optimizer=gd)", min=1)
    optimizer: str = option("adam", "update rule", choices=OPTIMIZERS)
    lr: float = option(1e-3, "learning rate", gt=0.0)
    weight_decay: float = option(0.0, "L2 penalty (decoupled for adamw)", min=0.0)
    schedule: str = option("constant", "learning-rate schedule", choices=SCHEDULES)
    gamma: float = option(0.95, "exponential schedule: factor per epoch", gt=0.0)
    milestones: tuple[int, ...] = option((), "piecewise schedule: epochs where lr is multiplied by factor",
                                         min=1, min_items=0)
    factor: float = option(0.1, "piecewise schedule: multiplier at each milestone", gt=0.0)
    patience: int = option(0, "early stopping: epochs without validation improvement (0 = off)", min=0)


def field_specs(cls) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.init]


def _type_name(tp) -> str:
    if typing.get_origin(tp) is tuple:
        return f"comma-separated {typing.get_args(tp)[0].__name__}s"
    return getattr(tp, "__name__", str(tp))


def parse_value(text: str, tp) -> Any:
    """Parse one --set value by the annotated type; raise ValueError on anything else."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):  # Optional[X]
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if text.strip().lower() in ("none", "null", ""):
            return None
        return parse_value(text, args[0])
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        parts = [p for p in text.replace(" ", "").split(",") if p != ""]
        return tuple(parse_value(p, inner) for p in parts)
    if tp is bool:
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if tp is int:
        value = float(text)
        if not value.is_integer():
            raise ValueError("expected a whole number")
        if abs(value) >= 2**53:  # beyond this a float has lost the number's last digits
            raise ValueError("too large")
        return int(value)
    if tp is float:
        value = float(text)
        if math.isnan(value):
            raise ValueError("NaN is not a value")
        return value
    if tp is str:
        return text.strip()
    raise ValueError(f"unsupported type {tp}")


def check_value(name: str, value: Any, meta: dict) -> None:
    """Raise UserError if value breaks the field's choices or bounds."""
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if item is None:
            continue
        if meta.get("choices") and item not in meta["choices"]:
            raise UserError(f"{name}={item!r} is not one of: {', '.join(map(str, meta['choices']))}")
        if meta.get("min") is not None and item < meta["min"]:
            raise UserError(f"{name}={item} is below its minimum {meta['min']}")
        if meta.get("gt") is not None and not item > meta["gt"]:
            raise UserError(f"{name}={item} must be greater than {meta['gt']}")
        if meta.get("max") is not None and item > meta["max"]:
            raise UserError(f"{name}={item} is above its maximum {meta['max']}")
        if meta.get("lt") is not None and not item < meta["lt"]:
            raise UserError(f"{name}={item} must be less than {meta['lt']}")
        if isinstance(item, float) and math.isinf(item):
            raise UserError(f"{name}={item} must be finite")


def valid_keys_text(cls) -> str:
    hints = typing.get_type_hints(cls)
    return ", ".join(f"{f.name} ({_type_name(hints[f.name])})" for f in field_specs(cls))


def parse_sets(cls, pairs: list[str]) -> dict[str, Any]:
    """Turn ["epochs=10", "lr=0.01"] into typed values for cls; errors list the valid keys."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in field_specs(cls)}
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise UserError(f"--set expects key=value, got {pair!r}; valid keys: {valid_keys_text(cls)}")
        if key not in fields:
            raise UserError(f"unknown config key {key!r}; valid keys: {valid_keys_text(cls)}")
        try:
            value = parse_value(text, hints[key])
        except (ValueError, TypeError) as exc:
            raise UserError(
                f"bad value for {key}: {text!r} ({exc}); expected {_type_name(hints[key])}") from None
        check_value(key, value, fields[key].metadata)
        need = fields[key].metadata.get("min_items", 1)
        if isinstance(value, tuple) and len(value) < need:
            default = fields[key].default if fields[key].default is not dataclasses.MISSING else ()
            example = ",".join(map(str, default)) or ",".join(["1"] * need)
            given = "is empty" if not value else f"gives {len(value)} value(s)"
            raise UserError(f"{key}={text.strip()!r} {given}; {key} needs at least {need}, e.g. "
                            f"--set {key}={example}")
        out[key] = value
    return out


def profile_names(profiles: dict[str, dict]) -> tuple[str, ...]:
    """quick, default, full, and any profile a lab adds of its own (flowers: finetune)."""
    return PROFILES + tuple(p for p in profiles if p not in PROFILES)


def build_config(cls, profiles: dict[str, dict], profile: str = "default",
                 sets: list[str] | None = None, **overrides: Any):
    """Defaults, then the profile's values, then --set pairs, then explicit overrides (--seed ...)."""
    if profile not in profile_names(profiles):
        raise UserError(f"unknown profile {profile!r}; choose one of: "
                        f"{', '.join(profile_names(profiles))}")
    values = dict(profiles.get(profile, {}))
    values.update(parse_sets(cls, sets or []))
    fields = {f.name: f for f in field_specs(cls)}
    for key, value in overrides.items():
        if value is not None:
            check_value(key, value, fields[key].metadata)
            values[key] = value
    return cls(**values)


def config_to_dict(cfg) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}


def config_from_dict(cls, data: dict[str, Any]):
    """Rebuild a saved config (config.json) with its types; unknown keys are ignored."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in field_specs(cls):
        if f.name in data:
            value = data[f.name]
            values[f.name] = tuple(value) if typing.get_origin(hints[f.name]) is tuple else value
    return cls(**values)
