"""One metric of one arm: a mean's, a proportion's or a per-unit ratio's sufficient sums.

Each is frozen, validated on construction, and adds with ``+`` (and, for running
totals, subtracts with ``-``), so windows, replicas and epochs combine by plain
arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from analysis.sufficient.moments import Moments, proportion_variance, sample_variance
from analysis.sufficient.validation import RELATIVE_TOLERANCE, finite_number, whole_count

__all__ = ["MetricStats", "ProportionStats", "RatioStats", "SampleStats", "is_proportion"]


@dataclass(frozen=True)
class MetricStats:
    """Sufficient statistics of a continuous metric: count, sum and sum of squares."""

    n: int
    sum: float
    sum_squares: float

    def __post_init__(self) -> None:
        n = whole_count("n", self.n)
        total = finite_number("sum", self.sum)
        sum_squares = finite_number("sum_squares", self.sum_squares)
        if n == 0 and (total != 0.0 or sum_squares != 0.0):
            raise ValueError(
                f"sum and sum_squares must be 0 when n is 0, got {total}, {sum_squares}"
            )
        if n > 0:
            floor = total * total / n
            if sum_squares < floor - RELATIVE_TOLERANCE * max(floor, 1.0):
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
        n = whole_count("n", self.n)
        total = finite_number("sum", self.sum)
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
        units = whole_count("units", self.units)
        values = [
            finite_number(name, getattr(self, name))
            for name in ("sum_x", "sum_xx", "sum_y", "sum_yy", "sum_xy")
        ]
        sum_x, sum_xx, _, sum_yy, sum_xy = values
        if units == 0 and any(values):
            raise ValueError(f"sums must be 0 when there are no units, got {values}")
        if sum_x < 0 or sum_xx < 0 or sum_yy < 0:
            raise ValueError("sum_x, sum_xx and sum_yy cannot be negative")
        if units:
            # Cauchy–Schwarz, twice: no set of units has sums outside these bounds.
            slack = RELATIVE_TOLERANCE * max(sum_xx * units, sum_x * sum_x, 1.0)
            if sum_x * sum_x > sum_xx * units + slack:
                raise ValueError("sum_xx must be >= sum_x**2 / units")
            if sum_xy * sum_xy > sum_xx * sum_yy * (1 + RELATIVE_TOLERANCE) + 1e-9:
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


def is_proportion(stats: object) -> bool:
    """Whether a statistic is a rate of 0/1 outcomes (per request, per unit, or combined
    across epochs): a ``ProportionStats``, or one whose ``proportion`` flag says so."""
    return isinstance(stats, ProportionStats) or getattr(stats, "proportion", None) is True
