"""Flowers: a plain CNN against a ResNet on the five species of the TensorFlow flower photos.

The handout trains a small convolutional network and then ResNet-50 on the same photos and
compares them. Here both train in one run on the same seeded, stratified split, with the same
augmentation and budget; the report puts them side by side (size, operations, accuracy, time),
shows where each goes wrong and, with Grad-CAM, what each looks at. `--set
models=cnn,resnet18,plain18` adds the same ResNet without its skip connections, which isolates
what the residual connection itself does.

The mechanics it shares with the eye-screening lab (decoding and splitting the photos, the
training loop over the models, the comparison pages, predict) are in `_photos.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from mllabs import data as datasets
from mllabs.config import option
from mllabs.data.images import cached_image_folder
from mllabs.labs import _photos
from mllabs.labs._photos import PhotoConfig, Photos
from mllabs.models.resnet import MODELS, build

NAME = "flowers"
TITLE = "Flowers: a plain CNN against a ResNet"
SUMMARY_LINE = "5 flower species from photos: plain CNN vs ResNet, curves, confusion, Grad-CAM, predict"
SUMMARY = (
    "3,670 photos of daisies, dandelions, roses, sunflowers and tulips. A plain convolutional "
    "network and a residual network learn them on the same split with the same augmentation "
    "and budget; the report compares their size, operations, accuracy and time, where each "
    "goes wrong, and with Grad-CAM which part of the photo each one looks at.")

ARCHITECTURES = MODELS  # cnn, resnet18/34/50, plain18/34
SPECIES = 5


@dataclass
class Config(PhotoConfig):
    """The budget (image size 96, 40 epochs, AdamW with a cosine schedule, label smoothing,
    augmentation, 15 % validation and 15 % test) is PhotoConfig's; here: which networks."""

    models: tuple[str, ...] = option(("cnn", "resnet18"), "networks trained and compared, in order "
                                     "(plain18: resnet18 without skip connections)", choices=ARCHITECTURES)
    model: str = option("", "train only this one network (overrides models)",
                        choices=("",) + ARCHITECTURES)


PROFILES = {
    "quick": {"image_size": 48, "epochs": 2, "limit": 300, "batch_size": 32, "cam_photos": 2},
    "default": {},
    "full": {"models": ("cnn", "resnet50"), "image_size": 224, "epochs": 90, "optimizer": "momentum",
             "lr": 0.1, "weight_decay": 1e-4, "schedule": "piecewise", "milestones": (30, 60),
             "batch_size": 64, "label_smoothing": 0.0},
}


def network(name: str, cfg: Config, num_classes: int = SPECIES) -> nn.Module:
    return build(name, num_classes, zero_init_residual=cfg.zero_init_residual)


def networks(cfg: Config) -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    return {name: (network(name, cfg), (3, cfg.image_size, cfg.image_size))
            for name in _photos.model_names(cfg)}


# ---------------------------------------------------------------------------- data

def prepare(cfg: Config, data_dir: Path | None) -> Photos:
    _photos.check_fractions(cfg)
    root = datasets.dataset_dir(NAME, data_dir) / "flower_photos"
    folder, cache = cached_image_folder(root, cfg.image_size)
    return _photos.split_photos(cfg, folder, cache)


# ---------------------------------------------------------------------------- run

def run(cfg: Config, photos: Photos, ctx) -> tuple[str, dict]:
    rep = ctx.report
    _photos.describe_data(cfg, photos, rep)

    make = _photos.maker(network, cfg, photos, ctx)
    trained, status = _photos.train_models(cfg, photos, ctx, make)
    metrics = collect_metrics(trained)
    _photos.describe_comparison(cfg, trained, rep, comparison_text(trained))
    _photos.describe_mistakes(cfg, photos, trained, rep)
    if cfg.cam_photos:
        _photos.describe_attention(cfg, photos, trained, rep, "A model that looks at petals has "
                                   "learned the flower; one that looks at sky or leaves has "
                                   "learned the photo's background.")
    if status == "completed":
        _photos.save_for_predict(ctx.run.path, NAME, cfg, photos, trained)
    return status, metrics


def collect_metrics(trained: dict) -> dict:
    """cnn.* for the plain CNN, resnet.* for the (first) ResNet, and every model by its name."""
    metrics = {}
    resnet = _photos.first_resnet(trained)
    if "cnn" in trained:
        metrics["cnn.test_accuracy"] = trained["cnn"]["test_accuracy"]
    if resnet:
        metrics["resnet.test_accuracy"] = trained[resnet]["test_accuracy"]
        metrics["resnet.model"] = resnet
    return metrics | _photos.model_metrics(trained)


def comparison_text(trained: dict) -> str:
    """Who won and at what cost; with plain18 beside resnet18, what the skips themselves did."""
    text = _photos.comparison_text(trained)
    if "resnet18" in trained and "plain18" in trained:
        r, p = trained["resnet18"], trained["plain18"]
        text += (f" Same depth and layers, with and without skip connections: resnet18 "
                 f"{r['test_accuracy']:.1%}, plain18 {p['test_accuracy']:.1%}; final training loss "
                 f"{r['history'][-1]['train_loss']:.3f} against {p['history'][-1]['train_loss']:.3f}. "
                 + ("The plain network trains worse as well as testing worse: the degradation the "
                    "ResNet paper describes, removed by nothing but the identity paths."
                    if p["history"][-1]["train_loss"] > r["history"][-1]["train_loss"] else
                    "At this depth and budget the plain network trains as well; the ResNet paper's "
                    "degradation shows in deeper plain networks (try plain34)."))
    return text


# ---------------------------------------------------------------------------- predict

def predict(run_dir: Path, inputs: list[Path], top: int = 3) -> list[dict]:
    """The top 3 species of each photo, by the network with the best validation accuracy."""
    return _photos.predict_photos(run_dir, inputs, NAME,
                                  lambda spec: build(spec["architecture"], len(spec["classes"])), top)
