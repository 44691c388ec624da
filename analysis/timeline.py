"""The effect over time: the primary-metric test on cumulative data at each window end.

Because sufficient statistics add, the cumulative state after each window is a
running sum, and the same test the verdict uses runs on it; a report plots
the estimate with its interval band over time.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.difference import difference_test
from analysis.inputs import ExperimentData, Stats
from analysis.results import DifferenceType

__all__ = ["EffectPoint", "effect_over_time"]


@dataclass(frozen=True)
class EffectPoint:
    """The lift of one variant over the champion, on all data up to the window starting ``at``."""

    variant: str
    at: float
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    champion_n: int
    variant_n: int
    difference_type: DifferenceType = "absolute"


def effect_over_time(data: ExperimentData) -> list[EffectPoint]:
    """One point per window and non-champion variant (windows without data are skipped).

    A variant's points share the scale of its last one: early looks whose relative
    lift was refused (the champion's interval still included 0) are left out
    rather than drawn in other units on the same axis.
    """
    s = data.settings
    metric = s.primary_metric
    champion = data.champion.name
    totals: dict[str, Stats] = {}
    points: list[EffectPoint] = []
    for window in data.windows:
        for variant, metrics in window.metrics.items():
            stats = metrics.get(metric)
            if stats is not None:
                previous = totals.get(variant)
                totals[variant] = stats if previous is None else previous + stats  # type: ignore[operator]
        control = totals.get(champion)
        if control is None:
            continue
        for variant in (v.name for v in data.variants if v.role != "champion"):
            treatment = totals.get(variant)
            if treatment is None:
                continue
            result, _ = difference_test(
                control,
                treatment,
                difference=s.difference,
                sequential=s.sequential,
                alpha=s.alpha,
                tuning=float(s.tuning_n),
            )
            if result.error:
                continue
            points.append(
                EffectPoint(
                    variant,
                    window.start,
                    result.estimate,
                    result.ci_low,
                    result.ci_high,
                    result.p_value,
                    result.control_n,
                    result.treatment_n,
                    result.difference_type,
                )
            )
    last = {p.variant: p.difference_type for p in points}
    return [p for p in points if p.difference_type == last[p.variant]]
