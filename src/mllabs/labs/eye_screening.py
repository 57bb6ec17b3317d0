"""Eye screening: LeNet-5 against a ResNet on fundus photos, pathologic myopia or not.

The handout trains LeNet and then ResNet on iChallenge-PM, the 400 labelled fundus photos of
the PALM challenge (pathologic myopia against normal and high-myopia eyes). That set may not be
passed on, so the lab reads the photos the user brings: the PALM training folder as it unpacks
(H*.jpg, N*.jpg, P*.jpg) or any folder with two class sub-folders. Both networks train on the
same split with the same augmentation and budget (the mechanics are the flowers lab's, in
`_photos.py`); as a screening test each is judged by its sensitivity, specificity and ROC curve.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from mllabs.config import option
from mllabs.data.images import SUFFIXES, cached_image_folder
from mllabs.data.store import cache_root
from mllabs.errors import DataError, UserError
from mllabs.labs import _photos
from mllabs.labs._photos import PhotoConfig, Photos
from mllabs.models.lenet import LeNet5
from mllabs.models.resnet import MODELS, build
from mllabs.report import figures

NAME = "eye-screening"
TITLE = "Eye screening: LeNet-5 against a ResNet on fundus photos"
SUMMARY_LINE = "pathologic myopia from fundus photos you supply: LeNet vs ResNet, sensitivity, ROC, Grad-CAM"
SUMMARY = (
    "Fundus photos of two kinds, pathologic myopia against normal eyes (the iChallenge-PM photos "
    "of the PALM challenge, or any two-class folder you supply). LeNet-5 and a residual network "
    "learn them on the same split with the same augmentation and budget; the report compares "
    "them as classifiers and as screening tests (sensitivity, specificity, ROC), shows their "
    "mistakes and, with Grad-CAM, where in the eye each one looks.")

ARCHITECTURES = ("lenet", *MODELS)
USER_DATA = True  # the photos are the user's to supply: nothing to download, nothing in shared/data
WHERE = ("the iChallenge-PM photos are not redistributable: download the training set of the PALM "
         "challenge (https://palm.grand-challenge.org/, also on Baidu AI Studio as iChallenge-PM) and "
         "pass its PALM-Training400 folder with --data-dir PATH, or sort any fundus photos into "
         "PATH/normal/ and PATH/pathologic/")


@dataclass
class Config(PhotoConfig):
    """The training budget is the photo labs' (PhotoConfig); what differs is set here."""

    models: tuple[str, ...] = option(("lenet", "resnet18"), "networks trained and compared, in order "
                                     "(lenet: LeNet-5 on colour photos)", choices=ARCHITECTURES)
    model: str = option("", "train only this one network (overrides models)",
                        choices=("",) + ARCHITECTURES)
    image_size: int = option(128, "photos are decoded and resized to this many pixels a side", min=32)
    epochs: int = option(30, "passes over the training photos, the same for every model", min=1)
    lr: float = option(1e-3, "peak learning rate", gt=0.0)
    label_smoothing: float = option(0.0, "share of each target spread over the other class (0 keeps "
                                    "the probabilities the ROC curve reads honest)", min=0.0, lt=1.0)
    val_fraction: float = option(0.2, "share of each class held out to pick the best epoch", gt=0.0,
                                 lt=1.0)
    test_fraction: float = option(0.2, "share of each class held out for the test set", gt=0.0, lt=1.0)
    lenet_activation: str = option("relu", "LeNet-5's activation (sigmoid: the 1998 original, "
                                   "which barely learns here)", choices=("relu", "sigmoid", "tanh"))
    positive: str = option("", "the class a screening flags (default: pathologic if there is "
                           "such a folder, else the second one alphabetically)")


PROFILES = {
    "quick": {"image_size": 32, "epochs": 2, "batch_size": 16, "cam_photos": 2},
    "default": {},
    "full": {"models": ("lenet", "resnet50"), "image_size": 224, "epochs": 60, "batch_size": 32},
}


def network(name: str, cfg: Config, num_classes: int = 2) -> nn.Module:
    if name == "lenet":
        return LeNet5(cfg.lenet_activation, num_classes, in_channels=3, image_size=cfg.image_size)
    return build(name, num_classes, zero_init_residual=cfg.zero_init_residual)


def networks(cfg: Config) -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    return {name: (network(name, cfg), (3, cfg.image_size, cfg.image_size))
            for name in _photos.model_names(cfg)}


# ---------------------------------------------------------------------------- data

# PALM training files: H0001.jpg (high myopia), N0001.jpg (normal), P0001.jpg (pathologic)
PALM_NAME = re.compile(r"([HNP])\d+", re.IGNORECASE)
PALM_CLASS = {"H": "normal", "N": "normal", "P": "pathologic"}


@dataclass
class Source:
    folder: Path        # the user's folder the photos were found in
    layout: str         # what was found there, for the report
    root: Path          # the class-folder tree that is decoded (a linked view for PALM)
    palm: bool = False  # labelled by the PALM file names


@dataclass
class Fundus:
    photos: Photos
    source: Source
    positive: int       # index of the class a screening flags
    why_positive: str


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def find_photos(data_dir: Path | None) -> Source:
    """--data-dir PATH (PATH/eye-screening, else PATH itself), else $MLLABS_DATA/eye-screening,
    else the cache's eye-screening folder; the first that exists must hold the photos."""
    if data_dir:
        data_dir = Path(data_dir).expanduser()
        candidates = [data_dir / NAME, data_dir]
    else:
        candidates = ([Path(os.environ["MLLABS_DATA"]).expanduser() / NAME]
                      if os.environ.get("MLLABS_DATA") else []) + [cache_root() / NAME]
    for folder in candidates:
        if folder.is_dir():
            return read_layout(folder)
    raise DataError(f"no fundus photos found (looked in {', '.join(map(str, candidates))}); {WHERE}")


def read_layout(folder: Path, depth: int = 0) -> Source:
    """Two class sub-folders, or the PALM training folder (H/N/P-named files), possibly inside
    the folders its archive unpacks to."""
    images, subs = _images(folder), _subfolders(folder)
    palm = [p for p in images if PALM_NAME.fullmatch(p.stem)]
    if palm:
        return palm_view(folder, palm, len(images) - len(palm))
    if images and not subs:
        raise DataError(f"{folder} holds {len(images)} image(s) but none named like the PALM "
                        "training set (H0001.jpg, N0001.jpg, P0001.jpg), so their classes are unknown: "
                        f"sort them into two sub-folders; {WHERE}")
    training = [s for s in subs if s.name.lower().startswith("palm-training")]
    inner = training[0] if training else subs[0] if len(subs) == 1 else None
    if inner and not images and depth < 3:
        # the archive unpacks to PALM-Training400/PALM-Training400/...; beside it the validation
        # folder's labels are in a spreadsheet, so the training folder is the one to read
        inside = _images(inner)
        if not inside or any(PALM_NAME.fullmatch(p.stem) for p in inside):
            return read_layout(inner, depth + 1)
    counts = {s.name: len(_images(s)) for s in subs}
    if not subs:
        raise DataError(f"{folder} is empty (no images, no sub-folders); {WHERE}")
    if len(subs) == 1:
        raise DataError(f"{folder} has one class folder only ({subs[0].name}/); eye-screening "
                        f"compares two: add a folder of the other class's photos beside it; {WHERE}")
    if len(subs) > 2:
        shown = ", ".join(list(counts)[:6]) + (", ..." if len(subs) > 6 else "")
        raise DataError(f"{folder} has {len(subs)} sub-folders ({shown}); eye-screening expects "
                        f"exactly two class folders (e.g. normal/ and pathologic/) or the PALM "
                        f"training folder; {WHERE}")
    for name, n in counts.items():
        if n == 0:
            raise DataError(f"{folder / name} holds no images ({', '.join(sorted(SUFFIXES))}); each "
                            f"of the two class folders needs photos; {WHERE}")
    return Source(folder, "as two class folders: " + ", ".join(f"{k}/ ({v} files)" for k, v in counts.items()),
                  folder)


def palm_view(folder: Path, palm: list[Path], others: int) -> Source:
    """The PALM files as a class-folder tree of links in the cache (normal/ for H and N,
    pathologic/ for P), so the shared image-folder reader and its decode cache serve them."""
    letters = {k: sum(p.stem[0].upper() == k for p in palm) for k in "HNP"}
    if not letters["P"] or not (letters["H"] + letters["N"]):
        missing = "P (pathologic)" if not letters["P"] else "H or N (normal)"
        raise DataError(f"{folder} holds PALM-named photos but none named {missing}: both classes "
                        f"are needed; {WHERE}")
    tag = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]
    root = cache_root() / "views" / f"{NAME}-{tag}"
    wanted = {(PALM_CLASS[p.stem[0].upper()], p.name): p.resolve() for p in palm}
    try:
        for cls in set(PALM_CLASS.values()):
            (root / cls).mkdir(parents=True, exist_ok=True)
            for link in (root / cls).iterdir():  # photos since removed or renamed
                if (cls, link.name) not in wanted or os.path.realpath(link) != str(wanted[cls, link.name]):
                    link.unlink()
        for (cls, name), target in wanted.items():
            link = root / cls / name
            if not link.is_symlink():
                try:
                    link.symlink_to(target)
                except FileExistsError:  # another run made it meanwhile
                    pass
    except OSError as exc:
        raise DataError(f"could not link the PALM photos into {root} ({exc.strerror}); sort them "
                        f"into {folder}/normal/ (H and N files) and {folder}/pathologic/ (P files) "
                        "and run again") from None
    layout = (f"in the PALM training layout: {letters['P']} P (pathologic) files as pathologic, "
              f"{letters['H']} H (high myopia) and {letters['N']} N (normal) files as normal")
    if others:
        layout += f"; {others} other image(s) without an H/N/P name left out"
    return Source(folder, layout, root, palm=True)


def choose_positive(cfg: Config, classes: list[str]) -> tuple[int, str]:
    if cfg.positive:
        if cfg.positive not in classes:
            raise UserError(f"positive={cfg.positive!r} is not a class here; the classes are "
                            f"{', '.join(classes)}")
        return classes.index(cfg.positive), f"set with positive={cfg.positive}"
    for k, name in enumerate(classes):
        if name.lower().startswith("patholog"):
            return k, f"the folder named {name}"
    return 1, "the second folder alphabetically (set positive=NAME to choose the other)"


def prepare(cfg: Config, data_dir: Path | None) -> Fundus:
    _photos.check_fractions(cfg)
    _photos.check_weights(cfg)
    source = find_photos(data_dir)
    with warnings.catch_warnings():  # warned again below, naming the user's folder
        warnings.simplefilter("ignore")
        folder, cache = cached_image_folder(source.root, cfg.image_size)
    if folder.skipped:
        names = ", ".join(p.name for p, _ in folder.skipped[:5]) + (" ..." if len(folder.skipped) > 5 else "")
        warnings.warn(f"skipped {len(folder.skipped)} unreadable image(s) in {source.folder}: {names}",
                      stacklevel=2)
    photos = _photos.split_photos(cfg, folder, cache)
    for k, name in enumerate(photos.classes):
        parts = {part: int((photos.labels[idx] == k).sum()) for part, idx in photos.split.items()}
        if min(parts.values()) == 0:
            raise DataError(f"class {name} has {int((photos.labels == k).sum())} readable photo(s) in "
                            f"{source.folder}, too few to put some in training, validation and test "
                            "(a screening test needs dozens of each class); add photos"
                            + (" or raise limit" if cfg.limit else ""))
    positive, why = choose_positive(cfg, photos.classes)
    if source.palm and not cfg.positive:
        why = "the P files"
    return Fundus(photos, source, positive, why)


# ---------------------------------------------------------------------------- run

def run(cfg: Config, data: Fundus, ctx) -> tuple[str, dict]:
    rep, photos = ctx.report, data.photos
    positive = photos.classes[data.positive]
    negative = photos.classes[1 - data.positive]
    rep.section("The screening task", f"The photos were read from `{data.source.folder}`, "
                f"{data.source.layout}. A screening test flags eyes for a closer look: "
                f"here it flags **{positive}** ({data.why_positive}) and passes {negative}.")
    _photos.describe_data(cfg, photos, rep, files="photos")

    make = _photos.maker(network, cfg, photos, ctx)
    trained, status = _photos.train_models(cfg, photos, ctx, make)
    _photos.write_history(ctx.run, trained)
    test_y = photos.labels[photos.split["test"]]
    screening = {n: screening_numbers(t["probs"], test_y, data.positive) for n, t in trained.items()}
    metrics = collect_metrics(trained, screening, positive)
    _photos.describe_comparison(cfg, trained, rep, _photos.comparison_text(trained))
    describe_screening(screening, len(test_y), positive, negative, rep)
    _photos.describe_mistakes(cfg, photos, trained, rep)
    if cfg.cam_photos:
        _photos.describe_attention(cfg, photos, trained, rep, "The signs of pathologic myopia "
                                   "lie in the eye: atrophy around the optic disc and at the "
                                   "macula, a stretched, pale fundus. Heat there means a model "
                                   "looks at the lesions; heat on the black rim or the camera's "
                                   "marks means it has learned the photograph instead.")
    if status == "completed":
        _photos.save_for_predict(ctx.run.path, NAME, cfg, photos, trained, positive=positive,
                                 lenet_activation=cfg.lenet_activation)
    return status, metrics


def screening_numbers(probs: np.ndarray, labels: np.ndarray, positive: int) -> dict:
    """Sensitivity and specificity at the 0.5 threshold (the predicted class), and the ROC curve
    and its area from the positive class's probability."""
    from sklearn.metrics import roc_auc_score, roc_curve

    flagged = probs.argmax(1) == positive
    sick = labels == positive
    tp, fn = int((flagged & sick).sum()), int((~flagged & sick).sum())
    tn, fp = int((~flagged & ~sick).sum()), int((flagged & ~sick).sum())
    out = {"sensitivity": tp / max(tp + fn, 1), "specificity": tn / max(tn + fp, 1),
           "tp": tp, "fn": fn, "tn": tn, "fp": fp, "roc_auc": None, "roc": None}
    # the curve needs both classes in the test set, and scores (a diverged model has NaNs)
    if sick.any() and (~sick).any() and np.isfinite(probs).all():
        score = probs[:, positive]
        out["roc_auc"] = float(roc_auc_score(sick, score))
        fpr, tpr, _ = roc_curve(sick, score)
        out["roc"] = (fpr, tpr)
    return out


def collect_metrics(trained: dict, screening: dict, positive: str) -> dict:
    """lenet.* and resnet.* (the first ResNet) up front, then every model by its name."""
    metrics = {}
    resnet = _photos.first_resnet(trained)
    if "lenet" in trained:
        metrics["lenet.test_accuracy"] = trained["lenet"]["test_accuracy"]
    if resnet:
        metrics["resnet.test_accuracy"] = trained[resnet]["test_accuracy"]
        metrics["resnet.roc_auc"] = screening[resnet]["roc_auc"]
        metrics["resnet.model"] = resnet
    metrics["positive_class"] = positive
    metrics |= _photos.model_metrics(trained)
    for name, s in screening.items():
        for key in ("sensitivity", "specificity", "roc_auc"):
            metrics[f"{name}.{key}"] = s[key]
    return metrics


def describe_screening(screening: dict, n_test: int, positive: str, negative: str, rep) -> None:
    def auc(s):
        return "—" if s["roc_auc"] is None else f"{s['roc_auc']:.3f}"

    rows = [{"model": n, "sensitivity": f"{s['sensitivity']:.3f}", "specificity": f"{s['specificity']:.3f}",
             "ROC AUC": auc(s), f"{positive} missed": s["fn"], f"{negative} flagged": s["fp"]}
            for n, s in screening.items()]
    scored = [n for n in screening if screening[n]["roc_auc"] is not None]
    text = ("Accuracy counts every mistake alike; a screening test is judged by what it misses "
            f"(sensitivity: {positive} eyes flagged) and what it raises needlessly (specificity: "
            f"{negative} eyes passed). Both are read at the threshold accuracy uses (flag when "
            f"p({positive}) > 0.5); the ROC curve shows every other threshold, and its area is the "
            f"chance that a random {positive} photo scores above a random {negative} one.")
    if scored:
        best = max(scored, key=lambda n: screening[n]["roc_auc"])
        s = screening[best]
        text += (f" {best} separates the classes best (AUC {s['roc_auc']:.3f}); at 0.5 it finds "
                 f"{s['tp']} of {s['tp'] + s['fn']} {positive} test eyes and passes {s['tn']} of "
                 f"{s['tn'] + s['fp']} {negative} ones.")
    rep.section("As a screening test", text)
    rep.table(rows, f"Each model on the {n_test} test photos, {positive} counted as positive")
    if scored:
        curves = {f"{n} (AUC {screening[n]['roc_auc']:.3f})": screening[n]["roc"] for n in scored}
        curves["chance"] = ([0.0, 1.0], [0.0, 1.0])
        rep.figure(figures.curves({f"sensitivity against 1 − specificity ({positive} positive)": curves},
                                  xlabel="false positive rate (1 − specificity)"), "roc",
                   "ROC curve of every model on the test photos: each point is one threshold on "
                   f"p({positive}); the diagonal is guessing",
                   conclusion=roc_text({n: screening[n] for n in scored}, positive))


def roc_text(scored: dict, positive: str, fpr_at: float = 0.1) -> str:
    """The curves read at one place a screening cares about: the share of positive eyes found
    while flagging at most `fpr_at` of the negative ones (the best threshold for that)."""
    ranked = sorted(scored, key=lambda n: scored[n]["roc_auc"], reverse=True)
    parts = []
    for n in ranked:
        fpr, tpr = (np.asarray(v, float) for v in scored[n]["roc"])
        found = float(tpr[fpr <= fpr_at].max(initial=0.0))
        parts.append(f"{n} (AUC {scored[n]['roc_auc']:.3f}) finds {100 * found:.0f} %")
    return (f"Flagging at most {100 * fpr_at:.0f} % of the other eyes, the best threshold finds this "
            f"share of the {positive} test eyes: " + "; ".join(parts)
            + f" (guessing, the diagonal: {100 * fpr_at:.0f} %).")


# ---------------------------------------------------------------------------- predict

def predict_network(spec: dict) -> nn.Module:
    """The empty network predict.json names (also what `mllabs export` exports)."""
    if spec["architecture"] == "lenet":
        return LeNet5(spec.get("lenet_activation", "relu"), len(spec["classes"]), in_channels=3,
                      image_size=spec["image_size"])
    return build(spec["architecture"], len(spec["classes"]))


def predict(run_dir: Path, inputs: list[Path], explain: bool = False) -> list[dict]:
    """The class of each photo with its probability (and the other class's); explain: each
    photo's Grad-CAM heatmap too, for `mllabs demo`."""
    return _photos.predict_photos(run_dir, inputs, NAME, predict_network, top=2, explain=explain)


# ---------------------------------------------------------------------------- the report's ends

KEY_FIGURE = "roc"
# LeNet-5's names as in mnist-lenet (C convolution, S subsampling, F fully connected), except that
# the 120-unit layer is F5 here: on photos larger than 32 px it reads whole S4 maps bigger than
# 5×5, a dense layer rather than the paper's 5×5 convolution C5
LAYER_NAMES = {"lenet": {"features.0": "C1", "features.2": "S2", "features.3": "C3", "features.5": "S4",
                         "classifier.1": "F5", "classifier.3": "F6", "classifier.5": "output"}}
TRY_NEXT = [
    ("--set epochs=20", "longer training on your photos"),
]


def headline(metrics: dict) -> str:
    from mllabs import stats

    parts = [f"{name} {stats.percent(metrics[f'{key}.test_accuracy'], 1)} test accuracy"
             + (f" (sensitivity {stats.percent(metrics[f'{key}.sensitivity'], 1)}, specificity "
                f"{stats.percent(metrics[f'{key}.specificity'], 1)})" if f"{key}.sensitivity" in metrics else "")
             for key, name in (("lenet", "LeNet-5"), ("resnet", metrics.get("resnet.model", "ResNet")))
             if f"{key}.test_accuracy" in metrics]
    return "; ".join(parts) + f", with {metrics.get('positive_class', 'the positive class')} as positive."


def example_input(data, run_dir: Path) -> list[str]:
    return _photos.example_photo(data.photos, run_dir)
