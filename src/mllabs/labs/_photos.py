"""What the photo labs (flowers, eye-screening) share: a config of the training budget, photos
decoded once and split by class, the loop that trains every network on the same split, the
report pages that compare them (side by side, mistakes, Grad-CAM), and predict on photo files.

A lab supplies what differs: where its photos come from, how a network is built by name, and
the prose of its report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import io
import re

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mllabs import checkpoints
from mllabs.config import OPTIMIZERS, SCHEDULES, TrainConfig, option
from mllabs.data.augment import MEAN, STD, PhotoBatches
from mllabs.data.images import ImageFolder, load_image
from mllabs.errors import DataError
from mllabs.files import atomic_write_bytes
from mllabs.models import count_macs
from mllabs.models.gradcam import cam_layer, grad_cam, overlay
from mllabs.models.resnet import load_pretrained, weights_file
from mllabs.report import figures
from mllabs.report.classifier import describe_classifier
from mllabs.stats import wilson as wilson_interval
from mllabs.train import predict as forward


@dataclass
class PhotoConfig(TrainConfig):
    """The fields both photo labs have, with the flowers lab's defaults; a lab redefines the
    ones it sets differently (a redefined field keeps its place in `mllabs config`)."""

    models: tuple[str, ...] = option((), "networks trained and compared, in order")
    model: str = option("", "train only this one network (overrides models)")
    image_size: int = option(96, "photos are decoded and resized to this many pixels a side", min=32)
    epochs: int = option(40, "passes over the training photos, the same for every model", min=1)
    batch_size: int = option(32, "photos per update", min=1)
    precision: str = option("auto", "arithmetic of the forward pass (auto: bfloat16 where the CPU or GPU "
                            "computes it natively, else float32)", choices=("auto", "bf16", "fp32"))
    optimizer: str = option("adamw", "update rule", choices=OPTIMIZERS)
    lr: float = option(2e-3, "peak learning rate", gt=0.0)
    weight_decay: float = option(0.05, "weight decay (decoupled for adamw)", min=0.0)
    schedule: str = option("cosine", "learning-rate schedule (piecewise: × factor at each milestone)",
                           choices=SCHEDULES)
    label_smoothing: float = option(0.1, "share of each target spread over the other classes", min=0.0,
                                    lt=1.0)
    augment: bool = option(True, "random resized crop, flip and colour jitter while training")
    val_fraction: float = option(0.15, "share of each class held out to pick the best epoch", gt=0.0,
                                 lt=1.0)
    test_fraction: float = option(0.15, "share of each class held out for the test set", gt=0.0, lt=1.0)
    zero_init_residual: bool = option(True, "start each residual block as the identity (last batch "
                                      "norm of the block at zero)")
    pretrained: bool = option(False, "start ResNets from ImageNet weights (downloaded once; needs internet)")
    limit: int = option(0, "use only this many photos, stratified (0: all)", min=0)
    cam_photos: int = option(4, "test photos shown with Grad-CAM heatmaps", min=0)


def model_names(cfg: PhotoConfig) -> tuple[str, ...]:
    return (cfg.model,) if cfg.model else tuple(dict.fromkeys(cfg.models))


# ---------------------------------------------------------------------------- data

@dataclass
class Photos:
    images: np.ndarray            # (N, S, S, 3) uint8, decoded once
    labels: np.ndarray
    classes: list[str]
    paths: list[Path]
    split: dict[str, np.ndarray]  # train / val / test indices
    cache: dict                   # hit or miss, seconds
    skipped: list


def stratified_split(labels: np.ndarray, val: float, test: float, seed: int) -> dict[str, np.ndarray]:
    """The same share of every class in each part, seeded."""
    rng = np.random.default_rng(seed)
    parts = {"train": [], "val": [], "test": []}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test, n_val = round(test * len(idx)), round(val * len(idx))
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test:n_test + n_val])
        parts["train"].append(idx[n_test + n_val:])
    return {k: np.sort(np.concatenate(v)) for k, v in parts.items()}


def check_weights(cfg: PhotoConfig) -> None:
    """With `pretrained`, every ResNet's ImageNet weights are found (or downloaded) and verified in
    prepare, before the first network trains: offline, the run fails at once with what to do."""
    if cfg.pretrained:
        for name in model_names(cfg):
            if name.startswith("resnet"):
                weights_file(name)


def check_fractions(cfg: PhotoConfig) -> None:
    if cfg.val_fraction + cfg.test_fraction >= 0.9:
        raise DataError(f"val_fraction + test_fraction = {cfg.val_fraction + cfg.test_fraction:g} "
                        "leaves too little to train on; keep their sum below 0.9")


def split_photos(cfg: PhotoConfig, folder: ImageFolder, cache: dict) -> Photos:
    """A stratified sample of `limit` photos (all by default), split into train/val/test."""
    images, labels, paths = folder.images, folder.labels, folder.paths
    if cfg.limit and cfg.limit < len(labels):
        # the "train" part of a split that leaves out all but `limit`: a stratified sample
        keep = stratified_split(labels, 0.0, 1 - cfg.limit / len(labels), cfg.seed)["train"]
        images, labels, paths = images[keep], labels[keep], [paths[i] for i in keep]
    split = stratified_split(labels, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    return Photos(images, labels, folder.classes, paths, split, cache, folder.skipped)


def describe_data(cfg: PhotoConfig, photos: Photos, rep, files: str = "JPEGs") -> None:
    """How many photos, how they were decoded (or read from the cache), the split, a grid of
    training photos and, with augmentation, eight augmented views of one of them."""
    counts = np.bincount(photos.labels, minlength=len(photos.classes))
    cache = photos.cache
    rep.section("The photos", f"{len(photos.labels):,} photos in {len(photos.classes)} classes, "
                f"decoded once to {cfg.image_size}×{cfg.image_size} px (shorter side scaled, centre "
                f"crop) and kept as one uint8 array: this run "
                + (f"read it from the cache in {cache['seconds']:.2f} s"
                   if cache["cache"] == "hit" else
                   f"decoded the {files} in {cache['seconds']:.1f} s and cached them; the next run "
                   "reads the array instead")
                + (f". {len(photos.skipped)} unreadable file(s) were skipped: "
                   + ", ".join(p.name for p, _ in photos.skipped[:10]) if photos.skipped else "")
                + ".")
    rep.table([{"class": c, "photos": int(counts[k]),
                **{part: int((photos.labels[idx] == k).sum()) for part, idx in photos.split.items()}}
               for k, c in enumerate(photos.classes)],
              f"Photos per class and the stratified split (seed {cfg.seed}): every class keeps the "
              "same share in training, validation and test")
    rng = np.random.default_rng(cfg.seed)
    shown = rng.choice(photos.split["train"], min(20, len(photos.split["train"])), replace=False)
    rep.figure(figures.image_grid(photos.images[shown], [photos.classes[photos.labels[i]] for i in shown]),
               "training_photos", f"{len(shown)} training photos with their labels",
               conclusion=shown_text(photos.labels[shown], photos.classes))
    if cfg.augment:
        demo = PhotoBatches(cfg.image_size, seed=cfg.seed)
        one = torch.from_numpy(np.repeat(photos.images[shown[:1]], 8, axis=0))
        views = unnormalise(demo(one, True))
        rep.figure(figures.image_grid(np.concatenate([photos.images[shown[:1]], views]),
                                      ["as stored"] + [f"augmented {k + 1}" for k in range(8)], ncols=9),
                   "augmentation", "One training photo and eight augmented views of it (random "
                   "resized crop, horizontal flip, colour jitter), made on the whole batch at once",
                   conclusion=augmentation_text(photos.images[shown[0]], views))


def shown_text(labels: np.ndarray, classes: list[str]) -> str:
    """What the grid of training photos holds, counted: classes shown and photos per class."""
    counts = np.bincount(labels, minlength=len(classes))
    present = [f"{classes[k]} {counts[k]}" for k in np.argsort(-counts, kind="stable") if counts[k]]
    missing = len(classes) - len(present)
    return (f"A random draw of {len(labels)} training photos shows {len(present)} of the "
            f"{len(classes)} classes ({', '.join(present)})"
            + (f"; {missing} class(es) did not come up in this draw" if missing else "")
            + ": the grid is a sample to look at, the table above is the count.")


def augmentation_text(original: np.ndarray, views: np.ndarray) -> str:
    """How far the augmented views are from the stored photo, measured pixel by pixel."""
    change = np.abs(views.astype(np.float32) - original.astype(np.float32)[None]).mean(axis=(1, 2, 3))
    text = (f"The {len(views)} views differ from the stored photo by {change.min():.0f} to "
            f"{change.max():.0f} of 255 per pixel value on average (mean {change.mean():.0f})")
    if change.min() >= 1:
        return text + (": no view repeats the stored pixels, so each epoch shows the network new "
                       "versions of its photos.")
    return text + (f": {int((change < 1).sum())} view(s) came out nearly as stored (a full-size "
                   "crop, no flip).")


def unnormalise(x: torch.Tensor) -> np.ndarray:
    return ((x * STD + MEAN).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()


# ---------------------------------------------------------------------------- training

def maker(network: Callable[[str, PhotoConfig, int], nn.Module], cfg: PhotoConfig, photos: Photos,
          ctx) -> Callable[[str], nn.Module]:
    """train_models' `make(name)`: the lab's `network(name, cfg, classes)`, a ResNet started from
    ImageNet weights when cfg.pretrained (what was loaded goes to the log)."""
    def make(name: str) -> nn.Module:
        model = network(name, cfg, len(photos.classes))
        if cfg.pretrained and name.startswith("resnet"):
            ctx.log(str(load_pretrained(model, name)))
        return model

    return make


def objective(cfg: PhotoConfig):
    """The loss every photo network trains on (cross-entropy with label smoothing) and accuracy."""
    smoothing = cfg.label_smoothing

    def loss_fn(out, target):
        return F.cross_entropy(out, target, label_smoothing=smoothing)

    def accuracy(out, target):
        return (out.argmax(1) == target).float().mean()

    return loss_fn, accuracy


def train_models(cfg: PhotoConfig, photos: Photos, ctx, make: Callable[[str], nn.Module],
                 names: tuple[str, ...] | None = None) -> tuple[dict[str, dict], str]:
    """Train every network of the config (or `names`) on the same split, augmentation and budget,
    each from the same seed; `make(name)` builds one. Returns what each did (model, history, test
    probabilities, size, time) and the run's status."""
    x = torch.from_numpy(photos.images)  # uint8; each batch is converted (and augmented) on its way in
    y = torch.from_numpy(photos.labels.astype(np.int64))
    sets = {k: (x[idx], y[idx]) for k, idx in photos.split.items()}
    loss_fn, accuracy = objective(cfg)
    autocast = ctx.autocast  # from cfg.precision: bfloat16 where the hardware computes it natively
    ctx.log(f"forward passes in {'bfloat16' if autocast else 'float32'} (precision={cfg.precision})")
    trained, status = {}, "completed"
    for name in model_names(cfg) if names is None else names:
        torch.manual_seed(cfg.seed)
        model = make(name)
        model.to(memory_format=torch.channels_last)  # matches PhotoBatches' output layout
        batches = PhotoBatches(cfg.image_size, augment=cfg.augment, seed=cfg.seed)
        result = ctx.fit(model, sets["train"], cfg, loss_fn=loss_fn, metrics={"accuracy": accuracy},
                         val=sets["val"], restore_best=True, batch_transform=batches,
                         checkpoint_dir=ctx.run.checkpoints / name, keep_last=1,
                         label=name)
        probs = torch.softmax(forward(model, sets["test"][0], transform=batches, autocast=autocast),
                              1).cpu().numpy()
        trained[name] = outcome(model, result, probs, photos, batches, autocast)
        log_outcome(ctx, name, trained[name])
        if result.status != "completed":
            status = result.status
            break
    return trained, status


def log_outcome(ctx, name: str, t: dict) -> None:
    ctx.log(f"{name}: test accuracy {t['test_accuracy']:.3f}, {t['seconds_per_epoch']:.1f} s per epoch")


def write_history(run, trained: dict) -> None:
    """history.csv: every model's epochs, one row each, named by model."""
    run.write_history([{"model": n, **row} for n, t in trained.items() for row in t["history"]])


def outcome(model: nn.Module, result, probs: np.ndarray, photos: Photos, batches: PhotoBatches,
            autocast, extra_seconds: float = 0.0) -> dict:
    """What the report and predict need of one trained network: its test probabilities and
    accuracy, the best validation accuracy, size, operations and time (`extra_seconds`: work
    outside its epochs, such as computing frozen features)."""
    test_y = photos.labels[photos.split["test"]]
    test_loss = float(F.cross_entropy(torch.from_numpy(np.log(np.clip(probs, 1e-12, 1))),
                                      torch.from_numpy(test_y.astype(np.int64))))
    epochs = len(result.history)
    size = batches.size
    return {"model": model, "history": result.history, "probs": probs, "batches": batches,
            "test_accuracy": float((probs.argmax(1) == test_y).mean()), "test_loss": test_loss,
            "val_accuracy": max(r["val_accuracy"] for r in result.history),
            "seconds_per_epoch": sum(r["seconds"] for r in result.history) / max(epochs, 1),
            "seconds": sum(r["seconds"] for r in result.history) + extra_seconds,
            "epochs": epochs, "image_size": size,
            "params": sum(p.numel() for p in model.parameters()),
            "macs": count_macs(model, (3, size, size)),
            "best_epoch": result.best_epoch, "status": result.status,
            "precision": "bf16" if autocast else "fp32"}


def model_metrics(trained: dict) -> dict:
    """Every model's numbers under its own name: resnet18.test_accuracy, cnn.params, ..."""
    return {f"{name}.{key}": t[key] for name, t in trained.items()
            for key in ("test_accuracy", "test_loss", "seconds_per_epoch", "params", "macs")}


def first_resnet(trained: dict) -> str | None:
    return next((n for n in trained if n.startswith("resnet")), None)


# ---------------------------------------------------------------------------- report

def describe_comparison(cfg: PhotoConfig, trained: dict, rep, text: str) -> None:
    """The models side by side: a table, the lab's `text` about it, curves on shared axes."""
    rows = []
    for n, t in trained.items():
        low, high = wilson_interval(t["test_accuracy"], len(t["probs"]))
        rows.append({"model": n, "parameters": f"{t['params']:,}",
                     "multiply-adds": f"{t['macs'] / 1e6:,.0f} M", "image size": f"{t['image_size']} px",
                     "test accuracy": f"{t['test_accuracy']:.3f}",
                     "95 % interval": f"{low:.3f}–{high:.3f}", "test loss": f"{t['test_loss']:.3f}",
                     "epochs": t["epochs"], "best epoch": t["best_epoch"],
                     "seconds per epoch": f"{t['seconds_per_epoch']:.1f}",
                     "training seconds": f"{t['seconds']:.0f}"})
    rep.section("The models side by side", text)
    arithmetic = "bfloat16" if next(iter(trained.values()), {}).get("precision") == "bf16" else "float32"
    rep.table(rows, f"Each model with the weights of its epoch with the lowest validation loss, "
              f"forward passes in {arithmetic}; multiply-adds for one photo; the interval is the "
              "95 % Wilson interval of the test accuracy over the test photos")
    panels = {"accuracy": {}, "loss": {}}
    for n, t in trained.items():
        epochs = [r["epoch"] for r in t["history"]]
        for key in ("accuracy", "loss"):
            panels[key][f"{n} train"] = (epochs, [r[f"train_{key}"] for r in t["history"]])
            panels[key][f"{n} validation"] = (epochs, [r[f"val_{key}"] for r in t["history"]])
    rep.figure(figures.curves(panels), "curves", "Accuracy and loss per epoch for every model on "
               "shared axes (training: running mean over the epoch, with augmentation; validation: "
               "exact, without)", conclusion=curves_conclusion({n: t["history"] for n, t in trained.items()}))


def curves_conclusion(histories: dict[str, list[dict]]) -> str:
    """Which model's validation accuracy peaks highest and when, and which ends furthest above
    its validation accuracy on the training batches (the one that overfits most)."""
    peak = {n: max(h, key=lambda r: r["val_accuracy"]) for n, h in histories.items()}
    ranked = sorted(peak, key=lambda n: -peak[n]["val_accuracy"])
    text = (f"{ranked[0]}'s validation accuracy peaks highest, at {100 * peak[ranked[0]]['val_accuracy']:.1f} % "
            f"in epoch {peak[ranked[0]]['epoch']}")
    text += "".join(f"; {n}'s at {100 * peak[n]['val_accuracy']:.1f} % in epoch {peak[n]['epoch']}"
                    for n in ranked[1:])
    gap = {n: h[-1]["train_accuracy"] - h[-1]["val_accuracy"] for n, h in histories.items()}
    widest = max(gap, key=gap.get)
    if gap[widest] > 0.05:
        text += (f"; by the last epoch {widest} is {100 * gap[widest]:.0f} points better on its "
                 "training batches than on validation, the widest gap")
    return text + "."


def comparison_text(trained: dict) -> str:
    """Written from the measured numbers: who won, by how much, at what cost."""
    ranked = sorted(trained, key=lambda n: trained[n]["test_accuracy"], reverse=True)
    best = ranked[0]
    text = f"{best} reached {trained[best]['test_accuracy']:.1%} test accuracy"
    if len(ranked) > 1:
        other = ranked[1]
        b, o = trained[best], trained[other]
        text += (f", {100 * (b['test_accuracy'] - o['test_accuracy']):.1f} points above {other} "
                 f"({o['test_accuracy']:.1%}), with {b['params'] / o['params']:.2g}× the parameters, "
                 f"{b['macs'] / o['macs']:.2g}× the multiply-adds and "
                 f"{b['seconds'] / max(o['seconds'], 1e-9):.2g}× the training time")
    return text + "."


def describe_mistakes(cfg: PhotoConfig, photos: Photos, trained: dict, rep) -> None:
    test = photos.split["test"]
    rep.section("Where each model goes wrong")
    for n, t in trained.items():
        describe_classifier(rep, t["probs"], photos.labels[test], photos.classes, photos.images[test],
                            cfg.seed, what="photos", name=n, grid=(15, 5), ncols=5)


def describe_attention(cfg: PhotoConfig, photos: Photos, trained: dict, rep, meaning: str) -> None:
    """Grad-CAM: the same test photos under every model, warm where the predicted class's score
    rises most when that region of the last convolutional features grows. `meaning` says what
    looking at one region or another would mean for the lab's photos."""
    test = photos.split["test"]
    rng = np.random.default_rng(cfg.seed + 1)
    chosen = test[rng.choice(len(test), min(cfg.cam_photos, len(test)), replace=False)]
    images = photos.images[chosen]
    tiles, titles, wrong = [], [], []
    heats, right = {}, {n: [] for n in trained}
    for n, t in trained.items():
        batch = t["batches"](torch.from_numpy(images), False)
        heats[n] = grad_cam(t["model"], cam_layer(t["model"]), batch)
    for i, k in enumerate(chosen):
        tiles.append(images[i])
        titles.append(f"true: {photos.classes[photos.labels[k]]}")
        wrong.append(False)
        for n, t in trained.items():
            guess = int(t["probs"][np.searchsorted(test, k)].argmax())
            tiles.append(overlay(images[i], heats[n][i]))
            titles.append(f"{n}: {photos.classes[guess]}")
            wrong.append(guess != photos.labels[k])
            right[n].append(guess == photos.labels[k])
    rep.section("What each model looks at", "Grad-CAM weighs the last convolutional feature maps "
                "by how much the predicted class's score depends on them; warm regions drove the "
                "decision. " + meaning)
    rep.figure(figures.image_grid(np.stack(tiles), titles, wrong, ncols=1 + len(trained)), "grad_cam",
               "Each row: a test photo, then every model's Grad-CAM heatmap over it with its "
               "prediction (red: wrong)", conclusion=attention_text(heats, right))


def centre_share(heat: np.ndarray) -> np.ndarray:
    """Each heatmap's share of its total heat inside the central half of each side (a quarter of
    the photo's area: 25 % if the heat were spread evenly)."""
    h, w = heat.shape[-2:]
    inner = heat[:, h // 4:h - h // 4, w // 4:w - w // 4].sum(axis=(1, 2))
    return inner / np.maximum(heat.sum(axis=(1, 2)), 1e-12)


def attention_text(heats: dict[str, np.ndarray], right: dict[str, list[bool]]) -> str:
    """Where each model's heat lies on the photos it got right and on those it got wrong,
    measured as the share of heat in the photo's centre."""
    parts = []
    for n, heat in heats.items():
        share, ok = centre_share(heat), np.asarray(right[n], bool)
        part = f"{n} {ok.sum()} of {len(ok)} right"
        if np.ptp(heat) < 1e-3:  # a 1×1 last feature map upsamples to a constant: nothing to localise
            parts.append(part + ", its heat flat over the whole photo (the last feature maps are "
                         "too small at this image size to say where it looks)")
            continue
        if ok.any():
            part += f", centre share {100 * share[ok].mean():.0f} % on those"
        if (~ok).any():
            part += f", {100 * share[~ok].mean():.0f} % on the wrong ones"
        parts.append(part)
    return ("Share of each heatmap's heat in the photo's central quarter (25 % if spread evenly): "
            + "; ".join(parts) + ". Far above 25 %: the model looks at the middle of the photo; "
            "far below: at its edges and background.")


# ---------------------------------------------------------------------------- predict

def save_for_predict(run_dir: Path, lab: str, cfg: PhotoConfig, photos: Photos, trained: dict,
                     **extra) -> None:
    """predict uses the model with the best validation accuracy (chosen without the test set);
    `extra` goes into predict.json beside its architecture, classes and image size."""
    chosen = max(trained, key=lambda n: trained[n]["val_accuracy"])
    batches = trained[chosen]["batches"]
    checkpoints.save_for_predict(run_dir, lab, {"architecture": chosen, "classes": photos.classes,
                                                "image_size": batches.size, "mean": list(batches.mean),
                                                "std": list(batches.std), **extra},
                                 {"model": trained[chosen]["model"].state_dict()})


def example_photo(photos: Photos, run_dir: Path) -> list[str]:
    """A test photo copied into the run directory, byte for byte (so the printed predict command
    works after the original folder moves); its name says the class it really is."""
    i = int(photos.split["test"][0])
    source = Path(photos.paths[i])
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"example-{photos.classes[photos.labels[i]]}-{source.name}")
    try:
        data = source.read_bytes()
    except OSError:  # the photo left its folder since the decode cache was made: save what was decoded
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(photos.images[i]).save(buf, format="PNG")
        data, name = buf.getvalue(), Path(name).stem + ".png"
    path = run_dir / name
    atomic_write_bytes(path, data)
    return [str(path)]


def predict_photos(run_dir: Path, inputs: list[Path], lab: str, build: Callable[[dict], nn.Module],
                   top: int = 3, explain: bool = False) -> list[dict]:
    """The `top` classes of each photo with their probabilities; `build(spec)` makes the empty
    network named in predict.json. explain: each result also holds "grad_cam", the heatmap
    (image_size², 0..1) of the predicted class over the centre crop the network saw."""
    spec = checkpoints.load_spec(run_dir, lab)
    model = checkpoints.load_model(run_dir, spec, build)
    size = spec["image_size"]
    photos = np.stack([load_image(p, size) for p in inputs])  # every file checked before any output
    # runs made before predict.json held the normalisation used ImageNet's, PhotoBatches' default
    stats = {k: tuple(spec[k]) for k in ("mean", "std") if k in spec}
    batches = PhotoBatches(size, augment=False, **stats)
    probs = torch.softmax(forward(model, torch.from_numpy(photos), transform=batches), 1).numpy()
    results = checkpoints.top_k(inputs, probs, spec["classes"], top)
    for result, photo in zip(results, photos):
        # one flat colour (JPEG noise aside): nothing in it to recognise, as MNIST's blank digit
        if photo.reshape(-1, 3).astype(np.float32).std(0).max() < FLAT:
            result["warning"] = ("the photo is one flat colour, with nothing in it to recognise, "
                                 "so this prediction means nothing")
    if explain:
        heats = grad_cam(model, cam_layer(model), batches(torch.from_numpy(photos), False))
        for result, heat in zip(results, heats):
            result["grad_cam"] = heat
    return results


FLAT = 2.0  # per-channel standard deviation (of 0-255) below which a photo is one colour
