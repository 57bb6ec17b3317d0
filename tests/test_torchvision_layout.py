"""The ResNets of models/resnet.py against torchvision's own: the state-dict keys (in order) and
shapes that torchvision 0.21.0's resnet18/34/50 builders produce, committed as data by
tests/data/make_torchvision_resnet_keys.py. A renamed or reshaped layer would otherwise break
the pretrained path only where the ImageNet weights are downloaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mllabs.models import resnet as R

FIXTURE = json.loads((Path(__file__).parent / "data" / "torchvision_resnet_keys.json").read_text())


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_build_gives_torchvisions_keys_and_shapes(name):
    ours = {k: list(v.shape) for k, v in R.build(name, 1000).state_dict().items()}
    theirs = FIXTURE["models"][name]
    assert list(ours) == list(theirs)  # the same keys in the same order
    assert ours == theirs


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_the_weight_files_are_torchvisions_imagenet1k_v1(name):
    assert R.WEIGHTS[name] == FIXTURE["weights"][name]


def test_the_fixture_says_where_it_came_from():
    source = FIXTURE["source"]
    assert source["torchvision"] == "0.21.0" and source["file"] == "torchvision/models/resnet.py"
    assert {name: len(keys) for name, keys in FIXTURE["models"].items()} == {
        "resnet18": 122, "resnet34": 218, "resnet50": 320}
