"""The depth study: 18 and 34 layers, with and without skip connections, everything else equal.

The ResNet paper's claim (He et al. 2015, section 4.1) is about optimisation: a plain network of
34 layers ends with a *higher training error* than one of 18 layers ("degradation"), while with
identity shortcuts the deeper network trains at least as well. Comparing a small CNN with
ResNet-18 cannot isolate that, because size, depth and the shortcut all change at once. Here
only two things change, depth and the shortcut, across four arms:

    resnet18  plain18  resnet34  plain34

(`models/resnet.py`: a plain twin is its ResNet without the addition and without the 1×1
downsample projections). Everything else is shared: the lab's split (the same training and test
photos), its optimiser, schedule, label smoothing, augmentation and batch size, the same number
of epochs, and per seed the same initial weights: the plain network starts from its ResNet's
tensors (every plain tensor is copied from the ResNet built from the same seed), and the same
seed drives the batch order and the augmentation.

`zero_init_residual` sets the last batch-norm gamma of every residual block to 0, so each block
starts as the identity (its residual branch outputs zero and the block passes its input
through). A plain block cannot have it (it would output zero), so the four main arms run with it
off; the ResNets with it on (the lab's default) are two extra arms, `resnet18_zero_init` and
`resnet34_zero_init`, showing what that initialisation adds on top of the skips.

Primary outcome, since degradation is an optimisation effect: the final training loss (the loss
the network was trained on: cross-entropy with the lab's label smoothing) and accuracy on the
training photos *without* augmentation, in eval mode, after the last epoch. Secondary: test
accuracy, mean ± std over seeds, and plain against residual at each depth on the same test
photos, paired: McNemar's exact test per seed and a paired bootstrap interval for the
seed-averaged difference.

The lab wires it in: `prepare(cfg, root)` decodes the photos at `study_image_size` (the same
files, limit and split as the lab's), `depth_study(cfg, photos, ctx)` trains every arm through
`ctx.fit` (so device, precision, progress, the time budget and --resume apply), adds its report
section and returns its metrics (`depth.*`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mllabs.config import option
from mllabs.data.augment import PhotoBatches
from mllabs.data.images import cached_image_folder
from mllabs.labs import _photos
from mllabs.labs._photos import PhotoConfig, Photos
from mllabs.models.resnet import build
from mllabs.report import figures
from mllabs.report.document import mean_std
from mllabs.stats import mcnemar_exact, paired_bootstrap  # noqa: F401  (_depth.mcnemar_exact in tests)
from mllabs.train import predict as forward

STUDIES = ("", "depth")
BOOTSTRAP = 5000  # resamples of the test photos for the paired interval


@dataclass
class StudyConfig(PhotoConfig):
    """The study's settings; a photo lab's Config derives from this to offer it."""

    study: str = option("", "a controlled experiment run after the comparison (depth: ResNet-18/34 "
                        "against the same networks without skip connections, everything else "
                        "equal)", choices=STUDIES)
    study_image_size: int = option(48, "depth study: photos decoded to this many pixels a side",
                                   min=32)
    study_epochs: int = option(6, "depth study: epochs for every arm", min=1)
    study_seeds: int = option(2, "depth study: seeds per arm (seed, seed + 1, ...)", min=1)
    study_zero_init: bool = option(True, "depth study: also train the ResNets with "
                                   "zero_init_residual on (two extra arms)")


@dataclass(frozen=True)
class Arm:
    name: str
    architecture: str   # a models.resnet name
    depth: int
    skips: bool
    zero_init: bool


MAIN_ARMS = (Arm("resnet18", "resnet18", 18, True, False), Arm("plain18", "plain18", 18, False, False),
             Arm("resnet34", "resnet34", 34, True, False), Arm("plain34", "plain34", 34, False, False))
ZERO_INIT_ARMS = (Arm("resnet18_zero_init", "resnet18", 18, True, True),
                  Arm("resnet34_zero_init", "resnet34", 34, True, True))


def arms(cfg: StudyConfig) -> tuple[Arm, ...]:
    return MAIN_ARMS + (ZERO_INIT_ARMS if cfg.study_zero_init else ())


def study_config(cfg: StudyConfig, seed: int) -> StudyConfig:
    """The lab's budget at the study's image size, epochs and seed; no early stopping."""
    return replace(cfg, image_size=cfg.study_image_size, epochs=cfg.study_epochs, seed=seed,
                   patience=0)


# ---------------------------------------------------------------------------- data

def prepare(cfg: StudyConfig, root: Path) -> Photos:
    """The lab's photos decoded again at study_image_size (cached per size like the lab's own):
    the same files, the same stratified limit and the same split, since both come from the
    labels and cfg.seed alone."""
    folder, cache = cached_image_folder(root, cfg.study_image_size)
    return _photos.split_photos(cfg, folder, cache)


# ---------------------------------------------------------------------------- networks

def initial_model(arm: Arm, num_classes: int, seed: int) -> nn.Module:
    """The arm's network with the seed's initial weights. The ResNet of the arm's depth is built
    from the seed; a plain arm copies every one of its tensors from it (it lacks only the
    downsample projections), so residual and plain start from the same convolutions; a
    zero-init arm is the same ResNet with each block's last batch-norm gamma at zero."""
    torch.manual_seed(seed)
    residual = build(f"resnet{arm.depth}", num_classes, zero_init_residual=arm.zero_init)
    if arm.skips:
        return residual
    plain = build(arm.architecture, num_classes)
    source = residual.state_dict()
    own = plain.state_dict()
    missing = [k for k in own if k not in source or source[k].shape != own[k].shape]
    if missing:  # models/resnet.py changed: the plain twin is no longer its ResNet minus shortcuts
        raise RuntimeError(f"{arm.architecture} has tensors its ResNet lacks: {missing[:3]}")
    plain.load_state_dict({k: source[k] for k in own})
    return plain


# ---------------------------------------------------------------------------- the study

def depth_study(cfg: StudyConfig, photos: Photos, ctx) -> dict:
    """Train every arm for every seed, measure, report; returns the metrics (depth.*)."""
    seeds = [cfg.seed + k for k in range(cfg.study_seeds)]
    runs = train_arms(cfg, photos, ctx, seeds)
    return report(cfg, runs, ctx, len(photos.split["train"]))


def train_arms(cfg: StudyConfig, photos: Photos, ctx, seeds: list[int]) -> dict[str, list[dict]]:
    """Every arm trained from each of `seeds` on the same split (cfg.seed's) and measured:
    {arm name: [one dict per seed: outcomes, the test photos' right/wrong, history, seconds]}."""
    arm_list = arms(cfg)
    x = torch.from_numpy(photos.images)
    y = torch.from_numpy(photos.labels.astype(np.int64))
    train = (x[photos.split["train"]], y[photos.split["train"]])
    test = (x[photos.split["test"]], y[photos.split["test"]])
    smoothing = cfg.label_smoothing

    def loss_fn(out, target):
        return F.cross_entropy(out, target, label_smoothing=smoothing)

    def accuracy(out, target):
        return (out.argmax(1) == target).float().mean()

    ctx.log(f"depth study: {len(arm_list)} arms × {len(seeds)} seeds, {cfg.study_epochs} epochs at "
            f"{cfg.study_image_size} px")
    runs: dict[str, list[dict]] = {arm.name: [] for arm in arm_list}
    for seed in seeds:  # seed-major: a cut-short study still has every arm of the first seed
        run_cfg = study_config(cfg, seed)
        for arm in arm_list:
            model = initial_model(arm, len(photos.classes), seed)
            torch.manual_seed(seed)  # building a plain arm drew more numbers: every arm goes on alike
            model.to(memory_format=torch.channels_last)
            batches = PhotoBatches(cfg.study_image_size, augment=cfg.augment, seed=seed)
            result = ctx.fit(model, train, run_cfg, loss_fn=loss_fn, metrics={"accuracy": accuracy},
                             restore_best=False, batch_transform=batches,
                             label=f"depth {arm.name} seed {seed}")
            runs[arm.name].append(measure(model, batches, train, test, loss_fn, ctx.autocast)
                                  | {"seed": seed, "history": result.history,
                                     "status": result.status, "seconds": result.seconds,
                                     "params": sum(p.numel() for p in model.parameters())})
            last = runs[arm.name][-1]
            ctx.log(f"depth {arm.name} seed {seed}: train loss {last['train_loss']:.3f}, train "
                    f"accuracy {last['train_accuracy']:.3f}, test {last['test_accuracy']:.3f}, "
                    f"{result.seconds:.0f} s")
    return runs


def report(cfg: StudyConfig, runs: dict[str, list[dict]], ctx, n_train: int) -> dict:
    """The statistics, the verdict, depth_history.csv and the report section; the metrics."""
    arm_list = [arm for arm in arms(cfg) if arm.name in runs]
    seeds = [r["seed"] for r in runs["resnet18"]]
    summary = summarise(arm_list, runs)
    comparisons = compare(runs, seeds)
    verdict = judge(summary)
    ctx.run.write_history([{"arm": name, "seed": r["seed"], **row} for name, rs in runs.items()
                           for r in rs for row in r["history"]], "depth_history.csv")
    describe(cfg, arm_list, runs, summary, comparisons, verdict, ctx.report,
             "bf16" if ctx.autocast is not None else "fp32", n_train)
    return metrics(summary, comparisons, verdict)


@torch.no_grad()
def measure(model: nn.Module, batches: PhotoBatches, train, test, loss_fn, autocast) -> dict:
    """The primary outcome (training photos as stored, eval mode) and the test photos' answers."""
    out = forward(model, train[0], transform=batches, autocast=autocast)
    plain_ce = F.cross_entropy(out, train[1])
    test_right = (forward(model, test[0], transform=batches, autocast=autocast).argmax(1)
                  == test[1]).numpy()
    return {"train_loss": float(loss_fn(out, train[1])), "train_ce": float(plain_ce),
            "train_accuracy": float((out.argmax(1) == train[1]).float().mean()),
            "test_accuracy": float(test_right.mean()), "test_right": test_right}


def summarise(arm_list, runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Per arm: every seed's numbers and their mean and standard deviation."""
    summary = {}
    for arm in arm_list:
        rs = runs[arm.name]
        row = {"arm": arm, "seeds": [r["seed"] for r in rs], "params": rs[0]["params"],
               "diverged": [r["seed"] for r in rs if r["status"] != "completed"]}
        for r in rs:  # the last epoch's running loss: train mode, augmented batches
            r["running_loss"] = r["history"][-1]["train_loss"] if r["history"] else math.nan
        for key in ("train_loss", "train_ce", "train_accuracy", "test_accuracy", "seconds",
                    "running_loss"):
            values = np.array([r[key] for r in rs], float)
            row[key] = values
            row[f"{key}_mean"] = float(values.mean())
            row[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        summary[arm.name] = row
    return summary


def compare(runs: dict[str, list[dict]], seeds: list[int]) -> dict[int, dict]:
    """Residual against plain at each depth on the same test photos."""
    out = {}
    for depth in (18, 34):
        res, plain = runs[f"resnet{depth}"], runs[f"plain{depth}"]
        a = np.stack([r["test_right"] for r in res])
        b = np.stack([r["test_right"] for r in plain])
        out[depth] = {"bootstrap": paired_bootstrap(a, b, seed=depth),
                      "mcnemar": [mcnemar_exact(a[k], b[k]) | {"seed": s} for k, s in enumerate(seeds)]}
    return out


def judge(summary: dict[str, dict]) -> dict:
    """What the training losses say, seed by seed: degradation (plain34 above plain18 in every
    seed), and whether the skips remove it (resnet34 at or below resnet18 on average)."""
    p18, p34 = summary["plain18"]["train_loss"], summary["plain34"]["train_loss"]
    r18, r34 = summary["resnet18"]["train_loss"], summary["resnet34"]["train_loss"]
    plain_gap = p34 - p18      # per seed: > 0 means the deeper plain network trains worse
    residual_gap = r34 - r18
    return {"degradation": bool((plain_gap > 0).all()),
            "degradation_in_mean": bool(plain_gap.mean() > 0),
            "residual_deeper_no_worse": bool(residual_gap.mean() <= 0),
            "plain_gap": float(plain_gap.mean()), "residual_gap": float(residual_gap.mean()),
            "skip_gain_18": float((p18 - r18).mean()), "skip_gain_34": float((p34 - r34).mean())}


def metrics(summary: dict[str, dict], comparisons: dict[int, dict], verdict: dict) -> dict:
    m = {}
    for name, s in summary.items():
        for key in ("train_loss", "train_ce", "train_accuracy", "test_accuracy"):
            m[f"depth.{name}.{key}"] = s[f"{key}_mean"]
        m[f"depth.{name}.test_accuracy_std"] = s["test_accuracy_std"]
        m[f"depth.{name}.seconds"] = s["seconds_mean"]
        m[f"depth.{name}.params"] = s["params"]
    for depth, c in comparisons.items():
        boot = c["bootstrap"]
        m[f"depth.skip_test_gain_{depth}"] = boot["difference"]
        m[f"depth.skip_test_gain_{depth}_low"] = boot["low"]
        m[f"depth.skip_test_gain_{depth}_high"] = boot["high"]
        m[f"depth.mcnemar_p_{depth}"] = max(t["p"] for t in c["mcnemar"])  # the weakest seed
    m["depth.verdict_degradation"] = verdict["degradation"]
    m["depth.verdict_skips_remove_it"] = verdict["degradation"] and verdict["residual_deeper_no_worse"]
    return m


# ---------------------------------------------------------------------------- report

def verdict_text(summary: dict[str, dict], verdict: dict, epochs: int, size: int, n_train: int,
                 batch_size: int) -> str:
    """The verdict, written from the measured training losses whichever way they fall."""
    def loss(name):
        return f"{summary[name]['train_loss_mean']:.3f}"

    def per_seed(name):
        return " / ".join(f"{v:.3f}" for v in summary[name]["train_loss"])

    seeds = len(summary["plain18"]["train_loss"])
    losses = (f"plain34 {loss('plain34')} against plain18 {loss('plain18')}; resnet34 "
              f"{loss('resnet34')} against resnet18 {loss('resnet18')}")
    if verdict["degradation"]:
        text = (f"**Degradation shows.** The deeper plain network ends with the higher training "
                f"loss in every seed ({losses}; per seed plain34 {per_seed('plain34')}, plain18 "
                f"{per_seed('plain18')}): adding 16 layers made the plain network *harder to "
                "train*, on the very photos it was trained on, which is not overfitting. ")
        if verdict["residual_deeper_no_worse"]:
            text += ("With the skip connections the deeper network trains at least as well as the "
                     "shallower one: the degradation the ResNet paper reports, removed by the "
                     "identity shortcuts alone (plain − residual: "
                     f"{verdict['skip_gain_18']:+.3f} at 18 layers, {verdict['skip_gain_34']:+.3f} "
                     "at 34).")
        else:
            text += ("The residual network also ends higher at 34 layers than at 18, so at this "
                     "budget the skips narrow the gap (plain − residual at 34 layers: "
                     f"{verdict['skip_gain_34']:+.3f}, at 18: {verdict['skip_gain_18']:+.3f}) rather "
                     "than remove it, where the paper's resnet34 trained below its resnet18.")
    elif verdict["degradation_in_mean"]:
        text = (f"**Inconclusive.** On average the deeper plain network ends with the higher "
                f"training loss ({losses}), but not in every seed (plain34 {per_seed('plain34')}, "
                f"plain18 {per_seed('plain18')}): the gap is within the seed-to-seed spread of "
                f"{seeds} seeds, so this budget does not establish degradation. The skip "
                f"connections' effect on the training loss (plain − residual): "
                f"{verdict['skip_gain_18']:+.3f} at 18 layers, {verdict['skip_gain_34']:+.3f} at 34.")
    else:
        updates = epochs * math.ceil(n_train / batch_size)
        text = (f"**No degradation at this budget.** The deeper plain network trains no worse "
                f"than the shallower one ({losses}): after {epochs} epochs of {n_train:,} photos at "
                f"{size} px, 34 plain layers with batch normalisation trained at least as far as 18. This "
                "departs from the ResNet paper, whose plain-34 ended above plain-18 in training "
                "error (its Figure 4, ImageNet; Figure 6 shows the same for plain networks of 20 to "
                "56 layers on CIFAR-10). The paper attributes degradation to deep plain networks "
                "converging more slowly, not to failing outright, and measured it after 600,000 "
                f"SGD updates (64,000 on CIFAR-10); {epochs} epochs here are {updates:,} updates, "
                "and within them a slower convergence of plain34, if it exists, does not show.")
        text += (f" The skip connections' effect on the training loss at each depth (plain − "
                 f"residual): {verdict['skip_gain_18']:+.3f} at 18 layers, "
                 f"{verdict['skip_gain_34']:+.3f} at 34.")
    return text


def describe(cfg: StudyConfig, arm_list, runs, summary, comparisons, verdict, rep,
             precision: str, n_train: int) -> None:
    seeds = summary["resnet18"]["seeds"]
    rep.section("Residual connections under a controlled test", (
        "ResNet-18 and ResNet-34 against the same networks without their skip connections "
        "(plain18, plain34: no addition and no 1×1 downsample projection), everything else equal: "
        f"the same {'augmented ' if cfg.augment else ''}training photos and test photos, the same "
        f"optimiser ({cfg.optimizer}, learning rate {cfg.lr:g}, {cfg.schedule} schedule, weight "
        f"decay {cfg.weight_decay:g}, label smoothing {cfg.label_smoothing:g}), batch "
        f"{cfg.batch_size}, {cfg.study_epochs} epochs at {cfg.study_image_size} px, seeds "
        f"{', '.join(map(str, seeds))}; for each seed the plain network starts from its ResNet's "
        "own initial tensors and sees the same batches and augmentations. `zero_init_residual` "
        "(the lab's default) starts the last batch-norm gamma of every residual block at zero, so "
        "each block begins as the identity; a plain block cannot (it would output zero), so the "
        "four main arms run with it off, and the ResNets with it on are extra arms. The primary "
        "outcome is the final training loss and accuracy on the training photos as stored (no "
        "augmentation, eval mode), because the ResNet paper's degradation is a failure to "
        "*optimise*, seen on the training set; test accuracy is secondary."))
    rep.text(verdict_text(summary, verdict, cfg.study_epochs, cfg.study_image_size, n_train,
                          cfg.batch_size))
    if any(arm.zero_init for arm in arm_list):
        rep.text(zero_init_text(summary))
    rows = []
    for arm in arm_list:
        s = summary[arm.name]
        rows.append({"arm": arm.name, "depth": arm.depth, "skips": "yes" if arm.skips else "no",
                     "zero-init": "on" if arm.zero_init else "off", "parameters": f"{s['params']:,}",
                     "train loss": mean_std(s["train_loss"]),
                     "last epoch's running loss": mean_std(s["running_loss"]),
                     "train accuracy": mean_std(s["train_accuracy"]),
                     "test accuracy": mean_std(s["test_accuracy"]),
                     "seconds": f"{s['seconds_mean']:.0f}"
                     + (f" (diverged: seed {', '.join(map(str, s['diverged']))})" if s["diverged"] else "")})
    rep.table(rows, f"Each arm after {cfg.study_epochs} epochs at {cfg.study_image_size} px, mean ± "
              f"std over {len(seeds)} seed(s), forward passes in "
              f"{'bfloat16' if precision == 'bf16' else 'float32'}. Train loss: the training "
              f"objective (cross-entropy, label smoothing {cfg.label_smoothing:g}) on the un-augmented "
              "training photos in eval mode, final weights; last epoch's running loss: the same "
              "objective averaged over the last epoch's augmented batches in train mode (far below "
              "the eval-mode loss means the batch-norm running statistics have not caught up with "
              "the weights); seconds: training time of one run")
    pairs = []
    for depth, c in comparisons.items():
        boot = c["bootstrap"]
        low, high = 100 * boot["low"], 100 * boot["high"]
        pairs.append({"depth": depth,
                      "residual test accuracy": f"{summary[f'resnet{depth}']['test_accuracy_mean']:.3f}",
                      "plain test accuracy": f"{summary[f'plain{depth}']['test_accuracy_mean']:.3f}",
                      "residual − plain": f"{100 * boot['difference']:+.1f} points",
                      f"{boot['level']:.0%} interval": f"[{low:+.1f}, {high:+.1f}]",
                      "McNemar per seed (only residual right / only plain right, p)":
                          "; ".join(f"seed {t['seed']}: {t['only_a']}/{t['only_b']}, p = {t['p']:.2g}"
                                    for t in c["mcnemar"])})
    rep.table(pairs, "Residual against plain on the same test photos: the seed-averaged difference "
              f"with a paired bootstrap interval ({BOOTSTRAP:,} resamples of the test photos), and "
              "McNemar's exact test per seed on the photos the two networks disagree on")
    rep.figure(loss_figure(runs, [a.name for a in MAIN_ARMS]), "depth_study",
               "Training loss and accuracy per epoch (running mean over each epoch's augmented "
               "batches, train mode: what the optimiser saw), mean over seeds with ± one standard "
               "deviation shaded", conclusion=curve_text(runs, [a.name for a in MAIN_ARMS]))


def curve_text(runs: dict[str, list[dict]], names: list[str]) -> str:
    """The figure's last points, read out: which arm ends lowest, and residual against plain at
    each depth (the same running loss the curves draw, mean over seeds)."""
    final = {}
    for n in names:
        last = min(len(r["history"]) for r in runs[n]) - 1  # the figure's last epoch
        final[n] = float(np.mean([r["history"][last]["train_loss"] for r in runs[n]]))
    broken = [n for n in names if not np.isfinite(final[n])]
    final = {n: v for n, v in final.items() if np.isfinite(v)}
    if not final:
        return "Every arm's training loss became NaN or infinite: the curves show no finished training."
    order = sorted(final, key=final.get)
    pairs = []
    for depth in (18, 34):
        res, plain = final.get(f"resnet{depth}"), final.get(f"plain{depth}")
        if res is not None and plain is not None:
            pairs.append(f"at {depth} layers the residual network ends "
                         f"{'below' if res < plain else 'above'} the plain one "
                         f"({res:.3f} against {plain:.3f})")
    return (f"By the last epoch the running training loss is lowest for {order[0]} "
            f"({final[order[0]]:.3f}) and highest for {order[-1]} ({final[order[-1]]:.3f})"
            + ("; " + ", ".join(pairs) if pairs else "")
            + (f"; {', '.join(broken)} diverged (no finite loss)" if broken else "") + ".")


def zero_init_text(summary: dict[str, dict]) -> str:
    """What starting every residual block as the identity changed, from the numbers."""
    parts = []
    for depth in (18, 34):
        on, off = summary[f"resnet{depth}_zero_init"], summary[f"resnet{depth}"]
        change = on["train_loss_mean"] - off["train_loss_mean"]
        parts.append(f"resnet{depth} ends with training loss {on['train_loss_mean']:.3f} with it "
                     f"against {off['train_loss_mean']:.3f} without ({change:+.3f}; "
                     + ("lower" if change < 0 else "not lower")
                     + f"), test accuracy {on['test_accuracy_mean']:.3f} against "
                     f"{off['test_accuracy_mean']:.3f}")
    return ("`zero_init_residual` on the ResNets (the lab's default), everything else as in the "
            "residual arms: " + "; ".join(parts) + ". Against the plain arms, only the runs with it "
            "off compare like with like.")


def loss_figure(runs: dict[str, list[dict]], names: list[str]):
    panels = {"training loss": {}, "training accuracy": {}}
    for name in names:
        histories = runs[name]
        epochs = min(len(r["history"]) for r in histories)
        x = [histories[0]["history"][e]["epoch"] for e in range(epochs)]
        for panel, key in (("training loss", "train_loss"), ("training accuracy", "train_accuracy")):
            values = np.array([[r["history"][e][key] for e in range(epochs)] for r in histories])
            err = values.std(0, ddof=1) if len(values) > 1 else None
            panels[panel][name] = (x, values.mean(0), err)
    return figures.curves(panels)
