"""A full disk (or an unwritable runs folder) while a run writes: one line naming the path and
what to do, exit 2, the run marked failed where metrics.json can still be written (removed when
nothing worth keeping was), every earlier run and runs/mllabs.db intact."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
from contextlib import closing
from pathlib import Path

import pytest
from conftest import run_cli

from mllabs import rundb
from mllabs.files import atomic_write_bytes
from mllabs.errors import WriteError

LAB = ["run", "boston-housing", "--profile", "quick", "--set", "epochs=5", "--quiet"]


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def db_state(root: Path) -> tuple[str, dict[str, str]]:
    with closing(sqlite3.connect(root / rundb.DB_NAME)) as conn:  # closed, so the tmpfs unmounts
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
        rows = dict(conn.execute("SELECT id, status FROM runs"))
    return check, rows


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """One completed run in a runs folder, copied afresh for each test."""
    root = tmp_path_factory.mktemp("earlier") / "runs"
    assert run_cli(*LAB, "--out", root) == 0
    return root


def copy_of(earlier: Path, tmp_path: Path) -> tuple[Path, Path, dict]:
    root = tmp_path / "runs"
    shutil.copytree(earlier, root)
    (first,) = (root / "boston-housing").iterdir()
    return root, first, snapshot(first)


def fail_writes(monkeypatch, when):
    """ENOSPC from fsync for every atomic write whose target name `when(name)` picks."""
    real_mkstemp, real_fsync = tempfile.mkstemp, os.fsync
    target = {}

    def mkstemp(*args, **kwargs):
        fd, tmp = real_mkstemp(*args, **kwargs)
        target[fd] = Path(tmp).name
        return fd, tmp

    def fsync(fd):
        name = target.get(fd, "")
        if when(name):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("failing, outcome", [
    (lambda n: n.startswith(".config.json."), "removed"),         # nothing written yet
    (lambda n: n.startswith(".model.json."), "failed"),           # a checkpoint mid-run
    (lambda n: n.startswith(".report.html."), "failed"),          # the report at the end
    (lambda n: not n.startswith((".config.json.", ".env.json.")), "removed"),  # not even metrics
])
def test_an_injected_full_disk_is_one_line_and_loses_nothing(earlier, tmp_path, monkeypatch,
                                                             capsys, failing, outcome):
    root, first, before = copy_of(earlier, tmp_path)
    capsys.readouterr()
    fail_writes(monkeypatch, failing)
    assert run_cli(*LAB, "--out", root) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("mllabs: error: no space left on device writing ") and \
        "free space on " in err and "or pass --out elsewhere" in err
    monkeypatch.undo()
    runs = sorted((root / "boston-housing").iterdir())
    assert snapshot(first) == before  # the earlier run, byte for byte
    assert not [p for p in root.rglob("*.tmp")]  # no half-written file anywhere
    check, rows = db_state(root)
    assert check == "ok" and rows[first.name] == "completed"
    if outcome == "removed":
        assert runs == [first] and set(rows) == {first.name}
    else:
        (new,) = [p for p in runs if p != first]
        metrics = (new / "metrics.json").read_text()
        assert '"status": "failed"' in metrics and "no space left on device" in metrics
        assert rows[new.name] == "failed"
        # the path in the message is the one whose write failed
        assert str(new) in err


def test_an_unwritable_place_names_the_cause():
    for code, words in ((errno.EROFS, "is mounted read-only"), (errno.EACCES, "permission denied"),
                        (errno.EDQUOT, "disk quota exceeded")):
        def refuse(*a, **k):
            raise OSError(code, os.strerror(code))
        real = tempfile.mkstemp
        tempfile.mkstemp = refuse
        try:
            with pytest.raises(WriteError, match=words) as info:
                atomic_write_bytes(Path(tempfile.gettempdir()) / "mllabs-x" / "a.json", b"{}")
        finally:
            tempfile.mkstemp = real
        assert "pass --out elsewhere" in str(info.value) and "\n" not in str(info.value)
        assert isinstance(info.value, OSError)  # a cache that only warns on OSError still does


def _can_mount(where: Path) -> bool:
    if os.geteuid() != 0:
        return False
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)],
                            capture_output=True)
    return result.returncode == 0


def test_a_real_full_disk_on_a_small_tmpfs(earlier, tmp_path, capsys):
    """A 2 MB tmpfs as the runs folder: an earlier run, then the disk filled up to 150 kB."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if not _can_mount(disk):
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the tmpfs variant: mount -t tmpfs needs root and permission")
        pytest.skip("mounting a tmpfs needs root (the injected-ENOSPC tests cover the logic)")
    try:
        root = disk / "runs"
        shutil.copytree(earlier, root)
        (first,) = (root / "boston-housing").iterdir()
        before = snapshot(first)
        filler = disk / "filler"
        filler.write_bytes(b"\0" * (shutil.disk_usage(disk).free - 150_000))
        capsys.readouterr()
        assert run_cli(*LAB, "--out", root) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "no space left on device writing" in err, err
        assert f"free space on {disk}" in err
        filler.unlink()  # SQLite needs a little room to open a WAL database at all
        assert snapshot(first) == before
        check, rows = db_state(root)
        assert check == "ok" and rows[first.name] == "completed"
        rundb.reindex(root)  # the full disk may have kept the row at "running"; the files decide
        rows = db_state(root)[1]
        for run in (root / "boston-housing").iterdir():
            if run != first:  # marked failed, or gone
                assert '"status": "failed"' in (run / "metrics.json").read_text()
                assert rows[run.name] == "failed"
        assert not list(root.rglob("*.tmp"))
    finally:
        if subprocess.run(["umount", str(disk)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)  # still busy: detach
