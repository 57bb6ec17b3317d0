"""CLI paths no lab test walks: `run all` over every lab, `runs reindex` (sweep ids included),
`config` for every lab, `data list` and `data fetch`. The labs' own work is stubbed out here
(each lab test runs it for real); what is checked is what the CLI does around it."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import urllib.request

import pytest

from conftest import run_cli
from mllabs import data, rundb
from mllabs.config import build_config, field_specs, profile_names
from mllabs.labs import LABS, get_lab

RUNNING = [n for n in LABS if not getattr(get_lab(n), "USER_DATA", False)]


def _stub(name: str, seen: dict):
    """A lab's prepare/run replaced by a few lines that record what they were given."""
    def prepare(cfg, data_dir):
        return {"lab": name}

    def run(cfg, prepared, ctx):
        seen[name] = cfg
        assert prepared == {"lab": name}  # what prepare returned reaches run
        ctx.report.section("Stub", f"{name} stubbed for the orchestration test.")
        status = "diverged" if name in seen.get("_diverge", ()) else "completed"
        return status, {"score": 0.5}

    def example_input(prepared, run_dir):
        (run_dir / "example.txt").write_text("x\n")
        return [run_dir / "example.txt"]

    return {"prepare": prepare, "run": run, "example_input": example_input,
            "headline": lambda metrics: f"{name} headline {metrics['score']}"}


@pytest.fixture(scope="module")
def stubbed():
    """Every lab stubbed for this module (layer tables left out: `summary` has its own tests)."""
    seen: dict = {}
    with pytest.MonkeyPatch.context() as mp:
        for name in LABS:
            module = get_lab(name)
            for attr, value in _stub(name, seen).items():
                mp.setattr(module, attr, value, raising=False)
            mp.delattr(module, "networks", raising=False)
        yield seen


def _cli(*args) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = run_cli(*args)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def run_all(stubbed, tmp_path_factory):
    out = tmp_path_factory.mktemp("all")
    code, printed = _cli("run", "all", "--profile", "quick", "--quiet", "--out", out)
    return out, code, printed, dict(stubbed)


def test_run_all_runs_every_lab_but_the_user_data_ones(run_all):
    out, code, printed, seen = run_all
    assert code == 0
    assert set(RUNNING) == set(seen) and "eye-screening" not in RUNNING  # the one USER_DATA lab
    lines = printed.splitlines()
    index_html = (out / "index.html").read_text()
    for i, name in enumerate(RUNNING, 1):
        lab = get_lab(name)
        assert seen[name] == build_config(lab.Config, lab.PROFILES, "quick")  # --profile reached it
        (run_dir,) = (out / name).iterdir()
        assert json.loads((run_dir / "metrics.json").read_text())["status"] == "completed"
        assert "stubbed for the orchestration test" in (run_dir / "report.md").read_text()
        assert f"{name} headline 0.5" in (run_dir / "report.html").read_text()
        # in order, numbered i/N, each with its report and a predict command that names its input
        at = lines.index(next(l for l in lines if l.startswith(f"[{name} {i}/{len(RUNNING)}] completed")))
        assert lines[at].endswith(f": {name} headline 0.5")
        assert lines[at + 1] == f"  report:  {run_dir / 'report.html'}"
        assert lines[at + 2] == f"  predict: mllabs predict {run_dir} {run_dir / 'example.txt'}"
        assert f'href="{name}/{run_dir.name}/report.html"' in index_html
    assert not (out / "eye-screening").exists()
    assert lines[-2:] == ["eye-screening: skipped (it needs your own data: mllabs run eye-screening "
                          "--data-dir PATH)", f"all runs: {out / 'index.html'}"]
    assert len(rundb.list_runs(out)) == len(RUNNING)


def test_run_all_goes_on_past_a_lab_that_does_not_complete_and_exits_1(stubbed, tmp_path):
    stubbed["_diverge"] = ("mnist-cnn",)
    try:
        code, printed = _cli("run", "all", "--profile", "quick", "--quiet", "--out", tmp_path)
    finally:
        del stubbed["_diverge"]
    assert code == 1
    assert f"[mnist-cnn {RUNNING.index('mnist-cnn') + 1}/{len(RUNNING)}] diverged" in printed
    assert all((tmp_path / n).is_dir() for n in RUNNING)  # the labs after it ran too
    statuses = {r["lab"]: r["status"] for r in rundb.list_runs(tmp_path)}
    assert statuses == {n: "diverged" if n == "mnist-cnn" else "completed" for n in RUNNING}


def test_runs_reindex_rebuilds_a_lost_database_with_sweep_ids(stubbed, run_all, tmp_path):
    out = tmp_path / "runs"
    shutil.copytree(run_all[0], out)
    code, _ = _cli("run", "auto-mpg", "--profile", "quick", "--quiet", "--out", out,
                   "--sweep-id", "auto-mpg-cafe01")
    assert code == 0
    code, before = _cli("runs", "list", "--json", "--out", out)
    rows_before = json.loads(before)
    assert {r["sweep"] for r in rows_before if r["lab"] == "auto-mpg"} == {None, "auto-mpg-cafe01"}
    (out / rundb.DB_NAME).unlink()
    for leftover in out.glob(rundb.DB_NAME + "-*"):  # SQLite's WAL files go with it
        leftover.unlink()
    code, printed = _cli("runs", "reindex", "--out", out)
    assert code == 0 and f"{len(rows_before)} added" in printed
    code, after = _cli("runs", "list", "--json", "--out", out)
    assert json.loads(after) == rows_before  # every run, its status, metrics and sweep id
    code, table = _cli("runs", "list", "--out", out)
    assert all(r["id"] in table for r in rows_before)


def test_config_lists_every_key_with_help_and_each_profiles_values(capsys):
    for name in LABS:
        lab = get_lab(name)
        fields = field_specs(lab.Config)
        configs = {}
        for profile in profile_names(lab.PROFILES):
            assert run_cli("config", name, "--profile", profile) == 0
            out = capsys.readouterr().out
            assert out.startswith(f"{name} — profile {profile}")
            cfg = configs[profile] = build_config(lab.Config, lab.PROFILES, profile)
            lines = {line.split()[0]: line for line in out.splitlines()[2:]}
            assert list(lines) == [f.name for f in fields]  # every key, in order, nothing else
            for f in fields:
                value = getattr(cfg, f.name)
                shown = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
                rest = lines[f.name][2 + len(f.name):].lstrip()
                assert not shown or rest.startswith(shown + " "), (name, profile, f.name, rest)
                assert f.metadata.get("help") and f.metadata["help"] in lines[f.name]
        # the quick profile changes something, so a `config` that ignored --profile would fail
        assert configs["quick"] != configs["default"], name


def test_config_refuses_an_unknown_lab_or_profile(capsys):
    assert run_cli("config", "nosuchlab") == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "unknown lab 'nosuchlab'" in err and "auto-mpg" in err
    assert run_cli("config", "auto-mpg", "--profile", "nosuch") == 2
    assert "unknown profile 'nosuch'" in capsys.readouterr().err


def test_data_list_names_every_dataset_and_where_it_is(tmp_path, data_root, monkeypatch, capsys):
    shutil.copytree(data_root / "auto-mpg", tmp_path / "data" / "auto-mpg")
    monkeypatch.setenv("MLLABS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MLLABS_CACHE", str(tmp_path / "cache"))
    assert run_cli("data", "list") == 0
    out = capsys.readouterr().out
    for name in data.DATASETS:
        assert f"\n{name} " in "\n" + out, name
        where = (f"MLLABS_DATA: {tmp_path / 'data' / name}" if name == "auto-mpg"
                 else f"not found (mllabs data fetch {name})")
        assert where in out, name
    assert out.count("not found") == len(data.DATASETS) - 1


def test_data_fetch_with_mllabs_data_verifies_and_never_downloads(tmp_path, data_root, monkeypatch,
                                                                   capsys):
    calls = []

    def no_network(*args, **kwargs):
        calls.append(args)
        raise OSError("network is off in this test")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.delenv("MLLABS_OFFLINE")  # fetch may download: it must not need to
    monkeypatch.setenv("MLLABS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MLLABS_CACHE", str(tmp_path / "cache"))
    for name in ("auto-mpg", "boston-housing"):
        shutil.copytree(data_root / name, tmp_path / "data" / name)
    assert run_cli("data", "fetch", "auto-mpg", "boston-housing") == 0
    out = capsys.readouterr().out
    assert f"auto-mpg         ok  {tmp_path / 'data' / 'auto-mpg'}" in out
    assert f"boston-housing   ok  {tmp_path / 'data' / 'boston-housing'}" in out
    assert calls == [] and not (tmp_path / "cache").exists()
    # a damaged copy is refused (it is checked, not only found), still without a download
    target = next(p for p in (tmp_path / "data" / "auto-mpg").iterdir() if p.is_file())
    target.write_bytes(target.read_bytes()[:-1] + b"#")
    assert run_cli("data", "fetch", "auto-mpg") == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and target.name in err and "checksum" in err
    assert calls == []
