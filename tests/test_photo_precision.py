"""precision=auto on the photo labs, both ways on any CPU: the capability check
(hardware.native_bf16) is monkeypatched, a tiny photo-lab run trains under each answer, and the
dtype the convolutions actually produced is read from a forward hook, not from the config.

The run is eye-screening on a 16-photo synthetic folder rather than flowers: both labs train
through _photos.train_models and report through describe_comparison, and a fresh flowers run
would decode all 3,670 photos before training (test_flowers covers that path)."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import cache_in, run_cli

TINY = ["--profile", "quick", "--set", "model=lenet", "--set", "image_size=32", "--set", "epochs=1",
        "--set", "cam_photos=1", "--quiet"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from test_eye_screening import two_class_folder

    folder = tmp_path_factory.mktemp("photos")
    with cache_in(folder / "cache"):  # the two runs decode the photos once between them
        yield two_class_folder(folder / "eyes", n=8)


@pytest.mark.parametrize("native", [True, False], ids=["bf16", "fp32"])
def test_auto_precision_trains_in_the_dtype_the_cpu_check_allows(native, photos, tmp_path,
                                                                  monkeypatch):
    from mllabs import hardware
    from mllabs.labs import _photos

    monkeypatch.setattr(hardware, "native_bf16", lambda: native)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    seen = {"train": set(), "test": set(), "other": set()}  # conv output dtypes by phase
    phase = []
    predict = _photos.forward  # what the lab's test-set predictions go through

    def test_predictions(*args, **kwargs):
        phase.append("test")
        try:
            return predict(*args, **kwargs)
        finally:
            phase.pop()

    def hook(module, args, output):
        if isinstance(module, torch.nn.Conv2d):
            seen["train" if module.training else (phase[-1] if phase else "other")].add(output.dtype)

    monkeypatch.setattr(_photos, "forward", test_predictions)
    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        assert run_cli("run", "eye-screening", *TINY, "--data-dir", photos,
                       "--out", tmp_path) == 0
    finally:
        handle.remove()
    dtype, words = (torch.bfloat16, "bfloat16") if native else (torch.float32, "float32")
    # every training step and the test predictions; validation passes too, next to float32 ones
    # by design (Grad-CAM's gradients and the layer table's shape trace)
    assert seen["train"] == {dtype} and seen["test"] == {dtype}
    assert dtype in seen["other"]
    (run_dir,) = (tmp_path / "eye-screening").iterdir()
    assert json.loads((run_dir / "config.json").read_text())["precision"] == "auto"
    assert json.loads((run_dir / "env.json").read_text())["cpu"]["native_bf16"] is native
    assert f"forward passes in {words}" in (run_dir / "report.md").read_text()
