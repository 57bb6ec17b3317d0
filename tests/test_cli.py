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
        run_cli("run", "auto-mpg", "--profile", "huge")
    assert exc.value.code == 2


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
