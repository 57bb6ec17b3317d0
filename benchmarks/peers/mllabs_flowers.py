"""mllabs side of the flowers benchmark: the lab's plain CNN for a fixed number of epochs, images
per second in training and in inference.

Runs with the project's venv. The flowers lab's own pieces, at its default settings: the photos
decoded once to 96 px (mllabs.labs.flowers.prepare, its decode cache and stratified 70/15/15
split with seed 0), the plain CNN (conv-BN-ReLU-pool 32/64/128/256, global pool, dropout 0.3,
dense 5), channels-last, PhotoBatches augmentation (random resized crop, flip, colour jitter on
the whole batch), AdamW 2e-3 with weight decay 0.05 and a cosine schedule, label smoothing 0.1,
batch 32, through mllabs.train.fit(). `--precision auto` is the lab's default (bfloat16 forward
passes where the CPU computes them natively), `fp32` plain float32.

training   --epochs passes over the 2,568 training photos, nothing evaluated in between:
           images/s = photos × epochs ÷ fit()'s seconds (and without the first epoch: steady)
inference  one pass over the 1,102 held-out photos (validation + test) in batches of 32, after a
           one-batch warm-up: images/s; test accuracy is reported as a sanity check only.

With --export FILE the decoded photos and split are saved (.npz) for the Keras peer, so both
read the very same pixels.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import _common as common

args = common.arguments(__doc__, epochs={"type": int, "default": 3},
                        precision={"choices": ("auto", "fp32"), "default": "auto"},
                        export={"type": Path, "default": None})
threads = common.set_threads(args.threads)

clock = common.Clock()
with clock("import"):
    import numpy as np
    import torch
    import torch.nn.functional as F

    import mllabs
    from mllabs.data.augment import PhotoBatches
    from mllabs.labs import flowers
    from mllabs.models.resnet import build
    from mllabs.train import fit, predict, resolve_precision
torch.set_num_threads(threads)
torch.set_num_interop_threads(1)

cfg = flowers.Config(seed=0)  # the lab's default profile: 96 px, batch 32, AdamW, cosine
cfg = dataclasses.replace(cfg, epochs=1 if args.smoke else args.epochs, limit=300 if args.smoke else 0)
with clock("data"):
    photos = flowers.prepare(cfg, args.data).photos  # the 96 px photos the scratch networks train on
    x = torch.from_numpy(photos.images)
    y = torch.from_numpy(photos.labels.astype(np.int64))
    split = photos.split
    held = np.concatenate([split["val"], split["test"]])
    if args.export:
        args.export.parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.export, images=photos.images, labels=photos.labels, train=split["train"],
                 val=split["val"], test=split["test"], classes=np.array(photos.classes))


def loss_fn(out, target):
    return F.cross_entropy(out, target, label_smoothing=cfg.label_smoothing)


autocast = resolve_precision(args.precision, torch.device("cpu"))
torch.manual_seed(args.seed)
model = build("cnn", len(photos.classes)).to(memory_format=torch.channels_last)
batches = PhotoBatches(cfg.image_size, augment=cfg.augment, seed=args.seed)
cfg = dataclasses.replace(cfg, seed=args.seed)
train_x, train_y = x[split["train"]], y[split["train"]]
result = fit(model, (train_x, train_y), cfg, loss_fn=loss_fn, restore_best=False, progress=False,
             batch_transform=batches, autocast=autocast)
per_epoch = [r["seconds"] for r in result.history]

held_x = x[held]
predict(model, held_x[:32], batch_size=32, transform=batches, autocast=autocast)  # warm-up
tick = time.perf_counter()
out = predict(model, held_x, batch_size=32, transform=batches, autocast=autocast)
infer_seconds = time.perf_counter() - tick
n_test = len(split["test"])
test_accuracy = float((out[-n_test:].argmax(1) == y[split["test"]]).float().mean())

n = len(train_y)
common.emit({
    "benchmark": "flowers", "framework": "mllabs",
    "variant": f"mllabs ({'bfloat16' if autocast else 'float32'}, precision={args.precision})",
    "recipe": "flowers lab plain CNN, 96 px, batch 32, AdamW 2e-3 wd 0.05, cosine, label smoothing "
              "0.1, PhotoBatches augmentation",
    "precision": "bf16" if autocast else "fp32", "seed": args.seed, "threads": threads,
    "versions": {"mllabs": mllabs.__version__, "torch": torch.__version__},
    "import_seconds": clock.seconds["import"], "data_seconds": clock.seconds["data"],
    "image_size": cfg.image_size, "batch_size": cfg.batch_size, "epochs": len(per_epoch),
    "train_examples": n, "heldout_examples": len(held), "seconds_per_epoch": per_epoch,
    "train_seconds": sum(per_epoch), "train_images_per_second": n * len(per_epoch) / sum(per_epoch),
    "train_images_per_second_steady": (n * (len(per_epoch) - 1) / sum(per_epoch[1:])
                                       if len(per_epoch) > 1 else None),
    "inference_seconds": infer_seconds, "inference_images_per_second": len(held) / infer_seconds,
    "test_accuracy": test_accuracy, "final_train_loss": result.history[-1]["train_loss"],
})
