"""The bad-input corpus (tests/bad_inputs/corpus.py) through the real CLI.

Every bad file, folder or config value must end in one line that names it and says what to do,
exit status 2, no traceback (`--debug` shows one) and nothing half-made: no run directory, no
predictions file. Where a lab can go on (an odd but readable image, a few broken photos among
many) it goes on, and the report lists what it skipped. The tally is printed at the end of the
pytest run ("measured by the tests").
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
import zipfile
from collections import Counter
from pathlib import Path

import pytest

import conftest
from bad_inputs import corpus
from mllabs import data
from mllabs.cli import main
from mllabs.data import registry
from mllabs.data.idx import read_idx_pair
from mllabs.data.registry import Archive
from mllabs.errors import DataError

TALLY: Counter = Counter()  # kinds of bad input tried, by outcome


@pytest.fixture(scope="module", autouse=True)
def tally():
    yield
    tried = TALLY["error"] + TALLY["goes on"]
    conftest._NOTES.append(
        f"bad inputs: {tried} tried, {TALLY['error']} end in the one-line error (exit 2), "
        f"{TALLY['goes on']} go on (readable after all, or skipped and listed in the report)")


def cli(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()  # drop what a fixture's training run printed
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def clean_error(code: int, err: str, *fragments: str) -> str:
    """Exit 2, one line on stderr that holds every fragment, no traceback."""
    line = err.strip()
    assert code == 2, f"exit {code}: {err}"
    assert len(line.splitlines()) == 1 and line.startswith("mllabs: error: "), err
    assert "Traceback" not in err and "internal error" not in err
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    TALLY["error"] += 1
    return line


def goes_on() -> None:
    TALLY["goes on"] += 1


# ---------------------------------------------------------------------------- trained runs

QUICK_RUNS = {  # the quick profiles, made smaller still: predict needs a model, not a good one
    "auto-mpg": ["--set", "seeds=1", "--set", "epochs=3"],
    "car-clustering": [],
    "boston-housing": ["--set", "epochs=3"],
    "bike-sharing": ["--set", "epochs=1", "--set", "mlp_epochs=1", "--set", "gbm_iterations=5"],
    "mnist-lenet": ["--set", "train_size=1000", "--set", "val_size=500"],
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """trained(lab) -> the run directory of one quick run of the lab, made on first use."""
    made = {}

    def get(lab: str) -> Path:
        if lab not in made:
            out = tmp_path_factory.mktemp(lab)
            assert main(["run", lab, "--profile", "quick", "--quiet", "--out", str(out),
                         *QUICK_RUNS[lab]]) == 0
            (made[lab],) = (out / lab).iterdir()
        return made[lab]

    return get


# ---------------------------------------------------------------------------- predict on CSVs

def csv_spec(lab: str, data_root: Path) -> tuple[list[str], list, str, str]:
    """(columns, one good row, a required column to drop, a numeric column) for lab's predict."""
    if lab == "auto-mpg":
        return (["cylinders", "displacement", "horsepower", "weight", "acceleration", "model_year",
                 "origin", "car_name"], [8, 307, 130, 3504, 12, 70, 1, "chevelle"], "weight", "horsepower")
    if lab == "boston-housing":
        from mllabs.labs.boston_housing import FEATURES

        return (FEATURES, [0.04741, 0, 11.93, 0, 0.573, 6.03, 80.8, 2.505, 1, 273, 21, 396.9, 7.88],
                "RM", "TAX")
    if lab == "car-clustering":
        return (*corpus.first_row(data_root / "car-price" / "CarPrice_Assignment.csv"), "horsepower",
                "enginesize")
    return (*corpus.first_row(data_root / "bike-sharing" / "hour.csv"), "temp", "hum")


CSV_LABS = ("auto-mpg", "boston-housing", "car-clustering", "bike-sharing")
CSV_KINDS = list(corpus.csv_kinds(["a", "b"], [1, 2], "a", "b"))


@pytest.mark.parametrize("kind", CSV_KINDS)
@pytest.mark.parametrize("lab", CSV_LABS)
def test_predict_on_a_bad_csv(lab, kind, trained, data_root, tmp_path, capsys):
    columns, row, drop, numeric = csv_spec(lab, data_root)
    # bike-sharing's columns are hour.csv's, matched as written: `HUM` is just another column
    content, fragment = corpus.csv_kinds(columns, row, drop, numeric, lab != "bike-sharing")[kind]
    path = tmp_path / "input.csv"
    path.write_bytes(content)
    out_csv = tmp_path / "predictions.csv"
    code, out, err = cli(capsys, "predict", trained(lab), path, "--json", "--output", out_csv)
    if fragment is None:
        assert code == 0, err
        (result,) = json.loads(out)
        assert math.isfinite(float(result["prediction"]))
        assert out_csv.is_file()
        goes_on()
    else:
        clean_error(code, err, str(path), fragment)
        assert out == "" and not out_csv.exists()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["input.csv"] + (["predictions.csv"] if fragment is None else [])


@pytest.mark.parametrize("make, fragment", [
    (lambda p: p / "no-such.csv", "does not exist or is not a file"),
    (lambda p: p, "does not exist or is not a file"),  # a folder
])
def test_predict_on_something_that_is_not_a_file(make, fragment, trained, tmp_path, capsys):
    code, out, err = cli(capsys, "predict", trained("auto-mpg"), make(tmp_path))
    clean_error(code, err, fragment)


def test_one_bad_file_among_good_ones_prints_nothing(trained, data_root, tmp_path, capsys):
    columns, row, drop, numeric = csv_spec("auto-mpg", data_root)
    kinds = corpus.csv_kinds(columns, row, drop, numeric)
    (tmp_path / "good.csv").write_bytes(kinds["BOM"][0])
    (tmp_path / "bad.csv").write_bytes(kinds["text in a numeric column"][0])
    code, out, err = cli(capsys, "predict", trained("auto-mpg"), tmp_path / "good.csv",
                         tmp_path / "bad.csv")
    clean_error(code, err, "bad.csv: row 3, column 'horsepower'")
    assert out == ""


def test_debug_shows_the_traceback(trained, tmp_path, capsys):
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(DataError, match="empty.csv is empty"):
        main(["--debug", "predict", str(trained("auto-mpg")), str(tmp_path / "empty.csv")])
    assert "mllabs: error" not in capsys.readouterr().err


# ---------------------------------------------------------------------------- predict on images

@pytest.fixture(scope="module")
def odd_images(tmp_path_factory):
    return corpus.image_kinds(tmp_path_factory.mktemp("images"))


IMAGE_KINDS = ["truncated JPEG", "zero-byte file", "text file named .jpg", "PNG header only",
               "PNG with alpha", "CMYK JPEG", "1x1 image", "greyscale 16-bit PNG",
               "palette GIF with transparency", "PNG named .jpg", "10000x10000 JPEG", "10000x10000 PNG"]


@pytest.mark.parametrize("kind", IMAGE_KINDS)
@pytest.mark.parametrize("lab", ["mnist-lenet", "eye-screening"])
def test_predict_on_an_odd_image(lab, kind, odd_images, trained, eye_run, tmp_path, capsys):
    run_dir = eye_run["run_dir"] if lab == "eye-screening" else trained(lab)
    path, fragment = odd_images[kind]
    out_csv = tmp_path / "predictions.csv"
    code, out, err = cli(capsys, "predict", run_dir, path, "--json", "--output", out_csv)
    if fragment is None:
        assert code == 0, err
        (result,) = json.loads(out)
        probs = [t["probability"] for t in result["top"]]
        assert all(0 <= p <= 1 for p in probs) and sum(probs) <= 1.001
        goes_on()
    else:
        clean_error(code, err, str(path), fragment, "pass a")
        assert out == "" and not out_csv.exists()


@pytest.mark.parametrize("values, fragment", [
    ("0.04741,0,11.93,0,0.573,6.03,80.8,2.505,1,273,21,396.9", "needs 13 comma-separated numbers, got 12"),
    ("0.04741,0,11.93,0,0.573,nan,80.8,2.505,1,273,21,396.9,7.88", "value 6 (RM) is 'nan'"),
    ("0.04741,0,11.93,0,0.573,six,80.8,2.505,1,273,21,396.9,7.88", "value 6 (RM) is 'six'"),
    ("", "needs 13 comma-separated numbers, got 0"),
])
def test_predict_on_bad_typed_values(values, fragment, trained, capsys):
    code, out, err = cli(capsys, "predict", trained("boston-housing"), "--values", values)
    clean_error(code, err, fragment, "in this order: CRIM")


def test_a_csv_given_to_an_image_lab(trained, tmp_path, capsys):
    (tmp_path / "cars.csv").write_text("weight,horsepower\n3504,130\n")
    code, out, err = cli(capsys, "predict", trained("mnist-lenet"), tmp_path / "cars.csv")
    clean_error(code, err, "cars.csv is not a readable image")


# ---------------------------------------------------------------------------- image folders

@pytest.fixture(scope="module")
def eye_run(tmp_path_factory, odd_images):
    """eye-screening on 2 × 10 made-up photos plus every odd file (some in each class): the
    readable ones are used, the broken ones skipped, the report lists them."""
    root = tmp_path_factory.mktemp("eyes")
    for k, (cls, colour) in enumerate((("normal", (200, 60, 40)), ("pathologic", (230, 200, 150)))):
        (root / cls).mkdir()
        for i in range(10):
            corpus.picture((48 + 8 * i, 64), colour, seed=10 * k + i).save(root / cls / f"{cls}{i}.jpg")
    kinds = corpus.image_kinds(root / "pathologic", huge=False)
    for name in ("10000x10000 JPEG", "10000x10000 PNG"):  # made once for the module: linked
        path, why = odd_images[name]
        os.symlink(path, root / "pathologic" / path.name)
        kinds[name] = (root / "pathologic" / path.name, why)
    for name in ("PNG with alpha", "CMYK JPEG", "zero-byte file"):  # some in the other class
        path, why = kinds[name]
        kinds[name] = (path.rename(root / "normal" / path.name), why)
    out = tmp_path_factory.mktemp("eye-runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLLABS_CACHE", str(tmp_path_factory.mktemp("cache")))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            code = main(["run", "eye-screening", "--profile", "quick", "--quiet", "--json",
                         "--data-dir", str(root), "--out", str(out), "--set", "model=lenet",
                         "--set", "epochs=1"])
    assert code == 0
    (run_dir,) = (out / "eye-screening").iterdir()
    return {"run_dir": run_dir, "kinds": kinds, "warnings": [str(w.message) for w in caught]}


def test_a_folder_with_broken_photos_goes_on_and_reports_them(eye_run):
    run_dir, kinds = eye_run["run_dir"], eye_run["kinds"]
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "completed"
    md = (run_dir / "report.md").read_text()
    broken = {k: p for k, (p, why) in kinds.items() if why}
    readable = {k: p for k, (p, why) in kinds.items() if not why}
    assert f"{len(broken)} unreadable file(s) were skipped" in md
    assert f"{20 + len(readable)} photos in 2 classes" in md
    for path in broken.values():
        assert path.name in md
        goes_on()
    for path in readable.values():
        assert path.name not in md  # decoded and used, not skipped
        goes_on()
    (warning,) = [w for w in eye_run["warnings"] if "skipped" in w]
    assert f"skipped {len(broken)} unreadable image(s)" in warning


def _classes(root: Path, counts: dict[str, int]) -> Path:
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True)
        for i in range(n):
            corpus.picture((40, 40), seed=i).save(root / cls / f"{i}.jpg")
    return root


def _all_broken(root: Path) -> Path:
    _classes(root, {"normal": 6, "pathologic": 0})
    for i in range(3):
        (root / "pathologic" / f"{i}.jpg").write_bytes(b"")
    return root


@pytest.mark.parametrize("make, fragment", [
    (lambda p: _classes(p, {"normal": 6}), "one class folder only (normal/)"),
    (lambda p: _classes(p, {"normal": 6, "pathologic": 0}), "pathologic holds no images"),
    (lambda p: _classes(p, {"a": 3, "b": 3, "c": 3}), "has 3 sub-folders"),
    (_all_broken, "class pathologic has 0 readable photo(s)"),
    (lambda p: p / "missing", "no fundus photos found"),
])
def test_a_bad_photo_folder_is_one_line(make, fragment, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MLLABS_CACHE", str(tmp_path / "cache"))
    root = make(tmp_path / "data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code, out, err = cli(capsys, "run", "eye-screening", "--profile", "quick", "--quiet",
                             "--data-dir", root, "--out", tmp_path / "runs")
    clean_error(code, err, fragment)
    assert not (tmp_path / "runs").exists()


def test_image_folder_reader_with_nothing_readable(tmp_path):
    from mllabs.data.images import read_image_folder

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        (tmp_path / cls / "x.jpg").write_bytes(b"not a photo")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match=r"all 2 file\(s\) failed to decode \(first: x.jpg\); add JPEG"):
            read_image_folder(tmp_path, 16)
    TALLY["error"] += 1


# ---------------------------------------------------------------------------- datasets on disk

@pytest.mark.parametrize("kind, replace, fragment", [
    ("wrong magic number", {"train-images-idx3-ubyte.gz": b"PK\x03\x04" + b"\0" * 60}, "fails its checksum"),
    ("truncated body", "cut", "fails its checksum"),
    ("label/image count mismatch", "swap", "fails its checksum"),
    ("empty file", {"t10k-labels-idx1-ubyte.gz": b""}, "fails its checksum"),
    ("missing file", {"t10k-images-idx3-ubyte.gz": None}, "t10k-images-idx3-ubyte.gz not found"),
])
def test_a_damaged_mnist_folder_is_refused_before_reading(kind, replace, fragment, data_root, tmp_path,
                                                          capsys, monkeypatch):
    monkeypatch.setenv("MLLABS_CACHE", str(tmp_path / "cache"))
    good = data_root / "mnist"
    if replace == "cut":  # a download that stopped half-way
        raw = (good / "train-labels-idx1-ubyte.gz").read_bytes()
        replace = {"train-labels-idx1-ubyte.gz": raw[: len(raw) // 2]}
    elif replace == "swap":  # the test labels where the training labels belong
        replace = {"train-labels-idx1-ubyte.gz": (good / "t10k-labels-idx1-ubyte.gz").read_bytes()}
    bad = corpus.mnist_folder(tmp_path / "bad", good, replace)
    code, out, err = cli(capsys, "run", "mnist-lenet", "--profile", "quick", "--quiet",
                         "--data-dir", bad, "--out", tmp_path / "runs")
    line = clean_error(code, err, fragment)
    assert "restore it" in line or "--data-dir" in line
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("kind", list(corpus.idx_kinds()))
def test_idx_reader_refuses(kind, tmp_path):
    images, labels, fragment = corpus.idx_kinds()[kind]
    (tmp_path / "images.idx").write_bytes(images)
    (tmp_path / "labels.idx").write_bytes(labels)
    with pytest.raises(DataError) as err:
        read_idx_pair(tmp_path / "images.idx", tmp_path / "labels.idx")
    message = str(err.value)
    assert fragment in message and "\n" not in message and "images.idx" in message
    TALLY["error"] += 1


@pytest.mark.parametrize("lab, name, damage", [
    ("auto-mpg", "auto-mpg/auto-mpg.data", lambda raw: raw[: len(raw) // 3]),
    ("car-clustering", "car-price/CarPrice_Assignment.csv", lambda raw: raw.replace(b",111,", b",fast,", 1)),
    ("bike-sharing", "bike-sharing/hour.csv", lambda raw: raw.splitlines(keepends=True)[0]),
    ("boston-housing", "boston-housing/housing.data", lambda raw: raw.replace(b"\n", b"\r\n")),
])
def test_a_damaged_table_in_the_data_dir_is_refused(lab, name, damage, data_root, tmp_path, capsys,
                                                    monkeypatch):
    monkeypatch.setenv("MLLABS_CACHE", str(tmp_path / "cache"))
    folder = data_root / name.split("/")[0]
    bad = tmp_path / "bad" / folder.name
    bad.mkdir(parents=True)
    for f in folder.iterdir():
        os.symlink(f, bad / f.name)
    (bad / Path(name).name).unlink()
    (bad / Path(name).name).write_bytes(damage((data_root / name).read_bytes()))
    code, out, err = cli(capsys, "run", lab, "--profile", "quick", "--quiet", "--data-dir",
                         tmp_path / "bad", "--out", tmp_path / "runs")
    clean_error(code, err, str(bad / Path(name).name), "fails its checksum", "restore it")
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------- config values

@pytest.mark.parametrize("args, fragment", [
    (("auto-mpg", "--set", "epochs=-1"), "epochs=-1 is below its minimum 1"),
    (("auto-mpg", "--set", "epochs=0"), "epochs=0 is below its minimum 1"),
    (("auto-mpg", "--set", "epochs=ten"), "bad value for epochs: 'ten'"),
    (("auto-mpg", "--set", "epochs=1e400"), "expected a whole number"),
    (("auto-mpg", "--set", "epochs=1e30"), "too large"),
    (("auto-mpg", "--set", "lr=0"), "lr=0.0 must be greater than 0"),
    (("auto-mpg", "--set", "lr=-0.1"), "must be greater than 0"),
    (("auto-mpg", "--set", "lr=nan"), "NaN is not a value"),
    (("auto-mpg", "--set", "lr=inf"), "must be finite"),
    (("auto-mpg", "--set", "batch_size=0"), "batch_size=0 is below its minimum 1"),
    (("auto-mpg", "--set", "optimizer=lbfgs"), "optimizer='lbfgs' is not one of"),
    (("auto-mpg", "--set", "hidden=64,0"), "hidden=0 is below its minimum 1"),
    (("auto-mpg", "--set", "dropout=1.5"), "dropout=1.5 must be less than 1.0"),
    (("auto-mpg", "--set", "test_fraction=1"), "test_fraction=1.0 must be less than 1.0"),
    (("auto-mpg", "--set", "epoch=3"), "unknown config key 'epoch'"),
    (("auto-mpg", "--set", "epochs"), "--set expects key=value"),
    (("auto-mpg", "--seed", "-1"), "seed=-1 is below its minimum 0"),
    (("auto-mpg", "--seed", str(2**40)), "is above its maximum"),
    (("flowers", "--set", "model=vgg16"), "model='vgg16' is not one of"),
    (("flowers", "--set", "models=cnn,vgg"), "models='vgg' is not one of"),
    (("flowers", "--set", "image_size=8"), "image_size=8 is below its minimum 32"),
    (("flowers", "--set", "val_fraction=0.5", "--set", "test_fraction=0.5"), "keep their sum below 0.9"),
    (("flowers", "--set", "label_smoothing=2"), "must be less than 1.0"),
    (("eye-screening", "--set", "model=alexnet"), "not one of"),
    (("bike-sharing", "--set", "mlp_hidden=-8"), "below its minimum 1"),
    (("mnist-optimizers", "--set", "lrs=0.1,0"), "lrs=0.0 must be greater than 0"),
    (("mnist-best", "--set", "dropout=1"), "must be less than 1.0"),
    (("regularization", "--set", "weight_decays=-1"), "below its minimum 0.0"),
    (("auto-mpg", "--set", "hidden="), "hidden='' is empty; hidden needs at least 1, e.g. --set hidden=128,128"),
    (("bike-sharing", "--set", "mlp_hidden=,"), "mlp_hidden=',' is empty"),
    (("mnist-optimizers", "--set", "optimizers="), "optimizers='' is empty"),
    (("mnist-optimizers", "--set", "lrs="), "lrs='' is empty"),
    (("mnist-best", "--set", "widths="), "widths='' is empty"),
    (("activations", "--set", "activations="), "activations='' is empty"),
    (("eye-screening", "--set", "models="), "models='' is empty"),
    (("car-clustering", "--set", "k=1"), "k=1 is below its minimum 2"),
    (("car-clustering", "--set", "k=500"), "k must stay below the number of cars (205)"),
    (("mnist-lenet", "--set", "val_size=60000"), "holds out all 60,000 training digits"),
    (("regularization", "--set", "train_size=59800"), "train_size=59800 is more than the 59,500"),
    (("no-such-lab",), "unknown lab 'no-such-lab'"),
])
def test_a_bad_config_value_is_one_line(args, fragment, tmp_path, capsys):
    code, out, err = cli(capsys, "run", *args, "--profile", "quick", "--quiet", "--out", tmp_path / "runs")
    clean_error(code, err, fragment)
    assert not (tmp_path / "runs").exists()


def test_an_unknown_profile_is_one_line_and_exit_2(capsys, tmp_path):
    # a lab may add profiles of its own, so the name is checked against the lab's, not argparse's
    assert main(["run", "auto-mpg", "--profile", "huge", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown profile 'huge'; choose one of: quick, default, full" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "auto-mpg").exists()
    TALLY["error"] += 1


def test_a_batch_larger_than_the_data_goes_on_as_one_batch(tmp_path, capsys):
    code, out, err = cli(capsys, "run", "auto-mpg", "--profile", "quick", "--quiet", "--json",
                         "--out", tmp_path, "--set", "batch_size=100000", "--set", "seeds=1",
                         "--set", "epochs=2", "--set", "refit=false")
    assert code == 0, err
    assert json.loads(out)["status"] == "completed"
    goes_on()


# ---------------------------------------------------------------------------- downloads

def _file_urls(monkeypatch, name: str, sources: dict[str, list[Path]]) -> None:
    """Point dataset `name`'s files at local file:// URLs (no network)."""
    ds = registry.DATASETS[name]
    files = tuple(dataclasses.replace(f, urls=tuple(p.as_uri() for p in sources[f.path]))
                  for f in ds.files)
    monkeypatch.setitem(registry.DATASETS, name, dataclasses.replace(ds, files=files))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MLLABS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLLABS_OFFLINE")
    monkeypatch.delenv("MLLABS_DATA", raising=False)
    return tmp_path / "cache"


def test_a_data_folder_without_the_dataset_is_named_when_the_download_fails(tmp_path, cache, monkeypatch):
    _file_urls(monkeypatch, "auto-mpg", {f: [tmp_path / "nowhere" / f] for f in ("auto-mpg.data", "auto-mpg.names")})
    (tmp_path / "mine").mkdir()
    with pytest.raises(DataError) as err:
        data.dataset_dir("auto-mpg", tmp_path / "mine")
    message = str(err.value)
    assert message.startswith(f"--data-dir: {tmp_path / 'mine' / 'auto-mpg'}") and "is not there" in message
    assert "download into the cache failed too" in message and "\n" not in message
    monkeypatch.setenv("MLLABS_DATA", str(tmp_path / "typo"))
    with pytest.raises(DataError, match=r"^MLLABS_DATA: .*typo does not exist"):
        data.dataset_dir("auto-mpg")
    TALLY["error"] += 2


def test_a_download_that_fails_its_sha256_is_never_cached(tmp_path, cache, data_root, monkeypatch):
    wrong = tmp_path / "wrong.data"
    wrong.write_bytes(b"18.0 8 307.0 130.0 3504. 12.0 70 1\t\"chevrolet\"\n")
    _file_urls(monkeypatch, "auto-mpg", {"auto-mpg.data": [wrong], "auto-mpg.names": [wrong]})
    with pytest.raises(DataError) as err:
        data.fetch("auto-mpg")
    message = str(err.value)
    assert "could not download auto-mpg.data" in message and "is not the expected" in message
    assert "set MLLABS_DATA" in message and "\n" not in message
    TALLY["error"] += 1
    assert [p for p in cache.rglob("*") if p.is_file()] == []
    # a second source with the right bytes is used, and only it lands in the cache
    good = data_root / "auto-mpg"
    _file_urls(monkeypatch, "auto-mpg", {f: [wrong, good / f] for f in ("auto-mpg.data", "auto-mpg.names")})
    folder = data.fetch("auto-mpg")
    assert sorted(p.name for p in folder.rglob("*")) == ["auto-mpg.data", "auto-mpg.names"]
    assert data.check_folder(folder, data.get("auto-mpg")) == []


def _bike_archive(monkeypatch, tmp_path, digest: str | None, hour: bytes) -> None:
    archive = tmp_path / "bike.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("hour.csv", hour)
    ds = registry.DATASETS["bike-sharing"]
    monkeypatch.setitem(registry.DATASETS, "bike-sharing", dataclasses.replace(
        ds, archive=Archive(archive.as_uri(), digest, None, "zip")))


@pytest.mark.parametrize("archive_sha", ["wrong", None])
def test_an_archive_that_fails_is_never_cached(archive_sha, tmp_path, cache, monkeypatch):
    # a wrong archive sha256, or (no archive sha256) a member whose own sha256 is wrong
    _bike_archive(monkeypatch, tmp_path, "0" * 64 if archive_sha else None, b"instant,cnt\n1,2\n")
    with pytest.raises(DataError, match="sha256" if archive_sha else "fails its checksum") as err:
        data.fetch("bike-sharing")
    assert "\n" not in str(err.value)
    assert [p for p in cache.rglob("*") if p.is_file()] == []
    TALLY["error"] += 1



# ---------------------------------------------------------------------------- runs, sweeps, compare

def fake_run(root: Path, lab: str, name: str, config: dict, metrics: dict) -> Path:
    path = root / lab / name
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"lab": lab, "profile": "quick", "seed": 0, **config}))
    (path / "metrics.json").write_text(json.dumps({"lab": lab, "status": "completed", "seconds": 1.0,
                                                   "metrics": metrics}))
    return path


@pytest.fixture
def two_labs(tmp_path):
    root = tmp_path / "runs"
    fake_run(root, "auto-mpg", "20261101-100000-aaaaaa", {"lr": 0.01}, {"test_mae": 1.8, "test_mse": 5.0})
    fake_run(root, "auto-mpg", "20261101-110000-bbbbbb", {"lr": 0.1}, {"test_mae": 2.1, "test_mse": 6.0})
    fake_run(root, "boston-housing", "20261101-120000-cccccc", {"epochs": 3}, {"numpy.test_mse": 17.0})
    return root


def test_runs_list_sort_by_a_key_no_run_has(two_labs, capsys):
    code, out, err = cli(capsys, "runs", "list", "--out", two_labs, "--sort", "nokey:desc")
    line = clean_error(code, err, "--sort nokey: no listed run has a number for nokey; sort by one of:")
    assert "test_mae" in line and "numpy.test_mse" in line and "lr" in line and "seconds" in line
    assert cli(capsys, "runs", "list", "--out", two_labs, "--sort", "test_mae:desc")[0] == 0


def test_runs_list_where_there_are_no_runs_makes_no_database(tmp_path, capsys):
    for folder in (tmp_path / "empty", tmp_path / "missing"):
        if folder.name == "empty":
            folder.mkdir()
        code, out, err = cli(capsys, "runs", "list", "--out", folder)
        assert code == 0 and out.startswith(f"no runs in {folder} (no mllabs.db") and err == ""
        goes_on()
        code, out, err = cli(capsys, "runs", "show", "2026", "--out", folder)
        clean_error(code, err, f"no runs in {folder}", "pass the --out your runs went to")
        # nothing made: the empty folder stays empty, the missing one missing
        assert (sorted(folder.iterdir()) == []) if folder.name == "empty" else not folder.exists()


def test_compare_refuses_runs_of_two_labs(two_labs, capsys):
    runs = sorted(two_labs.glob("*/*"))
    code, out, err = cli(capsys, "compare", *runs, "--out", two_labs)
    clean_error(code, err, "compare takes runs of one lab, and these are runs of auto-mpg (2), "
                "boston-housing (1); compare each lab's runs separately")
    assert not (two_labs / "comparisons").exists()


def test_compare_picks_the_lower_loss_and_the_higher_accuracy(tmp_path, capsys):
    """The best group follows the metric's direction: the argmin of a loss, the argmax of an
    accuracy, from the same two runs."""
    root = tmp_path / "runs"
    a = fake_run(root, "mnist-lenet", "20261101-100000-aaaaaa", {"lr": 0.01},
                 {"test_loss": 0.30, "test_accuracy": 0.95})
    b = fake_run(root, "mnist-lenet", "20261101-110000-bbbbbb", {"lr": 0.1},
                 {"test_loss": 0.20, "test_accuracy": 0.91})
    for metric, best in (("test_loss", "lr=0.1"), ("test_accuracy", "lr=0.01")):
        code, out, err = cli(capsys, "compare", a, b, "--out", root, "--metric", metric, "--json")
        assert code == 0, err
        assert json.loads(out)["best_cell"] == best, metric


@pytest.mark.parametrize("grid, fragment", [
    (["optimizer=sgd,adam"], "--grid optimizer: mnist-optimizers never reads optimizer"),
    (["lr=0.1,0.01"], "--grid lr: mnist-optimizers never reads lr"),
])
def test_a_sweep_over_a_key_the_lab_never_reads(grid, fragment, tmp_path, capsys):
    args = [a for g in grid for a in ("--grid", g)]
    code, out, err = cli(capsys, "sweep", "mnist-optimizers", *args, "--profile", "quick",
                         "--out", tmp_path / "runs")
    clean_error(code, err, fragment, "keys it reads: ")
    assert not (tmp_path / "runs").exists()


def test_a_sweep_metric_no_run_of_the_lab_reports_is_refused_before_running(two_labs, capsys):
    code, out, err = cli(capsys, "sweep", "auto-mpg", "--grid", "epochs=2,3", "--profile", "quick",
                         "--metric", "test_maee", "--out", two_labs)
    clean_error(code, err, "--metric test_maee: no run of auto-mpg in", "its runs report: test_mae, test_mse")
    assert len(list((two_labs / "auto-mpg").iterdir())) == 2 and not (two_labs / "sweeps").exists()


def test_a_sweep_metric_is_checked_on_the_first_cell_when_no_run_came_before(tmp_path, capsys,
                                                                          monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    root = tmp_path / "runs"
    code, out, err = cli(capsys, "sweep", "boston-housing", "--grid", "epochs=2,3,4", "--profile",
                         "quick", "--jobs", "2", "--metric", "nosuchmetric", "--out", root)
    line = clean_error(code, err.splitlines()[-1] if err else err, "--metric nosuchmetric: "
                       "boston-housing's runs do not report it, so the sweep stopped after its first "
                       "cell; they report: ")
    assert "numpy.test_mse" in line
    assert len(list((root / "boston-housing").iterdir())) == 1  # the other cells never started
