"""The MNIST labs and predict on digit images, on the real MNIST files."""

import json

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from digit_images import render_digits
from mllabs.data.digits import mnist_style, prepare_digit
from mllabs.errors import DataError


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory):
    """A LeNet-5 trained for 2 epochs on all 60,000 digits: enough to read printed digits."""
    out = tmp_path_factory.mktemp("runs")
    assert run_cli("run", "mnist-lenet", "--quiet", "--out", out, "--set", "epochs=2",
                   "--set", "val_size=0", "--set", "keep_last=1") == 0
    (run_dir,) = (out / "mnist-lenet").iterdir()
    return run_dir


def test_lenet_run_writes_its_report_and_checkpoints(lenet_run):
    result = json.loads((lenet_run / "metrics.json").read_text())
    assert result["status"] == "completed"
    assert result["metrics"]["test_accuracy"] > 0.97  # 2 epochs; the default profile reaches 99 %
    assert sorted(p.name for p in (lenet_run / "checkpoints").iterdir()) == ["best.pt", "epoch-0002.pt", "model.pt"]
    md = (lenet_run / "report.md").read_text()
    for text in ("Data pipeline", "| shuffle |", "| repeat |", "Per-class accuracy", "conv", "total"):
        assert text in md, text
    figures = {p.name for p in (lenet_run / "figures").iterdir()}
    assert {"curves.png", "confusion_matrix.png", "test_digits.png"} <= figures


def test_lenet_reads_rendered_digits(lenet_run, tmp_path, capsys, note):
    made = render_digits(tmp_path / "digits")
    assert run_cli("predict", lenet_run, *[p for p, _ in made], "--json") == 0
    results = json.loads(capsys.readouterr().out)
    correct = sum(int(r["prediction"]) == digit for r, (_, digit) in zip(results, made))
    note(f"mnist-lenet (2 epochs) read {correct}/{len(made)} rendered digits correctly")
    assert correct >= 0.75 * len(made), f"only {correct}/{len(made)} rendered digits read correctly"
    top = results[0]["top"]
    assert len(top) == 3 and top[0]["probability"] >= top[1]["probability"] >= top[2]["probability"]


def _canvas(polarity_light: bool) -> np.ndarray:
    grey = np.full((90, 70), 250.0 if polarity_light else 5.0)
    grey[20:70, 30:38] = 10.0 if polarity_light else 245.0  # a thick vertical stroke: a "1"
    return grey


def test_preparation_matches_mnist_conventions():
    light, dark = mnist_style(_canvas(True)), mnist_style(_canvas(False))
    assert np.array_equal(light, dark)  # dark-on-light and light-on-dark give the same digit
    ys, xs = np.nonzero(light > 64)
    assert ys.max() - ys.min() + 1 <= 20 and xs.max() - xs.min() + 1 <= 20  # in a 20×20 box
    mass = light.astype(float)
    rows, cols = np.indices(mass.shape)
    assert abs((rows * mass).sum() / mass.sum() - 13.5) <= 1 and abs((cols * mass).sum() / mass.sum() - 13.5) <= 1
    assert light[0].max() == 0 and light.max() == 255  # background black, ink bright


def test_blank_image_gives_a_blank_digit(tmp_path):
    Image.new("L", (50, 50), 255).save(tmp_path / "blank.png")
    assert prepare_digit(tmp_path / "blank.png").max() == 0


@pytest.mark.parametrize("content, fragment", [(b"", "is empty"), (b"hello, not an image", "not a readable image"),
                                               (b"\x89PNG\r\n\x1a\n\x00\x00", "not a readable image")])
def test_bad_digit_files(tmp_path, content, fragment):
    (tmp_path / "x.png").write_bytes(content)
    with pytest.raises(DataError, match=fragment):
        prepare_digit(tmp_path / "x.png")


def test_predict_refuses_a_non_image_with_one_line(lenet_run, tmp_path, capsys):
    good = render_digits(tmp_path / "d", per_digit=1)[0][0]
    (tmp_path / "notes.jpg").write_text("shopping list")
    assert run_cli("predict", lenet_run, good, tmp_path / "notes.jpg") == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing printed for the good file either: inputs checked first
    assert "notes.jpg is not a readable image" in captured.err and len(captured.err.strip().splitlines()) == 1
