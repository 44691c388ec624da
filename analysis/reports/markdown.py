"""The pull-request report: SRM first, then the verdict table, then the evidence."""

from __future__ import annotations

import re

from analysis.decisions import Analysis
from analysis.reports.cells import Table
from analysis.reports.integrity_tables import (
    drift_status,
    drift_table,
    srm_detail,
    srm_epoch_table,
    srm_status,
    srm_table,
)
from analysis.reports.tables import (
    guardrail_table,
    power_table,
    primary_table,
    settings_items,
    shadow_table,
    test_line,
    verdict_table,
)

__all__ = ["report_markdown"]

ACTION_MARKS = {
    "promote": "✅ promote",
    "rollback": "⛔ rollback",
    "hold": "⏸️ hold",
    "inconclusive": "⚠️ inconclusive",
    "continue": "⏳ continue",
}


# "<" that could open a tag or comment, "&" that could spell an entity; "< 0.001" stays.
_HTML_START = re.compile(r"<(?=[A-Za-z/!?])")
_ENTITY_START = re.compile(r"&(?=[A-Za-z#])")


def _cell(value: str) -> str:
    """Text that cannot break a table row or inject HTML into the rendered comment."""
    value = _ENTITY_START.sub("&amp;", value)
    value = _HTML_START.sub("&lt;", value)
    return value.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _table(table: Table, *, heading: bool = True) -> list[str]:
    lines = [f"### {_cell(table.title)}", ""] if heading else []
    lines.append("| " + " | ".join(_cell(h) for h in table.headers) + " |")
    lines.append(
        "|"
        + "|".join("---:" if i in table.numeric else "---" for i in range(len(table.headers)))
        + "|"
    )
    for row in table.rows:
        cells = [ACTION_MARKS.get(c, c) if i == table.badge else c for i, c in enumerate(row)]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if table.caption:
        lines += ["", f"<sub>{_cell(table.caption)}</sub>"]
    return [*lines, ""]


def _srm_block(analysis: Analysis) -> list[str]:
    if not analysis.srm.mismatch:
        return [f"**SRM:** {_cell(srm_status(analysis))}", ""]
    lines = [
        "> [!WARNING]",
        "> **Sample-ratio mismatch: every verdict is on hold.**",
        f"> {_cell(srm_detail(analysis))}.",
        ">",
    ]
    lines += ["> " + line if line else ">" for line in _table(srm_table(analysis), heading=False)]
    epochs = srm_epoch_table(analysis)
    if epochs is not None:
        lines += ["> " + line if line else ">" for line in _table(epochs, heading=False)]
    return [*lines[:-1], ""]


def _drift_block(analysis: Analysis) -> list[str]:
    status, table = drift_status(analysis), drift_table(analysis)
    if status is None or table is None:
        return []
    assert analysis.data.drift is not None
    lead = f"> [!WARNING]\n> **{_cell(status)}**" if analysis.data.drift.alerts else _cell(status)
    return [f"### {_cell(table.title)}", "", lead, "", *_table(table, heading=False)]


def report_markdown(analysis: Analysis) -> str:
    """The report as GitHub-flavoured Markdown, for a pull request or a terminal.

    Order: title; the SRM warning when the split is off (otherwise one SRM
    status line); the verdict table; the primary metric, guardrails and power
    tables; data drift; which test ran and the correction used; the settings.
    """
    lines = [f"## abgate report: {_cell(analysis.experiment)}", ""]
    lines += _srm_block(analysis)
    lines += _table(verdict_table(analysis))
    shadows = shadow_table(analysis)
    if shadows is not None:
        lines += _table(shadows)
    lines += _table(primary_table(analysis))
    lines += _table(guardrail_table(analysis))
    lines += _table(power_table(analysis))
    lines += _drift_block(analysis)
    lines += [_cell(test_line(analysis)), ""]
    settings = ", ".join(f"{k}={v}" for k, v in settings_items(analysis))
    lines += [f"<sub>Settings: {_cell(settings)}</sub>", ""]
    return "\n".join(lines)
