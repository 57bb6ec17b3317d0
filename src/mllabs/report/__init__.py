"""Reports: figures and tables collected by a lab, rendered to Markdown and one HTML file."""

from mllabs.report.document import Report, format_cell, mean_std
from mllabs.report.render import render_run, write_index

__all__ = ["Report", "format_cell", "mean_std", "render_run", "write_index"]
