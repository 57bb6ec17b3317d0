import pytest

from conftest import run_cli


def test_list_names_every_lab(capsys):
    assert run_cli("list") == 0
    assert "auto-mpg" in capsys.readouterr().out


@pytest.mark.parametrize("args, fragment", [
    (("run", "no-such-lab"), "unknown lab 'no-such-lab'"),
    (("run", "auto-mpg", "--set", "epoch=3"), "valid keys: seed (int)"),
    (("run", "auto-mpg", "--set", "lr=0"), "lr=0.0 must be greater than 0"),
    (("run", "auto-mpg", "--set", "optimizer=lbfgs"), "not one of"),
    (("predict", "/nonexistent/run", "x.csv"), "config.json does not exist"),
    (("report", "/nonexistent/run"), "is not a folder"),
    (("data", "verify", "cifar"), "unknown dataset 'cifar'"),
    (("config", "nope"), "unknown lab"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, args, fragment):
    assert run_cli(*args, "--out", tmp_path) == 2 if args[0] == "run" else run_cli(*args) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1
    assert not (tmp_path / "auto-mpg").exists()  # nothing half-made for a run that never started


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        run_cli("run", "auto-mpg", "--nproc", "two")
    assert exc.value.code == 2


def test_an_unknown_profile_lists_the_labs_own(capsys, tmp_path):
    assert run_cli("run", "auto-mpg", "--profile", "huge", "--out", tmp_path) == 2
    assert "unknown profile 'huge'; choose one of: quick, default, full" in capsys.readouterr().err
    assert run_cli("run", "flowers", "--profile", "huge", "--out", tmp_path) == 2
    assert "quick, default, full, scratch, finetune" in capsys.readouterr().err
    assert run_cli("config", "flowers", "--profile", "finetune") == 0
    out = capsys.readouterr().out
    assert "profiles: quick, default, full, scratch, finetune" in out and "resnet50" in out
    assert run_cli("config", "flowers", "--profile", "scratch") == 0
    assert "resnet18" in capsys.readouterr().out


def test_data_verify_and_path(capsys, data_root):
    assert run_cli("data", "verify", "auto-mpg", "mnist") == 0
    out = capsys.readouterr().out
    assert "auto-mpg" in out and "ok" in out
    assert run_cli("data", "path", "auto-mpg") == 0
    assert capsys.readouterr().out.strip() == str(data_root / "auto-mpg")


def test_data_verify_fails_on_a_broken_mirror(tmp_path, data_root, capsys, monkeypatch):
    (tmp_path / "auto-mpg").mkdir()
    (tmp_path / "auto-mpg" / "auto-mpg.data").write_text("broken\n")
    monkeypatch.setenv("MLLABS_CACHE", str(tmp_path / "cache"))
    assert run_cli("data", "verify", "auto-mpg", "--data-dir", tmp_path) == 2
    captured = capsys.readouterr()
    assert "FAILED" in captured.out and "auto-mpg.names" in captured.out


def test_config_shows_keys(capsys):
    assert run_cli("config", "auto-mpg", "--profile", "quick") == 0
    out = capsys.readouterr().out
    assert "epochs" in out and "30" in out and "optimizer" in out


def test_argparse_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        run_cli("run", "auto-mpg", "--seed", "abc")
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1
    assert err.startswith("mllabs: error: argument --seed") and "mllabs run --help" in err


def test_out_that_is_a_file_and_nproc_zero_are_user_errors(tmp_path, capsys):
    blocker = tmp_path / "results"
    blocker.write_text("my notes\n")
    assert run_cli("run", "auto-mpg", "--profile", "quick", "--out", blocker) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"mllabs: error: {blocker} is not a folder (a file is in the way); choose another path"
    assert blocker.read_text() == "my notes\n"
    assert run_cli("runs", "list", "--out", blocker) == 2
    assert run_cli("run", "auto-mpg", "--nproc", "0", "--out", tmp_path / "runs") == 2
    assert "--nproc 0" in capsys.readouterr().err


def test_predict_guards_the_users_files_and_damaged_runs(tmp_path, capsys):
    """A run directory is made by hand here: these checks come before any model is loaded."""
    import json

    cars = tmp_path / "cars.csv"
    cars.write_text("cylinders\n4\n")
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"lab": "auto-mpg"}))
    (run_dir / "metrics.json").write_text(json.dumps({"status": "completed"}))
    cases = [
        (("--output", cars), "is one of the inputs"),           # would overwrite the input
        (("--output", tmp_path), "is a folder; give a file name"),
    ]
    for extra, fragment in cases:
        assert run_cli("predict", run_dir, cars, *extra) == 2
        assert fragment in capsys.readouterr().err
    assert cars.read_text() == "cylinders\n4\n"
    # a checkpoint that is not a checkpoint at all is not called tampered with
    (run_dir / "checkpoints" / "model.pt").write_text("garbage\n")
    (run_dir / "predict.json").write_text(json.dumps({"lab": "auto-mpg"}))
    assert run_cli("predict", run_dir, cars) == 2
    err = capsys.readouterr().err
    assert "model.pt is not a PyTorch checkpoint at all" in err
    (run_dir / "metrics.json").write_text(json.dumps({"lab": "auto-mpg"}))
    assert run_cli("predict", run_dir, cars) == 2
    assert "has no status" in capsys.readouterr().err
    (run_dir / "config.json").write_text("[1, 2, 3]")
    assert run_cli("predict", run_dir, cars) == 2
    assert "not a JSON object" in capsys.readouterr().err
    assert run_cli("predict", cars, cars) == 2  # a file given as the run directory
    assert "is not a run directory" in capsys.readouterr().err
