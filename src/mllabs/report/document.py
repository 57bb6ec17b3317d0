"""A lab's report as data: sections of text, tables and figures, saved as report.json.

Labs add blocks while they run; render.py turns report.json (plus metrics.json) into
report.md and a self-contained report.html, so `mllabs report RUN_DIR` can redo that later
without training anything.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Sequence

import matplotlib.pyplot as plt

from mllabs.files import atomic_write_bytes, write_json
from mllabs.runs import Run


def format_cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 1000 else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.1f}"
    if hasattr(value, "item"):  # numpy scalar
        return format_cell(value.item())
    return str(value)


def mean_std(values: Sequence[float], digits: int = 3) -> str:
    """'1.234 ± 0.056' over seeds; a single value prints alone."""
    import numpy as np

    arr = np.asarray(values, float)
    if len(arr) == 1:
        return f"{arr[0]:.{digits}f}"
    return f"{arr.mean():.{digits}f} ± {arr.std(ddof=1):.{digits}f}"


class Report:
    def __init__(self, run: Run, title: str, summary: str):
        self.run = run
        self.doc: dict[str, Any] = {"title": title, "lab": run.lab, "summary": summary,
                                    "sections": []}

    def section(self, heading: str, intro: str = "") -> "Report":
        self.doc["sections"].append({"heading": heading, "blocks": []})
        if intro:
            self.text(intro)
        return self

    def _add(self, block: dict) -> None:
        if not self.doc["sections"]:
            self.section("Results")
        self.doc["sections"][-1]["blocks"].append(block)

    def text(self, text: str) -> None:
        self._add({"kind": "text", "text": text.strip()})

    def table(self, rows: Sequence[dict[str, Any]] | Any, caption: str,
              columns: Sequence[str] | None = None, index: bool = False) -> None:
        """A list of row dicts, or a pandas DataFrame (its index kept with index=True)."""
        if hasattr(rows, "to_dict"):
            frame = rows.reset_index() if index else rows
            rows = frame.to_dict(orient="records")
        rows = list(rows)
        columns = list(columns or (rows[0].keys() if rows else []))
        cells = [[format_cell(row.get(c)) for c in columns] for row in rows]
        self._add({"kind": "table", "caption": caption, "columns": [str(c) for c in columns],
                   "rows": cells})

    def figure(self, fig: plt.Figure, name: str, caption: str, *, conclusion: str = "",
               key: bool = False) -> Path:
        """`caption` says what is drawn; `conclusion`, one sentence from this run's numbers, what
        it shows. `key=True` makes it the figure of the results box at the top of the report
        (one per report; the last one marked wins)."""
        path = self.run.figures / f"{name}.png"
        buf = io.BytesIO()
        # "tight" grows the canvas to whatever sticks out (colorbar labels, outside legends)
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", pad_inches=0.08)
        plt.close(fig)
        atomic_write_bytes(path, buf.getvalue())
        block = {"kind": "figure", "file": f"figures/{name}.png", "caption": caption}
        if conclusion:
            block["conclusion"] = conclusion.strip()
        self._add(block)
        if key:
            self.doc["key_figure"] = block["file"]
        return path

    def try_next(self, items: Sequence[tuple[str, str]]) -> None:
        """Ready commands that end the report, each with why it is worth running: (command, why)."""
        self.doc["try_next"] = [{"command": c, "why": w} for c, w in items]

    def save(self, command: str) -> None:
        self.doc["command"] = command
        write_json(self.run.path / "report.json", self.doc)
