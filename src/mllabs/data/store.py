"""Find a dataset's verified files: --data-dir / MLLABS_DATA, then the user cache, then download.

Downloads land in the cache only after their sha256 matches; nothing half-downloaded is ever
left where a later run would pick it up. Set MLLABS_OFFLINE=1 to forbid downloads (the tests do).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mllabs.data.registry import Archive, Dataset, get
from mllabs.errors import DataError

CHUNK = 1 << 20


def cache_root() -> Path:
    if os.environ.get("MLLABS_CACHE"):
        return Path(os.environ["MLLABS_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mllabs"


def search_roots(data_dir: str | Path | None = None) -> list[tuple[str, Path]]:
    """Where datasets are looked for, in order, each with the name a message should use."""
    roots = []
    if data_dir:
        roots.append(("--data-dir", Path(data_dir).expanduser()))
    elif os.environ.get("MLLABS_DATA"):
        roots.append(("MLLABS_DATA", Path(os.environ["MLLABS_DATA"]).expanduser()))
    roots.append(("cache", cache_root()))
    return roots


def offline() -> bool:
    return os.environ.get("MLLABS_OFFLINE", "").lower() in ("1", "true", "yes")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Problem:
    path: Path
    kind: str  # "missing" | "checksum" | "unreadable"
    detail: str = ""


def check_folder(folder: Path, ds: Dataset, *, hashes: bool = True) -> list[Problem]:
    """Every expected file present (and, with hashes, matching one of its accepted sha256)."""
    problems = []
    for rel, accepted in ds.expected().items():
        path = folder / rel
        if not path.is_file():
            problems.append(Problem(path, "missing"))
            continue
        if not hashes:
            continue
        try:
            digest = sha256_of(path)
        except OSError as exc:
            problems.append(Problem(path, "unreadable", exc.strerror or str(exc)))
            continue
        if digest not in accepted:
            problems.append(Problem(path, "checksum", f"sha256 {digest[:12]}..., expected "
                                    f"{sorted(accepted)[0][:12]}..."))
    return problems


def locate(name: str, data_dir: str | Path | None = None) -> tuple[str, Path] | None:
    """The first search root with a folder for `name`: (the root's label, the folder), unchecked;
    None when no root has one."""
    for label, root in search_roots(data_dir):
        if (root / name).is_dir():
            return label, root / name
    return None


@dataclass
class Verification:
    name: str
    found: tuple[str, Path] | None  # (root label, folder) of the copy checked; None: not found
    looked: list[Path]              # the folders looked in, in order
    problems: list[Problem]         # of the copy found: missing, unreadable, wrong sha256

    @property
    def ok(self) -> bool:
        return self.found is not None and not self.problems


def verify(name: str, data_dir: str | Path | None = None) -> Verification:
    """Every file of the copy of `name` that would be read checked against its sha256."""
    found = locate(name, data_dir)
    looked = [root / name for _, root in search_roots(data_dir)]
    problems = check_folder(found[1], get(name)) if found else []
    return Verification(name, found, looked, problems)


def _looked(roots: list[tuple[str, Path]], name: str) -> str:
    return ", ".join(f"{label} {root / name}" for label, root in roots)


def dataset_dir(name: str, data_dir: str | Path | None = None, *, download: bool = True) -> Path:
    """The folder holding `name`'s verified files; downloads into the cache if none has them."""
    ds = get(name)
    roots = search_roots(data_dir)
    first_missing = None
    for label, root in roots:
        folder = root / name
        problems = check_folder(folder, ds, hashes=False)
        if problems:
            first_missing = first_missing or problems[0].path.relative_to(root)
            continue
        bad = [p for p in check_folder(folder, ds) if p.kind != "missing"]
        if bad:
            p = bad[0]
            what = "fails its checksum" if p.kind == "checksum" else "cannot be read"
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            fix = ("delete it and run `mllabs data fetch " + name + "`" if label == "cache"
                   else f"restore it from the original source, or unset {label} to use the cache")
            raise DataError(f"{p.path} {what} ({p.detail}){more}; {fix}")
        return folder
    if download and not offline():
        given = [(label, root) for label, root in roots if label != "cache"]
        try:
            return fetch(name)
        except DataError as exc:
            if not given:
                raise
            # the user pointed at a folder: say first that the dataset is not in it
            label, root = given[0]
            where = (f"{root} does not exist" if not root.is_dir()
                     else f"{root / first_missing} is not there")
            raise DataError(f"{label}: {where}, and the download into the cache failed too ({exc}); "
                            f"point {label} at a folder laid out like shared/data") from None
    reason = "downloads are off (MLLABS_OFFLINE=1)" if offline() else "downloading was not asked for"
    raise DataError(
        f"{first_missing} not found (looked in {_looked(roots, name)}); {reason}: set MLLABS_DATA "
        f"or --data-dir to a folder laid out like shared/data, or run `mllabs data fetch {name}` "
        f"with internet ({_source_url(ds, first_missing)})")


def _source_url(ds: Dataset, missing: Path | None) -> str:
    """Where the missing file comes from: its own URL, or the dataset's archive."""
    if ds.archive:
        return ds.archive.url
    direct = [f for f in ds.files if f.urls]
    named = [f for f in direct if missing is not None and Path(f.path).name == missing.name]
    return (named or direct)[0].urls[0] if direct else "see `mllabs data list`"


def fetch(name: str) -> Path:
    """Download `name` into the cache, verifying every file; returns the dataset folder."""
    ds = get(name)
    folder = cache_root() / name
    if not check_folder(folder, ds):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    print(f"mllabs: downloading {ds.name} into {folder}", file=sys.stderr)
    if ds.archive:
        _fetch_archive(ds, ds.archive, folder)
    else:
        for f in ds.files:
            if (folder / f.path).is_file() and sha256_of(folder / f.path) == f.sha256:
                continue
            _download_verified(f.urls, folder / f.path, f.sha256, f.size)
    problems = check_folder(folder, ds)
    if problems:
        p = problems[0]
        raise DataError(f"after downloading {name}, {p.path} is {p.kind} {p.detail}; "
                        f"the source may have changed: report it, or point MLLABS_DATA at a mirror")
    return folder


def _download(url: str, dest: Path, size: int | None) -> str:
    """Stream url to dest (a temp path), returning the sha256 of what arrived."""
    digest = hashlib.sha256()
    req = urllib.request.Request(url, headers={"User-Agent": "mllabs"})
    with urllib.request.urlopen(req, timeout=60) as resp, open(dest, "wb") as out:
        total = size or int(resp.headers.get("Content-Length") or 0) or None
        done = 0
        step = max((total or 0) // 20, CHUNK * 8)
        next_report = step
        while chunk := resp.read(CHUNK):
            out.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            if done >= next_report:
                pct = f" ({100 * done / total:.0f} %)" if total else ""
                print(f"  {PurePosixPath(url).name}: {done / 1e6:.1f} MB{pct}", file=sys.stderr)
                next_report += step
    return digest.hexdigest()


def _download_verified(urls: tuple[str, ...], target: Path, sha256: str | None,
                       size: int | None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        os.close(fd)
        try:
            got = _download(url, Path(tmp), size)
            if sha256 and got != sha256:
                errors.append(f"{url}: sha256 {got[:12]}... is not the expected {sha256[:12]}...")
                continue
            os.replace(tmp, target)
            return
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
        finally:
            Path(tmp).unlink(missing_ok=True)
    raise DataError(f"could not download {target.name}: {'; '.join(errors)}; check the network, "
                    f"or set MLLABS_DATA to a folder that holds it")


def _fetch_archive(ds: Dataset, archive: Archive, folder: Path) -> None:
    downloads = cache_root() / "_downloads"
    target = downloads / PurePosixPath(archive.url).name
    if not (target.is_file() and (archive.sha256 is None or sha256_of(target) == archive.sha256)):
        _download_verified((archive.url,), target, archive.sha256, archive.size)
    expected = ds.expected()
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{ds.name}."))
    try:
        for member, data in _archive_members(target, archive.kind):
            rel = _match_member(member, expected)
            if rel is None:
                continue
            digest = hashlib.sha256(data).hexdigest()
            if digest not in expected[rel]:
                # never keep an archive whose contents failed: the next fetch downloads afresh
                target.unlink(missing_ok=True)
                raise DataError(f"{archive.url} member {member} fails its checksum; the archive "
                                f"has changed upstream (it was removed): point MLLABS_DATA at a "
                                "mirror instead")
            out = staging / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
        for path in sorted(staging.rglob("*")):
            if path.is_file():
                dest = folder / path.relative_to(staging)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _match_member(member: str, expected: dict) -> str | None:
    """Map an archive member to a dataset path: same path, or the path under a top folder."""
    parts = PurePosixPath(member).parts
    if ".." in parts or not parts:
        return None
    for start in range(len(parts)):
        rel = "/".join(parts[start:])
        if rel in expected:
            return rel
    return None


def _archive_members(path: Path, kind: str):
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if not info.is_dir():
                        yield info.filename, zf.read(info)
        else:
            with tarfile.open(path, "r:*") as tf:
                for info in tf:
                    if info.isfile():
                        yield info.name, tf.extractfile(info).read()
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        path.unlink(missing_ok=True)
        raise DataError(f"{path} is not a readable {kind} archive ({exc}); it was removed: "
                        "run the command again to download it afresh") from None
