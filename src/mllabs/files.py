"""Writing and reading files safely: atomic writes, JSON, and paths kept inside a folder.

Every file is written to a temporary name in the same folder and renamed into place, so a
crash or a full disk never leaves a half-written config, checkpoint or report behind. A full
disk, a quota, a read-only or unwritable folder is the user's to fix, not a bug: the write
raises WriteError (a UserError and an OSError), one line naming the file and what to do; the
run engine then marks the run failed, or removes a new run that holds nothing worth keeping
(runner._unwritable). benchmarks/faults.py kills and starves runs on purpose and audits them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from mllabs.errors import UserError, WriteError

# errors that say where a file goes is no good (full, over quota, read-only, not ours), not a bug
PLACE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)
ELSEWHERE = "pass --out elsewhere"


def mount_point(path: Path) -> Path:
    """The mount point holding `path` (which may not exist yet): the disk the user can free."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def write_error(exc: OSError, path: Path, hint: str = ELSEWHERE) -> WriteError | None:
    """The one-line error for a write that failed because of its place, else None."""
    if isinstance(exc, WriteError) or exc.errno not in PLACE_ERRORS:
        return None
    path = Path(path)
    disk = mount_point(path)
    if exc.errno == errno.ENOSPC:
        text = f"no space left on device writing {path}; free space on {disk} or {hint}"
    elif exc.errno == errno.EDQUOT:
        text = f"disk quota exceeded writing {path}; free space on {disk} or {hint}"
    elif exc.errno == errno.EROFS:
        text = f"{disk} is mounted read-only, so {path} cannot be written; {hint}"
    else:
        text = f"permission denied writing {path}; make {path.parent} writable or {hint}"
    return WriteError(text, exc.errno, str(path))


@contextlib.contextmanager
def writing(path: Path, hint: str = ELSEWHERE):
    """Turn a full disk or an unwritable folder while writing `path` into a WriteError."""
    try:
        yield
    except OSError as exc:
        error = write_error(exc, path, hint)
        if error is None:
            raise
        raise error from exc


def atomic_write_bytes(path: Path, data: bytes, hint: str = ELSEWHERE) -> None:
    path = Path(path)
    with writing(path, hint):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)  # a full disk keeps no half-written file
            raise


def inside(root: Path, name: str | Path) -> Path:
    """root/name, refused when it would land outside root: `..`, an absolute path or a symlink
    out of it. Every file name that comes from a config value or the command line goes through
    this before anything is written under a run directory."""
    base = Path(root).resolve()
    path = (base / name).resolve()
    if path != base and base not in path.parents:
        raise UserError(f"{str(name)!r} would be written outside the run directory {root}; use a "
                        "plain name without '..' or a leading '/'")
    return path


def atomic_write_text(path: Path, text: str, hint: str = ELSEWHERE) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), hint)


def write_json(path: Path, obj: Any) -> None:
    text = json.dumps(obj, indent=2, default=_json_default, allow_nan=False)
    atomic_write_text(path, text + "\n")


def _json_default(obj):
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path} does not exist; is this a run directory made by `mllabs run`?") from None
    except (NotADirectoryError, IsADirectoryError):
        raise UserError(f"{path} cannot be read: {Path(path).parent} is not a run directory made by "
                        "`mllabs run`") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); "
                        "re-run the lab to regenerate it") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not text (damaged?); re-run the lab to regenerate it") from None
