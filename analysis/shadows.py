"""What the paired tests say about each shadow: the analysis's view of mirrored models.

A shadow answers the same requests as the live model; once their labels come
back, each labelled request falls in one of four cells (both right, live only,
shadow only, neither; ``analysis.paired.PairedCounts``). This module turns one
shadow's counts into what ``abgate report``, ``analyze``, ``status`` and the
dashboard show: the accuracy difference shadow − live with its interval, the
exact McNemar test, and the verdict of the sequential paired tests a shadow
gate asks (harm first, then non-inferiority). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from analysis.paired import (
    McNemarResult,
    PairedCounts,
    mcnemar_exact,
    paired_harm_test,
    paired_mean_sequential_test,
    paired_non_inferiority_test,
    paired_sequential_test,
    paired_t_test,
    paired_z_test,
)
from analysis.results import TestResult
from analysis.sufficient import MetricStats

__all__ = [
    "DEFAULT_SHADOW_MARGIN",
    "SHADOW_VERDICTS",
    "ShadowAnalysis",
    "ShadowData",
    "ShadowVerdict",
    "analyze_shadow",
    "counts_difference",
    "relative_margin",
]

DEFAULT_SHADOW_MARGIN = 0.01
"""Non-inferiority margin in accuracy points (0.01 = one point) unless configured."""

ShadowVerdict = Literal["harm", "non_inferior", "undecided", "no_data"]
SHADOW_VERDICTS: tuple[ShadowVerdict, ...] = ("harm", "non_inferior", "undecided", "no_data")


@dataclass(frozen=True)
class ShadowData:
    """One shadow's paired outcomes on one metric, and what became of its mirrored calls.

    ``counts`` are the label feedback's paired counts; ``squared_error`` the
    sufficient statistics (n, Σd, Σd²) of d = shadow's squared error − live's, for
    numeric ``value`` feedback. ``against`` names the live variant the pairs were
    scored against (None: whichever variant answered each request). ``shed``:
    requests not mirrored (too many calls in flight); ``late``: answers that came
    after their request's feedback (scored on arrival against its label).
    """

    name: str
    metric: str
    counts: PairedCounts = field(default_factory=lambda: PairedCounts(0, 0, 0, 0))
    squared_error: MetricStats | None = None
    model_version: str | None = None
    against: str | None = None
    requests: int = 0
    errors: int = 0
    shed: int = 0
    late: int = 0


@dataclass(frozen=True)
class ShadowAnalysis:
    """The paired tests of one shadow and the verdict a shadow gate would reach.

    ``difference``: the accuracy difference shadow − live with its two-sided
    interval at level 1 − 2α (the two one-sided confidence sequences at α each
    when the analysis is sequential, else the Wald interval), whose ends are the
    one-sided bounds the verdict's tests read. ``verdict``: ``harm`` when the
    one-sided test shows the shadow worse than live (margin 0), else
    ``non_inferior`` when it is shown no worse than ``margin``, else
    ``undecided``; ``no_data`` before any labelled request was scored for both.
    Harm is asked first: a shadow shown worse is never passed, however small
    the gap.
    """

    shadow: ShadowData
    difference: TestResult
    mcnemar: McNemarResult
    non_inferiority: TestResult
    harm: TestResult
    verdict: ShadowVerdict
    reason: str
    margin: float
    squared_error: TestResult | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (infinite interval ends as floats; callers make them JSON)."""
        s, c = self.shadow, self.shadow.counts
        return {
            "shadow": s.name,
            "model_version": s.model_version,
            "metric": s.metric,
            "against": s.against or "live",
            "paired": {
                "both": c.both,
                "live_only": c.live_only,
                "shadow_only": c.shadow_only,
                "neither": c.neither,
                "n": c.n,
            },
            "live_accuracy": c.live_accuracy if c.n else None,
            "shadow_accuracy": c.shadow_accuracy if c.n else None,
            "difference": _test(self.difference),
            "mcnemar_exact": {
                "statistic": self.mcnemar.statistic,
                "p_value": self.mcnemar.p_value,
                "discordant": self.mcnemar.discordant,
                "message": self.mcnemar.message,
            },
            "non_inferiority": {**_test(self.non_inferiority), "margin": self.margin},
            "harm": _test(self.harm),
            "verdict": self.verdict,
            "reason": self.reason,
            "squared_error": None if self.squared_error is None else _test(self.squared_error),
            "calls": {"requests": s.requests, "errors": s.errors, "shed": s.shed, "late": s.late},
        }


def _test(result: TestResult) -> dict[str, Any]:
    return {
        "test": result.test,
        "estimate": result.estimate,
        "ci": [result.ci_low, result.ci_high],
        "p_value": result.p_value,
        "significant": result.significant,
        "message": result.message,
    }


def _points(value: float) -> str:
    return f"{100 * value:+.2f} pts"


def analyze_shadow(
    shadow: ShadowData,
    *,
    alpha: float = 0.05,
    sequential: bool = True,
    tuning: float = 5000.0,
    margin: float = DEFAULT_SHADOW_MARGIN,
) -> ShadowAnalysis:
    """Every paired test of ``shadow`` and the gate's verdict.

    ``tuning`` (N*) is the planned number of labelled requests; ``margin`` the
    non-inferiority margin in accuracy points.
    """
    counts = shadow.counts
    non_inferiority = paired_non_inferiority_test(
        counts, margin=margin, alpha=alpha, tuning=tuning, sequential=sequential
    )
    harm = paired_harm_test(counts, alpha=alpha, tuning=tuning, sequential=sequential)
    # The interval shown is two-sided at 1 - 2·alpha, its ends the one-sided bounds the
    # harm and non-inferiority tests read, so the verdict can be read off it (a 95 %
    # interval crossing 0 beside a "harm" verdict would contradict it).
    if sequential:
        difference = _one_sided_ends(
            paired_sequential_test(counts, alpha=2 * alpha, tuning=tuning),
            non_inferiority,
            harm,
            paired_sequential_test(counts, alternative="greater", alpha=alpha, tuning=tuning),
        )
    else:  # the fixed test's two one-sided bounds at alpha are its two-sided interval
        difference = paired_z_test(counts, alpha=2 * alpha)
    verdict: ShadowVerdict
    if counts.n == 0:
        verdict, reason = "no_data", "no labelled request has been scored for both models yet"
    elif harm.significant:
        verdict = "harm"
        reason = (
            f"shadow worse than live: {_points(harm.estimate)}, upper bound "
            f"{_points(harm.ci_high)} < 0 on {counts.n:,} paired labels"
        )
    elif non_inferiority.significant:
        verdict = "non_inferior"
        reason = (
            f"shadow no worse than live by {100 * margin:.3g} pts: "
            f"{_points(counts_difference(counts))}, lower bound "
            f"{_points(non_inferiority.ci_low)} on {counts.n:,} paired labels"
        )
    else:
        verdict = "undecided"
        low, high = difference.ci
        reason = (
            difference.message
            if difference.error
            else f"{_points(difference.estimate)}, interval [{_points(low)}, {_points(high)}] "
            f"on {counts.n:,} paired labels: neither harm nor non-inferiority shown yet"
        )
    squared = None
    if shadow.squared_error is not None and shadow.squared_error.n:
        squared = (
            paired_mean_sequential_test(shadow.squared_error, alpha=alpha, tuning=tuning)
            if sequential
            else paired_t_test(shadow.squared_error, alpha=alpha)
        )
    return ShadowAnalysis(
        shadow=shadow,
        difference=difference,
        mcnemar=mcnemar_exact(counts, alpha=alpha),
        non_inferiority=non_inferiority,
        harm=harm,
        verdict=verdict,
        reason=reason,
        margin=margin,
        squared_error=squared,
    )


def _one_sided_ends(
    two_sided: TestResult, lower: TestResult, upper: TestResult, better: TestResult
) -> TestResult:
    """The confidence sequence at 1 - 2·alpha made of the one-sided bounds (gbstats'
    one-sided boundary, at alpha each; slightly wider than the two-sided boundary
    at 2·alpha): ``lower``'s low end, ``upper``'s high end, and the p-value that
    matches them at 0 (twice the smaller one-sided one: ``upper`` is the test that
    the shadow is worse, ``better`` that it is better)."""
    if two_sided.error:
        return two_sided
    p_value = min(1.0, 2.0 * min(upper.p_value, better.p_value))
    return replace(two_sided, ci_low=lower.ci_low, ci_high=upper.ci_high, p_value=p_value)


def relative_margin(relative: float, counts: PairedCounts) -> float:
    """A margin given as a share of the live model's accuracy (a ramp plan's
    ``non_inferiority_margin``), in accuracy points on these requests."""
    return relative * counts.live_accuracy


def counts_difference(counts: PairedCounts) -> float:
    """The accuracy difference shadow − live; 0 with no pairs."""
    return (counts.shadow_only - counts.live_only) / counts.n if counts.n else 0.0
