"""flowers' ImageNet-pretrained arms on the real photos at a small size: the frozen blocks'
outputs are computed once and cached, a linear classifier on the features learns the species far
above chance, fine-tuning starts from that classifier and changes the top block only, and predict
uses the pretrained network."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from conftest import cache_in, run_cli

SMALL = ["--profile", "quick", "--set", "models=cnn,lite0-frozen,lite0-tuned", "--set", "image_size=32",
         "--set", "transfer_size=96", "--set", "limit=200", "--set", "epochs=1",
         "--set", "probe_epochs=30", "--set", "tune_epochs=1", "--set", "cam_photos=1", "--quiet"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("transfer")
    with cache_in(out / "cache"):
        assert run_cli("run", "flowers", *SMALL, "--out", out / "first") == 0
        # the frozen arm alone again: its features now come from the cache
        assert run_cli("run", "flowers", *SMALL, "--set", "models=lite0-frozen", "--out", out / "second") == 0
    return [next((out / name / "flowers").iterdir()) for name in ("first", "second")], out / "cache"


def test_pretrained_arms_are_compared_with_the_scratch_network(runs):
    (run_dir, _), _ = runs
    result = json.loads((run_dir / "metrics.json").read_text())
    m = result["metrics"]
    assert result["status"] == "completed"
    # 200 photos, 140 to train on: ImageNet features make a linear classifier far better than
    # chance (0.2) and than the CNN trained for one epoch at 32 px
    assert m["lite0-frozen.test_accuracy"] > 0.6 > m["cnn.test_accuracy"]
    assert m["pretrained.model"] in ("lite0-frozen", "lite0-tuned")
    # 4.65 M with ImageNet's 1,000-class head, 3.38 M with a 5-class one
    assert m["lite0-tuned.params"] == m["lite0-frozen.params"] > 3_000_000
    md = (run_dir / "report.md").read_text()
    assert "Pretraining: lite0-" in md and "95 % interval" in md
    assert "trained on these 140 photos alone" in md  # the run's own training photos, not the full set's
    with open(run_dir / "history.csv") as fh:
        models = {row["model"] for row in csv.DictReader(fh)}
    assert models == {"cnn", "lite0-frozen", "lite0-tuned"}


def test_features_are_cached_and_reused(runs):
    (first, second), cache = runs
    # the input of the top block (the one lite0-tuned trains), of the photos and of their mirrors
    assert len(list((cache / "features").glob("lite0-96px-block15-*.pt"))) == 2
    histories = []
    for r in (first, second):
        with open(r / "history.csv") as fh:
            histories.append([{k: v for k, v in row.items() if k != "seconds"}
                              for row in csv.DictReader(fh) if row["model"] == "lite0-frozen"])
    assert histories[0] and histories[0] == histories[1]  # the same features, the same training


def test_fine_tuning_starts_from_the_frozen_classifier(monkeypatch):
    from mllabs.labs import _transfer

    head = torch.nn.Linear(1280, 5)
    model = _transfer.network(5)
    model._fc.load_state_dict(head.state_dict())
    assert torch.equal(model._fc.weight, head.weight)
    x = torch.randint(0, 255, (2, 64, 64, 3), dtype=torch.uint8)
    batches = _transfer.batches(64, False, 0)
    # (pixel − 127) / 128: a mid-grey photo is about 0 for the pretrained network
    grey = batches(torch.full((1, 8, 8, 3), 127, dtype=torch.uint8), False)
    assert grey.abs().max() < 1e-6
    assert batches(x, False).shape == (2, 3, 64, 64)


def test_mirrored_activations_are_those_of_mirrored_photos(tmp_path, monkeypatch):
    from mllabs.labs import _transfer

    monkeypatch.setenv("MLLABS_CACHE", str(tmp_path))
    model = _transfer.network(5)
    images = np.random.default_rng(0).integers(0, 255, (3, 48, 48, 3), dtype=np.uint8)

    def acts(x, **kw):
        return _transfer.activations(model, x, 48, 15, log=lambda m: None, **kw)

    mirrored = acts(images, mirror=True)
    direct = acts(np.ascontiguousarray(images[:, :, ::-1]))
    assert mirrored.shape == (3, 192, 2, 2) and mirrored.dtype == torch.float32
    assert torch.equal(mirrored, direct)
    assert not torch.allclose(mirrored, acts(images))
    # float16 on disk: within half a unit of its last place of the network's own float32 output
    exact = _transfer._Bottom(model.eval(), 15)(_transfer.batches(48, False, 0)(torch.from_numpy(images), False))
    assert torch.allclose(acts(images), exact, rtol=1e-3, atol=1e-3)


def test_bottom_and_top_together_are_the_whole_network():
    """_Bottom and _Top spell out the network's layer order again (stem, blocks, head); split at
    any block they must compute what the network does, or the cached arms train another net."""
    from mllabs.labs import _transfer

    model = _transfer.network(5).eval()
    x = _transfer.batches(48, False, 0)(torch.randint(0, 255, (2, 48, 48, 3), dtype=torch.uint8), False)
    with torch.no_grad():
        whole = model(x)
        for first in (1, 11, 15):
            top = _transfer._Top(model, first).eval()
            assert torch.allclose(top(_transfer._Bottom(model, first)(x)), whole, atol=1e-5), first


def test_tuning_the_top_block_leaves_the_rest_as_imagenet_made_it(tmp_path, monkeypatch):
    """lite0-tuned with tune_blocks=1: block 15, the head and the classifier change; the stem,
    blocks 0-14 and every batch norm's statistics stay ImageNet's."""
    import types

    from mllabs import train
    from mllabs.config import build_config
    from mllabs.labs import _photos, _transfer, flowers

    monkeypatch.setenv("MLLABS_CACHE", str(tmp_path))
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 8)
    photos = _photos.Photos(rng.integers(0, 255, (40, 64, 64, 3), dtype=np.uint8), labels,
                            list("abcde"), [], _photos.stratified_split(labels, 0.2, 0.2, 0), {}, [])
    cfg = build_config(flowers.Config, flowers.PROFILES, "quick", ["tune_epochs=2", "tune_lr=1e-2"], seed=0)

    def fit(model, data, recipe, **kw):
        return train.fit(model, data, recipe, progress=False, **kw)

    ctx = types.SimpleNamespace(fit=fit, log=lambda m: None, autocast=None,
                                run=types.SimpleNamespace(checkpoints=tmp_path / "checkpoints"))
    loss_fn, accuracy = _photos.objective(cfg)
    head = torch.nn.Linear(1280, 5)
    inputs = _transfer.cached_inputs(cfg, photos, ctx.log)
    tuned = _transfer.train_tuned(cfg, photos, inputs, ctx, loss_fn, accuracy, head)["model"].state_dict()
    imagenet = _transfer.network(5).state_dict()
    changed = {k for k, v in tuned.items() if not k.startswith("_fc.") and not torch.equal(v, imagenet[k])}
    assert changed, "fine-tuning changed nothing"
    assert all(k.startswith(("_blocks.15.", "_conv_head.", "_bn1.")) for k in changed), sorted(changed)[:5]
    assert not any("running_" in k for k in changed)  # batch norms keep ImageNet's statistics
    assert not torch.equal(tuned["_fc.weight"], head.weight.detach())


def test_predict_uses_the_pretrained_network(runs, tmp_path, capsys):
    (run_dir, _), _ = runs
    spec = json.loads((run_dir / "predict.json").read_text())
    from mllabs.data import dataset_dir

    photo = sorted((dataset_dir("flowers", download=False) / "flower_photos" / "sunflowers").glob("*.jpg"))[0]
    assert run_cli("predict", run_dir, photo, "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["prediction"] in spec["classes"] and len(rows[0]["top"]) == 3
    if spec["architecture"].startswith("lite0"):
        assert spec["image_size"] == 96 and spec["mean"][0] == pytest.approx(127 / 255)
