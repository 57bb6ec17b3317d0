"""Writing and reading files safely: atomic writes, JSON, and paths kept inside a folder.

Every file is written to a temporary name in the same folder and renamed into place, so a
crash or a full disk never leaves a half-written config, checkpoint or report behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from mllabs.errors import UserError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
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


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


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
