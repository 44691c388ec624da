"""One arm's sample size, mean and variance, as arrays: what every test formula reads.

The variance formulas here are element-wise, so a single report and thousands of
simulated looks run the same code; ``SampleStatistic`` is what a two-sample test
reads of any statistic, and ``Moments`` its vectorised view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "FloatArray",
    "MetricKind",
    "Moments",
    "SampleStatistic",
    "proportion_variance",
    "sample_covariance",
    "sample_variance",
]

FloatArray = npt.NDArray[np.float64]
MetricKind = Literal["mean", "proportion"]


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
