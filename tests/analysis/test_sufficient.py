"""Sufficient statistics: moments, addition, validation, histogram quantiles."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analysis.sufficient import (
    LatencyHistogram,
    MetricStats,
    Moments,
    ProportionStats,
    sample_covariance,
)

# The gateway's buckets: upper bounds growing by 25 % from 0.1 ms.
BOUNDS = tuple(round(0.1 * 1.25**i, 4) for i in range(60))

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


def test_metric_moments_match_numpy() -> None:
    values = np.random.default_rng(1).normal(3.0, 2.0, size=500)
    stats = MetricStats.from_values(values)
    assert stats.n == 500
    assert stats.mean == pytest.approx(np.mean(values), rel=1e-12)
    assert stats.variance == pytest.approx(np.var(values, ddof=1), rel=1e-9)


def test_proportion_variance_is_p_times_one_minus_p() -> None:
    stats = ProportionStats.from_values([1, 0, 0, 1, 1, 0, 1, 1])
    assert stats.mean == pytest.approx(5 / 8)
    assert stats.variance == pytest.approx(5 / 8 * 3 / 8)
    assert stats.sum_squares == stats.sum


@pytest.mark.parametrize("n", [0, 1])
def test_variance_is_zero_below_two_units(n: int) -> None:
    stats = MetricStats.from_values([4.0] * n)
    assert stats.variance == 0.0
    assert stats.mean == (4.0 if n else 0.0)


def test_constant_data_has_zero_variance_despite_rounding() -> None:
    stats = MetricStats.from_values([0.1] * 1000)
    assert stats.variance == pytest.approx(0.0, abs=1e-15)
    assert stats.variance >= 0.0


@given(st.lists(finite, max_size=30), st.lists(finite, max_size=30))
def test_statistics_add_like_concatenated_data(left: list[float], right: list[float]) -> None:
    total = MetricStats.from_values(left) + MetricStats.from_values(right)
    joined = MetricStats.from_values(left + right)
    assert total.n == joined.n
    assert total.sum == pytest.approx(joined.sum, rel=1e-9, abs=1e-6)
    assert total.sum_squares == pytest.approx(joined.sum_squares, rel=1e-9, abs=1e-6)


def test_proportions_add() -> None:
    assert ProportionStats(10, 3) + ProportionStats(5, 5) == ProportionStats(15, 8)


def test_integral_float_counts_are_accepted() -> None:
    assert MetricStats(n=10.0, sum=1.0, sum_squares=1.0).n == 10  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n": -1, "sum": 0.0, "sum_squares": 0.0}, "n"),
        ({"n": 2.5, "sum": 0.0, "sum_squares": 0.0}, "n"),
        ({"n": True, "sum": 0.0, "sum_squares": 0.0}, "n"),
        ({"n": 3, "sum": math.nan, "sum_squares": 1.0}, "sum"),
        ({"n": 3, "sum": 1.0, "sum_squares": math.inf}, "sum_squares"),
        ({"n": 4, "sum": 10.0, "sum_squares": 20.0}, "sum_squares"),
        ({"n": 0, "sum": 1.0, "sum_squares": 1.0}, "sum"),
    ],
)
def test_metric_validation_names_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        MetricStats(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("n", "successes", "field"), [(10, 11, "sum"), (10, -1, "sum"), (-2, 0, "n")]
)
def test_proportion_validation(n: int, successes: float, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ProportionStats(n, successes)


def test_proportion_values_must_be_binary() -> None:
    with pytest.raises(ValueError, match="0 or 1"):
        ProportionStats.from_values([0, 1, 2])


def test_moments_from_sums_match_scalar_statistics() -> None:
    arms = [MetricStats.from_values(np.arange(k, dtype=float) ** 1.5) for k in (0, 1, 2, 7, 40)]
    moments = Moments.from_sums(
        [a.n for a in arms], [a.sum for a in arms], [a.sum_squares for a in arms]
    )
    np.testing.assert_allclose(moments.mean, [a.mean for a in arms])
    np.testing.assert_allclose(moments.variance, [a.variance for a in arms], atol=1e-9)


def test_ratio_moments_match_the_delta_method_on_raw_data() -> None:
    rng = np.random.default_rng(7)
    sessions = rng.poisson(5.0, size=400) + 1.0
    clicks = rng.binomial(sessions.astype(int), 0.3).astype(float)
    moments = Moments.from_ratio_sums(
        sessions.size,
        (clicks.sum(), clicks @ clicks),
        (sessions.sum(), sessions @ sessions),
        clicks @ sessions,
    )
    ratio = clicks.mean() / sessions.mean()
    covariance = np.cov(clicks, sessions, ddof=1)
    gradient = np.array([1.0, -ratio]) / sessions.mean()
    assert float(moments.mean) == pytest.approx(ratio, rel=1e-12)
    assert float(moments.variance) == pytest.approx(gradient @ covariance @ gradient, rel=1e-9)


def test_sample_covariance_matches_numpy() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=50), rng.normal(size=50)
    expected = np.cov(x, y, ddof=1)[0, 1]
    assert float(sample_covariance(50, x.sum(), y.sum(), x @ y)) == pytest.approx(expected)


# --- latency histograms ----------------------------------------------------------------------


def test_histogram_validation() -> None:
    with pytest.raises(ValueError, match="counts"):
        LatencyHistogram(bounds=(1.0, 2.0), counts=(1, 2))
    with pytest.raises(ValueError, match="bounds"):
        LatencyHistogram(bounds=(2.0, 1.0), counts=(0, 0, 0))
    with pytest.raises(ValueError, match="bounds"):
        LatencyHistogram(bounds=(), counts=(0,))
    with pytest.raises(ValueError, match="counts"):
        LatencyHistogram(bounds=(1.0,), counts=(1, -1))
    with pytest.raises(ValueError, match="different bounds"):
        LatencyHistogram.empty((1.0,)) + LatencyHistogram.empty((2.0,))


def test_quantile_interpolates_like_prometheus() -> None:
    # Buckets (0,1] (1,2] (2,3] (3,inf) holding 0, 10, 10, 0: hand-computed with
    # histogram_quantile's rules (rank = q·n, linear within the bucket).
    histogram = LatencyHistogram(bounds=(1.0, 2.0, 3.0), counts=(0, 10, 10, 0))
    assert histogram.quantile(0.25) == pytest.approx(1.5)
    assert histogram.quantile(0.5) == pytest.approx(2.0)
    assert histogram.quantile(0.75) == pytest.approx(2.5)
    assert histogram.quantile(1.0) == pytest.approx(3.0)
    assert histogram.quantile(0.0) == pytest.approx(1.0)  # start of the first non-empty bucket
    assert histogram.quantile_bucket(0.6) == (2.0, 3.0)


def test_quantile_in_overflow_reports_the_largest_bound() -> None:
    histogram = LatencyHistogram(bounds=(1.0, 2.0), counts=(5, 0, 5))
    assert histogram.quantile(0.99) == 2.0
    assert histogram.quantile_bucket(0.99) == (2.0, math.inf)


def test_first_bucket_starts_at_zero() -> None:
    histogram = LatencyHistogram(bounds=(4.0, 8.0), counts=(10, 0, 0))
    assert histogram.quantile(0.5) == pytest.approx(2.0)


def test_empty_histogram_quantile_is_nan() -> None:
    assert math.isnan(LatencyHistogram.empty(BOUNDS).quantile(0.99))
    with pytest.raises(ValueError, match="q"):
        LatencyHistogram.empty(BOUNDS).quantile(1.5)


@pytest.mark.parametrize("q", [0.5, 0.9, 0.95, 0.99, 0.999])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_quantile_within_bucket_resolution_of_numpy(q: float, seed: int) -> None:
    latencies = np.random.default_rng(seed).lognormal(mean=3.0, sigma=0.6, size=20_000)
    histogram = LatencyHistogram.from_values(latencies, BOUNDS)
    exact = float(np.percentile(latencies, 100 * q))
    low, high = histogram.quantile_bucket(q)
    assert low <= exact <= high
    # Buckets grow by 25 %, so the interpolated value is within 25 % of the truth.
    assert histogram.quantile(q) == pytest.approx(exact, rel=0.25)


def test_from_values_buckets_like_the_recorder() -> None:
    # A value equal to a bound belongs to that bound's bucket (Prometheus "le").
    histogram = LatencyHistogram.from_values([1.0, 1.5, 2.0, 9.0], (1.0, 2.0))
    assert histogram.counts == (1, 2, 1)
    assert histogram.n == 4


def test_histograms_add() -> None:
    a = LatencyHistogram(bounds=(1.0, 2.0), counts=(1, 2, 3))
    b = LatencyHistogram(bounds=(1.0, 2.0), counts=(4, 5, 6))
    assert (a + b).counts == (5, 7, 9)
