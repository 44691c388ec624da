"""Stats hashes read back as ``analysis.sufficient`` statistics, per epoch and variant,
and the shadows' counters beside them (the fields: ``core.schema.fields``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from analysis.paired import PairedCounts
from analysis.sufficient import LatencyHistogram, MetricStats, RatioStats, VariantStats
from core.schema.fields import (
    COUNTER_FIELDS,
    LATENCY_BOUNDS_MS,
    PAIRED_CELLS,
    UNIT_SUM_FIELDS,
    as_number,
    as_text,
    metric_stats,
)

__all__ = ["ShadowStats", "StatsHash", "decode_stats", "parse_outcome_fields", "sum_stats"]

PairKey = tuple[str, str]
"""(live variant, metric) a shadow's paired outcomes are kept under."""


def _add_maps(
    a: Mapping[PairKey, Any], b: Mapping[PairKey, Any], sign: int = 1
) -> dict[PairKey, Any]:
    out = dict(a)
    for key, value in b.items():
        held = out.get(key)
        if held is None:
            if sign > 0:  # (a key only in the earlier copy of a hash: nothing since)
                out[key] = value
        else:
            out[key] = held + value if sign > 0 else _minus(held, value)
    return out


def _minus(a: Any, b: Any) -> Any:
    if isinstance(a, PairedCounts):
        return PairedCounts(
            a.both - b.both, a.live_only - b.live_only, a.shadow_only - b.shadow_only,
            a.neither - b.neither,
        )  # fmt: skip
    return a - b


@dataclass(frozen=True)
class ShadowStats:
    """Mirrored calls to one shadow: answered or not, agreement with the live answer, and
    its answers scored against the same requests' labels beside the live ones.

    ``paired`` and ``squared_error`` are keyed by (live variant, metric): the paired
    counts of label feedback and the squared-error differences (shadow − live) of
    numeric ``value`` feedback. ``shed``: requests not mirrored because the shadow
    had too many calls in flight; ``late``: answers that came after their request's
    feedback was counted (never scored).
    """

    requests: int = 0
    errors: int = 0
    compared: int = 0
    agreed: int = 0
    shed: int = 0
    late: int = 0
    paired: Mapping[PairKey, PairedCounts] = field(default_factory=dict)
    squared_error: Mapping[PairKey, MetricStats] = field(default_factory=dict)

    def pairs(self, metric: str, live: str | None = None) -> PairedCounts:
        """The paired counts of ``metric`` against ``live`` (a variant), or against
        whichever variant answered each request (None)."""
        total = PairedCounts(0, 0, 0, 0)
        for (variant, name), counts in self.paired.items():
            if name == metric and live in (None, variant):
                total = total + counts
        return total

    def error_differences(self, metric: str, live: str | None = None) -> MetricStats:
        """(n, Σd, Σd²) of the squared-error differences of ``metric``, as ``pairs``."""
        total = MetricStats(0, 0.0, 0.0)
        for (variant, name), stats in self.squared_error.items():
            if name == metric and live in (None, variant):
                total = total + stats
        return total

    @property
    def paired_metrics(self) -> tuple[str, ...]:
        """Metrics with paired counts, sorted."""
        return tuple(sorted({metric for _, metric in self.paired}))

    @property
    def error_metrics(self) -> tuple[str, ...]:
        """Metrics with squared-error differences, sorted."""
        return tuple(sorted({metric for _, metric in self.squared_error}))

    def __add__(self, other: ShadowStats) -> ShadowStats:
        if not isinstance(other, ShadowStats):
            return NotImplemented
        return ShadowStats(
            self.requests + other.requests,
            self.errors + other.errors,
            self.compared + other.compared,
            self.agreed + other.agreed,
            self.shed + other.shed,
            self.late + other.late,
            _add_maps(self.paired, other.paired),
            _add_maps(self.squared_error, other.squared_error),
        )

    def __sub__(self, other: ShadowStats) -> ShadowStats:
        if not isinstance(other, ShadowStats):
            return NotImplemented
        return ShadowStats(
            self.requests - other.requests,
            self.errors - other.errors,
            self.compared - other.compared,
            self.agreed - other.agreed,
            self.shed - other.shed,
            self.late - other.late,
            _add_maps(self.paired, other.paired, -1),
            _add_maps(self.squared_error, other.squared_error, -1),
        )


@dataclass(frozen=True)
class StatsHash:
    """A decoded stats hash: per epoch and variant, plus the shadows' counters."""

    epochs: Mapping[int, Mapping[str, VariantStats]]
    shadows: Mapping[str, ShadowStats]

    def variants(self) -> dict[str, VariantStats]:
        """Every variant's statistics summed over all epochs (counters, metrics, gauges)."""
        out: dict[str, VariantStats] = {}
        for per in self.epochs.values():
            for name, stats in per.items():
                out[name] = out.get(name, VariantStats()) + stats
        return out

    def __sub__(self, other: StatsHash) -> StatsHash:
        """What was recorded since ``other``, an earlier copy of the same hash."""
        if not isinstance(other, StatsHash):
            return NotImplemented
        epochs: dict[int, dict[str, VariantStats]] = {}
        for epoch, per in self.epochs.items():
            before = other.epochs.get(epoch, {})
            for name, stats in per.items():
                since = stats - before[name] if name in before else stats
                if not since.is_empty:
                    epochs.setdefault(epoch, {})[name] = since
        shadows = {
            name: s - other.shadows.get(name, ShadowStats()) for name, s in self.shadows.items()
        }
        return StatsHash(epochs, shadows)

    def __add__(self, other: StatsHash) -> StatsHash:
        if not isinstance(other, StatsHash):
            return NotImplemented
        epochs = {e: dict(per) for e, per in self.epochs.items()}
        for epoch, per in other.epochs.items():
            target = epochs.setdefault(epoch, {})
            for name, stats in per.items():
                target[name] = target.get(name, VariantStats()) + stats
        shadows = dict(self.shadows)
        for name, s in other.shadows.items():
            shadows[name] = shadows.get(name, ShadowStats()) + s
        return StatsHash(epochs, shadows)


_EMPTY_HASH = StatsHash({}, {})


class _Parts:
    """Mutable accumulator for one (epoch, variant) while a hash is decoded."""

    __slots__ = ("counters", "hist", "latency", "metrics", "unit_metrics", "unit_requests")

    def __init__(self) -> None:
        self.counters = dict.fromkeys(COUNTER_FIELDS, 0)
        self.latency = {"n": 0.0, "sum": 0.0, "ss": 0.0}
        self.hist: dict[int, int] = {}
        self.metrics: dict[str, dict[str, float]] = {}
        self.unit_requests: dict[str, float] = {}
        self.unit_metrics: dict[str, dict[str, float]] = {}

    def add(self, parts: list[str], value: float) -> None:
        head = parts[0]
        if head in self.counters and len(parts) == 1:
            self.counters[head] += int(value)
        elif head == "latency_ms" and len(parts) == 2 and parts[1] in self.latency:
            self.latency[parts[1]] += value
        elif head == "latency_hist" and len(parts) == 2:
            index = int(parts[1])
            if 0 <= index <= len(LATENCY_BOUNDS_MS):
                self.hist[index] = self.hist.get(index, 0) + int(value)
        elif head == "metric" and len(parts) == 3 and parts[2] in ("n", "sum", "ss"):
            entry = self.metrics.setdefault(parts[1], {"n": 0.0, "sum": 0.0, "ss": 0.0})
            entry[parts[2]] += value
        elif head == "unit" and parts[-1] in UNIT_SUM_FIELDS:
            if len(parts) == 3 and parts[1] == "requests":
                sums = self.unit_requests
            elif len(parts) == 4 and parts[1] == "metric":
                sums = self.unit_metrics.setdefault(parts[2], {})
            else:
                return
            sums[parts[-1]] = sums.get(parts[-1], 0.0) + value

    def stats(self) -> VariantStats:
        counts = [0] * (len(LATENCY_BOUNDS_MS) + 1)
        for index, count in self.hist.items():
            counts[index] = count
        return VariantStats(
            **self.counters,
            latency_ms=metric_stats(self.latency),
            latency=LatencyHistogram(LATENCY_BOUNDS_MS, tuple(counts)) if self.hist else None,
            metrics={name: metric_stats(m) for name, m in self.metrics.items()},
            unit_requests=_ratio(self.unit_requests),
            unit_metrics={
                name: ratio for name, sums in self.unit_metrics.items() if (ratio := _ratio(sums))
            },
        )


def _ratio(sums: Mapping[str, float]) -> RatioStats | None:
    # Sums that cannot describe any set of units (a hand edit, a partial write) read as
    # absent: the analysis then falls back to the request-level statistics.
    if not sums:
        return None
    try:
        units, x, xx, y, yy, xy = (sums.get(name, 0.0) for name in UNIT_SUM_FIELDS)
        return RatioStats(int(units), x, xx, y, yy, xy)
    except ValueError:
        return None


def decode_stats(fields: Mapping[Any, Any]) -> StatsHash:
    """A stats hash (field -> amount, bytes or str) as statistics per epoch and variant.

    Drift fields are left to ``parse_drift_fields``; fields that do not parse
    (another version's, a hand edit) are skipped.
    """
    parts_by: dict[tuple[int, str], _Parts] = {}
    shadows: dict[str, dict[str, int]] = {}
    # (shadow, "paired" or "sqerr", live variant, metric) -> cell -> amount
    pairs: dict[tuple[str, str, str, str], dict[str, float]] = {}
    for raw_name, raw_value in fields.items():
        name = as_text(raw_name)
        epoch_text, bar, rest = name.partition("|")
        if not bar:
            epoch_text, rest = "0", name
        variant, _, stat = rest.partition(":")
        parts = stat.split(":")
        try:
            epoch = int(epoch_text)
            value = as_number(raw_value)
            if parts[0] == "shadow":
                if len(parts) == 2 and not bar:
                    entry = shadows.setdefault(variant, {})
                    entry[parts[1]] = entry.get(parts[1], 0) + int(value)
                elif len(parts) == 5 and not bar and parts[1] in ("paired", "sqerr"):
                    cells = pairs.setdefault((variant, parts[1], parts[2], parts[3]), {})
                    cells[parts[4]] = cells.get(parts[4], 0.0) + value
                continue
            if parts[0] == "drift":
                continue
            accumulator = parts_by.get((epoch, variant))
            if accumulator is None:
                accumulator = parts_by[(epoch, variant)] = _Parts()
            accumulator.add(parts, value)
        except ValueError:
            continue
    epochs: dict[int, dict[str, VariantStats]] = {}
    for (epoch, variant), accumulator in parts_by.items():
        epochs.setdefault(epoch, {})[variant] = accumulator.stats()
    return StatsHash(epochs, _shadow_stats(shadows, pairs))


def parse_outcome_fields(fields: Mapping[Any, Any]) -> dict[str, VariantStats]:
    """Each variant's statistics in a stats hash, summed over epochs."""
    return decode_stats(fields).variants()


def _shadow_stats(
    counters: Mapping[str, Mapping[str, int]],
    pairs: Mapping[tuple[str, str, str, str], Mapping[str, float]],
) -> dict[str, ShadowStats]:
    paired: dict[str, dict[PairKey, PairedCounts]] = {}
    errors: dict[str, dict[PairKey, MetricStats]] = {}
    for (shadow, kind, live, metric), cells in pairs.items():
        try:
            if kind == "paired":
                counts = PairedCounts(*(int(cells.get(cell, 0)) for cell in PAIRED_CELLS))
                paired.setdefault(shadow, {})[(live, metric)] = counts
            else:
                sums = {"n": 0.0, "sum": 0.0, "ss": 0.0}
                sums.update({k: v for k, v in cells.items() if k in sums})
                errors.setdefault(shadow, {})[(live, metric)] = metric_stats(sums)
        except ValueError:  # a hand edit or a partial write: left out, like other fields
            continue
    out = {}
    for name in sorted(set(counters) | set(paired) | set(errors)):
        s = counters.get(name, {})
        out[name] = ShadowStats(
            requests=s.get("requests", 0),
            errors=s.get("errors", 0),
            compared=s.get("compared", 0),
            agreed=s.get("agreed", 0),
            shed=s.get("shed", 0),
            late=s.get("late", 0),
            paired=paired.get(name, {}),
            squared_error=errors.get(name, {}),
        )
    return out


def sum_stats(hashes: Iterable[Mapping[Any, Any]]) -> StatsHash:
    """Several stats hashes (windows, say) decoded and added together."""
    total = _EMPTY_HASH
    for fields in hashes:
        total = total + decode_stats(fields)
    return total
