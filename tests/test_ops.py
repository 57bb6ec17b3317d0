"""Operation counts: one layer worked out by hand, every layer of a model, and the CLI."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import run_cli
from mllabs.errors import UserError
from mllabs.runner import execute, lab_networks
from mllabs.models import count_macs, ops, summary
from mllabs.models import resnet as R
from mllabs.models.cnn import PlainCNN
from mllabs.models.lenet import LeNet5
from mllabs.models.mlp import MLP


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def row(rows, layer):
    return next(r for r in rows if r["layer"] == layer)


# ----------------------------------------------------------------------- one layer by hand

def test_the_homework_convolution():
    # 10×3×224×224, 64 filters 3×3, stride 1, padding 1: (224 + 2 − 3)/1 + 1 = 224
    # per output: 3·3·3 = 27 products, 26 additions to sum them, +1 bias = 27
    outputs = 10 * 64 * 224 * 224
    assert outputs == 32_112_640
    a = ops.conv2d((10, 3, 224, 224), 64, (3, 3), (1, 1), (1, 1))
    assert a.output == (10, 64, 224, 224)
    assert (a.per_output.multiplications, a.per_output.additions) == (27, 27)
    assert a.total.multiplications == 27 * outputs == 867_041_280
    assert a.total.additions == 867_041_280
    assert a.parameters == 64 * 27 + 64 == 1_792
    no_bias = ops.conv2d((10, 3, 224, 224), 64, (3, 3), (1, 1), (1, 1), bias=False)
    assert no_bias.total.multiplications == 867_041_280
    assert no_bias.total.additions == 26 * outputs == 834_928_640
    assert no_bias.parameters == 1_728


def test_convolution_with_stride_padding_and_groups():
    # 2×8×11×11, 6 filters 3×5, stride 2, padding (0, 1): H ⌊(11 − 3)/2⌋ + 1 = 5,
    # W ⌊(11 + 2 − 5)/2⌋ + 1 = 5; groups 2: each output sees 8/2·3·5 = 60 inputs
    a = ops.conv2d((2, 8, 11, 11), 6, (3, 5), (2, 2), (0, 1), groups=2)
    assert a.output == (2, 6, 5, 5)
    assert a.per_output == ops.Counts(60, 60)
    assert a.total == ops.Counts(60 * 300, 60 * 300)
    assert a.parameters == 6 * 60 + 6
    # the output shape is torch's, and the per-layer count of the same layer agrees × batch
    layer = nn.Conv2d(8, 6, (3, 5), stride=2, padding=(0, 1), groups=2)
    assert tuple(layer(torch.zeros(2, 8, 11, 11)).shape) == a.output
    rows = summary(layer, (8, 11, 11))
    assert 2 * rows[0]["multiplications"] == a.total.multiplications
    assert 2 * rows[0]["additions"] == a.total.additions
    assert rows[0]["parameters"] == a.parameters
    # the rounding down is shown when the stride does not divide evenly
    odd = ops.conv2d((1, 1, 8, 8), 1, (3, 3), (2, 2), (0, 0))
    assert odd.output == (1, 1, 3, 3) and any("⌊" in line for line in odd.working)


def test_dense_layer():
    a = ops.dense((10, 512), 10)
    assert a.per_output == ops.Counts(512, 512)
    assert a.total == ops.Counts(51_200, 51_200) and a.parameters == 5_130
    b = ops.dense((10, 512), 10, bias=False)
    assert b.total == ops.Counts(51_200, 51_100) and b.parameters == 5_120


def test_pooling():
    # 10×64×112×112, 2×2 stride 2 → 56×56; max: 3 comparisons per output
    m = ops.pool2d((10, 64, 112, 112), (2, 2), (2, 2))
    assert m.output == (10, 64, 56, 56) and m.outputs == 2_007_040
    assert m.total == ops.Counts(comparisons=3 * 2_007_040) and m.parameters == 0
    # average 3×3 stride 2 padding 1: ⌊(112 + 2 − 3)/2⌋ + 1 = 56; 8 additions and 1 × each
    a = ops.pool2d((10, 64, 112, 112), (3, 3), (2, 2), (1, 1), kind="avg")
    assert a.output == (10, 64, 56, 56)
    assert a.total == ops.Counts(2_007_040, 8 * 2_007_040)
    assert tuple(nn.AvgPool2d(3, 2, 1)(torch.zeros(1, 1, 112, 112)).shape[-2:]) == (56, 56)


@pytest.mark.parametrize("call, fragment", [
    (lambda: ops.conv2d((1, 3, 2, 2), 4, (3, 3)), "does not fit"),
    (lambda: ops.conv2d((1, 3, 8, 8), 0, (3, 3)), "--out-channels must be positive"),
    (lambda: ops.conv2d((1, 3, 8, 8), 4, (3, 3), groups=2), "groups=2 must divide"),
    (lambda: ops.conv2d((1, 3, 8), 4, (3, 3)), "N,C,H,W"),
    (lambda: ops.dense((4, 0), 3), "must be positive"),
    (lambda: ops.pool2d((1, 1, 4, 4), (2, 2), padding=(2, 2)), "more than half"),
])
def test_bad_layers_are_user_errors(call, fragment):
    with pytest.raises(UserError, match=fragment):
        call()


# ----------------------------------------------------------------------- every layer of a model

def test_layer_rows_by_hand():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.MaxPool2d(2), nn.AvgPool2d(5), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 4), nn.Sigmoid())
    rows = summary(model, (3, 10, 10))
    by = {r["layer"]: r for r in rows}
    assert (by["0"]["multiplications"], by["0"]["additions"]) == (800 * 27, 800 * 26)
    assert (by["1"]["multiplications"], by["1"]["additions"]) == (800, 800)   # folded BN
    assert by["2"]["comparisons"] == 800                                    # ReLU
    assert by["3"]["comparisons"] == 8 * 5 * 5 * 3                          # 2×2 max: 3 each
    assert (by["4"]["multiplications"], by["4"]["additions"]) == (8, 8 * 24)  # 5×5 avg → 1×1
    assert (by["5"]["multiplications"], by["5"]["additions"]) == (8, 0)     # 1×1 → 1×1
    assert (by["7"]["multiplications"], by["7"]["additions"]) == (32, 32)
    assert by["8"]["multiplications"] == by["8"]["additions"] == 0          # sigmoid: not counted
    total = rows[-1]
    for column in ("parameters", "multiplications", "additions", "comparisons"):
        assert total[column] == sum(r[column] for r in rows[:-1])


def test_adaptive_pooling_counts_its_uneven_windows():
    # 5 → 3 along each side: windows [0,2) [1,4) [3,5), lengths 2, 3, 2
    x = torch.zeros(1, 2, 5, 5)
    lengths = [2, 3, 2]
    windows = [a * b for a in lengths for b in lengths]
    rows = summary(nn.AdaptiveMaxPool2d(3), (2, 5, 5))
    assert rows[0]["comparisons"] == 2 * sum(w - 1 for w in windows)
    rows = summary(nn.AdaptiveAvgPool2d(3), (2, 5, 5))
    assert rows[0]["additions"] == 2 * sum(w - 1 for w in windows)
    assert rows[0]["multiplications"] == 2 * 9
    assert nn.AdaptiveMaxPool2d(3)(x).shape == (1, 2, 3, 3)


@pytest.mark.parametrize("name, build, shape", [
    ("lenet5", LeNet5, (1, 32, 32)),
    ("mlp", lambda: MLP(784, (256, 64), 10, dropout=0.2), (1, 28, 28)),
    ("resnet18", lambda: R.build("resnet18", 5), (3, 64, 64)),
    ("plain18", lambda: R.build("plain18", 5), (3, 64, 64)),
])
def test_parameter_column_sums_to_the_model(name, build, shape):
    model = build()
    rows = summary(model, shape)
    assert sum(r["parameters"] for r in rows[:-1]) == rows[-1]["parameters"] == n_params(model)


def test_resnet_counts_its_shortcut_additions():
    rows = summary(R.build("resnet18", 5), (3, 64, 64))
    adds = [r for r in rows if r["type"] == "shortcut addition"]
    assert len(adds) == 8  # 2 blocks in each of 4 stages
    # one addition per output element: 64×16×16 in stage 1 at 64 px
    assert row(rows, "layer1.0.add")["additions"] == 64 * 16 * 16
    assert row(rows, "layer4.1.add")["additions"] == 512 * 2 * 2
    # the addition comes after the shortcut's projection and before the block's last ReLU
    names = [r["layer"] for r in rows]
    i = names.index("layer2.0.add")
    assert names[i - 1] == "layer2.0.downsample.1" and names[i + 1] == "layer2.0.relu"
    assert not any(r["type"] == "shortcut addition"
                   for r in summary(R.build("plain18", 5), (3, 64, 64)))


@pytest.mark.parametrize("build, shape", [
    (LeNet5, (1, 32, 32)),
    (lambda: PlainCNN(5, widths=(8, 16)), (3, 48, 48)),
    (lambda: R.build("resnet18", 1000), (3, 224, 224)),
])
def test_count_macs_equals_the_conv_and_linear_multiplications(build, shape):
    model = build()
    rows = summary(model, shape)
    muls = sum(r["multiplications"] for r in rows[:-1] if r["type"] in ("Conv2d", "Linear"))
    assert count_macs(model, shape) == muls


def test_summary_leaves_the_model_as_it_was():
    model = nn.Sequential(nn.Linear(4, 3, dtype=torch.float64), nn.ReLU())  # float64 too
    model.train()
    rows = summary(model, (4,))
    assert rows[-1]["multiplications"] == 12
    assert model.training and all(not m._forward_hooks for m in model.modules())


# ----------------------------------------------------------------------- labs and the CLI

def test_cli_ops_conv_shows_the_working(capsys):
    args = ("ops", "conv", "--input", "10,3,224,224", "--out-channels", "64", "--kernel", "3",
            "--stride", "1", "--padding", "1")
    assert run_cli(*args) == 0
    out = capsys.readouterr().out
    assert "10×64×224×224" in out and "(224 + 2·1 − 3)/1 + 1 = 224" in out
    assert "3·3·3 = 27" in out and "+ 1 for the bias = 27" in out
    assert "27 × 32,112,640 = 867,041,280" in out and "1,792" in out
    assert run_cli(*args, "--no-bias", "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["total"] == {"multiplications": 867_041_280, "additions": 834_928_640,
                               "comparisons": 0}
    assert result["parameters"] == 1_728


def test_cli_ops_dense_and_pool(capsys):
    assert run_cli("ops", "dense", "--input", "10,512", "--out-features", "10", "--no-bias") == 0
    assert "511 × 100 = 51,100" in capsys.readouterr().out
    assert run_cli("ops", "pool", "--input", "10,64,112,112", "--kernel", "2", "--stride", "2",
                   "--json") == 0
    assert json.loads(capsys.readouterr().out)["total"]["comparisons"] == 6_021_120


@pytest.mark.parametrize("args, fragment", [
    (("conv", "--input", "10,3,224", "--out-channels", "8", "--kernel", "3"), "N,C,H,W"),
    (("conv", "--input", "10,x,8,8", "--out-channels", "8", "--kernel", "3"), "whole numbers"),
    (("conv", "--input", "1,3,2,2", "--out-channels", "8", "--kernel", "3"), "does not fit"),
    (("conv", "--input", "1,3,8,8", "--out-channels", "8", "--kernel", "3", "--stride", "0"),
     "must be positive"),
    (("conv", "--input", "1,3,8,8", "--out-channels", "-2", "--kernel", "3"), "must be positive"),
    (("dense", "--input", "10,-512", "--out-features", "10"), "must be positive"),
    (("pool", "--input", "1,1,4,4", "--kernel", "2,2,2"), "one number or two"),
])
def test_cli_ops_bad_values_exit_2_with_one_line(capsys, args, fragment):
    assert run_cli("ops", *args) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_cli_summary_prints_the_table(capsys):
    assert run_cli("summary", "mnist-lenet") == 0
    out = capsys.readouterr().out
    assert "LeNet-5: input 1×32×32" in out
    assert "multiplications" in out and "features.0" in out
    total = next(line for line in out.splitlines() if line.startswith("total"))
    assert total.split()[1:] == ["61,706", "416,520", "416,520", "11,236"]
    assert run_cli("summary", "mnist-cnn", "--profile", "quick", "--set", "filters=4",
                   "--json") == 0
    [net] = json.loads(capsys.readouterr().out)
    assert net["rows"][0]["output"] == "4×26×26" and net["rows"][-1]["layer"] == "total"


def test_cli_summary_of_a_lab_without_a_network(capsys):
    assert run_cli("summary", "car-clustering") == 2
    err = capsys.readouterr().err.strip()
    assert "car-clustering has no neural network" in err and len(err.splitlines()) == 1


def test_every_lab_network_builds_and_matches_its_parameters():
    from mllabs.config import build_config
    from mllabs.labs import LABS, get_lab

    for name in LABS:
        lab = get_lab(name)
        if not hasattr(lab, "networks"):
            continue
        cfg = build_config(lab.Config, lab.PROFILES, "quick")
        for net, shape, rows in lab_networks(lab, cfg):
            assert rows[-1]["parameters"] > 0 and rows[-1]["multiplications"] > 0, (name, net)


def test_lab_networks_does_not_disturb_the_random_stream():
    lab = types.SimpleNamespace(NAME="x", networks=lambda cfg: {"n": (nn.Linear(3, 2), (3,))})
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    lab_networks(lab, None)
    assert torch.equal(torch.rand(3), expected)


def test_every_report_ends_with_one_layer_table_per_network(tmp_path):
    result = execute("boston-housing", profile="quick", out=tmp_path, progress=False)
    doc = json.loads((Path(result["run_dir"]) / "report.json").read_text())
    sections = [s for s in doc["sections"] if s["heading"] == "The network, layer by layer"]
    assert len(sections) == 1
    tables = [b for b in sections[0]["blocks"] if b["kind"] == "table"]
    assert len(tables) == 1 and "PyTorch linear" in tables[0]["caption"]
    assert tables[0]["columns"] == ["layer", "type", "output", "parameters", "multiplications",
                                    "additions", "comparisons"]
    assert tables[0]["rows"][-1][:1] == ["total"] and tables[0]["rows"][-1][3] == "14"


def test_bike_sharing_networks_have_the_real_input_width(data_root):
    from mllabs.config import build_config
    from mllabs.labs import bike_sharing as lab

    cfg = build_config(lab.Config, lab.PROFILES, "default")
    tables = lab.prepare(cfg, data_root)
    nets = lab.networks(cfg)
    for name, t in tables.items():
        width = len(lab.encoded_columns(t.encoding))
        assert nets[f"{name}: MLP"][1] == (width,)
        assert nets[f"{name}: MLP"][0][1].in_features == width
