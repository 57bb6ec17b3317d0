"""Write tests/data/torchvision_resnet_keys.json: the state-dict keys and shapes of torchvision's
own ResNet-18/34/50, and the URLs of their IMAGENET1K_V1 weights, from torchvision's source.

torchvision cannot be imported on this project's machines (its wheels are CUDA builds), and the
project writes its networks itself, so the layout that `mllabs.models.resnet` must reproduce is
taken from torchvision's source once and committed as data. How the committed file was made:

    pip download --no-deps -d /tmp/tv torchvision==0.21.0
    # torchvision-0.21.0-cp311-cp311-manylinux1_x86_64.whl (7.2 MB), sha256
    # 3891cd086c5071bda6b4ee9d266bb2ac39c998c045c2ebcd1e818b8316fb5d41
    python tests/data/make_torchvision_resnet_keys.py \\
        /tmp/tv/torchvision-0.21.0-cp311-cp311-manylinux1_x86_64.whl \\
        > tests/data/torchvision_resnet_keys.json

The script reads `torchvision/models/resnet.py` out of the wheel (a zip) and executes it
unchanged as the module `_tvstub.models.resnet`. Its relative imports (weight enums, presets,
API-usage logging, the ImageNet category list) resolve to the small stand-ins below; the network
classes need only torch.nn. Then torchvision's own builders resnet18/34/50() (weights=None, 1000
classes) are instantiated and their state dicts listed in order. Needs torch only.
"""

from __future__ import annotations

import enum
import hashlib
import json
import sys
import types
import zipfile
from pathlib import Path

MODELS = ("resnet18", "resnet34", "resnet50")
SOURCE = "torchvision/models/resnet.py"


def _stub_modules() -> None:
    """Stand-ins for the torchvision internals resnet.py imports, registered in sys.modules."""

    def module(name: str, **attrs) -> None:
        mod = types.ModuleType(name)
        mod.__path__ = []  # a package, so that submodules and relative imports resolve
        mod.__dict__.update(attrs)
        sys.modules[name] = mod

    class Weights:  # torchvision's dataclass: url, transforms, meta
        def __init__(self, url, transforms, meta):
            self.url, self.transforms, self.meta = url, transforms, meta

    class WeightsEnum(enum.Enum):
        @classmethod
        def verify(cls, obj):
            return obj

    def decorator_factory(*args, **kwargs):
        return lambda fn: fn

    module("_tvstub")
    module("_tvstub.transforms")
    module("_tvstub.transforms._presets", ImageClassification=object)
    module("_tvstub.utils", _log_api_usage_once=lambda obj: None)
    module("_tvstub.models")
    module("_tvstub.models._api", register_model=decorator_factory, Weights=Weights,
           WeightsEnum=WeightsEnum)
    module("_tvstub.models._meta", _IMAGENET_CATEGORIES=[f"class {i}" for i in range(1000)])
    module("_tvstub.models._utils", _ovewrite_named_param=lambda kwargs, name, value: None,
           handle_legacy_interface=decorator_factory)


def torchvision_resnet(source: str) -> types.ModuleType:
    _stub_modules()
    mod = types.ModuleType("_tvstub.models.resnet")
    mod.__package__ = "_tvstub.models"
    sys.modules[mod.__name__] = mod
    exec(compile(source, f"torchvision/{SOURCE}", "exec"), mod.__dict__)
    return mod


def main(wheel: str) -> None:
    path = Path(wheel)
    with zipfile.ZipFile(path) as zf:
        source_bytes = zf.read(SOURCE)
    version = path.name.split("-")[1]
    tv = torchvision_resnet(source_bytes.decode("utf-8"))
    out = {
        "source": {
            "torchvision": version,
            "wheel": path.name,
            "wheel_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "file": SOURCE,
            "file_sha256": hashlib.sha256(source_bytes).hexdigest(),
            "made_by": "tests/data/make_torchvision_resnet_keys.py",
        },
        "weights": {},
        "models": {},
    }
    for name in MODELS:
        model = getattr(tv, name)()  # torchvision's own builder: weights=None, 1000 classes
        out["models"][name] = {k: list(v.shape) for k, v in model.state_dict().items()}
        enum_name = {"resnet18": "ResNet18_Weights", "resnet34": "ResNet34_Weights",
                     "resnet50": "ResNet50_Weights"}[name]
        out["weights"][name] = getattr(tv, enum_name).IMAGENET1K_V1.value.url
    sys.stdout.write(_dumps(out))


def _dumps(out: dict) -> str:
    """JSON with one key → shape per line, so that a diff of the file reads layer by layer."""
    lines = ["{", f' "source": {json.dumps(out["source"])},', f' "weights": {json.dumps(out["weights"])},',
             ' "models": {']
    for i, (name, keys) in enumerate(out["models"].items()):
        lines.append(f"  {json.dumps(name)}: {{")
        rows = [f"   {json.dumps(k)}: {json.dumps(shape)}" for k, shape in keys.items()]
        lines.append(",\n".join(rows))
        lines.append("  }" + ("," if i < len(out["models"]) - 1 else ""))
    lines += [" }", "}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} TORCHVISION_WHEEL > torchvision_resnet_keys.json")
    main(sys.argv[1])
