"""Photo pipeline: the decoded-image cache, batch augmentation, and fit()'s batch_transform."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from mllabs.data.augment import PhotoBatches, colour_jitter, random_resized_crop, to_float
from mllabs.data.images import cached_image_folder


@pytest.fixture
def photo_folder(tmp_path):
    """Two classes in every mode a user's folder may hold, plus one corrupt file."""
    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True)
        for k in range(3):
            Image.fromarray(rng.integers(0, 255, (40 + 10 * k, 60, 3), dtype=np.uint8)).save(root / cls / f"{k}.jpg")
    Image.new("CMYK", (50, 50), (0, 255, 0, 0)).save(root / "cats" / "cmyk.jpg")
    Image.new("RGBA", (30, 50), (255, 0, 0, 0)).save(root / "dogs" / "clear.png")  # transparent → white
    Image.new("L", (64, 64), 90).save(root / "dogs" / "grey.png")
    (root / "dogs" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


def test_cache_decodes_once_and_notices_changes(photo_folder, tmp_path):
    cache = tmp_path / "cache"
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image.*broken\.jpg"):
        first, info = cached_image_folder(photo_folder, 32, cache)
    assert info["cache"] == "miss" and first.images.shape == (9, 32, 32, 3)
    assert first.classes == ["cats", "dogs"] and first.labels.tolist() == [0] * 4 + [1] * 5
    clear = first.paths.index(photo_folder / "dogs" / "clear.png")
    assert (first.images[clear] == 255).all()  # alpha composited on white
    with pytest.warns(UserWarning, match="broken.jpg"):  # the warning repeats on a cached run
        second, info = cached_image_folder(photo_folder, 32, cache)
    assert info["cache"] == "hit"
    assert np.array_equal(first.images, second.images) and first.paths == second.paths
    Image.new("RGB", (40, 40), (0, 0, 255)).save(photo_folder / "cats" / "0.jpg")  # a photo changes
    os.utime(photo_folder / "cats" / "0.jpg", ns=(1, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        third, info = cached_image_folder(photo_folder, 32, cache)
    assert info["cache"] == "miss" and not np.array_equal(third.images[0], first.images[0])


def test_a_corrupt_cache_file_is_rebuilt(photo_folder, tmp_path):
    cache = tmp_path / "cache"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cached_image_folder(photo_folder, 24, cache)
        (file,) = cache.iterdir()
        file.write_bytes(b"truncated")
        folder, info = cached_image_folder(photo_folder, 24, cache)
    assert info["cache"] == "miss" and folder.images.shape[0] == 9


def test_crop_of_the_whole_photo_is_the_photo_or_its_mirror():
    x = to_float(torch.randint(0, 255, (64, 20, 20, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(2)))
    out = random_resized_crop(x, 20, torch.Generator().manual_seed(1), scale=(1, 1), ratio=(1, 1))
    same = (out - x).abs().amax(dim=(1, 2, 3)) < 1e-4
    mirrored = (out - x.flip(-1)).abs().amax(dim=(1, 2, 3)) < 1e-4
    assert (same | mirrored).all()
    assert 15 < mirrored.sum() < 49  # about half are flipped


def test_crops_differ_per_photo_and_keep_the_size():
    x = to_float(torch.randint(0, 255, (1, 50, 50, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(3)))
    out = random_resized_crop(x.repeat(8, 1, 1, 1), 32, torch.Generator().manual_seed(0))
    assert out.shape == (8, 3, 32, 32)
    gaps = (out[:, None] - out[None]).abs().amax(dim=(2, 3, 4))
    assert (gaps + torch.eye(8) > 1e-3).all()  # no two views of the same photo are alike


def test_colour_jitter_stays_in_range_and_zero_strength_is_identity():
    x = torch.rand(16, 3, 8, 8)
    assert torch.allclose(colour_jitter(x.clone(), torch.Generator(), strength=0.0), x, atol=1e-6)
    out = colour_jitter(x.clone(), torch.Generator().manual_seed(0), strength=0.5)
    assert out.min() >= 0 and out.max() <= 1 and not torch.allclose(out, x)


def test_photo_batches_augment_only_when_training():
    batch = torch.randint(0, 255, (4, 40, 40, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    t = PhotoBatches(32, seed=0)
    assert torch.equal(t(batch, False), t(batch, False))  # evaluation: the same every time
    assert not torch.equal(t(batch, True), t(batch, True))
    assert t(batch, False).shape == t(batch, True).shape == (4, 3, 32, 32)


def test_fit_feeds_batches_through_the_transform():
    from mllabs.config import TrainConfig
    from mllabs.train import cross_entropy, fit

    seen = []

    def transform(batch, training):
        seen.append((batch.dtype, training))
        return batch.float().flatten(1) / 255

    x = torch.randint(0, 255, (40, 4, 4, 3), dtype=torch.uint8)
    y = torch.randint(0, 2, (40,))
    model = torch.nn.Linear(48, 2)
    cfg = TrainConfig(epochs=2, batch_size=16)
    result = fit(model, (x, y), cfg, loss_fn=cross_entropy, val=(x[:8], y[:8]), progress=False,
                 batch_transform=transform)
    assert result.status == "completed"
    assert seen.count((torch.uint8, True)) == 2 * 3 and seen.count((torch.uint8, False)) == 2
