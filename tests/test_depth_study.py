"""The depth study (labs/_depth.py): its statistics on hand-made vectors with known answers, the
arms' initial weights (zero-init on vs off, plain copied from residual, no shortcut in a plain
arm), and the whole study on a tiny slice of the real photos through a real RunContext."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from mllabs.labs import _depth
from mllabs.models.ops import trace
from mllabs.models.resnet import BasicBlock


# ---------------------------------------------------------------------------- statistics

def test_mcnemar_exact_matches_the_binomial_by_hand():
    right = np.ones(20, bool)
    # 0 photos only a got right, 5 only b: p = 2 · (1/2)^5
    b = right.copy()
    a = right.copy()
    a[:5] = False
    t = _depth.mcnemar_exact(a, b)
    assert (t["only_a"], t["only_b"]) == (0, 5) and t["p"] == pytest.approx(2 / 32)
    # 1 against 9 disagreements: p = 2 · (C(10,0) + C(10,1)) / 2^10 = 22/1024
    a = np.array([1] * 9 + [0] * 1 + [1] * 5, bool)
    b = np.array([0] * 9 + [1] * 1 + [1] * 5, bool)
    t = _depth.mcnemar_exact(a, b)
    assert (t["only_a"], t["only_b"]) == (9, 1) and t["p"] == pytest.approx(22 / 1024)
    # symmetric disagreement and no disagreement: p = 1 (capped, never above)
    assert _depth.mcnemar_exact([1, 0, 1, 0], [0, 1, 0, 1])["p"] == 1.0
    assert _depth.mcnemar_exact([1, 1, 0], [1, 1, 0])["p"] == 1.0
    # large counts stay exact and in [0, 1]: 300 against 200 disagreements
    a = np.array([1] * 300 + [0] * 200, bool)
    t = _depth.mcnemar_exact(a, ~a)
    tail = sum(math.comb(500, k) for k in range(201)) / 2**500
    assert 0 < t["p"] < 1 and t["p"] == pytest.approx(2 * tail, rel=1e-12)
    with pytest.raises(ValueError):
        _depth.mcnemar_exact([1, 0], [1, 0, 1])


def test_paired_bootstrap_keeps_the_pairing():
    # a right wherever b is wrong and vice versa on alternate photos: difference 0
    a = np.array([[1, 0] * 50], bool)
    boot = _depth.paired_bootstrap(a, ~a, resamples=2000)
    assert boot["difference"] == 0 and boot["low"] < 0 < boot["high"]
    # a right on every photo b gets right plus 10 more out of 100: exactly +0.10, and since the
    # per-photo differences are 0 or 1 the interval is a binomial proportion's: about ± 0.06
    b = np.zeros((2, 100), bool)
    b[:, :50] = True
    a = b.copy()
    a[:, 50:60] = True
    boot = _depth.paired_bootstrap(a, b, resamples=4000)
    assert boot["difference"] == pytest.approx(0.10)
    assert 0.03 < boot["low"] < 0.06 and 0.14 < boot["high"] < 0.17
    # identical answers: a zero-width interval at 0
    boot = _depth.paired_bootstrap(b, b)
    assert boot["difference"] == boot["low"] == boot["high"] == 0
    # averaged over seeds: +1 photo in one seed, -1 in the other cancel on that photo
    a = np.array([[1, 0, 0, 0], [0, 0, 0, 0]], bool)
    b = np.array([[0, 0, 0, 0], [1, 0, 0, 0]], bool)
    assert _depth.paired_bootstrap(a, b)["difference"] == 0


# ---------------------------------------------------------------------------- the arms

def arm(name: str) -> _depth.Arm:
    return next(a for a in _depth.MAIN_ARMS + _depth.ZERO_INIT_ARMS if a.name == name)


def last_bn_weights(model) -> list[torch.Tensor]:
    return [m.last_bn.weight for m in model.modules() if isinstance(m, BasicBlock)]


@pytest.mark.parametrize("depth, blocks", [(18, 8), (34, 16)])
def test_zero_init_differs_only_in_the_last_batch_norm_of_each_block(depth, blocks):
    off = _depth.initial_model(arm(f"resnet{depth}"), 5, seed=3)
    on = _depth.initial_model(arm(f"resnet{depth}_zero_init"), 5, seed=3)
    assert len(last_bn_weights(off)) == len(last_bn_weights(on)) == blocks
    assert all(bool((w == 1).all()) for w in last_bn_weights(off))
    assert all(bool((w == 0).all()) for w in last_bn_weights(on))
    zeroed = [f"{n}.bn2.weight" for n, m in on.named_modules() if isinstance(m, BasicBlock)]
    a, b = off.state_dict(), on.state_dict()
    assert [k for k in a if not torch.equal(a[k], b[k])] == zeroed
    # with every block at the identity, the zero-init network's blocks pass their input through
    on.eval()
    block = on.layer1[0]
    x = torch.relu(torch.randn(2, 64, 8, 8))
    assert torch.allclose(block(x), x)


@pytest.mark.parametrize("depth", [18, 34])
def test_plain_arm_starts_from_its_resnet_and_has_no_shortcut(depth):
    residual = _depth.initial_model(arm(f"resnet{depth}"), 5, seed=1)
    plain = _depth.initial_model(arm(f"plain{depth}"), 5, seed=1)
    r, p = residual.state_dict(), plain.state_dict()
    assert set(p) < set(r) and all(".downsample." in k for k in set(r) - set(p))
    assert all(torch.equal(p[k], r[k]) for k in p)
    # the counted graph: 8 / 16 shortcut additions in the ResNet, none in the plain network
    adds = [sum(row["type"] == "shortcut addition" for row in trace(m, (3, 32, 32)))
            for m in (residual, plain)]
    assert adds == [{18: 8, 34: 16}[depth], 0]
    # and the computed one: with every block's residual branch silenced (last BN gamma and beta
    # at 0), a ResNet still passes the photo through its shortcuts, a plain network outputs its
    # bias alone whatever the photo
    for model in (residual, plain):
        for m in model.modules():
            if isinstance(m, BasicBlock):
                torch.nn.init.zeros_(m.last_bn.weight)
                torch.nn.init.zeros_(m.last_bn.bias)
        model.eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(plain(x), plain.fc.bias.expand(3, -1))
        assert not torch.allclose(residual(x)[0], residual(x)[1])


# ---------------------------------------------------------------------------- the whole study

def test_study_on_a_tiny_slice(tmp_path, data_root, monkeypatch):
    """Every arm trains (120 photos, 32 px, 1 epoch, 1 seed) through a real RunContext; the
    report gets the section, both tables and the figure; the metrics hold what they say."""
    from mllabs.report import Report, render_run
    from mllabs.runner import RunContext
    from mllabs.runs import Run
    from mllabs.session import Session

    monkeypatch.setenv("MLLABS_CACHE", str(tmp_path / "cache"))
    cfg = _depth.StudyConfig(study="depth", study_image_size=32, study_epochs=1, study_seeds=1,
                             limit=120, image_size=32, device="cpu", precision="fp32")
    photos = _depth.prepare(cfg, data_root / "flowers" / "flower_photos")
    assert photos.images.shape[1:] == (32, 32, 3) and len(photos.labels) == 120
    run = Run.create(tmp_path / "runs", "flowers")
    ctx = RunContext(run, Report(run, "flowers", "tiny"), torch.device("cpu"), progress=False,
                     session=Session(state_dir=run.checkpoints / "state", root=run.path))
    m = _depth.depth_study(cfg, photos, ctx)
    names = [a.name for a in _depth.arms(cfg)]
    assert len(names) == 6
    for name in names:
        assert 0 <= m[f"depth.{name}.train_accuracy"] <= 1 and 0 <= m[f"depth.{name}.test_accuracy"] <= 1
        assert m[f"depth.{name}.train_loss"] > 0 and m[f"depth.{name}.seconds"] > 0
    assert m["depth.resnet34.params"] > m["depth.plain34.params"] > m["depth.resnet18.params"] \
        > m["depth.plain18.params"]
    assert m["depth.resnet18.params"] == m["depth.resnet18_zero_init.params"]
    for depth in (18, 34):
        assert 0 <= m[f"depth.mcnemar_p_{depth}"] <= 1
        assert m[f"depth.skip_test_gain_{depth}_low"] <= m[f"depth.skip_test_gain_{depth}"] \
            <= m[f"depth.skip_test_gain_{depth}_high"]
    assert isinstance(m["depth.verdict_degradation"], bool)
    json.dumps(m)  # metrics.json can hold them

    ctx.report.save("test")
    run.write_metrics("completed", m)
    render_run(run.path)
    md = (run.path / "report.md").read_text()
    assert "Residual connections under a controlled test" in md
    assert ("Degradation shows" in md or "No degradation at this budget" in md
            or "Inconclusive" in md)
    assert "plain34" in md and "resnet34_zero_init" in md and "McNemar" in md
    assert (run.path / "figures" / "depth_study.png").stat().st_size > 0
    history = (run.path / "depth_history.csv").read_text().splitlines()
    assert history[0].startswith("arm,seed,epoch") and len(history) == 1 + 6
