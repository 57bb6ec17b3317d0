import dataclasses
import functools
import hashlib
import http.server
import shutil
import threading
import zipfile
from pathlib import Path

import pytest

from mllabs import data
from mllabs.data import registry
from mllabs.data.registry import Archive, DataFile
from mllabs.errors import DataError

AUTO_FILES = ("auto-mpg.data", "auto-mpg.names")


def test_registry_covers_every_lab_dataset():
    assert set(data.DATASETS) == {"mnist", "auto-mpg", "bike-sharing", "car-price",
                                  "boston-housing", "flowers"}
    for ds in data.DATASETS.values():
        expected = ds.expected()
        assert expected, ds.name
        assert all(len(h) == 64 for hashes in expected.values() for h in hashes)
        assert ds.archive or all(f.urls for f in ds.files), ds.name


def test_flowers_manifest_accepts_reduced_and_original_copies():
    expected = data.get("flowers").expected()
    photos = [p for p in expected if p.endswith(".jpg")]
    assert len(photos) == 3670
    assert all(len(expected[p]) == 2 for p in photos)  # re-encoded and original sha256
    assert data.get("flowers").archive.sha256 == (
        "4c54ace7911aaffe13a365c34f650e71dd5bf1be0a58b464e5a7183e3e595d9c")


def test_shared_mirror_verifies(data_root):
    for name in ("auto-mpg", "mnist", "flowers"):
        assert data.check_folder(data_root / name, data.get(name)) == []


def _mirror(tmp_path: Path, data_root: Path, name="mirror") -> Path:
    root = tmp_path / name
    (root / "auto-mpg").mkdir(parents=True)
    for f in AUTO_FILES:
        shutil.copy(data_root / "auto-mpg" / f, root / "auto-mpg" / f)
    return root


def test_resolution_order_data_dir_then_env_then_cache(tmp_path, data_root, monkeypatch):
    explicit, env, cache = (_mirror(tmp_path, data_root, n) for n in ("explicit", "env", "cache"))
    monkeypatch.setenv("MLLABS_DATA", str(env))
    monkeypatch.setenv("MLLABS_CACHE", str(cache))
    assert data.dataset_dir("auto-mpg", explicit) == explicit / "auto-mpg"
    assert data.dataset_dir("auto-mpg") == env / "auto-mpg"
    shutil.rmtree(env / "auto-mpg")
    assert data.dataset_dir("auto-mpg") == cache / "auto-mpg"


def test_checksum_mismatch_names_the_file(tmp_path, data_root, monkeypatch):
    root = _mirror(tmp_path, data_root)
    with open(root / "auto-mpg" / "auto-mpg.data", "r+b") as fh:
        fh.seek(100)
        fh.write(b"9")
    monkeypatch.setenv("MLLABS_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(DataError) as err:
        data.dataset_dir("auto-mpg", root)
    message = str(err.value)
    assert "auto-mpg.data" in message and "checksum" in message and "\n" not in message


def test_verify_reports_the_copy_found_and_each_problem(tmp_path, data_root, monkeypatch):
    root = _mirror(tmp_path, data_root)
    monkeypatch.setenv("MLLABS_CACHE", str(tmp_path / "empty-cache"))
    good = data.verify("auto-mpg", root)
    assert good.ok and good.found == ("--data-dir", root / "auto-mpg") and good.problems == []
    (root / "auto-mpg" / "auto-mpg.names").unlink()
    bad = data.verify("auto-mpg", root)
    assert not bad.ok and [(p.kind, p.path.name) for p in bad.problems] == [("missing", "auto-mpg.names")]
    absent = data.verify("bike-sharing", root)
    assert not absent.ok and absent.found is None
    assert absent.looked == [root / "bike-sharing", tmp_path / "empty-cache" / "bike-sharing"]


def test_missing_offline_says_where_it_looked_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("MLLABS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MLLABS_OFFLINE", "1")
    with pytest.raises(DataError) as err:
        data.dataset_dir("auto-mpg", tmp_path / "nothing-here")
    message = str(err.value)
    assert "auto-mpg/auto-mpg.data" in message
    assert str(tmp_path / "nothing-here" / "auto-mpg") in message
    assert str(tmp_path / "cache" / "auto-mpg") in message
    assert "archive.ics.uci.edu" in message and "mllabs data fetch auto-mpg" in message


@pytest.fixture
def http_server(tmp_path):
    """A loopback HTTP server over tmp_path/www (no traffic leaves the machine)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _point_auto_mpg_at(monkeypatch, base_url):
    ds = registry.DATASETS["auto-mpg"]
    files = tuple(dataclasses.replace(f, urls=(base_url + "missing-" + f.path, base_url + f.path))
                  for f in ds.files)
    monkeypatch.setitem(registry.DATASETS, "auto-mpg", dataclasses.replace(ds, files=files))


def test_download_verifies_into_the_cache(tmp_path, data_root, http_server, monkeypatch):
    www, url = http_server
    for f in AUTO_FILES:
        shutil.copy(data_root / "auto-mpg" / f, www / f)
    _point_auto_mpg_at(monkeypatch, url)
    monkeypatch.setenv("MLLABS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLLABS_OFFLINE")
    monkeypatch.delenv("MLLABS_DATA", raising=False)
    folder = data.dataset_dir("auto-mpg")  # first URL 404s, the second one serves
    assert folder == tmp_path / "cache" / "auto-mpg"
    assert data.check_folder(folder, data.get("auto-mpg")) == []


def test_corrupt_download_leaves_nothing_behind(tmp_path, data_root, http_server, monkeypatch):
    www, url = http_server
    for f in AUTO_FILES:
        (www / f).write_bytes(b"not the real file\n")
    _point_auto_mpg_at(monkeypatch, url)
    monkeypatch.setenv("MLLABS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLLABS_OFFLINE")
    with pytest.raises(DataError, match="sha256"):
        data.fetch("auto-mpg")
    left = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert left == []


def test_archive_download_extracts_verified_members(tmp_path, data_root, http_server, monkeypatch):
    www, url = http_server
    archive = www / "bike.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("hour.csv", "day.csv", "Readme.txt"):
            zf.write(data_root / "bike-sharing" / name, name)
        zf.writestr("extra/ignored.txt", "not part of the dataset")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    ds = registry.DATASETS["bike-sharing"]
    monkeypatch.setitem(registry.DATASETS, "bike-sharing", dataclasses.replace(
        ds, archive=Archive(url + "bike.zip", digest, None, "zip")))
    monkeypatch.setenv("MLLABS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLLABS_OFFLINE")
    folder = data.fetch("bike-sharing")
    assert sorted(p.name for p in folder.iterdir()) == ["Readme.txt", "day.csv", "hour.csv"]
    assert data.check_folder(folder, data.get("bike-sharing")) == []


def test_archive_with_wrong_checksum_is_refused(tmp_path, http_server, monkeypatch):
    www, url = http_server
    with zipfile.ZipFile(www / "bike.zip", "w") as zf:
        zf.writestr("hour.csv", "instant,cnt\n1,2\n")
    ds = registry.DATASETS["bike-sharing"]
    monkeypatch.setitem(registry.DATASETS, "bike-sharing", dataclasses.replace(
        ds, archive=Archive(url + "bike.zip", "0" * 64, None, "zip")))
    monkeypatch.setenv("MLLABS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLLABS_OFFLINE")
    with pytest.raises(DataError, match="sha256"):
        data.fetch("bike-sharing")
    assert not (tmp_path / "cache" / "bike-sharing" / "hour.csv").exists()


def test_unknown_dataset():
    with pytest.raises(Exception, match="known: mnist"):
        data.get("cifar")


def test_files_have_direct_urls_or_an_archive():
    for ds in data.DATASETS.values():
        for f in ds.files:
            assert isinstance(f, DataFile) and f.size > 0
