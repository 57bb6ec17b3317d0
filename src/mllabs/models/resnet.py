"""ResNet-18/34/50 (He et al. 2015) and their "plain" twins without skip connections.

The attribute names follow torchvision's layout (conv1, bn1, layer1..layer4 of blocks with
conv/bn pairs and a `downsample` Sequential of a 1×1 convolution and a batch norm, fc), so a
state dict saved by torchvision loads here key for key: `load_pretrained` fetches the official
ImageNet weights into the project's cache, checks their sha256 and copies them in.

Decisions:
- Bottleneck blocks stride on the 3×3 convolution (the "v1.5" variant torchvision ships).
- The last batch norm of each block starts with gamma = 1 (torchvision's default). Zeroing it
  (`zero_init_residual=True`) makes every residual block start as the identity; the plain
  network has no identity to fall back on, so there the option is refused.
- The plain network (`skip=False`) drops the addition *and* the downsample projections: it is the
  "plain" baseline of the paper (same convolutions, no shortcut of any kind), so it has the 1×1
  projection parameters fewer (plain18: 11,515,688 against 11,689,512 with 1000 classes).
"""

from __future__ import annotations

import http.client
import os
import pickle
import re
import tempfile
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import torch
from torch import nn

from mllabs.data import store
from mllabs.errors import DataError, UserError
from mllabs.models.cnn import PlainCNN


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions; the input is added back before the last ReLU (unless skip=False)."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1, downsample: nn.Module | None = None,
                 skip: bool = True):
        super().__init__()
        self.conv1 = _conv3x3(cin, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = downsample
        self.skip = skip

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.residual(x)
        if self.skip:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class Bottleneck(BasicBlock):
    """1×1 squeeze → 3×3 (carries the stride) → 1×1 expand to 4× the width; skip as above."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1, downsample: nn.Module | None = None,
                 skip: bool = True):
        nn.Module.__init__(self)
        # registration order decides the state dict's key order: conv1, bn1, conv2, bn2, conv3, bn3
        self.conv1 = _conv1x1(cin, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, width * self.expansion)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.skip = skip

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


class ResNet(nn.Module):
    """Stem (7×7/2 conv, BN, ReLU, 3×3/2 max pool) → four stages of blocks at widths 64, 128,
    256, 512 (stages 2-4 halve the resolution) → global average pool → fc.

    The pooling is adaptive, so any input size works; below 32 px the last stage sees 1×1 maps.
    """

    def __init__(self, block: type[BasicBlock], layers: list[int] | tuple[int, ...],
                 num_classes: int = 1000, skip: bool = True, zero_init_residual: bool = False):
        super().__init__()
        if zero_init_residual and not skip:
            raise UserError("zero_init_residual needs skip connections: a plain block whose last "
                            "batch norm starts at zero outputs nothing")
        self.skip = skip
        self.channels = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._stage(block, 64, layers[0], 1)
        self.layer2 = self._stage(block, 128, layers[1], 2)
        self.layer3 = self._stage(block, 256, layers[2], 2)
        self.layer4 = self._stage(block, 512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        self._init_weights(zero_init_residual)

    def _stage(self, block: type[BasicBlock], width: int, count: int, stride: int) -> nn.Sequential:
        out_channels = width * block.expansion
        downsample = None
        # the first block changes resolution and/or channels, so the shortcut needs a projection;
        # a plain network has no shortcut, hence no projection either
        if self.skip and (stride != 1 or self.channels != out_channels):
            downsample = nn.Sequential(_conv1x1(self.channels, out_channels, stride),
                                       nn.BatchNorm2d(out_channels))
        blocks = [block(self.channels, width, stride, downsample, skip=self.skip)]
        self.channels = out_channels
        blocks += [block(out_channels, width, skip=self.skip) for _ in range(count - 1)]
        return nn.Sequential(*blocks)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # He initialisation by the fan-out, as the paper's reference code does
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    nn.init.zeros_(m.last_bn.weight)

    @property
    def cam_layer(self) -> nn.Module:
        """The layer Grad-CAM looks at: the last stage (its output is the last feature map)."""
        return self.layer4

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


ARCHITECTURES: dict[str, tuple[type[BasicBlock], tuple[int, ...], bool]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2), True),
    "resnet34": (BasicBlock, (3, 4, 6, 3), True),
    "resnet50": (Bottleneck, (3, 4, 6, 3), True),
    "plain18": (BasicBlock, (2, 2, 2, 2), False),
    "plain34": (BasicBlock, (3, 4, 6, 3), False),
}
MODELS = ("cnn", *ARCHITECTURES)


def build(name: str, num_classes: int, zero_init_residual: bool = False) -> nn.Module:
    """A freshly initialised network by name: cnn, resnet18/34/50 or plain18/34.

    `zero_init_residual` applies to the ResNets only (the CNN and the plain twins have no
    identity path to start from) and is ignored for them."""
    if name == "cnn":
        return PlainCNN(num_classes)
    if name not in ARCHITECTURES:
        raise UserError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    block, layers, skip = ARCHITECTURES[name]
    return ResNet(block, layers, num_classes, skip=skip, zero_init_residual=zero_init_residual and skip)


# ------------------------------------------------------------------------ pretrained weights

# torchvision's ImageNet weights (IMAGENET1K_V1). The hex digits after the dash in each file name
# are the start of that file's sha256, which is what a download is checked against.
WEIGHTS = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
}
_PREFIX_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.")


def _file_and_prefix(url: str) -> tuple[str, str]:
    filename = PurePosixPath(urlparse(url).path).name
    match = _PREFIX_IN_NAME.search(filename)
    if not match:
        raise ValueError(f"{url}: the file name carries no sha256 prefix")
    return filename, match.group(1)


def weights_dirs(cache_dir: str | Path | None = None) -> list[Path]:
    """Where weight files are looked for: cache_dir alone if given, else the project's cache
    (where downloads go) and then torch.hub's checkpoint folder (read only)."""
    if cache_dir is not None:
        return [Path(cache_dir)]
    return [store.cache_root() / "weights", Path(torch.hub.get_dir()) / "checkpoints"]


def _verify(path: Path, prefix: str) -> None:
    digest = store.sha256_of(path)
    if not digest.startswith(prefix):
        raise DataError(f"{path} fails its checksum (sha256 {digest[:12]}..., the file name says "
                        f"{prefix}...): delete it and run again with internet to download it afresh")


def weights_file(name: str, cache_dir: str | Path | None = None) -> Path:
    """The verified ImageNet weight file of `name`, downloaded into the cache if none is there."""
    if name not in WEIGHTS:
        raise UserError(f"no ImageNet weights for {name!r}; pretrained weights exist for "
                        f"{', '.join(WEIGHTS)}")
    url = WEIGHTS[name]
    filename, prefix = _file_and_prefix(url)
    dirs = weights_dirs(cache_dir)
    for folder in dirs:
        if (folder / filename).is_file():
            _verify(folder / filename, prefix)
            return folder / filename
    target = dirs[0] / filename
    looked = " or ".join(str(d / filename) for d in dirs)
    if store.offline():
        raise UserError(f"{name} ImageNet weights are not in the cache (looked for {looked}) and "
                        f"downloads are off (MLLABS_OFFLINE=1): run once with internet, or place "
                        f"{url} at {target}")
    return _download(url, target, prefix, looked)


def _download(url: str, target: Path, prefix: str, looked: str) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    try:
        digest = store._download(url, Path(tmp), None)
        if not digest.startswith(prefix):
            raise DataError(f"{url} arrived with sha256 {digest[:12]}..., not the expected "
                            f"{prefix}...: the download was damaged or the file changed upstream; "
                            f"try again, or place a verified copy at {target}")
        os.replace(tmp, target)
        return target
    except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as exc:
        reason = str(getattr(exc, "reason", exc)).replace("\n", " ")
        raise UserError(f"the ImageNet weights are not in the cache (looked for {looked}) and "
                        f"{url} could not be downloaded ({reason}): run once with internet, or "
                        f"place the file at {target}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


@dataclass
class Loaded:
    """What load_pretrained did: tensors copied, file entries left out (with why), model entries
    that kept their fresh initialisation."""

    name: str
    path: Path
    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        text = f"{self.name}: {len(self.loaded)} tensors loaded from {self.path.name}"
        if self.skipped:
            reasons = "; ".join(sorted(set(self.skipped.values())))
            text += f"; skipped {', '.join(self.skipped)} ({reasons})"
        if self.kept:
            text += f"; freshly initialised: {', '.join(self.kept)}"
        return text

    def __str__(self) -> str:
        return self.message


def load_pretrained(model: nn.Module, name: str, cache_dir: str | Path | None = None) -> Loaded:
    """Copy the ImageNet weights of `name` into `model`, key by key.

    Every tensor whose key and shape match is copied; a classifier of another size (fc with other
    than 1000 classes) is left out and re-initialised, so the new head starts fresh.
    """
    path = weights_file(name, cache_dir)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, KeyError,
            AttributeError, TypeError) as exc:  # each means the same to the user: not weights
        raise DataError(f"{path} is not a readable weight file ({str(exc).splitlines()[0]}); "
                        f"delete it and run again with internet") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{path} does not hold a state dict of tensors; delete it and run again")
    own = model.state_dict()
    report = Loaded(name, path)
    merged = dict(own)
    for key, tensor in state.items():
        if key not in own:
            report.skipped[key] = "not in this model"
        elif own[key].shape != tensor.shape:
            report.skipped[key] = (f"shape {tuple(tensor.shape)} in the file, "
                                   f"{tuple(own[key].shape)} here")
        else:
            merged[key] = tensor
            report.loaded.append(key)
    if not report.loaded:
        raise DataError(f"{path} shares no tensor with the {type(model).__name__} it was loaded "
                        f"into; it does not hold {name} weights")
    model.load_state_dict(merged)
    report.kept = [k for k in own if k not in report.loaded]
    for module_name, module in model.named_modules():
        # a layer none of whose tensors came from the file gets a fresh start (the new head)
        own_keys = [f"{module_name}.{k}" for k, _ in module.named_parameters(recurse=False)]
        if own_keys and all(k in report.kept for k in own_keys) and hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return report
