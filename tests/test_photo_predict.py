"""Photo predict (flowers, eye-screening) on a photo of one flat colour: a prediction with a
warning, as MNIST predict warns of a blank digit; a real photo, even a dim or low-contrast one,
gets none."""

from __future__ import annotations

import numpy as np
from PIL import Image
from torch import nn

from bad_inputs import corpus
from mllabs import checkpoints
from mllabs.labs import _photos


def tiny(spec: dict) -> nn.Module:
    """A stand-in network: what is tested is the photo handling around it, not its answers."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, len(spec["classes"])))


def test_a_flat_colour_photo_gets_a_warning_and_a_real_one_none(tmp_path):
    classes = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    run = tmp_path / "run"
    spec = {"architecture": "tiny", "classes": classes, "image_size": 48}
    checkpoints.save_for_predict(run, "flowers", spec, {"model": tiny(spec).state_dict()})
    Image.new("RGB", (300, 200), (255, 255, 255)).save(tmp_path / "white.png")
    Image.new("RGB", (120, 90), (40, 120, 30)).save(tmp_path / "green.jpg", quality=60)  # JPEG noise
    corpus.picture((120, 90)).save(tmp_path / "photo.jpg")
    # the same photo dim and at a tenth of its contrast: still something to see
    dim = 20 + 0.1 * np.asarray(corpus.picture((120, 90)), dtype=np.float32)
    Image.fromarray(dim.astype(np.uint8)).save(tmp_path / "dim.png")
    names = ["white.png", "green.jpg", "photo.jpg", "dim.png"]
    results = _photos.predict_photos(run, [tmp_path / n for n in names], "flowers", tiny)
    warned = {r["input"].rsplit("/", 1)[1]: "warning" in r for r in results}
    assert warned == {"white.png": True, "green.jpg": True, "photo.jpg": False, "dim.png": False}
    assert all(r["prediction"] in classes for r in results)
    assert "one flat colour" in results[0]["warning"]
