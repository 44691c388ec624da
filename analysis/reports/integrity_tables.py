"""The tables and lines on whether the experiment can be trusted: traffic split and drift.

The sample-ratio check (overall and per epoch) and the data-drift check, as
cells shared by the Markdown and HTML reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from analysis.decisions import Analysis
from analysis.reports.cells import DASH, Table, format_p, thousands

__all__ = [
    "SplitRow",
    "drift_status",
    "drift_table",
    "split_rows",
    "srm_detail",
    "srm_epoch_table",
    "srm_status",
    "srm_table",
]


def srm_status(analysis: Analysis) -> str:
    """One line on the sample-ratio check (the warning itself when there is a mismatch)."""
    srm = analysis.srm
    if srm.mismatch:
        return f"Sample-ratio mismatch: {srm.message}"
    if not srm.checked:
        return f"Sample-ratio check not run: {srm.message}"
    return f"Sample-ratio check passed: {srm.message}"


@dataclass(frozen=True)
class SplitRow:
    """One arm of the split check: the share its weights called for and what it got."""

    variant: str
    configured_share: float
    observed_share: float
    observed: int
    expected: float


def split_rows(analysis: Analysis) -> list[SplitRow]:
    """The arms the split check counted. The configured share is the expected share under
    the weights in force when each request was served (per epoch), not today's weights."""
    srm = analysis.srm
    if not srm.arms:  # nothing checked: the variants against their current weights
        weights = {v.name: v.weight for v in analysis.data.variants}
        total_weight = sum(weights.values()) or 1.0
        total = sum(v.requests for v in analysis.data.variants) or 1
        return [
            SplitRow(
                v.name,
                weights[v.name] / total_weight,
                v.requests / total,
                v.requests,
                total * weights[v.name] / total_weight,
            )
            for v in analysis.data.variants
        ]
    total = sum(srm.observed) or 1
    total_expected = sum(srm.expected) or 1.0
    return [
        SplitRow(arm, expected / total_expected, observed / total, observed, expected)
        for arm, observed, expected in zip(srm.arms, srm.observed, srm.expected, strict=True)
    ]


def srm_table(analysis: Analysis) -> Table:
    """Observed against expected requests per arm (summed over the epochs checked)."""
    srm = analysis.srm
    rows = tuple(
        (
            row.variant,
            f"{100 * row.configured_share:.1f}%",
            thousands(row.observed),
            f"{100 * row.observed_share:.1f}%",
            f"{row.expected:,.0f}",
        )
        for row in split_rows(analysis)
    )
    if srm.epochs:
        checked = sum(c.adjusted_p_value is not None for c in srm.epochs)
        caption = (
            f"each epoch against its own weights ({checked} checked); smallest Holm-adjusted "
            f"p = {srm.p_value:.3g}, flagged below {srm.threshold:g}"
        )
    else:
        caption = f"chi-square p = {srm.p_value:.3g}, flagged below {srm.threshold:g}"
    return Table(
        "Traffic split",
        ("variant", "configured", "observed requests", "observed share", "expected requests"),
        rows,
        numeric=frozenset({1, 2, 3, 4}),
        caption=caption,
    )


def _shares(arms: Sequence[str], values: Sequence[float]) -> str:
    total = sum(values) or 1.0
    return " / ".join(f"{arm} {100 * v / total:.1f}%" for arm, v in zip(arms, values, strict=True))


def srm_epoch_table(analysis: Analysis) -> Table | None:
    """One row per epoch: its weights, the split observed, the p-values (None: no epochs)."""
    srm = analysis.srm
    if not srm.epochs:
        return None
    rows = []
    for check in srm.epochs:
        result, epoch = check.result, check.epoch
        if check.adjusted_p_value is None:
            status, p, adjusted = "not checked: " + result.message, DASH, DASH
        else:
            status = "MISMATCH" if check.mismatch else "ok"
            p, adjusted = format_p(result.p_value), format_p(check.adjusted_p_value)
        weights = epoch.weights or {}
        rows.append(
            (
                epoch.label,
                _shares(tuple(weights), tuple(weights.values())) if weights else DASH,
                _shares(result.arms, result.observed) if result.arms else DASH,
                thousands(sum(result.observed)),
                p,
                adjusted,
                status,
            )
        )
    return Table(
        "Traffic split per epoch",
        ("epoch", "weights", "observed", "requests", "chi-square p", "Holm p", "status"),
        tuple(rows),
        numeric=frozenset({3, 4, 5}),
        caption=(
            "An epoch is a config version: its weights and model versions. Neighbouring "
            "epochs that routed alike are checked together."
        ),
    )


def drift_status(analysis: Analysis) -> str | None:
    """One line on data drift (None when no training reference was stored to check against)."""
    drift = analysis.data.drift
    if drift is None or not drift.variants:
        return None
    rule = f"PSI > {drift.threshold:g} with at least {drift.min_samples:,} sampled requests"
    if drift.lookback_s:
        rule += f" in the last {drift.lookback_s:g} s"
    if not drift.alerts:
        return f"No data drift ({rule})."
    named = "; ".join(
        f"{variant} {check.name} PSI {check.psi:.3f}" for variant, check in drift.alerts
    )
    return f"Data drift ({rule}): {named}."


def drift_table(analysis: Analysis) -> Table | None:
    """PSI and chi-square p-value of every checked feature and prediction, per variant."""
    drift = analysis.data.drift
    if drift is None or not drift.variants:
        return None
    rows = tuple(
        (
            v.variant,
            check.name,
            thousands(check.n),
            f"{check.psi:.3f}",
            format_p(check.p_value),
            "DRIFT" if check.alert else ("ok" if check.checked else "too few samples"),
        )
        for v in drift.variants
        for check in (*v.features, *v.predictions)
    )
    return Table(
        "Data drift against the training reference",
        ("variant", "feature", "samples", "PSI", "chi-square p", "status"),
        rows,
        numeric=frozenset({2, 3, 4}),
        caption=(
            f"Alert when PSI > {drift.threshold:g} on at least {drift.min_samples:,} samples; "
            "bins are the training data's deciles (features) and the holdout predictions."
        ),
    )


def srm_detail(analysis: Analysis) -> str:
    """The SRM message without its "sample ratio mismatch:" lead (the heading says that)."""
    message = analysis.srm.message
    lead = "sample ratio mismatch: "
    if message.startswith(lead):
        message = message[len(lead) :]
    return message[:1].upper() + message[1:]
