"""flowers on the real photos at a tiny size: both models and the plain ablation train, the
report compares them, the decoded photos are cached, predict reads a user's photo."""

from __future__ import annotations

import csv
import json
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import cache_in, run_cli

TINY = ["--profile", "quick", "--set", "models=cnn,resnet18,plain18", "--set", "image_size=32",
        "--set", "limit=150", "--set", "epochs=1", "--quiet"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Two runs against a fresh image cache: the first decodes, the second reads the cache."""
    out = tmp_path_factory.mktemp("flowers")
    with cache_in(out / "cache"):
        for name in ("first", "second"):
            assert run_cli("run", "flowers", *TINY, "--out", out / name) == 0
    runs = [next((out / name / "flowers").iterdir()) for name in ("first", "second")]
    return runs


def test_both_models_and_the_ablation_are_compared(tiny_run):
    run_dir = tiny_run[0]
    result = json.loads((run_dir / "metrics.json").read_text())
    m = result["metrics"]
    assert result["status"] == "completed"
    assert m["resnet.model"] == "resnet18" and 0 <= m["cnn.test_accuracy"] <= 1
    for name in ("cnn", "resnet18", "plain18"):
        assert m[f"{name}.seconds_per_epoch"] > 0 and m[f"{name}.params"] > 0 and m[f"{name}.macs"] > 0
    assert m["resnet18.params"] > m["plain18.params"] > m["cnn.params"]  # plain18: no downsample paths
    md = (run_dir / "report.md").read_text()
    assert "Same depth and layers, with and without skip connections" in md
    figures = {p.name for p in (run_dir / "figures").iterdir()}
    assert {"curves.png", "grad_cam.png", "augmentation.png", "cnn_confusion_matrix.png",
            "resnet18_confusion_matrix.png", "plain18_confusion_matrix.png"} <= figures


def test_second_run_reads_the_decoded_photos_from_the_cache(tiny_run):
    first, second = ((r / "report.md").read_text() for r in tiny_run)
    assert "decoded the JPEGs" in first and "read it from the cache" in second
    # the same photos, split and seed: the same numbers in every epoch (time aside)
    histories = []
    for r in tiny_run:
        with open(r / "history.csv") as fh:
            histories.append([{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(fh)])
    assert histories[0] and histories[0] == histories[1]


def test_report_prints_a_predict_command_that_works_as_printed(tiny_run, capsys):
    run_dir = tiny_run[0]
    command = json.loads((run_dir / "report.json").read_text())["predict_command"]
    args = shlex.split(command)
    assert args[:3] == ["mllabs", "predict", str(run_dir)] and command in (run_dir / "report.md").read_text()
    example = Path(args[3])
    assert example.parent == run_dir and example.name.startswith("example-")
    capsys.readouterr()
    assert run_cli(*args[1:], "--json") == 0
    (answer,) = json.loads(capsys.readouterr().out)
    assert answer["input"] == str(example) and answer["prediction"] == answer["top"][0]["label"]
    # the file name says its true class, one of the species predict chooses from
    assert example.name.split("-")[1] in json.loads((run_dir / "predict.json").read_text())["classes"]


def test_split_is_stratified_and_disjoint():
    from mllabs.labs._photos import stratified_split

    labels = np.repeat(np.arange(5), [633, 898, 641, 699, 799])
    parts = stratified_split(labels, 0.15, 0.15, seed=0)
    together = np.concatenate(list(parts.values()))
    assert len(together) == len(labels) == len(np.unique(together))
    for c in range(5):
        share = (labels[parts["test"]] == c).sum() / (labels == c).sum()
        assert abs(share - 0.15) < 0.005


def test_predict_reads_any_photo_and_rejects_a_non_image(tiny_run, data_root, tmp_path, capsys):
    run_dir = tiny_run[0]
    photo = next((data_root / "flowers" / "flower_photos" / "tulips").iterdir())
    Image.open(photo).convert("L").resize((333, 201)).save(tmp_path / "grey.png")  # other size, mode, format
    assert run_cli("predict", run_dir, photo, tmp_path / "grey.png", "--json") == 0
    answers = json.loads(capsys.readouterr().out)
    classes = {"daisy", "dandelion", "roses", "sunflowers", "tulips"}
    for a in answers:
        assert len(a["top"]) == 3 and {t["label"] for t in a["top"]} <= classes
        assert a["prediction"] == a["top"][0]["label"] and sum(t["probability"] for t in a["top"]) <= 1.0001
    (tmp_path / "notes.jpg").write_text("this is not a photo")
    assert run_cli("predict", run_dir, tmp_path / "notes.jpg") == 2
    err = capsys.readouterr().err.strip()
    assert "notes.jpg is not a readable image" in err and len(err.splitlines()) == 1


def test_the_resnet_is_measured_on_the_test_photos_and_predict_takes_the_best_on_validation(
        tiny_run):
    """The ResNet-18's reported test accuracy recomputed here from its own saved weights (best.pt,
    what restore_best left in it) on the run's test photos, with the normalisation written out
    (ImageNet mean and std); the weights load into a ResNet-18 and not into its plain twin (the
    skips' downsample paths are in them); predict's network is the one whose best validation
    accuracy in history.csv is highest."""
    import torch

    from mllabs.checkpoints import load_checkpoint
    from mllabs.config import build_config
    from mllabs.labs import flowers

    run_dir = tiny_run[0]
    m = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    assert m["resnet.test_accuracy"] == m["resnet18.test_accuracy"]
    sets = [s for flag, s in zip(TINY, TINY[1:]) if flag == "--set"]
    cfg = build_config(flowers.Config, flowers.PROFILES, "quick", sets)
    with cache_in(run_dir.parents[2] / "cache"):  # the fixture's: the photos decoded once
        photos = flowers.prepare(cfg, None).photos
    test = photos.split["test"]
    x = torch.from_numpy(photos.images[test]).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    weights = load_checkpoint(run_dir / "checkpoints" / "resnet18" / "best.pt")["model"]
    resnet = flowers.network("resnet18", cfg, len(photos.classes))
    resnet.load_state_dict(weights)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        flowers.network("plain18", cfg, len(photos.classes)).load_state_dict(weights)
    with torch.no_grad():
        guesses = resnet.eval()(x).argmax(1).numpy()
    accuracy = float((guesses == photos.labels[test]).mean())
    bf16 = "forward passes in bfloat16" in (run_dir / "report.md").read_text()
    # float32 here; a run in bfloat16 may round one borderline photo the other way
    assert abs(accuracy - m["resnet18.test_accuracy"]) <= (1.01 / len(test) if bf16 else 1e-9)

    with open(run_dir / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    best_val = {}
    for row in rows:
        best_val[row["model"]] = max(best_val.get(row["model"], 0.0), float(row["val_accuracy"]))
    assert set(best_val) == {"cnn", "resnet18", "plain18"}
    spec = json.loads((run_dir / "predict.json").read_text())
    assert spec["architecture"] == max(best_val, key=best_val.get)


def test_paired_comparison_states_who_is_ahead_from_the_photos():
    from mllabs.labs.flowers import paired_comparisons, paired_metrics, paired_text

    y = np.zeros(40, int)
    def probs(right):  # two classes; right where `right` is True
        p = np.zeros((len(y), 2))
        p[np.arange(len(y)), np.where(right, 0, 1)] = 1
        return {"probs": p}

    cnn = np.ones(40, bool)
    cnn[:2] = False            # the CNN misses 2 photos
    resnet = np.ones(40, bool)
    resnet[2:14] = False       # the ResNet misses 12 others
    paired = paired_comparisons({"cnn": probs(cnn), "resnet18": probs(resnet)}, y)
    c = paired[("cnn", "resnet18")]
    assert (c["only_a"], c["only_b"]) == (12, 2) and c["p"] < 0.05 and c["low"] > 0
    text = paired_text(paired)
    assert "12 test photos only cnn gets right and 2 only resnet18; cnn is ahead by 25.0 points" in text
    assert "more than chance" in text
    assert paired_metrics(paired)["cnn_vs_resnet18.mcnemar_p"] == c["p"]
    # the same photos with the roles swapped: the sentence turns round
    flipped = paired_text(paired_comparisons({"cnn": probs(resnet), "resnet18": probs(cnn)}, y))
    assert "resnet18 is ahead by 25.0 points" in flipped
    close = resnet.copy()
    close[2:12] = True          # 2 against 2: no evidence either way
    level = paired_text(paired_comparisons({"cnn": probs(cnn), "resnet18": probs(close)}, y))
    assert "they are level" in level and "do not separate them" in level


def test_curves_conclusion_names_the_peak_and_the_widest_gap():
    from mllabs.labs._photos import curves_conclusion

    def history(val, train):
        return [{"epoch": e + 1, "val_accuracy": v, "train_accuracy": t} for e, (v, t) in enumerate(zip(val, train))]

    text = curves_conclusion({"cnn": history([0.5, 0.6], [0.5, 0.62]), "resnet18": history([0.7, 0.65], [0.7, 0.9])})
    assert text.startswith("resnet18's validation accuracy peaks highest, at 70.0 % in epoch 1; cnn's at 60.0 % in epoch 2")
    assert "resnet18 is 25 points better on its training batches" in text
    assert "widest gap" not in curves_conclusion({"cnn": history([0.5, 0.6], [0.5, 0.62])})


def test_mistake_grid_counts_only_the_random_photos_when_the_test_set_is_small():
    from mllabs.report.classifier import describe_classifier

    class Collect:
        def __init__(self):
            self.said = []

        def figure(self, fig, name, caption, conclusion=""):
            self.said.append(conclusion)

        def table(self, *args, **kwargs):
            pass

    labels = np.arange(10) % 2
    probs = np.eye(2)[np.where(np.arange(10) < 7, 1 - labels, labels)]  # 7 of 10 wrong
    rep = Collect()
    describe_classifier(rep, probs, labels, ["a", "b"], np.zeros((10, 4, 4, 3), np.uint8), 0,
                        what="photos", grid=(15, 5), ncols=5)
    assert rep.said[1].startswith("Of the 10 random photos, 7 are wrong; the 5 mistakes")
