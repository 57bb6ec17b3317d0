"""The flowers lab's networks: ResNets laid out like torchvision's, their plain twins, the plain
CNN, multiply-accumulate counts, ImageNet weight loading (on files the tests write) and Grad-CAM."""

from __future__ import annotations

import hashlib
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mllabs.data import store
from mllabs.errors import DataError, UserError
from mllabs.models import count_macs, summary
from mllabs.models import resnet as R
from mllabs.models.cnn import PlainCNN
from mllabs.models.gradcam import cam_layer, grad_cam, overlay

# torchvision's counts with 1000 classes
TORCHVISION_PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", list(TORCHVISION_PARAMS))
def test_parameter_counts_match_torchvision(name):
    assert n_params(R.build(name, 1000)) == TORCHVISION_PARAMS[name]


def expected_keys(blocks: tuple[int, ...], bottleneck: bool, skip: bool = True) -> list[str]:
    """torchvision's state-dict keys, in order, written from the layout rule rather than a list."""
    def bn(prefix):
        return [f"{prefix}.{k}" for k in
                ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]

    keys = ["conv1.weight", *bn("bn1")]
    convs = 3 if bottleneck else 2
    for stage, count in enumerate(blocks, start=1):
        for b in range(count):
            p = f"layer{stage}.{b}"
            for c in range(1, convs + 1):
                keys += [f"{p}.conv{c}.weight", *bn(f"{p}.bn{c}")]
            # the first block of a stage projects its shortcut when it changes the resolution
            # (stages 2-4) or the channel count (stage 1 of a bottleneck net: 64 → 256)
            if skip and b == 0 and (stage > 1 or bottleneck):
                keys += [f"{p}.downsample.0.weight", *bn(f"{p}.downsample.1")]
    return keys + ["fc.weight", "fc.bias"]


@pytest.mark.parametrize("name, blocks, bottleneck, skip, total", [
    # resnet18: stem 1 conv + 5 BN entries = 6; 8 blocks × (2 convs + 2 BNs) = 8 × 12 = 96;
    # 3 projections × 6 = 18; fc 2 → 122
    ("resnet18", (2, 2, 2, 2), False, True, 122),
    ("resnet34", (3, 4, 6, 3), False, True, 6 + 16 * 12 + 18 + 2),  # 218
    ("resnet50", (3, 4, 6, 3), True, True, 6 + 16 * 18 + 4 * 6 + 2),  # 320
    ("plain18", (2, 2, 2, 2), False, False, 122 - 18),
    ("plain34", (3, 4, 6, 3), False, False, 218 - 18),
])
def test_state_dict_keys_follow_torchvision_layout(name, blocks, bottleneck, skip, total):
    keys = list(R.build(name, 1000).state_dict())
    assert keys == expected_keys(blocks, bottleneck, skip)
    assert len(keys) == total


def test_state_dict_spot_checks():
    r50 = R.build("resnet50", 1000).state_dict()
    assert r50["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)
    assert r50["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    # v1.5: the stride sits on the 3×3 convolution of the bottleneck
    block = R.build("resnet50", 10).layer2[0]
    assert block.conv2.stride == (2, 2) and block.conv1.stride == (1, 1)
    r18 = R.build("resnet18", 1000).state_dict()
    assert r18["layer1.0.conv1.weight"].shape == (64, 64, 3, 3)
    assert r18["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert r18["fc.weight"].shape == (1000, 512)
    assert "layer1.0.downsample.0.weight" not in r18


@pytest.mark.parametrize("name", R.MODELS)
@pytest.mark.parametrize("size", [64, 96])
def test_forward_shapes(name, size):
    model = R.build(name, 5).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, size, size)).shape == (2, 5)


def test_small_and_odd_inputs():
    for name in ("cnn", "resnet18", "resnet50"):
        model = R.build(name, 3).eval()
        with torch.no_grad():
            assert model(torch.randn(1, 3, 32, 32)).shape == (1, 3)
            assert model(torch.randn(1, 3, 45, 70)).shape == (1, 3)


def test_unknown_model_is_a_user_error():
    with pytest.raises(UserError, match="resnet18"):
        R.build("resnet101", 5)


def test_plain_network_has_the_same_convolutions_and_no_projection():
    res, plain = R.build("resnet18", 5), R.build("plain18", 5)
    res_convs = {n: tuple(p.shape) for n, p in res.named_parameters() if "downsample" not in n}
    plain_convs = {n: tuple(p.shape) for n, p in plain.named_parameters()}
    assert plain_convs == res_convs
    projections = sum(p.numel() for n, p in res.named_parameters() if "downsample" in n)
    assert projections == 128 * 64 + 256 * 128 + 512 * 256 + 2 * (128 + 256 + 512)
    assert n_params(plain) == n_params(res) - projections


@pytest.mark.parametrize("block_type", [R.BasicBlock, R.Bottleneck])
def test_residual_block_adds_its_input_and_plain_block_does_not(block_type):
    """With its convolutions zeroed, a residual block passes its (non-negative) input through;
    the same block without the skip outputs nothing."""
    cin = 16 * block_type.expansion
    x = torch.rand(2, cin, 8, 8)
    outputs = {}
    for skip in (True, False):
        block = block_type(cin, 16, skip=skip).eval()
        for m in block.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.zeros_(m.weight)
        with torch.no_grad():
            outputs[skip] = block(x)
    assert torch.equal(outputs[True], x)
    assert torch.count_nonzero(outputs[False]) == 0


def test_whole_plain_network_differs_only_by_the_skip():
    """Same weights (the plain net's are a subset), different function."""
    torch.manual_seed(0)
    res = R.build("resnet18", 5).eval()
    plain = R.build("plain18", 5).eval()
    missing = plain.load_state_dict(res.state_dict(), strict=False)
    assert missing.missing_keys == [] and all("downsample" in k for k in missing.unexpected_keys)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(res(x), plain(x))
        # stem is shared; only the blocks differ
        assert torch.equal(res.maxpool(res.relu(res.bn1(res.conv1(x)))),
                           plain.maxpool(plain.relu(plain.bn1(plain.conv1(x)))))


def test_zero_init_residual_starts_blocks_at_identity_and_is_refused_for_plain():
    model = R.ResNet(R.BasicBlock, (2, 2, 2, 2), 10, zero_init_residual=True)
    assert torch.count_nonzero(model.layer3[1].bn2.weight) == 0
    assert torch.count_nonzero(model.layer3[1].bn1.weight) > 0
    assert torch.count_nonzero(R.build("resnet18", 10).layer3[1].bn2.weight) > 0
    with pytest.raises(UserError, match="skip"):
        R.ResNet(R.BasicBlock, (2, 2, 2, 2), 10, skip=False, zero_init_residual=True)


def test_plain_cnn_layout():
    model = PlainCNN(5)
    assert [blk[0].out_channels for blk in model.features] == [32, 64, 128, 256]
    kinds = [type(m).__name__ for m in model.features[0]]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]
    assert model.head[-1].in_features == 256 and model.head[-1].out_features == 5
    assert isinstance(model.head[1], nn.Dropout) and model.head[1].p == 0.3
    assert PlainCNN(7, widths=(8, 16), dropout=0.0)(torch.randn(1, 3, 32, 32)).shape == (1, 7)


# ----------------------------------------------------------------------- multiply-accumulates

def test_count_macs_by_hand():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=4),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    model.train()
    # 8×10×10 outputs × 3×3×3; 8×5×5 outputs × (8/4)×3×3; 8×4
    assert count_macs(model, (3, 10, 10)) == 800 * 27 + 200 * 18 + 32
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("name, quoted", [("resnet18", 1.82e9), ("resnet34", 3.67e9),
                                          ("resnet50", 4.09e9)])
def test_count_macs_matches_the_quoted_figures(name, quoted):
    macs = count_macs(R.build(name, 1000), (3, 224, 224))
    assert abs(macs - quoted) / quoted < 0.02


def test_count_macs_scales_with_the_image_area():
    model = R.build("cnn", 5)
    small, large = count_macs(model, (3, 48, 48)), count_macs(model, (3, 96, 96))
    head = 256 * 5
    assert large - head == 4 * (small - head)


def test_summary_still_works_on_the_new_networks():
    rows = summary(R.build("resnet18", 5), (3, 64, 64))
    assert rows[-1]["parameters"] == n_params(R.build("resnet18", 5))
    assert any(r["layer"] == "layer4.1.conv2" and r["output"] == "512×2×2" for r in rows)


# ----------------------------------------------------------------------- pretrained weights

@pytest.fixture(scope="module")
def imagenet_like(tmp_path_factory):
    """A resnet18 state dict with 1000 classes saved the way torchvision's files are, plus the
    sha256 prefix its file name must carry; weights unlike a fresh initialisation."""
    torch.manual_seed(123)
    source = R.build("resnet18", 1000)
    with torch.no_grad():
        for p in source.parameters():
            p.add_(0.01)
        for name, buf in source.named_buffers():
            if name.endswith("running_mean"):
                buf.fill_(0.05)
    path = tmp_path_factory.mktemp("weights") / "source.pth"
    torch.save(source.state_dict(), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return source, path, digest


@pytest.fixture
def weights_table(monkeypatch, imagenet_like):
    """Point resnet18's official URL at a name carrying the test file's own sha256 prefix, so the
    real check (file name prefix against computed sha256) runs on it."""
    _, _, digest = imagenet_like
    url = f"https://download.pytorch.org/models/resnet18-{digest[:8]}.pth"
    monkeypatch.setitem(R.WEIGHTS, "resnet18", url)
    return f"resnet18-{digest[:8]}.pth"


def placed(imagenet_like, folder: Path, filename: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(imagenet_like[1], folder / filename)
    return folder / filename


def test_pretrained_round_trip_with_1000_classes(tmp_path, imagenet_like, weights_table):
    source = imagenet_like[0].eval()
    placed(imagenet_like, tmp_path, weights_table)
    model = R.build("resnet18", 1000)
    report = R.load_pretrained(model, "resnet18", cache_dir=tmp_path)
    assert len(report.loaded) == 122 and not report.skipped and not report.kept
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), source(x))


def test_pretrained_into_a_new_head(tmp_path, imagenet_like, weights_table):
    source = imagenet_like[0]
    placed(imagenet_like, tmp_path, weights_table)
    torch.manual_seed(0)
    model = R.build("resnet18", 5)
    with torch.no_grad():
        model.fc.weight.fill_(5.0)  # as if trained before: the new head must start afresh
    report = R.load_pretrained(model, "resnet18", cache_dir=tmp_path)
    assert sorted(report.skipped) == ["fc.bias", "fc.weight"]
    assert report.kept == ["fc.weight", "fc.bias"]
    assert len(report.loaded) == 120
    assert torch.equal(model.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    assert torch.equal(model.layer2[0].downsample[1].running_mean,
                       source.layer2[0].downsample[1].running_mean)
    assert model.fc.weight.shape == (5, 512) and model.fc.weight.abs().max() < 1 / 512 ** 0.5 + 1e-6
    msg = str(report)
    assert "\n" not in msg and "120 tensors" in msg and "fc.weight" in msg


def test_pretrained_found_in_the_project_cache(tmp_path, monkeypatch, imagenet_like, weights_table):
    monkeypatch.setenv("MLLABS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    path = placed(imagenet_like, tmp_path / "cache" / "weights", weights_table)
    assert R.load_pretrained(R.build("resnet18", 5), "resnet18").path == path


def test_corrupt_weight_file_is_rejected(tmp_path, imagenet_like, weights_table):
    path = placed(imagenet_like, tmp_path, weights_table)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="fails its checksum") as info:
        R.load_pretrained(R.build("resnet18", 5), "resnet18", cache_dir=tmp_path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_wrong_file_under_the_right_name_is_rejected(tmp_path, imagenet_like):
    # a genuine torchvision name, but this file is not the one whose sha256 starts f37072fd
    shutil.copyfile(imagenet_like[1], tmp_path / "resnet18-f37072fd.pth")
    with pytest.raises(DataError, match="f37072fd"):
        R.load_pretrained(R.build("resnet18", 5), "resnet18", cache_dir=tmp_path)


def test_weights_that_do_not_fit_are_rejected(tmp_path, monkeypatch):
    path = tmp_path / "tmp.pth"
    torch.save({"something.weight": torch.zeros(3)}, path)
    prefix = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    path.rename(tmp_path / f"resnet34-{prefix}.pth")
    monkeypatch.setitem(R.WEIGHTS, "resnet34", f"https://example.org/resnet34-{prefix}.pth")
    with pytest.raises(DataError, match="shares no tensor"):
        R.load_pretrained(R.build("resnet34", 5), "resnet34", cache_dir=tmp_path)


@pytest.mark.parametrize("content", ["garbage", "module"])
def test_unreadable_weight_file_is_rejected(tmp_path, monkeypatch, content):
    """A file that passes its checksum but is no state dict: random bytes, or a pickled module
    (which weights_only=True refuses to unpickle)."""
    path = tmp_path / "tmp.pth"
    if content == "garbage":
        path.write_bytes(b"not a torch file" * 10)
    else:
        torch.save(nn.Linear(2, 2), path)
    prefix = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    path.rename(tmp_path / f"resnet18-{prefix}.pth")
    monkeypatch.setitem(R.WEIGHTS, "resnet18", f"https://example.org/resnet18-{prefix}.pth")
    with pytest.raises(DataError, match="not a readable weight file") as info:
        R.load_pretrained(R.build("resnet18", 5), "resnet18", cache_dir=tmp_path)
    assert "\n" not in str(info.value)


def test_offline_without_weights_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("MLLABS_OFFLINE", "1")
    monkeypatch.setenv("MLLABS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(UserError) as info:
        R.load_pretrained(R.build("resnet50", 5), "resnet50")
    msg = str(info.value)
    assert "\n" not in msg and "not in the cache" in msg and "internet" in msg
    assert str(tmp_path / "cache" / "weights" / "resnet50-0676ba61.pth") in msg
    assert "MLLABS_OFFLINE" in msg


def test_no_network_is_one_clear_line_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("MLLABS_OFFLINE")

    def unreachable(url, dest, size):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(store, "_download", unreachable)
    with pytest.raises(UserError) as info:
        R.load_pretrained(R.build("resnet18", 5), "resnet18", cache_dir=tmp_path)
    msg = str(info.value)
    assert "\n" not in msg and "could not be downloaded" in msg and "internet" in msg
    assert "resnet18-f37072fd.pth" in msg
    assert list(tmp_path.iterdir()) == []


def fake_download(source: Path, tamper: bool = False):
    def download(url, dest, size):
        data = bytearray(source.read_bytes())
        if tamper:
            data[100] ^= 1
        Path(dest).write_bytes(bytes(data))
        return hashlib.sha256(bytes(data)).hexdigest()
    return download


def test_download_is_verified_then_kept(tmp_path, monkeypatch, imagenet_like, weights_table):
    monkeypatch.delenv("MLLABS_OFFLINE")
    monkeypatch.setattr(store, "_download", fake_download(imagenet_like[1]))
    report = R.load_pretrained(R.build("resnet18", 5), "resnet18", cache_dir=tmp_path / "w")
    assert report.path == tmp_path / "w" / weights_table and len(report.loaded) == 120
    assert [p.name for p in (tmp_path / "w").iterdir()] == [weights_table]


def test_damaged_download_is_rejected_and_not_kept(tmp_path, monkeypatch, imagenet_like,
                                                   weights_table):
    monkeypatch.delenv("MLLABS_OFFLINE")
    monkeypatch.setattr(store, "_download", fake_download(imagenet_like[1], tamper=True))
    with pytest.raises(DataError, match="not the expected") as info:
        R.load_pretrained(R.build("resnet18", 5), "resnet18", cache_dir=tmp_path)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_no_weights_for_plain_networks():
    with pytest.raises(UserError, match="resnet18, resnet34, resnet50"):
        R.load_pretrained(R.build("plain18", 5), "plain18")


# ----------------------------------------------------------------------------- Grad-CAM

@pytest.mark.parametrize("name", ["cnn", "resnet18"])
def test_grad_cam_shape_range_and_cleanup(name):
    torch.manual_seed(0)
    model = R.build(name, 5).train()
    layer = cam_layer(model)
    assert layer is model.cam_layer
    heat = grad_cam(model, layer, torch.randn(3, 3, 64, 48))
    assert heat.shape == (3, 64, 48) and heat.dtype == np.float32
    assert heat.min() >= 0 and heat.max() <= 1
    assert np.allclose(heat.reshape(3, -1).max(1), 1.0)  # each map scaled to its own peak
    assert not model.training
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters())


class TwoColours(nn.Module):
    """Class 0 is 'how red', class 1 'how green': a fixed 1×1 convolution copies the red and
    green channels into two feature maps, whose means are the two scores."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0, 0] = 1.0
            self.conv.weight[1, 1] = 1.0
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.conv(x)).mean((2, 3))


def test_grad_cam_highlights_the_region_that_drives_the_class():
    image = torch.zeros(1, 3, 32, 32)
    image[0, 0, 2:12, 2:12] = 1.0    # red square, top left
    image[0, 1, 2:10, 22:30] = 0.8   # smaller, dimmer green square, top right
    model = TwoColours()
    red_box = np.zeros((32, 32), bool)
    red_box[2:12, 2:12] = True
    green_box = np.zeros((32, 32), bool)
    green_box[2:10, 22:30] = True
    for target, box in [(None, red_box), (0, red_box), (1, green_box)]:
        heat = grad_cam(model, model.act, image, target=target)[0]
        assert heat[box].sum() / heat.sum() > 0.9, target
        assert heat[:, :16].sum() > heat[:, 16:].sum() if box is red_box else \
            heat[:, 16:].sum() > heat[:, :16].sum()


def test_grad_cam_per_image_targets():
    image = torch.zeros(2, 3, 16, 16)
    image[:, 0, :, :8] = 1.0
    image[:, 1, :, 8:] = 1.0
    model = TwoColours()
    heat = grad_cam(model, model.conv, image, target=[0, 1])
    assert heat[0, :, :8].mean() > 0.9 and heat[0, :, 8:].mean() < 0.1
    assert heat[1, :, 8:].mean() > 0.9 and heat[1, :, :8].mean() < 0.1


def test_cam_layer_falls_back_to_the_last_convolution():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.Flatten())
    assert cam_layer(model) is model[2]


def test_overlay():
    image = np.full((20, 30, 3), 128, np.uint8)
    hot = overlay(image, np.ones((20, 30)))
    cold = overlay(image, np.zeros((5, 6)))  # heat of another size is resized
    assert hot.shape == cold.shape == (20, 30, 3) and hot.dtype == np.uint8
    assert hot[0, 0, 0] > hot[0, 0, 2] and cold[0, 0, 2] > cold[0, 0, 0]  # jet: hot red, cold blue
    assert np.array_equal(overlay(image, np.ones((20, 30)), alpha=0.0), image)
    assert overlay(image[:, :, 0], np.ones((20, 30))).shape == (20, 30, 3)
