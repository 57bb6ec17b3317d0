"""report.json + metrics.json -> report.md and a self-contained report.html; runs/index.html."""

from __future__ import annotations

import base64
import json
import re
import time
from importlib import resources
from pathlib import Path

import jinja2
from markupsafe import Markup, escape

from mllabs.errors import UserError
from mllabs.files import atomic_write_text, read_json

_env = jinja2.Environment(
    loader=jinja2.FunctionLoader(
        lambda name: resources.files("mllabs.report").joinpath("templates", name).read_text("utf-8")),
    # HTML is escaped; Markdown is not (an apostrophe must stay an apostrophe in report.md)
    autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
    trim_blocks=True, lstrip_blocks=True)


_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def inline_markdown(text: str) -> Markup:
    """The little Markdown report text uses (`code`, **bold**) as HTML; everything else escaped."""
    html = str(escape(text))
    html = _CODE.sub(r"<code>\1</code>", html)
    return Markup(_BOLD.sub(r"<strong>\1</strong>", html))


_env.filters["md"] = inline_markdown


# metrics.json keeps fractions; the report prints them as percentages too (one convention)
_FRACTION = re.compile(r"(accuracy|sensitivity|specificity|reduction|share)(_ci95_(low|high))?$")
_LETTERS = re.compile(r"[A-Za-df-z]|[A-Za-z]{2}")  # letters other than a lone exponent e


def _flat_metrics(metrics: dict) -> list[tuple[str, str]]:
    from mllabs.report.document import format_cell

    out = []
    for k, v in metrics.items():
        text = format_cell(v)
        if _FRACTION.search(k) and isinstance(v, float) and -1 <= v <= 1:
            text = f"{v:.4f} ({100 * v:.2f} %)"
        out.append((k, text))
    return out


def column_alignment(columns: list[str], rows: list[list[str]]) -> list[str]:
    """"right" for a column of numbers (so digits line up), "left" for text."""
    def numeric(cell: str) -> bool:
        return any(ch.isdigit() for ch in cell) and not _LETTERS.search(cell)

    def is_numbers(i: int) -> bool:
        cells = [str(r[i]).strip() for r in rows if i < len(r) and str(r[i]).strip() not in ("", "—")]
        return bool(cells) and all(numeric(c) for c in cells)

    return ["right" if is_numbers(i) else "left" for i in range(len(columns))]


def anchor(heading: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-") or "section"


def _toc(doc: dict, has_metrics: bool) -> list[tuple[str, str]]:
    entries = [("Result", "result")]
    entries += [(s["heading"], anchor(s["heading"])) for s in doc["sections"]]
    if doc.get("predict_command") or doc.get("try_next"):
        entries.append(("What next", "what-next"))
    if has_metrics:
        entries.append(("All metrics", "all-metrics"))
    entries.append(("Environment", "environment"))
    return entries


def _embed(run_dir: Path, rel: str) -> str:
    path = run_dir / rel
    try:
        data = path.read_bytes()
    except OSError:
        raise UserError(f"{path} is missing; the run directory is incomplete: re-run the lab") from None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def load(run_dir: Path) -> tuple[dict, dict, dict]:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a folder; pass a run directory such as runs/auto-mpg/<stamp>-<id>")
    doc = read_json(run_dir / "report.json")
    metrics = read_json(run_dir / "metrics.json")
    env = read_json(run_dir / "env.json") if (run_dir / "env.json").exists() else {}
    return doc, metrics, env


def render_run(run_dir: Path) -> Path:
    """Write report.md and report.html from what the run saved; returns the HTML path."""
    run_dir = Path(run_dir)
    doc, metrics, env = load(run_dir)
    for section in doc["sections"]:
        section["anchor"] = anchor(section["heading"])
        for block in section["blocks"]:
            if block["kind"] == "table":
                block["align"] = column_alignment(block["columns"], block["rows"])
    flat = _flat_metrics(metrics.get("metrics", {}))
    key = doc.get("key_figure")
    key_block = next((b for s in doc["sections"] for b in s["blocks"]
                      if b["kind"] == "figure" and b["file"] == key), None)
    context = {"doc": doc, "result": metrics, "metrics": flat, "env": env,
               "run_dir": run_dir.name, "key": key_block, "toc": _toc(doc, bool(flat)),
               "status_line": _status_line(metrics, doc)}
    md = _env.get_template("report.md.j2").render(**context)
    atomic_write_text(run_dir / "report.md", md)
    images = {b["file"]: _embed(run_dir, b["file"]) for s in doc["sections"] for b in s["blocks"]
              if b["kind"] == "figure"}
    page = _env.get_template("report.html.j2").render(images=images, **context)
    atomic_write_text(run_dir / "report.html", page)
    return run_dir / "report.html"


def _status_line(result: dict, doc: dict) -> str:
    """What the results box says when the run has no result to headline."""
    status = result.get("status")
    if status == "completed":
        return "" if doc.get("headline") else (
            "This run's lab declared no headline when it ran; its numbers are under All metrics.")
    if status == "interrupted":
        return ("The run was interrupted before it finished" + (f" ({result['reason']})" if
                result.get("reason") else "") + "; the sections below show what it reached, and "
                "the Interrupted section says how to resume it.")
    if status == "diverged":
        return "Training diverged (the loss became NaN or infinite); the report says where and what to change."
    error = result.get("metrics", {}).get("error")
    return f"The run failed{': ' + error if error else ''}."


def write_index(runs_root: Path) -> Path:
    """runs/index.html: every run under runs_root, newest first (running ones too), with its lab's
    title, status, headline metric and a link to its report."""
    runs_root = Path(runs_root)
    rows = []
    for config_path in runs_root.glob("*/*/config.json"):
        run_dir = config_path.parent
        result = _read(run_dir / "metrics.json") or {"status": "running"}
        doc = _read(run_dir / "report.json") or {}
        lab = result.get("lab") or (_read(config_path) or {}).get("lab") or run_dir.parent.name
        rows.append({
            "lab": lab, "title": doc.get("title") or _lab_title(lab), "run": run_dir.name,
            "status": result.get("status", "?"), "seconds": result.get("seconds"),
            "headline": _headline_metric(doc, result.get("metrics", {})),
            "html": f"{run_dir.parent.name}/{run_dir.name}/report.html",
            "md": f"{run_dir.parent.name}/{run_dir.name}/report.md",
            "has_html": (run_dir / "report.html").exists(),
            "has_md": (run_dir / "report.md").exists(),
        })
    # the run folder's name starts with its start time (YYYYMMDD-HHMMSS), across labs
    rows.sort(key=lambda r: r["run"], reverse=True)
    page = _env.get_template("index.html.j2").render(
        rows=rows, generated=time.strftime("%Y-%m-%d %H:%M:%S"))
    atomic_write_text(runs_root / "index.html", page)
    return runs_root / "index.html"


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _lab_title(lab: str) -> str:
    from mllabs.labs import LABS, get_lab

    return get_lab(lab).TITLE if lab in LABS else lab


def headline_value(key: str, value) -> str:
    """One metric as the index and `runs list` show it: fractions as percentages."""
    from mllabs.report.document import format_cell

    if _FRACTION.search(key) and isinstance(value, float) and -1 <= value <= 1:
        return f"{100 * value:.2f} %"
    return format_cell(value)


def _headline_metric(doc: dict, metrics: dict) -> str:
    key = doc.get("headline_metric")
    if key and key in metrics:
        return f"{key.replace('_', ' ')} {headline_value(key, metrics[key])}"
    return ""
