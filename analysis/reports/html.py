"""The self-contained HTML report: one file, inline CSS and SVG, no scripts, no network.

Reading order: the SRM warning (if any) and the verdicts with coloured
badges, then the three figures (effect over time, traffic split, latency),
then the same tables as the Markdown report. Every user-provided string
(experiment, variant and metric names, messages) is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from analysis.decisions import Analysis
from analysis.reports.cells import Table
from analysis.reports.integrity_tables import (
    drift_status,
    drift_table,
    split_rows,
    srm_detail,
    srm_epoch_table,
    srm_status,
    srm_table,
)
from analysis.reports.plots import (
    LatencySeries,
    SplitRow,
    effect_figure,
    latency_figure,
    split_figure,
    variant_colours,
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
from analysis.timeline import effect_over_time

__all__ = ["report_html"]

CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #fff; color: #1f2328;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
main { max-width: 1160px; margin: 0 auto; padding: 20px 32px 40px; }
header h1 { font-size: 24px; margin: 0; }
header p { margin: 2px 0 0; color: #57606a; font-size: 14px; }
h2 { font-size: 18px; margin: 28px 0 8px; }
.srm-alert { margin: 16px 0 8px; padding: 12px 16px; border: 1px solid #cf222e;
  border-left: 8px solid #cf222e; background: #ffebe9; border-radius: 6px; }
.srm-alert strong { color: #82071e; font-size: 17px; }
.srm-alert p { margin: 4px 0 8px; }
.srm-ok { margin: 10px 0 0; font-size: 14px; color: #3d444d; }
.srm-ok::before { content: "✓ "; color: #1a7f37; font-weight: 700; }
.srm-unchecked::before { content: "… "; color: #9a6700; }
table { border-collapse: collapse; width: 100%; font-size: 14px; margin: 4px 0; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #d8dee4;
  vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
caption { caption-side: bottom; text-align: left; color: #57606a; font-size: 13px;
  padding-top: 4px; }
.verdicts td { font-size: 15px; padding: 9px 10px; }
.verdicts td:first-child { font-weight: 600; white-space: nowrap; }
.badge { display: inline-block; min-width: 7.5em; text-align: center; padding: 2px 10px;
  border-radius: 999px; font-weight: 700; font-size: 13px; letter-spacing: .04em;
  text-transform: uppercase; white-space: nowrap; }
.badge-promote { background: #1a7f37; color: #fff; }
.badge-rollback { background: #cf222e; color: #fff; }
.badge-hold, .badge-inconclusive { background: #f2c14e; color: #3b2300; }
.badge-continue { background: #d0d7de; color: #1f2328; }
.badge-harm { background: #cf222e; color: #fff; }
.badge-non-inferior { background: #1a7f37; color: #fff; }
.badge-undecided, .badge-no-labels { background: #d0d7de; color: #1f2328; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  background: #f6f8fa; padding: 1px 4px; border-radius: 4px; }
.dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%;
  margin-right: 6px; }
figure { margin: 0; }
figcaption { font-size: 14px; color: #3d444d; margin-bottom: 4px; }
figcaption h2 { margin: 0 0 2px; }
figure svg { display: block; width: 100%; height: auto; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
.figures { display: grid; grid-template-columns: 1fr 1fr; gap: 24px 32px; margin-top: 28px; }
.figures .wide { grid-column: 1 / -1; }
@media (max-width: 900px) { .figures { grid-template-columns: 1fr; } }
footer { margin-top: 28px; color: #57606a; font-size: 13px; }
"""


def _table(table: Table, colours: Mapping[str, str], css_class: str = "") -> str:
    head = "".join(
        f'<th{" class=num" if i in table.numeric else ""} scope="col">{escape(h)}</th>'
        for i, h in enumerate(table.headers)
    )
    rows = []
    for row in table.rows:
        cells = []
        for i, value in enumerate(row):
            content = escape(value)
            if i == 0 and value in colours:
                content = f'<span class="dot" style="background:{colours[value]}"></span>{content}'
            elif i == table.badge:
                content = f'<span class="badge badge-{escape(value)}">{content}</span>'
            elif i == table.code:
                content = f"<code>{content}</code>"
            cls = ' class="num"' if i in table.numeric else ""
            cells.append(f"<td{cls}>{content}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    caption = f"<caption>{escape(table.caption)}</caption>" if table.caption else ""
    attr = f' class="{css_class}"' if css_class else ""
    return (
        f"<table{attr}>{caption}<thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _srm(analysis: Analysis, colours: Mapping[str, str]) -> str:
    srm = analysis.srm
    if not srm.mismatch:
        cls = "srm-ok" if srm.checked else "srm-ok srm-unchecked"
        return f'<p class="{cls}">{escape(srm_status(analysis))}</p>'
    return (
        '<section class="srm-alert" role="alert">'
        "<strong>Sample-ratio mismatch: every verdict is on hold.</strong>"
        f"<p>{escape(srm_detail(analysis))}.</p>"
        f"{_table(srm_table(analysis), colours)}{_epoch_table(analysis, colours)}</section>"
    )


def _epoch_table(analysis: Analysis, colours: Mapping[str, str]) -> str:
    table = srm_epoch_table(analysis)
    return "" if table is None else _table(table, colours)


def _figures(analysis: Analysis, colours: Mapping[str, str]) -> str:
    data = analysis.data
    s = data.settings
    challengers = [v.variant for v in analysis.variants]
    relative = any(
        v.primary is not None and v.primary.difference_type == "relative" for v in analysis.variants
    )
    kind = "sequence" if s.sequential else "interval"
    interval = f"{1 - s.alpha:.0%} confidence {kind}"
    # One axis, one scale: a variant reported on the other scale is left off the plot.
    points = [p for p in effect_over_time(data) if (p.difference_type == "relative") == relative]
    effect = effect_figure(points, challengers, colours, relative=relative, interval=interval)
    split = split_figure(
        [
            SplitRow(r.variant, 100 * r.configured_share, 100 * r.observed_share, r.observed)
            for r in split_rows(analysis)
        ],
        colours,
        mismatch=analysis.srm.mismatch,
    )
    latency = latency_figure(
        [LatencySeries(v.name, v.latency) for v in data.variants if v.latency is not None],
        colours,
    )
    metric = escape(s.primary_metric)
    return (
        '<section class="figures">'
        '<figure class="wide"><figcaption><h2>Effect over time</h2>'
        f"Cumulative lift of each challenger over the champion on <b>{metric}</b> at the end "
        f"of each time window; the shaded band is the {interval}. A band clear of the "
        f"dashed zero line is a significant difference.</figcaption>{effect}</figure>"
        "<figure><figcaption><h2>Traffic split</h2>Share of requests each variant received "
        "(filled) against the share the weights in force called for (outlined)."
        f"</figcaption>{split}</figure>"
        "<figure><figcaption><h2>Latency</h2>Request latency per variant from the recorded "
        "histogram buckets (log scale); dashed lines mark each variant's p99."
        f"</figcaption>{latency}</figure>"
        "</section>"
    )


def _drift(analysis: Analysis, colours: Mapping[str, str]) -> str:
    status, table = drift_status(analysis), drift_table(analysis)
    if status is None or table is None:
        return ""
    assert analysis.data.drift is not None
    if analysis.data.drift.alerts:
        lead = (
            f'<section class="srm-alert" role="alert"><strong>{escape(status)}</strong></section>'
        )
    else:
        lead = f'<p class="srm-ok">{escape(status)}</p>'
    return f"<h2>{escape(table.title)}</h2>{lead}{_table(table, colours)}"


def _shadows(analysis: Analysis, colours: Mapping[str, str]) -> str:
    table = shadow_table(analysis)
    if table is None:
        return ""
    return f'<h2 id="shadows">{escape(table.title)}</h2>{_table(table, colours)}'


def report_html(analysis: Analysis) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG, no scripts)."""
    data = analysis.data
    colours = variant_colours([v.name for v in data.variants], data.champion.name)
    name = escape(analysis.experiment)
    tables = "".join(
        f"<h2>{escape(t.title)}</h2>{_table(t, colours)}"
        for t in (primary_table(analysis), guardrail_table(analysis), power_table(analysis))
    )
    if not analysis.srm.mismatch:
        tables += f"<h2>Traffic split</h2>{_table(srm_table(analysis), colours)}"
        tables += _epoch_table(analysis, colours)
    tables += _drift(analysis, colours)
    settings = ", ".join(f"{k}={v}" for k, v in settings_items(analysis))
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>abgate report: {name}</title><style>{CSS}</style></head><body><main>"
        f"<header><h1>{name}</h1><p>abgate significance report · {escape(analysis.test)}"
        f"</p></header>{_srm(analysis, colours)}"
        f'<h2 id="verdicts">Verdicts</h2>'
        f"{_table(verdict_table(analysis), colours, 'verdicts')}"
        f"{_shadows(analysis, colours)}"
        f"{_figures(analysis, colours)}{tables}"
        f"<footer><p>{escape(test_line(analysis))}</p>"
        f"<p>Settings: {escape(settings)}</p></footer>"
        "</main></body></html>\n"
    )
