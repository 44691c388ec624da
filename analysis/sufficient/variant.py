"""Everything recorded for one variant, as statistics that add up (``VariantStats``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from analysis.sufficient.histogram import LatencyHistogram
from analysis.sufficient.metrics import MetricStats, ProportionStats, RatioStats
from analysis.sufficient.validation import whole_count

__all__ = ["VariantStats"]

_EMPTY = MetricStats(0, 0.0, 0.0)


def _add_optional(
    a: LatencyHistogram | None, b: LatencyHistogram | None, sign: int
) -> LatencyHistogram | None:
    if b is None:
        return a
    if a is None:
        if sign < 0 and b.n:
            raise ValueError("cannot subtract latencies from a variant that has none")
        return b if sign > 0 else None
    return a + b if sign > 0 else a - b


def _add_ratio(a: RatioStats | None, b: RatioStats | None) -> RatioStats | None:
    if a is None:
        return b
    return a if b is None else a + b


@dataclass(frozen=True)
class VariantStats:
    """Everything recorded for one variant over some period, as statistics that add up.

    The recorder keeps these per variant, epoch and time window; a period's
    statistics are the sum of its parts, and what happened since a snapshot is
    the difference. ``metrics`` hold every delayed outcome as a mean's
    statistics; a metric known to be binary reads them with ``proportion``.

    When the unit of assignment is not the request, ``unit_requests`` (x =
    requests, y = errors) and ``unit_metrics`` (x = labelled outcomes, y = the
    metric's sum) hold the per-unit ratio sums. They add over epochs; a
    difference keeps them only where the earlier copy had none (else the
    units of the period are unknown, and they are dropped).
    """

    requests: int = 0
    errors: int = 0
    client_errors: int = 0
    fallbacks: int = 0
    latency_ms: MetricStats = _EMPTY  # latency of the answered requests
    latency: LatencyHistogram | None = None  # the same latencies, bucketed
    metrics: Mapping[str, MetricStats] = field(default_factory=dict)
    unit_requests: RatioStats | None = None
    unit_metrics: Mapping[str, RatioStats] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("requests", "errors", "client_errors", "fallbacks"):
            object.__setattr__(self, name, whole_count(name, getattr(self, name)))

    def unit_metric(self, metric: str) -> RatioStats | None:
        """The per-unit ratio statistic of ``metric`` when it covers exactly the outcomes
        counted request by request (else None: units unknown for some of them)."""
        ratio = self.unit_metrics.get(metric)
        stats = self.metrics.get(metric, _EMPTY)
        if (
            ratio is None
            or ratio.sum_x != stats.n
            or not math.isclose(ratio.sum_y, stats.sum, rel_tol=1e-9, abs_tol=1e-6)
        ):
            return None
        return ratio

    def unit_errors(self) -> RatioStats | None:
        """Errors per request by unit, when the unit sums cover every request."""
        ratio = self.unit_requests
        if ratio is None or ratio.sum_x != self.requests or ratio.sum_y != self.errors:
            return None
        return ratio.as_proportion()

    def proportion(self, metric: str) -> ProportionStats:
        """A binary metric's statistics (successes are the sum of 0/1 outcomes)."""
        stats = self.metrics.get(metric, _EMPTY)
        return ProportionStats(stats.n, min(max(stats.sum, 0.0), float(stats.n)))

    @property
    def is_empty(self) -> bool:
        """Nothing recorded at all."""
        return (
            self.requests == 0
            and self.latency_ms.n == 0
            and (self.latency is None or self.latency.n == 0)
            and all(m.n == 0 for m in self.metrics.values())
        )

    def _combine(self, other: VariantStats, sign: int) -> VariantStats:
        metrics = dict(self.metrics)
        for name, stats in other.metrics.items():
            mine = metrics.get(name, _EMPTY)
            metrics[name] = mine + stats if sign > 0 else mine - stats
        if sign > 0:
            unit_requests = _add_ratio(self.unit_requests, other.unit_requests)
            units = dict(self.unit_metrics)
            for name, ratio in other.unit_metrics.items():
                units[name] = _add_ratio(units.get(name), ratio) or ratio
        else:
            # Running unit sums minus an earlier copy are not the sums of any units:
            # keep them only where the earlier copy had nothing.
            unit_requests = self.unit_requests if other.requests == 0 else None
            units = {
                name: ratio
                for name, ratio in self.unit_metrics.items()
                if other.metrics.get(name, _EMPTY).n == 0 and name not in other.unit_metrics
            }
        return VariantStats(
            requests=self.requests + sign * other.requests,
            errors=self.errors + sign * other.errors,
            client_errors=self.client_errors + sign * other.client_errors,
            fallbacks=self.fallbacks + sign * other.fallbacks,
            latency_ms=self.latency_ms + other.latency_ms
            if sign > 0
            else self.latency_ms - other.latency_ms,
            latency=_add_optional(self.latency, other.latency, sign),
            metrics=metrics,
            unit_requests=unit_requests,
            unit_metrics=units,
        )

    def __add__(self, other: VariantStats) -> VariantStats:
        if not isinstance(other, VariantStats):
            return NotImplemented
        return self._combine(other, 1)

    def __sub__(self, other: VariantStats) -> VariantStats:
        """What was recorded since ``other``, an earlier copy of the same totals."""
        if not isinstance(other, VariantStats):
            return NotImplemented
        return self._combine(other, -1)
