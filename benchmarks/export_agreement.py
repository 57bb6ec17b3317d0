"""ONNX (onnxruntime) against PyTorch for exported runs: top-1 agreement on a whole test set,
the number of disagreements, the largest probability difference, and single-input latency.

    python benchmarks/export_agreement.py --mnist runs/mnist-lenet/<run> --flowers runs/flowers/<run>

Each run is exported first (`mllabs export`, into RUN/export/) unless it already is. Inputs are
prepared exactly as predict prepares them (MNIST: the test set normalised and padded as
predict.json says; flowers: every test photo of the run's own split, decoded from its file by
predict's `load_image` and normalised by its PhotoBatches), then fed to both networks through
`train.predict`, the forward pass predict uses. Latency: one input at a time, the median of
`--calls` calls after 20 warm-up calls, each runtime with the same thread count (`--threads`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mllabs import checkpoints, export
from mllabs.cli import finished_run
from mllabs.train import predict as forward


def networks(run_dir: Path):
    lab = finished_run(run_dir)
    if not export.default_path(run_dir).exists():
        export.export_onnx(run_dir, lab)
    spec = checkpoints.load_spec(run_dir, lab.NAME)
    with checkpoints.runtime("torch"):
        torch_net = checkpoints.load_model(run_dir, spec, lab.predict_network)
    with checkpoints.runtime("onnx"):
        onnx_net = checkpoints.load_model(run_dir, spec, lab.predict_network)
    return lab, spec, torch_net, onnx_net


def mnist_inputs(spec: dict):
    from mllabs.data import mnist

    data = mnist.load()
    what = f"the MNIST test set, {len(data.test_y):,} digits"
    return mnist.normalise(data.test_x, spec["pad_to"]), None, what


def flowers_inputs(run_dir: Path, lab, spec: dict):
    from mllabs.config import config_from_dict
    from mllabs.data.augment import PhotoBatches
    from mllabs.data.images import load_image
    from mllabs.files import read_json

    cfg = config_from_dict(lab.Config, read_json(run_dir / "config.json"))
    photos = lab.prepare(cfg, None).photos  # the run's own split (same seed, limit, fractions)
    test = [photos.paths[i] for i in photos.split["test"]]
    size = spec["image_size"]
    x = torch.from_numpy(np.stack([load_image(p, size) for p in test]))
    batches = PhotoBatches(size, augment=False, mean=tuple(spec["mean"]), std=tuple(spec["std"]))
    return x, batches, f"the run's flowers test photos, {len(test):,} of them, from their files"


def agreement(torch_net, onnx_net, x, transform) -> dict:
    p_torch = torch.softmax(forward(torch_net, x, transform=transform), 1).numpy()
    p_onnx = torch.softmax(forward(onnx_net, x, transform=transform), 1).numpy()
    differ = p_torch.argmax(1) != p_onnx.argmax(1)
    return {"inputs": len(x), "top1_agree": int((~differ).sum()), "disagreements": int(differ.sum()),
            "max_probability_difference": float(np.abs(p_torch - p_onnx).max())}


def latency(net, x, transform, calls: int) -> float:
    """Median milliseconds of one forward pass on one input (the transform done beforehand)."""
    one = transform(x[:1], False) if transform else x[:1]
    times = []
    with torch.no_grad():
        for i in range(20 + calls):
            start = time.perf_counter()
            net(one)
            if i >= 20:
                times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", type=Path, help="a finished mnist-lenet (or other MNIST lab) run")
    parser.add_argument("--flowers", type=Path, help="a finished flowers run")
    parser.add_argument("--calls", type=int, default=500, help="single-input calls per runtime")
    parser.add_argument("--threads", type=int, help="threads for both runtimes (default: torch's)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)  # onnxruntime's session takes the same count
    results = []
    for run_dir, kind in ((args.mnist, "mnist"), (args.flowers, "flowers")):
        if run_dir is None:
            continue
        lab, spec, torch_net, onnx_net = networks(run_dir)
        x, transform, what = (mnist_inputs(spec) if kind == "mnist"
                              else flowers_inputs(run_dir, lab, spec))
        row = {"run": str(run_dir), "lab": lab.NAME, "network": spec.get("architecture"),
               "inputs_are": what, **agreement(torch_net, onnx_net, x, transform),
               "torch_ms": latency(torch_net, x, transform, args.calls),
               "onnx_ms": latency(onnx_net, x, transform, args.calls),
               "threads": torch.get_num_threads()}
        results.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"torch": torch.__version__, "opset": export.OPSET,
                                         "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
