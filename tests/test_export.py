"""`mllabs export` and `mllabs predict --runtime onnx`: one run of each network family (an MLP,
LeNet-5, the photo CNN) exported to ONNX and re-predicted through onnxruntime gives PyTorch's
answers; the JSON beside the file holds the preprocessing; labs without a PyTorch network,
a missing export and an export of other weights are refused in one line."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from conftest import need, run_cli
from tiny_runs import tiny_run


@pytest.fixture(scope="module", autouse=True)
def onnx_stack():
    need("onnx")  # each by name: test_no_silent_skips reads need("...") calls from the source
    need("onnxscript")
    need("onnxruntime")


def predict_json(capsys, *args) -> list[dict]:
    capsys.readouterr()
    assert run_cli("predict", *args, "--json") == 0
    return json.loads(capsys.readouterr().out)


def same_answers(torch_rows: list[dict], onnx_rows: list[dict], tolerance: float) -> None:
    assert len(torch_rows) == len(onnx_rows) > 0
    for a, b in zip(torch_rows, onnx_rows):
        assert a["input"] == b["input"]
        if "top" in a:
            assert a["prediction"] == b["prediction"], (a, b)
            for x, y in zip(a["top"], b["top"]):
                assert x["label"] == y["label"] and abs(x["probability"] - y["probability"]) <= tolerance
        else:
            assert abs(a["prediction"] - b["prediction"]) <= tolerance * max(1.0, abs(a["prediction"]))
        assert a.get("warning") == b.get("warning")


def export(capsys, run_dir, *extra) -> dict:
    capsys.readouterr()
    assert run_cli("export", run_dir, *extra) == 0
    out = capsys.readouterr().out
    assert "ONNX opset 20" in out
    return json.loads((run_dir / "export" / "model.json").read_text())


def test_mlp_auto_mpg(tmp_path_factory, tmp_path, capsys):
    run_dir = tiny_run("auto-mpg", tmp_path_factory)
    cars = tmp_path / "cars.csv"
    cars.write_text("cylinders,displacement,horsepower,weight,acceleration,model_year,origin\n"
                    "4,97,88,2130,14.5,70,3\n8,350,165,3693,11.5,70,usa\n"
                    "4,121,900,2600,12.8,77,Europe\n")  # the last one far outside: predict warns
    capsys.readouterr()
    assert run_cli("predict", run_dir, cars, "--runtime", "onnx") == 2  # not exported yet
    assert f"mllabs export {run_dir}" in capsys.readouterr().err
    away = tmp_path / "away" / "mpg.onnx"  # taken elsewhere with --out: the JSON goes beside it
    assert run_cli("export", run_dir, "--out", away) == 0
    assert "ONNX opset 20" in capsys.readouterr().out
    meta = json.loads(away.with_suffix(".json").read_text())
    assert meta["opset"] == 20 and meta["input"]["shape"] == ["batch", 9] and meta["file"] == "mpg.onnx"
    assert meta["check"]["max_abs_difference"] < 1e-4
    assert run_cli("predict", run_dir, cars, "--runtime", "onnx") == 2  # still not in the run
    # the pair is self-contained: put back in the run's export slot, predict uses it
    (run_dir / "export").mkdir()
    away.rename(run_dir / "export" / "model.onnx")
    away.with_suffix(".json").rename(run_dir / "export" / "model.json")
    assert meta["predict"]["mean"] == json.loads((run_dir / "predict.json").read_text())["mean"]
    assert any("exp(z" in step for step in meta["preprocessing"])
    torch_rows = predict_json(capsys, run_dir, cars)
    onnx_rows = predict_json(capsys, run_dir, cars, "--runtime", "onnx")
    assert "warning" in torch_rows[2]
    same_answers(torch_rows, onnx_rows, 1e-4)

    # weights changed after the export (a resumed or copied run): the export is refused
    meta["checkpoint_sha256"] = "0" * 64
    (run_dir / "export" / "model.json").write_text(json.dumps(meta))
    assert run_cli("predict", run_dir, cars, "--runtime", "onnx") == 2
    err = capsys.readouterr().err
    assert "other weights" in err and len(err.strip().splitlines()) == 1


def test_lenet_mnist(tmp_path_factory, tmp_path, capsys):
    from digit_images import render_digits

    run_dir = tiny_run("mnist-lenet", tmp_path_factory)
    digits = [p for p, _ in render_digits(tmp_path / "digits", per_digit=1)]
    Image.new("RGB", (60, 60), "white").save(tmp_path / "blank.png")
    inputs = [*digits, tmp_path / "blank.png"]
    meta = export(capsys, run_dir)
    assert meta["input"]["shape"] == ["batch", 1, 32, 32] and meta["output"]["shape"] == ["batch", 10]
    assert any("0.1307" in step for step in meta["preprocessing"])
    torch_rows = predict_json(capsys, run_dir, *inputs)
    onnx_rows = predict_json(capsys, run_dir, *inputs, "--runtime", "onnx")
    assert onnx_rows[-1]["warning"].startswith("no digit found")
    same_answers(torch_rows, onnx_rows, 2e-4)


def test_cnn_flowers(tmp_path_factory, data_root, capsys):
    run_dir = tiny_run("flowers", tmp_path_factory)
    folder = data_root / "flowers" / "flower_photos"
    photos = [sorted((folder / c).iterdir())[5] for c in ("daisy", "roses", "tulips")]
    meta = export(capsys, run_dir)
    assert meta["input"]["shape"] == ["batch", 3, 32, 32]
    assert any("centre" in step for step in meta["preprocessing"])
    torch_rows = predict_json(capsys, run_dir, *photos)
    onnx_rows = predict_json(capsys, run_dir, *photos, "--runtime", "onnx")
    same_answers(torch_rows, onnx_rows, 2e-4)


@pytest.mark.parametrize("lab", ["car-clustering", "boston-housing", "bike-sharing"])
def test_labs_without_a_torch_network_are_refused(lab, tmp_path_factory, capsys):
    run_dir = tiny_run(lab, tmp_path_factory)
    capsys.readouterr()
    assert run_cli("export", run_dir) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"mllabs: error: {lab} has no PyTorch network") and len(err.splitlines()) == 1
    assert not (run_dir / "export").exists()
    assert run_cli("predict", run_dir, run_dir / "config.json", "--runtime", "onnx") == 2
    assert "for --runtime onnx" in capsys.readouterr().err


def test_unfinished_run_is_refused(tmp_path, capsys):
    run_dir = tmp_path / "runs" / "mnist-lenet" / "cut-off"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"lab": "mnist-lenet"}))
    (run_dir / "metrics.json").write_text(json.dumps({"lab": "mnist-lenet", "status": "interrupted"}))
    assert run_cli("export", run_dir) == 2
    assert "ended interrupted" in capsys.readouterr().err
    assert run_cli("export", tmp_path / "nowhere") == 2
    assert "does not exist" in capsys.readouterr().err
