"""The run database: one SQLite row per run directory, so every run stays findable.

`runs/mllabs.db` sits next to the lab folders. The run directories stay the truth: a row is
built from a run's config.json and metrics.json (and rebuilt by `reindex` when rows are
missing or stale), so losing the database loses nothing. WAL mode and a busy timeout let a
sweep's worker processes record their runs at the same time.
"""

from __future__ import annotations

import errno
import json
import math
import shutil
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from mllabs.errors import UserError
from mllabs.files import write_error, writing

DB_NAME = "mllabs.db"
RUNNING = "running"  # a row whose run has no metrics.json yet (in flight, or killed hard)

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id       TEXT PRIMARY KEY,   -- the run directory's name: <stamp>-<random>
    lab      TEXT NOT NULL,
    status   TEXT NOT NULL,      -- completed | diverged | interrupted | failed | running
    seed     INTEGER,
    profile  TEXT,
    config   TEXT NOT NULL,      -- config.json as JSON text
    metrics  TEXT NOT NULL,      -- metrics.json's "metrics" as JSON text ({} while running)
    started  TEXT,               -- local time, from the directory's stamp
    ended    TEXT,
    seconds  REAL,
    run_dir  TEXT NOT NULL,      -- relative to the runs root
    sweep    TEXT                -- the sweep the run belongs to, if any
);
CREATE INDEX IF NOT EXISTS runs_lab ON runs (lab);
"""


def connect(root: Path) -> sqlite3.Connection:
    root = Path(root)
    with writing(root / DB_NAME):
        root.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(root / DB_NAME, timeout=30.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.executescript(SCHEMA)
    return conn


def row_from_dir(root: Path, run_dir: Path, sweep: str | None = None) -> dict[str, Any] | None:
    """The row a run directory describes, or None when it is not a run directory."""
    run_dir = Path(run_dir)
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    result: dict[str, Any] = {}
    metrics_file = run_dir / "metrics.json"
    try:
        result = json.loads(metrics_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        pass
    stamp = "-".join(run_dir.name.split("-")[:2])
    try:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.strptime(stamp, "%Y%m%d-%H%M%S"))
    except ValueError:
        started = None
    ended = (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(metrics_file.stat().st_mtime))
             if result else None)
    try:
        where = str(run_dir.resolve().relative_to(Path(root).resolve()))
    except ValueError:
        where = str(run_dir.resolve())
    if sweep is None:  # a sweep's cell has its sweep's id in env.json (runner._open_run)
        try:
            sweep = json.loads((run_dir / "env.json").read_text(encoding="utf-8")).get("sweep")
        except (OSError, json.JSONDecodeError, AttributeError):
            pass
    return {"id": run_dir.name, "lab": config.get("lab", run_dir.parent.name),
            "status": result.get("status", RUNNING), "seed": config.get("seed"),
            "profile": config.get("profile"), "config": json.dumps(config),
            "metrics": json.dumps(result.get("metrics") or {}), "started": started, "ended": ended,
            "seconds": result.get("seconds"), "run_dir": where,
            "sweep": sweep}


def record(root: Path, run_dir: Path, sweep: str | None = None) -> None:
    """Insert or refresh the row of one run directory (called when a run starts and ends); a
    sweep's cell is tagged with the sweep's id (`mllabs run ... --sweep-id ID`)."""
    row = row_from_dir(root, run_dir, sweep)
    if row is None:
        return
    try:
        with closing(connect(root)) as conn, conn:
            conn.execute(f"INSERT OR REPLACE INTO runs ({', '.join(row)}) VALUES "
                         f"({', '.join('?' for _ in row)})", list(row.values()))
    except sqlite3.OperationalError as exc:
        # SQLite rolls the transaction back, so the database stays as it was; say why in one line
        if "full" in str(exc):
            raise write_error(OSError(errno.ENOSPC, str(exc)), Path(root) / DB_NAME) from None
        if "readonly" in str(exc):
            raise write_error(OSError(errno.EACCES, str(exc)), Path(root) / DB_NAME) from None
        raise


def forget(root: Path, run_id: str) -> None:
    """Drop one run's row (its directory is already gone)."""
    with closing(connect(root)) as conn, conn:
        conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))


def reindex(root: Path) -> dict[str, int]:
    """Rebuild rows from the run directories under `root`: add missing ones, refresh stale
    ones, drop rows whose directory is gone. Returns the counts."""
    root = Path(root)
    found = {}
    for config in sorted(root.glob("*/*/config.json")):
        row = row_from_dir(root, config.parent)
        if row is not None and row["lab"] != "sweep":  # sweeps/ and comparisons/ pages are not runs
            found[row["id"]] = row
    counts = {"added": 0, "updated": 0, "removed": 0, "unchanged": 0}
    with closing(connect(root)) as conn, conn:
        known = {r["id"]: dict(r) for r in conn.execute("SELECT * FROM runs")}
        for rid, row in found.items():
            old = known.get(rid)
            if old is not None and row.get("sweep") is None:
                row["sweep"] = old.get("sweep")  # runs from before env.json kept the sweep id
            if old == row:
                counts["unchanged"] += 1
                continue
            counts["updated" if old else "added"] += 1
            conn.execute(f"INSERT OR REPLACE INTO runs ({', '.join(row)}) VALUES "
                         f"({', '.join('?' for _ in row)})", list(row.values()))
        for rid in known.keys() - found.keys():
            conn.execute("DELETE FROM runs WHERE id = ?", (rid,))
            counts["removed"] += 1
    return counts


def decode(row: Any, root: Path) -> dict[str, Any]:
    """A row with config and metrics as dicts and `path`, the run directory itself."""
    out = dict(row)
    out["config"] = json.loads(out["config"])
    out["metrics"] = json.loads(out["metrics"])
    out["path"] = str(Path(root) / out["run_dir"])
    return out


def _value(run: dict[str, Any], key: str) -> Any:
    """A key looked up in the row, then the metrics, then the config."""
    for source in (run, run["metrics"], run["config"]):
        if key in source and not isinstance(source[key], (dict,)):
            return source[key]
    return None


def matches(value: Any, wanted: str) -> bool:
    if value is None:
        return wanted.lower() in ("none", "null", "")
    if isinstance(value, bool):
        return wanted.lower() in (("true", "1", "yes") if value else ("false", "0", "no"))
    if isinstance(value, (int, float)):
        try:
            return math.isclose(float(value), float(wanted), rel_tol=1e-9, abs_tol=1e-12)
        except ValueError:
            return False
    if isinstance(value, list):
        return ",".join(map(str, value)) == wanted.replace(" ", "")
    return str(value) == wanted


def parse_where(items: list[str]) -> dict[str, str]:
    where = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--where {item!r}: write KEY=VALUE, e.g. --where optimizer=adam")
        where[key.strip()] = value.strip()
    return where


def list_runs(root: Path, lab: str | None = None, where: dict[str, str] | None = None,
              sort: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Runs newest first, filtered by lab and KEY=VALUE pairs (row, metric or config keys);
    `sort` is a key, ascending, or KEY:desc."""
    if not (Path(root) / DB_NAME).exists():
        if not any(Path(root).glob("*/*/config.json")):
            return []
        reindex(root)  # runs made before the database existed (or with it deleted)
    with closing(connect(root)) as conn:
        query, args = "SELECT * FROM runs", []
        if lab:
            query, args = query + " WHERE lab = ?", [lab]
        runs = [decode(r, root) for r in conn.execute(query + " ORDER BY id DESC", args)]
    for key, wanted in (where or {}).items():
        runs = [r for r in runs if matches(_value(r, key), wanted)]
    if sort:
        key, _, order = sort.partition(":")
        if order not in ("", "asc", "desc"):
            raise UserError(f"--sort {sort!r}: write KEY, KEY:asc or KEY:desc")
        if runs and not any(isinstance(_value(r, key), (int, float)) for r in runs):
            # a misspelt key would leave the order as it was without a word
            keys = sorted({k for r in runs for source in (r, r["metrics"], r["config"])
                           for k, v in source.items() if isinstance(v, (int, float))
                           and not isinstance(v, bool)})
            raise UserError(f"--sort {key}: no listed run has a number for {key}; sort by one of: "
                            f"{', '.join(keys)}")
        present = [r for r in runs if isinstance(_value(r, key), (int, float))]
        absent = [r for r in runs if r not in present]
        present.sort(key=lambda r: _value(r, key), reverse=order == "desc")
        runs = present + absent  # runs without the key go last, whatever the order
    return runs[:limit] if limit else runs


def get_run(root: Path, run_id: str) -> dict[str, Any]:
    """One run by its id or a unique prefix of it (or its directory path)."""
    wanted = Path(run_id).name
    with closing(connect(root)) as conn:
        rows = [decode(r, root) for r in conn.execute("SELECT * FROM runs WHERE id LIKE ? ORDER BY id",
                                                 (wanted.replace("%", "") + "%",))]
    exact = [r for r in rows if r["id"] == wanted]
    if exact:
        return exact[0]
    if not rows:
        raise UserError(f"no run {run_id!r} in {Path(root) / DB_NAME}; `mllabs runs list` shows the "
                        "ids (`mllabs runs reindex` adds runs the database does not know)")
    if len(rows) > 1:
        raise UserError(f"{run_id!r} matches {len(rows)} runs ({', '.join(r['id'] for r in rows[:4])}"
                        f"{', ...' if len(rows) > 4 else ''}); give more of the id")
    return rows[0]


def remove_run(root: Path, run_id: str) -> dict[str, Any]:
    """Delete a run's row and its directory (which must lie inside the runs root)."""
    run = get_run(root, run_id)
    root = Path(root).resolve()
    path = (root / run["run_dir"]).resolve()
    if path == root or root not in path.parents:
        raise UserError(f"run {run['id']}'s directory {path} is outside {root}; remove it by hand")
    if path.exists():
        shutil.rmtree(path)
    with closing(connect(root)) as conn, conn:
        conn.execute("DELETE FROM runs WHERE id = ?", (run["id"],))
    return run
