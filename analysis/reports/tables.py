"""The report's decision tables as plain text cells, shared by the Markdown and HTML renderers.

One place decides what each table says (verdicts, the primary metric, shadows,
guardrails, power, settings), so the pull-request comment and the HTML page can
never disagree. How numbers are written is ``cells``; the traffic-split and
drift tables are ``integrity_tables``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from analysis.decisions import Analysis, VariantAnalysis
from analysis.difference import default_difference
from analysis.guardrails import GuardrailResult
from analysis.reports.cells import (
    DASH,
    MINUS,
    Table,
    correction_name,
    format_p,
    points,
    points_interval,
    signed_number,
    signed_pct,
    thousands,
)
from analysis.sufficient import is_proportion

__all__ = [
    "guardrail_table",
    "power_table",
    "primary_table",
    "settings_items",
    "shadow_table",
    "test_line",
    "verdict_table",
]


def test_line(analysis: Analysis) -> str:
    """Which test ran, at which level, with which correction."""
    s = analysis.data.settings
    challengers = len(analysis.variants)
    correction = correction_name(s.correction)
    across = f" across {challengers} challengers" if challengers > 1 else ""
    sides = {r.primary.alternative for r in analysis.variants if r.primary is not None}
    side = f"{sides.pop()} " if len(sides) == 1 else ""
    return (
        f"Test: {analysis.test}, α = {s.alpha:g}, {side}on '{s.primary_metric}' "
        f"({s.direction} is better); multiple-testing correction: {correction}{across}. "
        f"{analysis.data.analysis_unit.describe()}"
    )


def _why(rule: str, reason: str) -> str:
    # An SRM holds every variant for the same reason, stated once in the warning above.
    return (
        "held: the traffic split is off (see the sample-ratio warning)" if rule == "srm" else reason
    )


def verdict_table(analysis: Analysis) -> Table:
    """Variant | verdict | rule | why: the decision per challenger."""
    rows = tuple((v.variant, v.action, v.rule, _why(v.rule, v.reason)) for v in analysis.verdicts)
    return Table("Verdicts", ("variant", "verdict", "rule", "why"), rows, badge=1, code=2)


# Also the badge's CSS class in the HTML report: one word each.
_SHADOW_WORDS = {
    "harm": "harm",
    "non_inferior": "non-inferior",
    "undecided": "undecided",
    "no_data": "no-labels",
}


def shadow_table(analysis: Analysis) -> Table | None:
    """Shadow | metric | paired counts | accuracies | difference [CI] | McNemar p | verdict;
    None when no shadow was analysed."""
    if not analysis.shadows:
        return None
    rows = []
    for a in analysis.shadows:
        s, c = a.shadow, a.shadow.counts
        d = a.difference
        if not c.n:
            difference = DASH
        elif d.error:
            difference = f"{points(d.estimate)} pts (no interval: {d.message})"
        else:
            difference = f"{points(d.estimate)} pts {points_interval(d.ci_low, d.ci_high)}"
        rows.append(
            (
                s.name,
                f"{s.metric} vs {s.against or 'live'}",
                f"{thousands(c.both)} / {thousands(c.live_only)} / {thousands(c.shadow_only)} / "
                f"{thousands(c.neither)}",
                f"{c.live_accuracy:.2%} / {c.shadow_accuracy:.2%}" if c.n else DASH,
                difference,
                format_p(a.mcnemar.p_value) if c.n else DASH,
                _SHADOW_WORDS[a.verdict],
                a.reason,
                f"{thousands(s.shed)} / {thousands(s.late)}",
            )
        )
    settings = analysis.data.settings
    if settings.shadow_margin_relative is None:
        margin = f"{100 * settings.shadow_margin:g} pts"
    else:
        margin = (
            f"{settings.shadow_margin_relative:.3g} × the live model's accuracy (the ramp "
            "plan's non_inferiority_margin, as its shadow gate reads it)"
        )
    return Table(
        "Shadows: paired against the live answers of the same labelled requests",
        (
            "shadow", "metric", "both / live only / shadow only / neither", "live / shadow",
            "shadow − live [CI]", "McNemar p", "verdict", "why", "shed / late",
        ),
        tuple(rows),
        numeric=frozenset({2, 3, 4, 5}),
        badge=6,
        caption=(
            "Each labelled request that both answered is scored for both models. Verdict: "
            "harm when the one-sided sequential test shows the shadow worse (margin 0), else "
            f"non-inferior when shown no worse than {margin}; the interval is at "
            f"{1 - 2 * settings.alpha:.0%}, its ends the one-sided bounds those "
            "tests read; shed: requests not mirrored (too many calls in flight); late: answers "
            "that came after their feedback (scored when they came)."
        ),
    )  # fmt: skip


def _is_proportion(analysis: Analysis) -> bool:
    metric = analysis.data.champion.metrics.get(analysis.data.settings.primary_metric)
    return is_proportion(metric)


def _mean(value: float, proportion: bool) -> str:
    return f"{value:.2%}" if proportion else f"{value:.4g}"


def _lift(va: VariantAnalysis) -> str:
    r = va.primary
    if r is None:
        return DASH
    if r.error:
        return f"not tested: {r.message}"
    fmt = signed_pct if r.difference_type == "relative" else signed_number
    return f"{fmt(r.estimate)} [{fmt(r.ci_low)}, {fmt(r.ci_high)}]"


def primary_table(analysis: Analysis) -> Table:
    """Variant, n, mean, lift with its interval, p and adjusted p on the primary metric."""
    s = analysis.data.settings
    proportion = _is_proportion(analysis)
    champion = analysis.data.champion
    base = champion.metrics.get(s.primary_metric)
    rows = [
        (
            champion.name,
            "champion",
            thousands(base.n) if base else "0",
            _mean(base.mean, proportion) if base else DASH,
            "baseline",
            DASH,
            DASH,
        )
    ]
    for va in analysis.variants:
        r = va.primary
        rows.append(
            (
                va.variant,
                next(v.role for v in analysis.data.variants if v.name == va.variant),
                thousands(r.treatment_n) if r else "0",
                _mean(r.treatment_mean, proportion) if r else DASH,
                _lift(va),
                format_p(r.p_value) if r and not r.error else DASH,
                format_p(va.adjusted_p_value),
            )
        )
    level = f"{1 - s.alpha:.0%}"
    kinds = {va.primary.difference_type for va in analysis.variants if va.primary is not None}
    kind = " or ".join(sorted(kinds)) if kinds else "absolute"
    choices = [va.difference for va in analysis.variants if va.difference is not None]
    refused = sorted({choice.reason for choice in choices if choice.switched})
    return Table(
        f"Primary metric: {s.primary_metric}",
        ("variant", "role", "n", "mean", f"lift vs champion [{level} CI]", "p", "adjusted p"),
        tuple(rows),
        numeric=frozenset({2, 3, 4, 5, 6}),
        caption=f"{kind} lift; adjusted p uses the {correction_name(s.correction)} correction"
        + "".join(f"; {reason}" for reason in refused)
        + "".join(_stratified_note(va) for va in analysis.variants),
    )


def _stratified_note(va: VariantAnalysis) -> str:
    """What the pooled estimate would have said, beside the stratified one that decides."""
    if va.pooled is None or va.strata is None:
        return ""
    versions = ", ".join(f"v{version}" for version in va.strata.epochs)
    pooled = va.pooled
    fmt = signed_pct if pooled.difference_type == "relative" else signed_number
    said = f"{fmt(pooled.estimate)}, p {format_p(pooled.p_value)}" if not pooled.error else "-"
    return (
        f"; {va.variant} is compared within each epoch (config {versions}) and the epochs "
        f"combined, as the weights changed between them (all data pooled: {said})"
    )


def _guardrail_cell(result: GuardrailResult) -> str:
    """What was compared, for one guardrail: the values and the test or the ratio."""
    metric, test, lat = result.spec.metric, result.test, result.latency
    if metric == "error_rate" and test is not None:
        rates = f"{result.variant:.2%} vs {result.champion:.2%}"
        if test.error:
            return f"{rates} (not tested: {test.message})"
        if test.difference_type == "relative":
            return f"{rates} (Δ {signed_pct(test.estimate)}, p = {format_p(test.p_value)})"
        delta = f"{100 * test.estimate:+.2f}".replace("-", MINUS)
        return f"{rates} (Δ {delta} pp, p = {format_p(test.p_value)})"
    if metric == "mean_latency_ms" and test is not None:
        means = f"{result.variant:.3g} vs {result.champion:.3g} ms"
        if test.error:
            return f"{means} (not tested: {test.message})"
        return f"{means} (p = {format_p(test.p_value)})"
    if lat is not None and lat.conclusive:
        return f"{lat.treatment:.3g} vs {lat.champion:.3g} ms ({lat.ratio:.2f}×)"
    return result.message


_GUARDRAIL_STATUS = {"failed": "breached", "ok": "ok", "not checked": "not checked yet"}


def guardrail_table(analysis: Analysis) -> Table:
    """Every configured guardrail of each challenger against the champion, with its result."""
    rows: list[tuple[str, ...]] = []
    for va in analysis.variants:
        for result in va.guardrails:
            rows.append(
                (
                    va.variant,
                    result.spec.metric,
                    result.spec.text,
                    _guardrail_cell(result),
                    _GUARDRAIL_STATUS[result.status],
                )
            )
    if not analysis.data.settings.active_guardrails:
        rows = [
            (va.variant, "none configured", DASH, DASH, "none checked") for va in analysis.variants
        ]
    return Table(
        "Guardrails",
        ("variant", "guardrail", "limit", "variant vs champion", "status"),
        tuple(rows),
        caption="error rate and mean latency: one-sided sequential test against the limit; "
        "latency quantiles: from the histograms' buckets, over the limit fails",
    )


def _planned_effect(analysis: Analysis) -> str:
    s = analysis.data.settings
    base = analysis.data.champion.metrics.get(s.primary_metric)
    planned = s.difference or (default_difference(base) if base is not None else "relative")
    if planned == "relative":
        return f"a {s.mde:.1%} relative lift"
    return f"an absolute difference of {s.mde:g}"


def power_table(analysis: Analysis) -> Table:
    """Samples now against the planned sample per arm, and the time to a decision."""
    s = analysis.data.settings
    rows = []
    for va in analysis.variants:
        r = va.primary
        now = f"{thousands(r.control_n)} / {thousands(r.treatment_n)}" if r else DASH
        need = thousands(va.required_per_arm) if va.required_per_arm else DASH
        progress = DASH
        if r and va.required_per_arm:
            progress = f"{min(1.0, min(r.control_n, r.treatment_n) / va.required_per_arm):.0%}"
        rows.append((va.variant, now, need, progress, va.time_to_decision))
    return Table(
        "Power and time to a decision",
        ("variant", "n now (champion / variant)", "needed per arm", "progress", "time to decision"),
        tuple(rows),
        numeric=frozenset({1, 2, 3}),
        caption=f"planned to detect {_planned_effect(analysis)} (the MDE) with "
        f"{s.power:.0%} power at α = {s.alpha:g}",
    )


def settings_items(analysis: Analysis) -> Sequence[tuple[str, str]]:
    """The analysis settings as (name, value) pairs."""
    s = analysis.data.settings
    # The original guardrail keys only when they are what was checked.
    hidden = {"guardrails"}
    if s.guardrails is not None:
        hidden |= {"max_error_rate_increase", "max_p99_ratio"}
    values = [(f.name, getattr(s, f.name)) for f in dataclasses.fields(s) if f.name not in hidden]
    # The guardrails checked, however they were given (the original keys or the list).
    checked = "; ".join(f"{g.metric} {g.text}" for g in s.active_guardrails) or "none"
    items = [(name, DASH if value is None else str(value)) for name, value in values]
    return (*items, ("guardrails", checked))
