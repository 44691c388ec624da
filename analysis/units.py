"""The unit of analysis: a request, or a unit (a user) whose outcomes are summed.

When an experiment assigns by a user id, one user's requests share a variant
and are correlated; counting them as independent observations understates
the variance and inflates false decisions. Where the recorder kept per-unit
ratio sums (``analysis.sufficient.RatioStats``: units, Σx, Σx², Σy, Σy², Σxy),
a metric is analysed per unit instead: the mean per request Σy/Σx with the
delta-method variance over units, as gbstats' ratio metrics do. The tests
then run unchanged on the ratio statistic.

A metric is analysed per unit only when every variant that has it has unit
sums covering exactly its request-level outcomes (a variant without them,
or with sums that miss some outcomes, would be compared on another scale);
otherwise it stays per request and the report says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from analysis.sufficient import MetricStats, ProportionStats, RatioStats, VariantStats

__all__ = ["ERROR_RATE", "AnalysisUnit", "UnitChoice", "choose_unit_statistics"]

ERROR_RATE = "error_rate"
"""The name the error-rate guardrail goes by in ``AnalysisUnit.metrics``."""

Stats = MetricStats | ProportionStats | RatioStats


@dataclass(frozen=True)
class AnalysisUnit:
    """What one observation of the tests is, per metric.

    ``name`` says how units are identified ("request", or e.g. "header
    X-User-ID"); ``metrics`` lists the metrics analysed per unit (the error-rate
    guardrail as ``error_rate``); ``notes`` say why a metric stayed per request
    although the unit is not the request.
    """

    name: str = "request"
    metrics: tuple[str, ...] = ()
    notes: Mapping[str, str] = field(default_factory=dict)

    def of(self, metric: str) -> str:
        """``unit`` when ``metric`` is analysed per unit, else ``request``."""
        return "unit" if metric in self.metrics else "request"

    def describe(self) -> str:
        """One line for a report."""
        if not self.metrics:
            if self.name == "request":
                return "Analysis unit: the request."
            why = "; ".join(f"{m}: {n}" for m, n in sorted(self.notes.items()))
            return f"Analysis unit: the request, although units are {self.name} ({why})."
        per = ", ".join(self.metrics)
        return (
            f"Analysis unit: {self.name} for {per} (each unit one observation, "
            "delta-method ratio per request); the request otherwise."
        )


@dataclass(frozen=True)
class UnitChoice:
    """The statistics the tests read per variant, and the unit they are per."""

    metrics: Mapping[str, Mapping[str, Stats]]  # variant -> metric -> statistic
    errors: Mapping[str, RatioStats]  # variant -> errors per request by unit (when chosen)
    unit: AnalysisUnit


def _request_level(stats: VariantStats, metric: str, kind: str) -> Stats:
    return stats.proportion(metric) if kind == "proportion" else stats.metrics[metric]


def choose_unit_statistics(
    totals: Mapping[str, VariantStats], kinds: Mapping[str, str], unit_name: str
) -> UnitChoice:
    """Per variant, each metric's statistic: per unit where every variant has unit sums
    covering all its outcomes, else per request. ``kinds`` maps metric -> ``mean`` or
    ``proportion`` (default mean); ``unit_name`` is "request" when units are requests."""
    names = sorted({m for stats in totals.values() for m in stats.metrics})
    chosen: dict[str, dict[str, Stats]] = {variant: {} for variant in totals}
    per_unit: list[str] = []
    notes: dict[str, str] = {}
    for metric in names:
        kind = kinds.get(metric, "mean")
        having = {v: s for v, s in totals.items() if metric in s.metrics}
        ratios = {v: s.unit_metric(metric) for v, s in having.items()}
        complete = unit_name != "request" and all(r is not None for r in ratios.values())
        for variant, stats in having.items():
            ratio = ratios[variant]
            if complete and ratio is not None:
                chosen[variant][metric] = ratio.as_proportion() if kind == "proportion" else ratio
            else:
                chosen[variant][metric] = _request_level(stats, metric, kind)
        if complete:
            per_unit.append(metric)
        elif unit_name != "request":
            missing = sorted(v for v, r in ratios.items() if r is None)
            notes[metric] = f"no complete unit sums for {', '.join(missing)}"
    errors: dict[str, RatioStats] = {}
    if unit_name != "request":
        unit_errors = {v: s.unit_errors() for v, s in totals.items() if s.requests}
        if unit_errors and all(r is not None for r in unit_errors.values()):
            errors = {v: r for v, r in unit_errors.items() if r is not None}
            per_unit.append(ERROR_RATE)
        elif unit_errors:
            missing = sorted(v for v, r in unit_errors.items() if r is None)
            notes[ERROR_RATE] = f"no complete unit sums for {', '.join(missing)}"
    return UnitChoice(chosen, errors, AnalysisUnit(unit_name, tuple(per_unit), notes))
