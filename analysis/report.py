"""The report renderers' public entry point: ``report_json``, ``report_markdown``, ``report_html``.

The code lives in ``analysis.reports``; this module is the name callers import
(``from analysis.report import report_html``).
"""

from analysis.reports import report_html, report_json, report_markdown

__all__ = ["report_html", "report_json", "report_markdown"]
