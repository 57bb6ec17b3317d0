"""How long a lab's default run will take on this machine, said before it starts.

Every lab's default run was timed on one reference machine (reference_times.json: which machine,
which flags, which commit). A CPU's speed for these labs is not its clock: AVX-512, native
bfloat16 and the number of cores move it 2-5x, and convolutions and dense layers move by
different factors. So two short training steps, one of each kind and in the arithmetic the labs
themselves would pick (bfloat16 only where the CPU computes it natively), are timed here and on
the reference machine; a lab's expected time is its reference time scaled by the ratio for its
kind. A calibration of two seconds swings by up to a fifth on a busy or shared machine, so the
estimate is good to about a quarter, not a promise.
"""

from __future__ import annotations

import json
import statistics
import time
from functools import lru_cache
from importlib import resources

import torch
from torch import nn

from mllabs import hardware
from mllabs.train import resolve_precision

KINDS = ("conv", "dense")


def _conv_step() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A photo network's shape of work, scaled down: 3x3 convolutions of 32-128 channels, batch
    norm and pooling on 32 px photos, batch 32. Smaller layers than these measure Python and
    memory more than the vector units: they ran 1.1x faster with AVX-512 than held to AVX2 where
    the flowers CNN runs 1.3x faster, as these do."""
    net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(128, 5))
    return net, torch.randn(32, 3, 32, 32), torch.randint(0, 5, (32,))


def _dense_step() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A digit MLP's shape of work: 784 -> 256 -> 10, batch 128."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    return net, torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,))


def _steps_per_second(make, seconds: float) -> float:
    """Training steps a second (forward, backward, Adam), the median of three timed blocks after
    a warm-up; each block runs until `seconds / 3` have passed."""
    torch.manual_seed(0)
    net, x, y = make()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    dtype = resolve_precision("auto", torch.device("cpu"))
    loss_fn = nn.CrossEntropyLoss()

    def step():
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = loss_fn(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    rates = []
    for _ in range(3):
        n, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / 3 or n < 2:
            step()
            n += 1
        rates.append(n / elapsed)
    return statistics.median(rates)


def calibrate(seconds: float = 2.0) -> dict[str, float]:
    """This machine's steps a second for each kind of work, in about `seconds` in all."""
    makers = {"conv": _conv_step, "dense": _dense_step}
    return {kind: _steps_per_second(makers[kind], seconds / len(KINDS)) for kind in KINDS}


@lru_cache(maxsize=1)
def reference() -> dict:
    """reference_times.json: the reference machine, its calibration (steps a second of each kind,
    the median over the sitting the labs were timed in) and every lab's default time."""
    return json.loads(resources.files("mllabs").joinpath("reference_times.json").read_text())


def expected_seconds(lab: str, speeds: dict[str, float], profile: str = "default") -> float | None:
    """The lab's reference time scaled to a machine whose calibration gave `speeds`; None where
    the lab's profile was not timed on the reference machine."""
    ref = reference()
    entry = ref["labs"].get(lab, {}).get(profile)
    if entry is None:
        return None
    return entry["seconds"] * ref["calibration"][entry["kind"]] / speeds[entry["kind"]]


def minutes(seconds: float) -> str:
    """Rounded for a person deciding whether to wait: '40 s', '7 min', '1 h 05 min'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds // 3600:.0f} h {seconds % 3600 / 60:02.0f} min"


def announce(labs: list[str], profile: str, device: torch.device, threshold: float = 60.0,
             calibration: dict[str, float] | None = None) -> str | None:
    """The lines printed before a long run: this machine's features and, from a calibration of
    a few seconds, the time the labs are expected to take here. None where nothing needs saying:
    a single lab expected to take under `threshold` seconds, or a profile never timed."""
    ref = reference()
    entries = [ref["labs"].get(lab, {}).get(profile) for lab in labs]
    if any(e is None for e in entries):
        return None
    if len(labs) == 1 and entries[0]["seconds"] * 3 < threshold:  # short even on a slow machine:
        return None                                                 # no calibration to wait for
    if device.type != "cpu":  # the reference times are a CPU's; a GPU's would be another table
        return (f"this machine: {hardware.describe()}; the expected times are a CPU's, "
                f"so none is given for {device.type}")
    start = time.perf_counter()
    speeds = calibration or calibrate()
    took = time.perf_counter() - start
    times = {lab: expected_seconds(lab, speeds, profile) for lab in labs}
    total = sum(times.values())
    if len(labs) == 1 and total < threshold:
        return None
    ratios = ", ".join(f"{kind} {speeds[kind] / ref['calibration'][kind]:.2f}x" for kind in KINDS
                       if ref["calibration"].get(kind))
    lines = [f"this machine: {hardware.describe()}",
             f"calibrated in {took:.1f} s against the reference machine ({ref['machine']}): "
             f"{ratios} its speed"]
    if len(labs) == 1:
        lines.append(f"expected: about {minutes(total)} for {labs[0]}'s {profile} profile")
    else:
        longest = sorted(times, key=times.get, reverse=True)[:3]
        lines.append(f"expected: about {minutes(total)} for {len(labs)} labs' {profile} profiles "
                     f"(longest: " + ", ".join(f"{lab} {minutes(times[lab])}" for lab in longest) + ")")
    return "\n".join(lines)
