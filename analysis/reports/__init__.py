"""Report renderers: JSON, Markdown (for a pull request) and self-contained HTML.

Pure functions of an ``Analysis``; the caller writes the files.

- ``json_report``: machine-readable data, SRM first.
- ``markdown``: SRM warning, verdict table, then the evidence tables.
- ``html``: one page with inline CSS and SVG figures (``plots`` on ``svg``).
- ``tables``: what each table says, shared by Markdown and HTML.
"""

from analysis.reports.html import report_html
from analysis.reports.json_report import report_json
from analysis.reports.markdown import report_markdown

__all__ = ["report_html", "report_json", "report_markdown"]
