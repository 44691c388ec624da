"""CUPED: regression adjustment on a pre-experiment covariate, as gbstats does it.

Subtracting θ·(covariate mean) from each arm's metric mean removes the part of
the variance the covariate explains, so the same traffic gives a tighter
interval. θ is pooled over both arms (cov(metric, covariate) / var(covariate)),
and a relative lift still divides by the control's unadjusted mean. The
adjusted arms go into ``welch_test`` or ``sequential_test`` like any others.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.sufficient import MetricStats, sample_covariance

__all__ = ["AdjustedStats", "CovariateStats", "cuped_adjust", "pooled_theta"]


@dataclass(frozen=True)
class CovariateStats:
    """A metric, its pre-experiment covariate over the same units, and Σ metric·covariate."""

    metric: MetricStats
    covariate: MetricStats
    sum_products: float

    def __post_init__(self) -> None:
        if self.metric.n != self.covariate.n:
            raise ValueError(
                f"covariate.n ({self.covariate.n}) must equal metric.n ({self.metric.n})"
            )

    @property
    def n(self) -> int:
        """Number of units."""
        return self.metric.n

    @property
    def covariance(self) -> float:
        """Sample covariance of metric and covariate."""
        return float(
            sample_covariance(self.n, self.metric.sum, self.covariate.sum, self.sum_products)
        )

    def __add__(self, other: CovariateStats) -> CovariateStats:
        if not isinstance(other, CovariateStats):
            return NotImplemented
        return CovariateStats(
            metric=self.metric + other.metric,
            covariate=self.covariate + other.covariate,
            sum_products=self.sum_products + other.sum_products,
        )


@dataclass(frozen=True)
class AdjustedStats:
    """One arm after regression adjustment: a ``SampleStatistic`` for the tests."""

    n: int
    mean: float
    variance: float
    unadjusted_mean: float
    theta: float


def pooled_theta(control: CovariateStats, treatment: CovariateStats) -> float:
    """θ = cov(metric, covariate) / var(covariate) over both arms; 0 for a constant covariate."""
    both = control + treatment
    covariate_variance = both.covariate.variance
    return both.covariance / covariate_variance if covariate_variance > 0.0 else 0.0


def _adjust(arm: CovariateStats, theta: float) -> AdjustedStats:
    variance = (
        arm.metric.variance + theta**2 * arm.covariate.variance - 2.0 * theta * arm.covariance
    )
    return AdjustedStats(
        n=arm.n,
        mean=arm.metric.mean - theta * arm.covariate.mean,
        variance=max(variance, 0.0),
        unadjusted_mean=arm.metric.mean,
        theta=theta,
    )


def cuped_adjust(
    control: CovariateStats, treatment: CovariateStats
) -> tuple[AdjustedStats, AdjustedStats]:
    """Both arms adjusted with the pooled θ."""
    theta = pooled_theta(control, treatment)
    return _adjust(control, theta), _adjust(treatment, theta)
