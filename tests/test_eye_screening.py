"""eye-screening on synthetic fundus photos (the real ones are not redistributable): the quick
profile end to end through the CLI, the PALM file-name layout, predict, and the one-line errors
for a missing or malformed folder."""

from __future__ import annotations

import json
import shlex
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli


def fundus(rng: np.random.Generator, sick: bool, size: int | None = None) -> Image.Image:
    """A reddish disc on black with a bright optic disc; a sick eye has a large pale patch
    beside the optic disc (the atrophy that marks pathologic myopia)."""
    size = size or int(rng.integers(72, 110))
    yy, xx = np.mgrid[:size, :size] / size
    r = np.hypot(xx - 0.5, yy - 0.5)
    img = np.zeros((size, size, 3))
    eye = r < 0.45
    img[eye] = [0.75, 0.32, 0.15]
    img *= (1 - 0.6 * r)[..., None] * rng.uniform(0.8, 1.15)
    disc_x, disc_y = rng.uniform(0.3, 0.4), rng.uniform(0.45, 0.55)
    if sick:
        patch = np.hypot(xx - disc_x - 0.08, yy - disc_y) < rng.uniform(0.14, 0.2)
        img[patch & eye] = [0.95, 0.85, 0.7]
    img[np.hypot(xx - disc_x, yy - disc_y) < 0.06] = [1.0, 0.95, 0.8]
    img += rng.normal(0, 0.03, img.shape)
    return Image.fromarray((img.clip(0, 1) * 255).astype(np.uint8))


def two_class_folder(root: Path, n: int = 20, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for cls, sick in (("normal", False), ("pathologic", True)):
        (root / cls).mkdir(parents=True)
        for k in range(n):
            fundus(rng, sick).save(root / cls / f"{cls}{k:02d}.{'png' if k % 3 == 0 else 'jpg'}")
    (root / "normal" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    return root


def palm_folder(root: Path, seed: int = 1) -> Path:
    """The PALM training archive as it unpacks: H/N/P-named JPEGs one folder down."""
    rng = np.random.default_rng(seed)
    folder = root / "PALM-Training400" / "PALM-Training400"
    folder.mkdir(parents=True)
    for letter, count in (("H", 4), ("N", 8), ("P", 12)):
        for k in range(1, count + 1):
            fundus(rng, letter == "P").save(folder / f"{letter}{k:04d}.jpg")
    (root / "PALM-Validation400").mkdir()  # unlabelled (its labels are in a spreadsheet)
    fundus(rng, False).save(root / "PALM-Validation400" / "V0001.jpg")
    return root


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MLLABS_CACHE", str(tmp_path / "cache"))


QUICK = ["--profile", "quick", "--quiet", "--set", "epochs=1"]


def test_quick_run_compares_lenet_and_resnet_and_predicts(tmp_path, capsys):
    data = two_class_folder(tmp_path / "eyes")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image.*broken\.jpg"):
        assert run_cli("run", "eye-screening", *QUICK, "--data-dir", data, "--out", tmp_path / "runs",
                       "--json") == 0
    result = json.loads(capsys.readouterr().out)
    m, run_dir = result["metrics"], Path(result["run_dir"])
    assert result["status"] == "completed" and m["resnet.model"] == "resnet18"
    assert m["positive_class"] == "pathologic"
    for name in ("lenet", "resnet18"):
        for key in ("test_accuracy", "sensitivity", "specificity", "roc_auc"):
            assert 0 <= m[f"{name}.{key}"] <= 1, key
        assert m[f"{name}.params"] > 0 and m[f"{name}.seconds_per_epoch"] > 0
    assert m["resnet.test_accuracy"] == m["resnet18.test_accuracy"]
    recompute_screening(run_dir, data, m)
    md = (run_dir / "report.md").read_text()
    assert "flags **pathologic** (the folder named pathologic)" in md and "broken.jpg" in md
    assert "The network, layer by layer" in md  # from networks(): lenet at 32 px and resnet18
    assert {"roc.png", "curves.png", "grad_cam.png", "lenet_confusion_matrix.png"} <= \
        {p.name for p in (run_dir / "figures").iterdir()}

    # the printed predict command works as printed, on a photo copied from the user's folder
    command = shlex.split(result["predict_command"])
    assert command[:3] == ["mllabs", "predict", str(run_dir)] and (run_dir / "report.md").read_text().count(
        result["predict_command"]) == 1
    example = Path(command[3])
    assert example.parent == run_dir and any(example.read_bytes() == p.read_bytes()
                                             for p in data.glob("*/*") if p.name != "broken.jpg")
    assert run_cli(*command[1:], "--json") == 0
    (answer,) = json.loads(capsys.readouterr().out)
    assert answer["prediction"] in ("normal", "pathologic")

    fundus(np.random.default_rng(9), True, size=300).save(tmp_path / "mine.png")
    assert run_cli("predict", run_dir, tmp_path / "mine.png", "--json") == 0
    (answer,) = json.loads(capsys.readouterr().out)
    assert answer["prediction"] in ("normal", "pathologic")
    assert {t["label"] for t in answer["top"]} == {"normal", "pathologic"}
    assert abs(sum(t["probability"] for t in answer["top"]) - 1) < 1e-3
    assert run_cli("predict", run_dir, tmp_path / "mine.png") == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{tmp_path / 'mine.png'}\t{answer['prediction']}") and len(line.splitlines()) == 1


def recompute_screening(run_dir: Path, data: Path, m: dict) -> None:
    """Each network's accuracy, sensitivity, specificity and ROC AUC recomputed here with
    scikit-learn from its own saved weights (checkpoints/<name>/best.pt) on the run's test photos,
    the pathologic folder as the positive class, normalisation written out (ImageNet's)."""
    import torch
    from sklearn.metrics import accuracy_score, recall_score, roc_auc_score

    from mllabs.checkpoints import load_checkpoint
    from mllabs.config import build_config
    from mllabs.labs import eye_screening as lab

    cfg = build_config(lab.Config, lab.PROFILES, "quick", ["epochs=1"])
    prepared = lab.prepare(cfg, data)
    photos, test = prepared.photos, prepared.photos.split["test"]
    assert photos.classes[prepared.positive] == "pathologic"
    x = torch.from_numpy(photos.images[test]).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    sick = (photos.labels[test] == prepared.positive).astype(int)
    assert 0 < sick.sum() < len(sick)
    bf16 = "forward passes in bfloat16" in (run_dir / "report.md").read_text()
    tolerance = 1.01 / len(test) if bf16 else 1e-9  # bfloat16 may round a borderline photo apart
    for name in ("lenet", "resnet18"):
        net = lab.network(name, cfg)
        net.load_state_dict(load_checkpoint(run_dir / "checkpoints" / name / "best.pt")["model"])
        net.to(memory_format=torch.channels_last)  # as trained: the same kernels, the same rounding
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            logits = net.eval()(x.contiguous(memory_format=torch.channels_last))
        probs = torch.softmax(logits.float(), 1)[:, prepared.positive].numpy()
        flagged = (probs > 0.5).astype(int)
        assert abs(m[f"{name}.test_accuracy"] - accuracy_score(sick, flagged)) <= tolerance, name
        assert abs(m[f"{name}.sensitivity"] - recall_score(sick, flagged)) <= 2 * tolerance, name
        assert abs(m[f"{name}.specificity"] - recall_score(1 - sick, 1 - flagged)) <= 2 * tolerance, name
        assert m[f"{name}.roc_auc"] == pytest.approx(roc_auc_score(sick, probs), abs=0.02 if bf16 else 1e-6), name


def test_palm_layout_is_labelled_by_file_name(tmp_path):
    from mllabs.config import build_config
    from mllabs.labs import eye_screening as lab

    root = palm_folder(tmp_path / "palm")
    cfg = build_config(lab.Config, lab.PROFILES, "quick")
    data = lab.prepare(cfg, root)  # found two folders down, beside the validation folder
    photos = data.photos
    assert photos.classes == ["normal", "pathologic"] and data.positive == 1 and data.why_positive == "the P files"
    names = {p.name: photos.classes[y] for p, y in zip(photos.paths, photos.labels)}
    assert len(names) == 24
    assert all(v == ("pathologic" if k[0] == "P" else "normal") for k, v in names.items())
    assert "12 P (pathologic)" in data.source.layout and "4 H (high myopia)" in data.source.layout
    # the data-root layout other labs use: PATH/eye-screening/...
    (tmp_path / "root").mkdir()
    (tmp_path / "palm").rename(tmp_path / "root" / "eye-screening")
    again = lab.prepare(cfg, tmp_path / "root")
    assert again.photos.labels.tolist() == photos.labels.tolist()
    # a photo removed from the user's folder leaves the next run too
    (tmp_path / "root" / "eye-screening" / "PALM-Training400" / "PALM-Training400" / "P0001.jpg").unlink()
    assert "P0001.jpg" not in {p.name for p in lab.prepare(cfg, tmp_path / "root").photos.paths}


def test_positive_class_defaults_to_the_second_folder_and_can_be_set(tmp_path):
    from mllabs.config import build_config
    from mllabs.labs import eye_screening as lab

    rng = np.random.default_rng(3)
    for cls, sick in (("healthy", False), ("myopic", True)):
        (tmp_path / "eyes" / cls).mkdir(parents=True)
        for k in range(6):
            fundus(rng, sick, size=40).save(tmp_path / "eyes" / cls / f"{k}.jpg")
    cfg = build_config(lab.Config, lab.PROFILES, "quick")
    data = lab.prepare(cfg, tmp_path / "eyes")
    assert data.photos.classes[data.positive] == "myopic" and "second folder" in data.why_positive
    cfg = build_config(lab.Config, lab.PROFILES, "quick", ["positive=healthy"])
    assert lab.prepare(cfg, tmp_path / "eyes").positive == 0


def _one_class(tmp_path):
    (tmp_path / "normal").mkdir()
    fundus(np.random.default_rng(0), False, size=40).save(tmp_path / "normal" / "a.jpg")
    return tmp_path


def _empty_class(tmp_path):
    _one_class(tmp_path)
    (tmp_path / "pathologic").mkdir()
    return tmp_path


def _unlabelled(tmp_path):
    fundus(np.random.default_rng(0), False, size=40).save(tmp_path / "V0001.jpg")
    return tmp_path


def _too_few(tmp_path):
    _one_class(tmp_path)
    (tmp_path / "pathologic").mkdir()
    fundus(np.random.default_rng(0), True, size=40).save(tmp_path / "pathologic" / "b.jpg")
    return tmp_path


@pytest.mark.parametrize("make, fragment", [
    (lambda p: p / "nowhere", "no fundus photos found"),
    (_one_class, "one class folder only (normal/)"),
    (_empty_class, "pathologic holds no images"),
    (_unlabelled, "none named like the PALM training set"),
    (_too_few, "too few to put some in training, validation and test"),
])
def test_missing_or_malformed_folder_is_one_line_and_exit_2(tmp_path, capsys, make, fragment):
    (tmp_path / "data").mkdir()
    data = make(tmp_path / "data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = run_cli("run", "eye-screening", *QUICK, "--data-dir", data, "--out", tmp_path / "runs")
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1, err
    if fragment != "too few to put some in training, validation and test":
        assert "palm.grand-challenge.org" in err and "normal/ and PATH/pathologic/" in err
    assert not (tmp_path / "runs").exists()


def test_lenet_follows_the_image_size_and_keeps_its_mnist_shape():
    import torch

    from mllabs.models.lenet import LeNet5

    mnist = LeNet5("relu")
    assert mnist(torch.zeros(2, 1, 32, 32)).shape == (2, 10)
    assert sum(p.numel() for p in mnist.parameters()) == 61_706  # the paper's LeNet-5 with 10 outputs
    photo = LeNet5("relu", 2, in_channels=3, image_size=224)
    assert photo(torch.zeros(1, 3, 224, 224)).shape == (1, 2)
    assert photo.classifier[1].in_features == 16 * 53 * 53


def test_run_all_skips_labs_that_need_the_users_photos(tmp_path, capsys, monkeypatch):
    import mllabs.labs

    monkeypatch.setattr(mllabs.labs, "LABS", {"car-clustering": "mllabs.labs.car_clustering",
                                              "eye-screening": "mllabs.labs.eye_screening"})
    assert run_cli("run", "all", "--profile", "quick", "--quiet", "--out", tmp_path / "runs") == 0
    out = capsys.readouterr().out
    assert "[car-clustering 1/1] completed" in out
    assert "eye-screening: skipped (it needs your own data: mllabs run eye-screening --data-dir PATH)" in out
    assert not (tmp_path / "runs" / "eye-screening").exists()
