"""`mllabs export`: a run's network as ONNX, with the preprocessing it needs as JSON beside it,
and the onnxruntime side of `mllabs predict --runtime onnx`.

The network is the one `predict` uses (the lab's `predict_network(spec)` filled with
checkpoints/model.pt), exported with torch.onnx's torch.export-based exporter (onnxscript) at
opset OPSET with a free batch dimension. What turns a raw input into the network's input (and
its output into an answer) stays in mllabs, written down in the JSON for another runtime.
`predict --runtime onnx` swaps only the network: `checkpoints.runtime("onnx")` makes
`checkpoints.load_model` return `OnnxNetwork`, so a lab's own predict, its preprocessing and
warnings included, runs unchanged.

Labs whose model is not a PyTorch network are refused in one line saying where their model
already lies in a portable form (K-Means centres and NumPy weights are plain JSON).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mllabs import checkpoints
from mllabs.errors import UserError
from mllabs.files import atomic_write_bytes, read_json, write_json

OPSET = 20            # ONNX opset of the exported graph (onnxruntime reads it from 1.17 on)
FOLDER = "export"     # RUN_DIR/export/model.onnx + model.json: where predict --runtime onnx looks
INPUT, OUTPUT = "input", "output"
INSTALL = "pip install 'mllabs[onnx]'"


def default_path(run_dir: Path, name: str = "model") -> Path:
    return Path(run_dir) / FOLDER / f"{name}.onnx"


def refusal(lab, spec: dict) -> str | None:
    """Why `lab`'s run has no network to export (None when it has one)."""
    if isinstance(spec, dict) and spec.get("user_network"):
        return (f"this run trained your own network ({spec['user_network']}), which only your Python "
                "session can rebuild: export it there with torch.onnx.export(your_module, ...)")
    if hasattr(lab, "predict_network"):
        return None
    where = {
        "car-clustering": "its model is K-Means: the centres and the standardisation are plain "
                          "numbers in predict.json already",
        "boston-housing": "its model is a NumPy network: the weights are plain JSON in "
                          "checkpoints/model.json and the normalisation is in predict.json",
    }.get(lab.NAME)
    if lab.NAME == "bike-sharing":
        kind = spec.get("model") if isinstance(spec, dict) else None
        where = {"gbm": "its predict model is scikit-learn's boosted trees (a pickle in checkpoints/)",
                 "ols": "its predict model is least squares: the coefficients are plain numbers "
                        "in predict.json"}.get(kind, "its predict model switches between an hourly "
                                                     "and a daily network, which export does not cover")
    where = where or "it saves no PyTorch network for predict"
    return (f"{lab.NAME} has no PyTorch network to export: {where}; export covers the labs that "
            "train one (auto-mpg, the MNIST labs, flowers, eye-screening)")


def sample_shape(model: nn.Module, spec: dict) -> tuple[int, ...]:
    """The shape of one input sample, from predict.json (digits, photos) or the first layer."""
    if "pad_to" in spec:
        return (1, int(spec["pad_to"]), int(spec["pad_to"]))
    if "image_size" in spec:
        return (3, int(spec["image_size"]), int(spec["image_size"]))
    first = next((m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))), None)
    if isinstance(first, nn.Linear):
        return (first.in_features,)
    raise UserError(f"cannot tell the input shape of {type(model).__name__} from predict.json; "
                    "this lab's network is not supported by export")


def preprocessing(lab_name: str, spec: dict) -> list[str]:
    """What another runtime must do before and after the network, in words; the numbers are in
    the JSON's `predict` (predict.json as saved by the run)."""
    if "pad_to" in spec:
        from mllabs.data import mnist

        steps = ["a greyscale 28x28 digit, bright ink on black, the digit scaled into a 20x20 box and "
                 "centred by its centre of mass (MNIST's recipe: mllabs.data.digits.prepare_digit)",
                 f"x = (pixel / 255 - {mnist.MEAN}) / {mnist.STD}"]
        if int(spec["pad_to"]) != 28:
            pad = (int(spec["pad_to"]) - 28) // 2
            steps.append(f"pad {pad} pixels each side with the background value "
                         f"{-mnist.MEAN / mnist.STD:.6f} to {spec['pad_to']}x{spec['pad_to']}")
        return steps + ["input layout N x 1 x H x W, float32",
                        "output: one score (logit) per class in predict.classes; softmax gives "
                        "the probabilities"]
    if "image_size" in spec:
        size = spec["image_size"]
        return [f"RGB photo, the shorter side resized to {size} pixels (bilinear), then the centre "
                f"{size}x{size} cut out",
                f"x = (pixel / 255 - mean) / std per channel, mean = {spec.get('mean')}, "
                f"std = {spec.get('std')}",
                "input layout N x 3 x H x W, float32",
                "output: one score (logit) per class in predict.classes; softmax gives the "
                "probabilities"]
    if lab_name == "auto-mpg":
        return ["one row per car with the columns in predict.features: the numeric ones as given, "
                "origin as three 0/1 columns (origin_usa, origin_europe, origin_japan)",
                "x = (value - predict.mean) / predict.std, column by column (the 0/1 columns have "
                "mean 0 and std 1)",
                "input layout N x features, float32",
                "output z: mpg = exp(z * target.std + target.mean) when predict.target.kind is "
                "'log', else z * target.std + target.mean"]
    return ["the inputs as the lab's predict prepares them; the numbers are in `predict`"]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def need(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise UserError(f"{module} is not installed; install the ONNX extra: {INSTALL}") from None


@contextlib.contextmanager
def _quiet():
    """torch.onnx warns about optional packages (torchvision) and deprecations through logging
    and warnings; the user sees mllabs' own lines only (its progress is off with verbose=False)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export",
                                               "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export_onnx(run_dir: Path, lab, out: Path | None = None) -> dict:
    """Write `out` (default RUN_DIR/export/model.onnx) and the JSON beside it; returns the JSON."""
    run_dir = Path(run_dir)
    spec = checkpoints.load_spec(run_dir, lab.NAME)
    reason = refusal(lab, spec)
    if reason:
        raise UserError(reason)
    for module in ("onnx", "onnxscript", "onnxruntime"):
        need(module)
    out = Path(out) if out is not None else default_path(run_dir)
    if out.suffix != ".onnx":
        raise UserError(f"--out {out} should end in .onnx (the preprocessing JSON goes beside it, "
                        f"as {out.with_suffix('.json').name})")
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name, e.g. {out / 'model.onnx'}")
    with checkpoints.runtime("torch"):
        model = checkpoints.load_model(run_dir, spec, lab.predict_network)
    shape = sample_shape(model, spec)
    sample = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(sample).float().numpy()
    with _quiet():
        program = torch.onnx.export(
            model, (sample,), dynamo=True, opset_version=OPSET, input_names=[INPUT],
            output_names=[OUTPUT], dynamic_shapes=({0: torch.export.Dim("batch")},),
            external_data=False, verbose=False)
    data = program.model_proto.SerializeToString()
    # the exported graph must give the network's answer before it is written anywhere
    got = _session(data).run([OUTPUT], {INPUT: sample.numpy()})[0]
    difference = float(np.abs(got - expected).max())
    if not np.allclose(got, expected, rtol=1e-3, atol=1e-4):
        raise RuntimeError(f"the exported graph differs from the network by {difference:.3g}")
    import onnx
    import onnxscript

    checkpoint = run_dir / "checkpoints" / "model.pt"
    meta = {
        "format": "onnx", "opset": OPSET, "file": out.name, "lab": lab.NAME,
        "run": str(run_dir), "checkpoint": "checkpoints/model.pt",
        "checkpoint_sha256": sha256(checkpoint),
        "input": {"name": INPUT, "shape": ["batch", *shape], "dtype": "float32"},
        "output": {"name": OUTPUT, "shape": ["batch", int(expected.shape[1])], "dtype": "float32"},
        "preprocessing": preprocessing(lab.NAME, spec),
        "predict": spec,
        "exported_with": {"torch": torch.__version__, "onnx": onnx.__version__,
                          "onnxscript": onnxscript.__version__},
        "check": {"inputs": len(sample), "max_abs_difference": difference},
    }
    atomic_write_bytes(out, data, hint="choose another --out")
    write_json(out.with_suffix(".json"), meta)
    return meta


# ---------------------------------------------------------------------------- onnxruntime

def _session(model: bytes | str):
    ort = need("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    threads = torch.get_num_threads()  # the thread count mllabs gives torch, for a fair comparison
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class OnnxNetwork(nn.Module):
    """An exported network behind the nn.Module face `train.predict` uses: eval(), a parameter
    that says the device (the CPU), and forward on a float tensor."""

    def __init__(self, session, path: Path):
        super().__init__()
        self.session, self.path = session, path
        self._device = nn.Parameter(torch.empty(0), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().float().cpu().numpy())  # photos come channels-last
        return torch.from_numpy(self.session.run([OUTPUT], {INPUT: array})[0])


def load_onnx(run_dir: Path, spec: dict, name: str = "model") -> OnnxNetwork:
    """RUN_DIR/export/<name>.onnx, refused when missing or exported from other weights than the
    run's checkpoint now holds."""
    run_dir = Path(run_dir)
    path = default_path(run_dir, name)
    lab = spec.get("lab", "LAB")
    if not path.exists() or not path.with_suffix(".json").exists():
        raise UserError(f"{path} does not exist; export the network first: mllabs export {run_dir}")
    meta = read_json(path.with_suffix(".json"))
    checkpoint = run_dir / "checkpoints" / f"{name}.pt"
    if not isinstance(meta, dict) or meta.get("lab") != lab:
        raise UserError(f"{path.with_suffix('.json')} is not {lab}'s export; "
                        f"re-export it: mllabs export {run_dir}")
    if checkpoint.exists() and meta.get("checkpoint_sha256") != sha256(checkpoint):
        raise UserError(f"{path} was exported from other weights than {checkpoint} holds now; "
                        f"re-export it: mllabs export {run_dir}")
    try:
        session = _session(str(path))
    except UserError:
        raise
    except Exception as exc:  # onnxruntime's own errors for a damaged file
        raise UserError(f"{path} cannot be loaded by onnxruntime ({str(exc).splitlines()[0][:160]}); "
                        f"re-export it: mllabs export {run_dir}") from None
    return OnnxNetwork(session, path)


def print_summary(meta: dict, out: Path, stream=None) -> None:
    stream = stream or sys.stdout
    print(f"{out}  (ONNX opset {meta['opset']}, input {meta['input']['name']} "
          f"{'x'.join(map(str, meta['input']['shape']))}, output "
          f"{'x'.join(map(str, meta['output']['shape']))})", file=stream)
    print(f"{out.with_suffix('.json')}  (the preprocessing and predict.json; largest difference "
          f"from PyTorch on the check inputs {meta['check']['max_abs_difference']:.2g})", file=stream)
