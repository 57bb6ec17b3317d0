"""Every figure says what it shows, and layer tables use the handout's names (issue 21, items 3
and 7), checked without training: an AST scan of the labs, the conclusion helpers on made-up
numbers whose answer is known, and the layer tables the runner builds."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from torch import nn

from mllabs.config import build_config
from mllabs.labs import LABS, _depth, _photos, eye_screening, get_lab, mnist_optimizers
from mllabs.models.mlp import MLP
from mllabs.runner import lab_networks, layer_names, network_section

LABS_DIR = Path(_photos.__file__).parent


def figure_calls():
    for path in sorted(LABS_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "figure" \
                    and getattr(node.func.value, "id", None) != "plt":  # plt.figure() makes one
                yield path.name, node


def test_every_figure_in_a_lab_has_a_conclusion():
    calls = list(figure_calls())
    assert len(calls) > 20, "the scan found too few figure calls: has the labs folder moved?"
    missing = []
    for name, node in calls:
        given = {k.arg: k.value for k in node.keywords}
        value = given.get("conclusion")
        # a fixed string cannot come from the run's numbers: it must be computed
        if value is None or isinstance(value, ast.Constant):
            missing.append(f"{name}:{node.lineno}")
    assert not missing, f"figure calls without a computed conclusion=: {missing}"


# ---------------------------------------------------------------------------- photo pages

def test_grad_cam_conclusion_tells_centre_from_edge():
    side = 32
    centre, edge = np.zeros((2, side, side), np.float32), np.ones((2, side, side), np.float32)
    centre[:, 12:20, 12:20] = 1.0
    edge[:, 4:28, 4:28] = 0.0
    assert _photos.centre_share(centre) == pytest.approx([1.0, 1.0])
    assert (_photos.centre_share(edge) < 0.05).all()
    assert _photos.centre_share(np.ones((1, side, side)))[0] == pytest.approx(0.25)
    text = _photos.attention_text({"cnn": centre, "resnet18": edge},
                                  {"cnn": [True, False], "resnet18": [True, True]})
    assert "cnn 1 of 2 right, centre share 100 % on those, 100 % on the wrong ones" in text
    assert "resnet18 2 of 2 right, centre share 0 % on those" in text
    assert "resnet18 2 of 2 right, centre share 0 % on those, " not in text  # no wrong ones
    flat = _photos.attention_text({"resnet18": np.full((2, side, side), 0.7)}, {"resnet18": [True, False]})
    assert "heat flat over the whole photo" in flat and "centre share" not in flat


def test_training_photo_and_augmentation_conclusions_count_what_is_shown():
    text = _photos.shown_text(np.array([0, 2, 2, 0, 2]), ["daisy", "rose", "tulip"])
    assert "5 training photos shows 2 of the 3 classes (tulip 3, daisy 2)" in text
    assert "1 class(es) did not come up" in text
    photo = np.full((8, 8, 3), 100, np.uint8)
    views = np.stack([photo, photo + 10, photo + 30])
    assert "by 0 to 30" in _photos.augmentation_text(photo, views)
    assert "1 view(s) came out nearly as stored" in _photos.augmentation_text(photo, views)
    assert "no view repeats" in _photos.augmentation_text(photo, views[1:])


def test_roc_conclusion_reads_the_curve_at_ten_percent_false_positives():
    perfect = {"roc_auc": 1.0, "roc": ([0.0, 0.0, 1.0], [0.0, 1.0, 1.0])}
    weak = {"roc_auc": 0.6, "roc": ([0.0, 0.05, 0.2, 1.0], [0.0, 0.3, 0.6, 1.0])}
    text = eye_screening.roc_text({"lenet": weak, "resnet18": perfect}, "pathologic")
    assert text.index("resnet18") < text.index("lenet")  # best AUC first
    assert "resnet18 (AUC 1.000) finds 100 %" in text and "lenet (AUC 0.600) finds 30 %" in text


# ---------------------------------------------------------------------------- optimizers, depth

def _run(val, status="completed"):
    return SimpleNamespace(status=status, history=[{"val_accuracy": val}])


def test_optimizer_heatmap_and_plateau_conclusions():
    cfg = SimpleNamespace(optimizers=("sgd", "adam"))
    rates = {"sgd": [0.1, 0.01, 0.001], "adam": [0.01, 0.001, 0.0001]}
    grid = {("sgd", 0.1): [_run(0.90), _run(0.92)], ("sgd", 0.01): [_run(0.80)] * 2,
            ("sgd", 0.001): [_run(0.50)] * 2,
            ("adam", 0.01): [_run(0.95), _run(0.955)], ("adam", 0.001): [_run(0.96)] * 2,
            ("adam", 0.0001): [_run(0.90), _run(0.2, "diverged")]}
    best = {"sgd": 0.1, "adam": 0.001}
    text = mnist_optimizers.heatmap_text(cfg, rates, grid, best)
    assert "best cell is Adam at rate 0.001 (96.00 %" in text
    assert "edge of the grid for SGD," in text  # SGD's 0.1 is its largest rate; Adam's is inside
    assert "inside the grid" in mnist_optimizers.heatmap_text(cfg, rates, grid, {"sgd": 0.01, "adam": 0.001})
    plateau = mnist_optimizers.plateau_text(cfg, rates, grid)
    assert "SGD 1 of 3, Adam 2 of 3" in plateau and "Adam forgives a rough choice most, SGD least" in plateau


def test_optimizer_loss_conclusion_says_when_lowest_loss_is_not_best_accuracy():
    finals = {"test_accuracy": {"SGD": 0.97, "Adam": 0.96}, "train_loss": {"SGD": 0.08, "Adam": 0.02}}
    assert "SGD leads with 97.00 % and Adam trails with 96.00 %" in \
        mnist_optimizers.curve_text(finals, "test_accuracy")
    loss = mnist_optimizers.curve_text(finals, "train_loss")
    assert "Adam ends with the lowest training loss (0.0200)" in loss and "SGD's" in loss
    finals["test_accuracy"]["Adam"] = 0.99
    assert "went with the best test accuracy" in mnist_optimizers.curve_text(finals, "train_loss")


def test_depth_study_conclusion_reads_the_curves_last_points():
    def runs(*losses):
        return [{"history": [{"train_loss": 9.0}, {"train_loss": v}]} for v in losses]

    text = _depth.curve_text({"resnet18": runs(0.2, 0.4), "plain18": runs(0.5, 0.5),
                              "resnet34": runs(0.6, 0.6), "plain34": runs(0.7, float("nan"))},
                             ["resnet18", "plain18", "resnet34", "plain34"])
    assert "lowest for resnet18 (0.300) and highest for resnet34 (0.600)" in text
    assert "at 18 layers the residual network ends below the plain one (0.300 against 0.500)" in text
    assert "plain34 diverged" in text


# ---------------------------------------------------------------------------- layer names

class Tables:
    """Report stand-in: what network_section writes."""

    def __init__(self):
        self.tables = []

    def section(self, *args):
        return self

    def table(self, rows, caption):
        self.tables.append(rows)


# what each handout name must be: C and conv layers convolve, S pool, the rest are dense
def expected_type(name: str) -> str:
    if name == "C5":  # LeNet's 5×5 convolution over 5×5 maps: one output each, a dense layer
        return "Linear"
    if name.startswith(("C", "conv")):
        return "Conv2d"
    if name.startswith("S"):
        return "MaxPool2d"
    return "Flatten" if name == "flatten" else "Linear"


@pytest.mark.parametrize("lab_name", [n for n in LABS if hasattr(get_lab(n), "LAYER_NAMES")
                                      or hasattr(get_lab(n), "layer_names")])
def test_handout_names_land_on_layers_of_their_kind(lab_name):
    lab = get_lab(lab_name)
    cfg = build_config(lab.Config, lab.PROFILES, "quick")
    names = layer_names(lab, cfg)
    report = Tables()
    tables = lab_networks(lab, cfg)
    network_section(report, tables, names)
    named = [n for n in names if n in {t[0] for t in tables}]
    assert named, f"{lab_name}'s layer names match none of its networks {[t[0] for t in tables]}"
    for (network, shape, _), rows in zip(tables, report.tables):
        if network not in names:
            continue
        shown = {r["handout"]: r["type"] for r in rows if r.get("handout")}
        assert set(shown) == set(names[network].values()), f"{network}: names on missing layers"
        assert all(expected_type(n) == t for n, t in shown.items()), shown
        if len(shape) == 1:  # an MLP on a flat input: no Flatten row, which would do nothing
            assert "Flatten" not in {r["type"] for r in rows}


def test_mlp_layer_names_follow_its_hidden_layers():
    assert set(MLP(9, (64, 32, 16), 1, dropout=0.1).layer_names().values()) == {
        "hidden 1", "hidden 2", "hidden 3", "output"}
    assert list(MLP(4, (), 1).layer_names().values()) == ["output"]
    net = MLP(9, (8, 4), 1)
    assert all(isinstance(net[int(k)], nn.Linear) for k in net.layer_names())
    auto = get_lab("auto-mpg")
    cfg = build_config(auto.Config, auto.PROFILES, "quick", ["hidden=16,8,4"])
    assert len(auto.layer_names(cfg)["network"]) == 4
