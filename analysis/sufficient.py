"""Sufficient statistics per variant: what the gateway recorder keeps and every test reads.

A variant's outcomes are summarised by ``n``, ``sum`` and ``sum_squares`` (and
latency histogram buckets), so analysis never scans raw events and statistics
from several time windows or gateway replicas simply add together.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "FloatArray",
    "LatencyHistogram",
    "MetricKind",
    "MetricStats",
    "Moments",
    "ProportionStats",
    "RatioStats",
    "SampleStatistic",
    "SampleStats",
    "VariantStats",
    "is_proportion",
    "proportion_variance",
    "sample_covariance",
    "sample_variance",
]

FloatArray = npt.NDArray[np.float64]
MetricKind = Literal["mean", "proportion"]

# ss and sum are accumulated in floats over many requests; allow this much
# relative rounding before calling sum_squares inconsistent with sum.
_RELATIVE_TOLERANCE = 1e-7


def sample_variance(
    n: npt.ArrayLike, total: npt.ArrayLike, sum_squares: npt.ArrayLike
) -> FloatArray:
    """Unbiased sample variance (ss - sum²/n) / (n - 1), element-wise; 0 where n < 2.

    Not clamped: unvalidated inputs that imply a negative variance stay visible
    (and a ratio's delta-method variance then matches gbstats term for term).
    """
    n_arr = np.asarray(n, dtype=np.float64)
    total_arr = np.asarray(total, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = (np.asarray(sum_squares, dtype=np.float64) - total_arr * total_arr / n_arr) / (
            n_arr - 1.0
        )
    return np.where(n_arr < 2, 0.0, variance)


def sample_covariance(
    n: npt.ArrayLike, sum_x: npt.ArrayLike, sum_y: npt.ArrayLike, sum_products: npt.ArrayLike
) -> FloatArray:
    """Unbiased sample covariance (Σxy - Σx·Σy/n) / (n - 1), element-wise; 0 where n < 2."""
    n_arr = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        products = np.asarray(sum_x, dtype=np.float64) * np.asarray(sum_y, dtype=np.float64)
        covariance = (np.asarray(sum_products, dtype=np.float64) - products / n_arr) / (n_arr - 1.0)
    return np.where(n_arr < 2, 0.0, covariance)


def proportion_variance(n: npt.ArrayLike, total: npt.ArrayLike) -> FloatArray:
    """Binary-outcome variance p(1 - p) with p = total / n, element-wise; 0 where n = 0.

    gbstats uses p(1 - p) (not the n/(n-1) corrected form) for proportions; so do we,
    so that results match GrowthBook's.
    """
    n_arr = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.asarray(total, dtype=np.float64) / n_arr
    return np.where(n_arr < 1, 0.0, p * (1.0 - p))


class SampleStatistic(Protocol):
    """Anything a two-sample test can read: sample size, mean and per-unit variance.

    ``unadjusted_mean`` is the raw mean that a relative lift divides by; it
    differs from ``mean`` only for regression-adjusted (CUPED) statistics.
    """

    @property
    def n(self) -> int: ...

    @property
    def mean(self) -> float: ...

    @property
    def variance(self) -> float: ...

    @property
    def unadjusted_mean(self) -> float: ...


def _real(value: object) -> float | None:
    # numbers.Real admits numpy scalars as well as int and float; bool is not a count.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _count(name: str, value: object) -> int:
    number = _real(value)
    # Integral floats are fine: JSON and Redis hand counts over as 100.0.
    if number is None or number != int(number):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if number < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return int(number)


def _finite(name: str, value: object) -> float:
    number = _real(value)
    if number is None:
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number


@dataclass(frozen=True)
class MetricStats:
    """Sufficient statistics of a continuous metric: count, sum and sum of squares."""

    n: int
    sum: float
    sum_squares: float

    def __post_init__(self) -> None:
        n = _count("n", self.n)
        total = _finite("sum", self.sum)
        sum_squares = _finite("sum_squares", self.sum_squares)
        if n == 0 and (total != 0.0 or sum_squares != 0.0):
            raise ValueError(
                f"sum and sum_squares must be 0 when n is 0, got {total}, {sum_squares}"
            )
        if n > 0:
            floor = total * total / n
            if sum_squares < floor - _RELATIVE_TOLERANCE * max(floor, 1.0):
                raise ValueError(
                    f"sum_squares ({sum_squares!r}) must be >= sum**2 / n ({floor!r}): "
                    "no set of values has that sum and sum of squares"
                )
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "sum", total)
        object.__setattr__(self, "sum_squares", sum_squares)

    @classmethod
    def from_values(cls, values: Iterable[float]) -> MetricStats:
        """Statistics of raw values (for tests, imports and small batches)."""
        data = np.fromiter(values, dtype=np.float64)
        return cls(n=int(data.size), sum=float(data.sum()), sum_squares=float(data @ data))

    @property
    def mean(self) -> float:
        """Sample mean; 0 for an empty arm."""
        return self.sum / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        """Unbiased sample variance; 0 when n < 2."""
        # Validation allows rounding below sum²/n (constant data): never report that as < 0.
        return max(0.0, float(sample_variance(self.n, self.sum, self.sum_squares)))

    @property
    def unadjusted_mean(self) -> float:
        """Same as ``mean``: nothing is adjusted."""
        return self.mean

    def __add__(self, other: MetricStats) -> MetricStats:
        if not isinstance(other, MetricStats):
            return NotImplemented
        return MetricStats(
            n=self.n + other.n,
            sum=self.sum + other.sum,
            sum_squares=self.sum_squares + other.sum_squares,
        )

    def __sub__(self, other: MetricStats) -> MetricStats:
        """What was added since ``other``, an earlier copy of the same running totals.

        Cancellation in the float sums can leave the difference a rounding below
        sum²/n (or a rounding away from 0 when nothing was added); that is
        rounded back, since running totals cannot describe an impossible sample.
        """
        if not isinstance(other, MetricStats):
            return NotImplemented
        n = self.n - other.n
        if n < 0:
            raise ValueError(f"cannot subtract {other.n} values from {self.n}")
        if n == 0:
            return MetricStats(0, 0.0, 0.0)
        total = self.sum - other.sum
        return MetricStats(n, total, max(self.sum_squares - other.sum_squares, total * total / n))


@dataclass(frozen=True)
class ProportionStats:
    """Sufficient statistics of a binary metric: units and successes (``sum``)."""

    n: int
    sum: float

    def __post_init__(self) -> None:
        n = _count("n", self.n)
        total = _finite("sum", self.sum)
        if not 0.0 <= total <= n:
            raise ValueError(f"sum (successes) must be between 0 and n={n}, got {total!r}")
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "sum", total)

    @classmethod
    def from_values(cls, values: Iterable[float | bool]) -> ProportionStats:
        """Statistics of raw 0/1 outcomes."""
        data = np.fromiter((float(v) for v in values), dtype=np.float64)
        if np.any((data != 0.0) & (data != 1.0)):
            raise ValueError("values of a proportion must be 0 or 1")
        return cls(n=int(data.size), sum=float(data.sum()))

    @property
    def sum_squares(self) -> float:
        """Equal to ``sum`` for 0/1 outcomes; lets proportions be stored like means."""
        return self.sum

    @property
    def mean(self) -> float:
        """Success rate; 0 for an empty arm."""
        return self.sum / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        """p(1 - p), as gbstats uses for proportions."""
        return float(proportion_variance(self.n, self.sum))

    @property
    def unadjusted_mean(self) -> float:
        """Same as ``mean``: nothing is adjusted."""
        return self.mean

    def __add__(self, other: ProportionStats) -> ProportionStats:
        if not isinstance(other, ProportionStats):
            return NotImplemented
        return ProportionStats(n=self.n + other.n, sum=self.sum + other.sum)

    def __sub__(self, other: ProportionStats) -> ProportionStats:
        """What was added since ``other``, an earlier copy of the same running totals."""
        if not isinstance(other, ProportionStats):
            return NotImplemented
        n = self.n - other.n
        if n < 0:
            raise ValueError(f"cannot subtract {other.n} units from {self.n}")
        return ProportionStats(n=n, sum=min(max(self.sum - other.sum, 0.0), float(n)))


SampleStats = MetricStats | ProportionStats


@dataclass(frozen=True)
class RatioStats:
    """Per-unit sums of a ratio metric Σy / Σx, for analysis by unit (a user, say).

    Each unit contributes its count ``x`` (requests, or labelled outcomes) and
    its metric sum ``y``; the statistic is the mean per request or outcome,
    Σy / Σx, with the delta-method variance that treats units, not requests,
    as independent (gbstats' ratio metrics; equal to a cluster-robust standard
    error of the mean). ``n`` is the number of units and ``variance / n`` the
    variance of the ratio, so it is a ``SampleStatistic`` every two-sample test
    reads unchanged. ``proportion`` says the per-request outcomes are 0/1 (the
    default difference is then relative, as for ``ProportionStats``).
    """

    units: int
    sum_x: float
    sum_xx: float
    sum_y: float
    sum_yy: float
    sum_xy: float
    proportion: bool = False

    def __post_init__(self) -> None:
        units = _count("units", self.units)
        values = [
            _finite(name, getattr(self, name))
            for name in ("sum_x", "sum_xx", "sum_y", "sum_yy", "sum_xy")
        ]
        sum_x, sum_xx, _, sum_yy, sum_xy = values
        if units == 0 and any(values):
            raise ValueError(f"sums must be 0 when there are no units, got {values}")
        if sum_x < 0 or sum_xx < 0 or sum_yy < 0:
            raise ValueError("sum_x, sum_xx and sum_yy cannot be negative")
        if units:
            # Cauchy–Schwarz, twice: no set of units has sums outside these bounds.
            slack = _RELATIVE_TOLERANCE * max(sum_xx * units, sum_x * sum_x, 1.0)
            if sum_x * sum_x > sum_xx * units + slack:
                raise ValueError("sum_xx must be >= sum_x**2 / units")
            if sum_xy * sum_xy > sum_xx * sum_yy * (1 + _RELATIVE_TOLERANCE) + 1e-9:
                raise ValueError("sum_xy**2 must be <= sum_xx * sum_yy")
        object.__setattr__(self, "units", units)
        for name, value in zip(("sum_x", "sum_xx", "sum_y", "sum_yy", "sum_xy"), values,
                               strict=True):  # fmt: skip
            object.__setattr__(self, name, value)

    @classmethod
    def from_units(cls, pairs: Iterable[tuple[float, float]], *, proportion: bool = False
                   ) -> RatioStats:  # fmt: skip
        """The sums of raw per-unit (x, y) pairs (for tests and imports)."""
        data = np.array(list(pairs), dtype=np.float64).reshape(-1, 2)
        x, y = data[:, 0], data[:, 1]
        return cls(len(data), float(x.sum()), float(x @ x), float(y.sum()), float(y @ y),
                   float(x @ y), proportion)  # fmt: skip

    @property
    def n(self) -> int:
        """The number of units: the independent observations."""
        return self.units

    @property
    def mean(self) -> float:
        """Σy / Σx: the metric per request (or outcome); 0 when nothing was counted."""
        return self.sum_y / self.sum_x if self.sum_x > 0 else 0.0

    @property
    def variance(self) -> float:
        """Per-unit delta-method variance: ``variance / n`` is the ratio's variance.

        0 with fewer than 2 units; never below 0 (rounding of exact data).
        """
        if self.units < 2 or self.sum_x <= 0:
            return 0.0
        moments = Moments.from_ratio_sums(
            self.units, (self.sum_y, self.sum_yy), (self.sum_x, self.sum_xx), self.sum_xy
        )
        return max(0.0, float(moments.variance))

    @property
    def unadjusted_mean(self) -> float:
        """Same as ``mean``: nothing is adjusted."""
        return self.mean

    def __add__(self, other: RatioStats) -> RatioStats:
        """Units of two periods (epochs) together; a unit seen in both counts twice,
        as two units, which is right as long as epochs are few."""
        if not isinstance(other, RatioStats):
            return NotImplemented
        return RatioStats(
            self.units + other.units,
            self.sum_x + other.sum_x,
            self.sum_xx + other.sum_xx,
            self.sum_y + other.sum_y,
            self.sum_yy + other.sum_yy,
            self.sum_xy + other.sum_xy,
            self.proportion and other.proportion,
        )

    def as_proportion(self) -> RatioStats:
        """The same sums, read as a rate of 0/1 outcomes."""
        return replace(self, proportion=True)


@dataclass(frozen=True)
class Moments:
    """Sample size, mean and variance of one arm, as arrays: the vectorised view of stats.

    Scalar statistics become 0-d arrays, simulated experiments become arrays of
    looks, and the same test formulas run on both. ``unadjusted_mean`` is set
    only for regression-adjusted arms (see ``SampleStatistic``).
    """

    n: FloatArray
    mean: FloatArray
    variance: FloatArray
    unadjusted_mean: FloatArray | None = None

    @property
    def baseline(self) -> FloatArray:
        """The mean a relative lift is scaled by: the unadjusted one when there is one."""
        return self.mean if self.unadjusted_mean is None else self.unadjusted_mean

    @classmethod
    def of(cls, stats: SampleStatistic) -> Moments:
        """Moments of one arm's statistics."""
        mean = float(stats.mean)
        unadjusted = float(stats.unadjusted_mean)
        return cls(
            n=np.asarray(float(stats.n)),
            mean=np.asarray(mean),
            variance=np.asarray(float(stats.variance)),
            unadjusted_mean=None if unadjusted == mean else np.asarray(unadjusted),
        )

    @classmethod
    def from_sums(
        cls,
        n: npt.ArrayLike,
        total: npt.ArrayLike,
        sum_squares: npt.ArrayLike,
        kind: MetricKind = "mean",
    ) -> Moments:
        """Moments from arrays of sufficient statistics (for example cumulative sums per look)."""
        n_arr = np.asarray(n, dtype=np.float64)
        total_arr = np.asarray(total, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.where(n_arr > 0, total_arr / n_arr, 0.0)
        if kind == "proportion":
            variance = proportion_variance(n_arr, total_arr)
        else:
            variance = sample_variance(n_arr, total_arr, sum_squares)
        return cls(n=n_arr, mean=mean, variance=variance)

    @classmethod
    def from_ratio_sums(
        cls,
        n: npt.ArrayLike,
        numerator: tuple[npt.ArrayLike, npt.ArrayLike],
        denominator: tuple[npt.ArrayLike, npt.ArrayLike],
        sum_products: npt.ArrayLike,
    ) -> Moments:
        """Moments of a ratio metric Σnumerator / Σdenominator (say, clicks per session).

        ``numerator`` and ``denominator`` are (sum, sum of squares) per arm; the
        per-unit variance of the ratio comes from the delta method, as in gbstats.
        """
        n_arr = np.asarray(n, dtype=np.float64)
        m_sum, m_ss = (np.asarray(v, dtype=np.float64) for v in numerator)
        d_sum, d_ss = (np.asarray(v, dtype=np.float64) for v in denominator)
        with np.errstate(divide="ignore", invalid="ignore"):
            m_mean, d_mean = m_sum / n_arr, d_sum / n_arr
            ratio = m_mean / d_mean
            variance = (
                sample_variance(n_arr, m_sum, m_ss)
                - 2.0 * ratio * sample_covariance(n_arr, m_sum, d_sum, sum_products)
                + ratio**2 * sample_variance(n_arr, d_sum, d_ss)
            ) / d_mean**2
        # No clamping: a negative variance means inconsistent inputs, which the tests
        # then treat as an arm they cannot test.
        return cls(n=n_arr, mean=ratio, variance=variance)


@dataclass(frozen=True)
class LatencyHistogram:
    """Latency counts per bucket, as the gateway records them.

    ``bounds`` are the buckets' upper edges (inclusive, like Prometheus ``le``);
    ``counts`` has one more entry than ``bounds``: the last bucket holds
    everything above ``bounds[-1]``. Counts are per bucket, not cumulative.
    """

    bounds: tuple[float, ...]
    counts: tuple[int, ...]

    def __post_init__(self) -> None:
        bounds = tuple(_finite("bounds", b) for b in self.bounds)
        if not bounds:
            raise ValueError("bounds must not be empty")
        if any(b <= a for a, b in itertools.pairwise(bounds)):
            raise ValueError("bounds must be strictly increasing")
        counts = tuple(_count("counts", c) for c in self.counts)
        if len(counts) != len(bounds) + 1:
            raise ValueError(
                f"counts must have len(bounds) + 1 = {len(bounds) + 1} entries "
                f"(the last one is the overflow bucket), got {len(counts)}"
            )
        object.__setattr__(self, "bounds", bounds)
        object.__setattr__(self, "counts", counts)

    @classmethod
    def empty(cls, bounds: Iterable[float]) -> LatencyHistogram:
        """A histogram with no observations."""
        edges = tuple(bounds)
        return cls(bounds=edges, counts=(0,) * (len(edges) + 1))

    @classmethod
    def from_values(cls, values: Iterable[float], bounds: Iterable[float]) -> LatencyHistogram:
        """Bucket raw latencies the way the recorder does (first bound >= value)."""
        edges = tuple(float(b) for b in bounds)
        data = np.fromiter(values, dtype=np.float64)
        index = np.searchsorted(np.asarray(edges), data, side="left")
        counts = np.bincount(index, minlength=len(edges) + 1)
        return cls(bounds=edges, counts=tuple(int(c) for c in counts))

    @property
    def n(self) -> int:
        """Number of observations."""
        return sum(self.counts)

    def __add__(self, other: LatencyHistogram) -> LatencyHistogram:
        if not isinstance(other, LatencyHistogram):
            return NotImplemented
        if other.bounds != self.bounds:
            raise ValueError("cannot add histograms with different bounds")
        counts = tuple(a + b for a, b in zip(self.counts, other.counts, strict=True))
        return LatencyHistogram(bounds=self.bounds, counts=counts)

    def __sub__(self, other: LatencyHistogram) -> LatencyHistogram:
        """Counts added since ``other``, an earlier copy of the same histogram."""
        if not isinstance(other, LatencyHistogram):
            return NotImplemented
        if other.bounds != self.bounds:
            raise ValueError("cannot subtract histograms with different bounds")
        counts = tuple(a - b for a, b in zip(self.counts, other.counts, strict=True))
        if min(counts) < 0:
            raise ValueError("cannot subtract a histogram with more counts in a bucket")
        return LatencyHistogram(bounds=self.bounds, counts=counts)

    def _locate(self, q: float) -> tuple[int, float]:
        """Bucket holding quantile ``q`` and the rank's fraction of the way through it."""
        rank = q * self.n
        cumulative = 0
        for index, count in enumerate(self.counts):
            # A rank of 0 belongs to the first non-empty bucket, not an empty one before it.
            if count and cumulative + count >= rank:
                return index, (rank - cumulative) / count
            cumulative += count
        raise AssertionError("unreachable: rank <= n")

    def quantile(self, q: float) -> float:
        """Quantile ``q`` interpolated linearly within its bucket, as Prometheus'
        ``histogram_quantile`` does: the first bucket starts at 0 (latencies are not
        negative) and a quantile in the overflow bucket reports the highest finite
        bound. NaN for an empty histogram.
        """
        _check_quantile(q)
        if self.n == 0:
            return math.nan
        index, fraction = self._locate(q)
        if index == len(self.bounds):
            return self.bounds[-1]
        low, high = self.bucket_edges(index)
        return low + (high - low) * fraction

    def bucket_edges(self, index: int) -> tuple[float, float]:
        """Lower and upper edge of bucket ``index`` (the overflow bucket ends at +inf)."""
        if index == 0:
            return (min(0.0, self.bounds[0]), self.bounds[0])
        if index == len(self.bounds):
            return (self.bounds[-1], math.inf)
        return (self.bounds[index - 1], self.bounds[index])

    def quantile_bucket(self, q: float) -> tuple[float, float]:
        """Edges of the bucket that holds quantile ``q``: the true value lies in between."""
        _check_quantile(q)
        if self.n == 0:
            return (math.nan, math.nan)
        return self.bucket_edges(self._locate(q)[0])


def _check_quantile(q: float) -> None:
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be between 0 and 1, got {q!r}")


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


def is_proportion(stats: object) -> bool:
    """Whether a statistic is a rate of 0/1 outcomes (per request, per unit, or combined
    across epochs): a ``ProportionStats``, or one whose ``proportion`` flag says so."""
    return isinstance(stats, ProportionStats) or getattr(stats, "proportion", None) is True


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
            object.__setattr__(self, name, _count(name, getattr(self, name)))

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
