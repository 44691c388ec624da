"""The report renderers' public entry point: ``report_json``, ``report_markdown``,
``report_html``, and ``render`` (analyse + render in one format).

The code lives in ``analysis.reports``; this module is the name callers import
(``from analysis.report import report_html``). It stays free of Redis and
pydantic so ``abgate analyze`` starts fast.
"""

import json

from analysis.decisions import analyze
from analysis.inputs import ExperimentData
from analysis.reports import report_html, report_json, report_markdown

__all__ = ["FORMATS", "render", "report_html", "report_json", "report_markdown"]

FORMATS = ("json", "md", "html")


def render(data: ExperimentData, fmt: str) -> str:
    """The report of ``data`` as JSON, Markdown or HTML text."""
    analysis = analyze(data)
    if fmt == "json":
        return json.dumps(report_json(analysis), indent=2) + "\n"
    if fmt == "md":
        return report_markdown(analysis)
    if fmt == "html":
        return report_html(analysis)
    raise ValueError(f"unknown report format {fmt!r} (json, md, html)")
