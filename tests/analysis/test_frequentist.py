"""Welch's t-test: gbstats vectors, scipy and statsmodels, edge cases."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from analysis.effect import lift_moments
from analysis.frequentist import welch_p_values, welch_test
from analysis.results import Alternative
from analysis.sufficient import MetricStats, Moments, ProportionStats
from tests.analysis._vectors import TOLERANCE, arm, gbstats_cases, number


@pytest.mark.parametrize("case", gbstats_cases("freq_two_sided", "freq_one_sided"))
def test_gbstats_vectors(case: dict[str, Any]) -> None:
    given, expected = case["input"], case["expected"]
    alternative: Alternative = "greater" if "one_sided_greater" in case["id"] else "two-sided"
    result = welch_test(
        arm(given["control"]),
        arm(given["treatment"]),
        difference_type=given["config"]["difference_type"],
        alternative=alternative,
        alpha=given["config"]["alpha"],
    )
    assert not result.error
    assert result.estimate == pytest.approx(expected["expected"], abs=TOLERANCE)
    assert result.ci_low == pytest.approx(number(expected["ci"][0]), abs=TOLERANCE)
    assert result.ci_high == pytest.approx(number(expected["ci"][1]), abs=TOLERANCE)
    assert result.stddev == pytest.approx(expected["uplift_stddev"], abs=TOLERANCE)
    assert result.p_value == pytest.approx(expected["pValue"], abs=TOLERANCE)


@pytest.mark.parametrize("case", gbstats_cases("freq_count_metric"))
def test_gbstats_count_metric_vector(case: dict[str, Any]) -> None:
    given, expected = case["input"], case["expected"]
    result = welch_test(arm(given["control"]), arm(given["treatment"]))
    assert result.control_mean == pytest.approx(expected["control_cr"], abs=1e-9)
    assert result.treatment_mean == pytest.approx(expected["treatment_cr"], abs=1e-9)
    assert result.estimate == pytest.approx(expected["expected"], abs=1e-9)
    assert result.p_value == pytest.approx(expected["pValue"], abs=1e-9)


@pytest.mark.parametrize("case", gbstats_cases("freq_ratio_metric"))
def test_gbstats_ratio_metric_vector(case: dict[str, Any]) -> None:
    given, expected = case["input"], case["expected"]

    def ratio(spec: dict[str, float]) -> Moments:
        return Moments.from_ratio_sums(
            spec["n"],
            (spec["main_sum"], spec["main_sum_squares"]),
            (spec["denominator_sum"], spec["denominator_sum_squares"]),
            spec["main_denominator_sum_product"],
        )

    control, treatment = ratio(given["control"]), ratio(given["treatment"])
    estimate, _ = lift_moments(control, treatment, "relative")
    assert float(control.mean) == pytest.approx(expected["control_cr"], abs=1e-9)
    assert float(treatment.mean) == pytest.approx(expected["treatment_cr"], abs=1e-9)
    assert float(estimate) == pytest.approx(expected["expected"], abs=1e-9)
    p_value = welch_p_values(control, treatment)
    assert float(p_value) == pytest.approx(expected["pValue"], abs=1e-9)


def _random_arms(seed: int) -> tuple[MetricStats, MetricStats]:
    rng = np.random.default_rng(seed)
    control = rng.normal(10.0, rng.uniform(0.5, 5.0), size=int(rng.integers(3, 400)))
    treatment = rng.normal(10.5, rng.uniform(0.5, 5.0), size=int(rng.integers(3, 400)))
    return MetricStats.from_values(control), MetricStats.from_values(treatment)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_absolute_p_value_matches_scipy(seed: int, alternative: Alternative) -> None:
    control, treatment = _random_arms(seed)
    result = welch_test(control, treatment, difference_type="absolute", alternative=alternative)
    expected = scipy_stats.ttest_ind_from_stats(
        treatment.mean,
        math.sqrt(treatment.variance),
        treatment.n,
        control.mean,
        math.sqrt(control.variance),
        control.n,
        equal_var=False,
        alternative=alternative,
    )
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-8, abs=1e-14)
    assert result.estimate == pytest.approx(treatment.mean - control.mean)


@pytest.mark.parametrize("seed", range(6))
def test_interval_and_dof_match_statsmodels(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    control_values = rng.exponential(2.0, size=int(rng.integers(5, 300)))
    treatment_values = rng.exponential(2.3, size=int(rng.integers(5, 300)))
    result = welch_test(
        MetricStats.from_values(control_values),
        MetricStats.from_values(treatment_values),
        difference_type="absolute",
        alpha=0.1,
    )
    compare = CompareMeans(DescrStatsW(treatment_values), DescrStatsW(control_values))
    low, high = compare.tconfint_diff(alpha=0.1, usevar="unequal")
    _, p_value, dof = compare.ttest_ind(usevar="unequal")
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), rel=1e-9)
    assert result.p_value == pytest.approx(p_value, rel=1e-8)
    assert result.dof == pytest.approx(dof, rel=1e-12)


def test_proportions_use_unpooled_binary_variance() -> None:
    control, treatment = ProportionStats(1000, 100), ProportionStats(1100, 140)
    result = welch_test(control, treatment, difference_type="absolute")
    p_c, p_t = 0.1, 140 / 1100
    expected = scipy_stats.ttest_ind_from_stats(
        p_t,
        math.sqrt(p_t * (1 - p_t)),
        1100,
        p_c,
        math.sqrt(p_c * (1 - p_c)),
        1000,
        equal_var=False,
    )
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-8)


def test_relative_lift_delta_method_matches_simulation_of_the_ratio() -> None:
    # Independent check of the delta method: the spread of (mean_t/mean_c - 1) over
    # many resampled experiments should match the reported standard error.
    control, treatment = MetricStats(4000, 4000.0, 8000.0), MetricStats(4000, 4400.0, 9840.0)
    result = welch_test(control, treatment)
    rng = np.random.default_rng(5)
    mean_c = rng.normal(control.mean, math.sqrt(control.variance / control.n), 200_000)
    mean_t = rng.normal(treatment.mean, math.sqrt(treatment.variance / treatment.n), 200_000)
    assert result.stddev == pytest.approx(np.std(mean_t / mean_c - 1.0), rel=0.01)


def test_vectorised_p_values_equal_the_scalar_test() -> None:
    arms = [_random_arms(seed) for seed in range(20)]
    control = Moments.from_sums(
        [c.n for c, _ in arms], [c.sum for c, _ in arms], [c.sum_squares for c, _ in arms]
    )
    treatment = Moments.from_sums(
        [t.n for _, t in arms], [t.sum for _, t in arms], [t.sum_squares for _, t in arms]
    )
    vectorised = welch_p_values(control, treatment, alternative="less")
    scalar = [welch_test(c, t, alternative="less").p_value for c, t in arms]
    np.testing.assert_allclose(vectorised, scalar, rtol=1e-12)


@pytest.mark.parametrize(
    ("control", "treatment", "difference_type", "fragment"),
    [
        (MetricStats(0, 0.0, 0.0), MetricStats(10, 5.0, 5.0), "relative", "control arm has no"),
        (MetricStats(10, 5.0, 5.0), MetricStats(0, 0.0, 0.0), "absolute", "treatment arm has no"),
        (MetricStats(1, 2.0, 4.0), MetricStats(10, 5.0, 5.0), "absolute", "only 1 sample"),
        (MetricStats(5, 10.0, 20.0), MetricStats(5, 15.0, 45.0), "absolute", "zero variance"),
        (ProportionStats(50, 0), ProportionStats(50, 5), "relative", "control mean is 0"),
        (ProportionStats(50, 50), ProportionStats(50, 50), "absolute", "zero variance"),
    ],
)
def test_edge_cases_return_a_message(
    control: MetricStats | ProportionStats,
    treatment: MetricStats | ProportionStats,
    difference_type: Any,
    fragment: str,
) -> None:
    result = welch_test(control, treatment, difference_type=difference_type)
    assert result.error
    assert fragment in result.message
    assert (result.estimate, result.ci_low, result.ci_high, result.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert not result.significant


def test_one_zero_variance_arm_still_tests() -> None:
    result = welch_test(
        ProportionStats(200, 0), ProportionStats(200, 12), difference_type="absolute"
    )
    assert not result.error
    assert result.dof == pytest.approx(199.0)
    assert result.significant


def test_vectorised_edge_cases_are_nan() -> None:
    control = Moments.from_sums([0, 1, 10], [0.0, 1.0, 10.0], [0.0, 1.0, 10.0])
    treatment = Moments.from_sums([5, 5, 10], [5.0, 5.0, 10.0], [5.0, 5.0, 10.0])
    assert np.all(np.isnan(welch_p_values(control, treatment)))


def test_bad_alpha_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="alpha"):
        welch_test(MetricStats(3, 3.0, 5.0), MetricStats(3, 3.0, 5.0), alpha=1.5)


def test_result_is_not_collected_as_a_test_class() -> None:
    from analysis.results import TestResult

    assert TestResult.__test__ is False
