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


def _flat_metrics(metrics: dict) -> list[tuple[str, str]]:
    from mllabs.report.document import format_cell

    return [(k, format_cell(v)) for k, v in metrics.items()]


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
    context = {"doc": doc, "result": metrics, "metrics": _flat_metrics(metrics.get("metrics", {})),
               "env": env, "run_dir": run_dir.name}
    md = _env.get_template("report.md.j2").render(**context)
    atomic_write_text(run_dir / "report.md", md)
    images = {b["file"]: _embed(run_dir, b["file"]) for s in doc["sections"] for b in s["blocks"]
              if b["kind"] == "figure"}
    page = _env.get_template("report.html.j2").render(images=images, **context)
    atomic_write_text(run_dir / "report.html", page)
    return run_dir / "report.html"


def write_index(runs_root: Path) -> Path:
    """runs/index.html: every run under runs_root with status, key metrics and links."""
    runs_root = Path(runs_root)
    rows = []
    for metrics_path in sorted(runs_root.glob("*/*/metrics.json"), reverse=True):
        run_dir = metrics_path.parent
        try:
            result = json.loads(metrics_path.read_text("utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        values = result.get("metrics", {})
        key = [(k, v) for k, v in values.items() if isinstance(v, (int, float))
               and not isinstance(v, bool)][:4]
        rows.append({
            "lab": result.get("lab", run_dir.parent.name), "run": run_dir.name,
            "status": result.get("status", "?"), "seconds": result.get("seconds"),
            "metrics": ", ".join(f"{k} = {v:.4g}" for k, v in key),
            "html": f"{run_dir.parent.name}/{run_dir.name}/report.html",
            "md": f"{run_dir.parent.name}/{run_dir.name}/report.md",
            "has_html": (run_dir / "report.html").exists(),
        })
    page = _env.get_template("index.html.j2").render(
        rows=rows, generated=time.strftime("%Y-%m-%d %H:%M:%S"))
    atomic_write_text(runs_root / "index.html", page)
    return runs_root / "index.html"
