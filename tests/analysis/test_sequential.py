"""Confidence sequences: gbstats vectors, interval/p-value duality, guardrails."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from analysis.effect import lift_moments
from analysis.results import Alternative
from analysis.sequential import (
    DEFAULT_TUNING,
    guardrail_test,
    non_inferiority_test,
    sequential_halfwidth,
    sequential_p_values,
    sequential_rho,
    sequential_test,
)
from analysis.sufficient import MetricStats, Moments, ProportionStats
from tests.analysis._vectors import TOLERANCE, arm, gbstats_cases


@pytest.mark.parametrize("case", gbstats_cases("seq_"))
def test_gbstats_vectors(case: dict[str, Any]) -> None:
    given, expected = case["input"], case["expected"]
    config = given["config"]
    result = sequential_test(
        arm(given["control"]),
        arm(given["treatment"]),
        difference_type=config["difference_type"],
        alpha=config["alpha"],
        tuning=config["sequential_tuning_parameter"],
    )
    assert not result.error
    assert result.estimate == pytest.approx(expected["expected"], abs=TOLERANCE)
    assert result.ci == pytest.approx(tuple(expected["ci"]), abs=TOLERANCE)
    assert result.stddev == pytest.approx(expected["uplift_stddev"], abs=TOLERANCE)
    assert result.p_value == pytest.approx(expected["pValue"], abs=TOLERANCE)
    assert result.sequential_tuning == config["sequential_tuning_parameter"]


def test_rho_formula() -> None:
    # sqrt((-2 ln a + ln(-2 ln a + 1)) / N*), written out independently.
    alpha = 0.05
    expected = math.sqrt((2 * math.log(20) + math.log(2 * math.log(20) + 1)) / 5000)
    assert sequential_rho(alpha) == pytest.approx(expected, rel=1e-12)
    assert sequential_rho(alpha, one_sided=True) == pytest.approx(sequential_rho(0.1), rel=1e-12)
    with pytest.raises(ValueError, match="tuning"):
        sequential_rho(alpha, 0)


def test_interval_is_wider_than_the_fixed_horizon_one() -> None:
    control, treatment = MetricStats(5000, 5000.0, 10100.0), MetricStats(5000, 5100.0, 10500.0)
    result = sequential_test(control, treatment)
    z = 1.959963984540054
    assert result.ci_high - result.estimate > z * result.stddev


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize("lift", [-0.08, -0.03, 0.0, 0.02, 0.05, 0.1])
def test_p_value_below_alpha_exactly_when_interval_excludes_null(
    alternative: Alternative, lift: float
) -> None:
    control = ProportionStats(3000, 600)
    treatment = ProportionStats(3100, round(3100 * 0.2 * (1 + lift)))
    result = sequential_test(control, treatment, alternative=alternative, alpha=0.05)
    excludes = result.ci_low > 0.0 or result.ci_high < 0.0
    assert result.significant == excludes


@pytest.mark.parametrize("alternative", ["greater", "less"])
@pytest.mark.parametrize("seed", range(8))
def test_one_sided_p_value_is_where_the_bound_touches_null(
    alternative: Alternative, seed: int
) -> None:
    # gbstats bisects over alpha in [1e-5, 0.4999] (rho fixed) for the one-sided p-value;
    # our closed form must land on the same level wherever that search can find it.
    rng = np.random.default_rng(seed)
    control = MetricStats.from_values(rng.normal(1.0, 1.0, 1500))
    shift = 0.1 if alternative == "greater" else -0.1
    treatment = MetricStats.from_values(rng.normal(1.0 + shift, 1.0, 1500))
    result = sequential_test(control, treatment, alternative=alternative)
    estimate, variance = lift_moments(Moments.of(control), Moments.of(treatment), "relative")
    rho = sequential_rho(0.05, DEFAULT_TUNING, one_sided=True)

    def excludes_zero(level: float) -> bool:
        width = float(
            sequential_halfwidth(variance, np.asarray(3000.0), alpha=level, rho=rho, one_sided=True)
        )
        if alternative == "greater":
            return float(estimate) - width > 0.0
        return float(estimate) + width < 0.0

    low, high = 1e-5, 0.4999
    if excludes_zero(low):
        assert result.p_value <= low
        return
    if not excludes_zero(high):
        assert result.p_value >= high
        return
    for _ in range(100):
        middle = 0.5 * (low + high)
        low, high = (low, middle) if excludes_zero(middle) else (middle, high)
    assert result.p_value == pytest.approx(high, rel=1e-9)


def test_guardrail_flags_a_clearly_worse_error_rate() -> None:
    champion, canary = ProportionStats(4000, 40), ProportionStats(4000, 120)
    result = guardrail_test(champion, canary, higher_is_better=False)
    assert result.significant
    assert result.alternative == "greater"
    assert math.isinf(result.ci_high)


def test_guardrail_does_not_flag_an_improvement_or_a_tie() -> None:
    champion = ProportionStats(4000, 120)
    assert not guardrail_test(
        champion, ProportionStats(4000, 40), higher_is_better=False
    ).significant
    assert not guardrail_test(
        champion, ProportionStats(4000, 120), higher_is_better=False
    ).significant


def test_guardrail_margin_tolerates_small_harm() -> None:
    champion, canary = ProportionStats(20000, 2000), ProportionStats(20000, 2300)  # +15 %
    assert guardrail_test(champion, canary, higher_is_better=False).significant
    assert not guardrail_test(champion, canary, higher_is_better=False, margin=0.3).significant


def test_guardrail_on_an_error_free_champion_needs_an_absolute_difference() -> None:
    champion, canary = ProportionStats(3000, 0), ProportionStats(3000, 30)
    relative = guardrail_test(champion, canary, higher_is_better=False)
    assert relative.error and "absolute" in relative.message
    absolute = guardrail_test(champion, canary, higher_is_better=False, difference_type="absolute")
    assert absolute.significant


def test_guardrail_higher_is_better_flags_a_drop() -> None:
    champion, canary = MetricStats(3000, 3000.0, 6000.0), MetricStats(3000, 2700.0, 5430.0)
    result = guardrail_test(champion, canary, higher_is_better=True)
    assert result.significant
    assert result.alternative == "less"
    assert result.ci_high < 0.0
    with pytest.raises(ValueError, match="margin"):
        guardrail_test(champion, canary, higher_is_better=True, margin=-0.1)


def test_one_sided_needs_alpha_below_half() -> None:
    with pytest.raises(ValueError, match="alpha"):
        sequential_test(
            ProportionStats(10, 5), ProportionStats(10, 6), alternative="greater", alpha=0.6
        )


def test_edge_cases_return_a_message() -> None:
    result = sequential_test(MetricStats(0, 0.0, 0.0), MetricStats(5, 5.0, 6.0))
    assert result.error
    assert "control arm has no samples" in result.message
    assert result.p_value == 1.0
    assert not result.significant


def test_vectorised_p_values_equal_the_scalar_test() -> None:
    rng = np.random.default_rng(11)
    n_c, n_t = rng.integers(50, 5000, 30), rng.integers(50, 5000, 30)
    s_c, s_t = rng.binomial(n_c, 0.1), rng.binomial(n_t, 0.11)
    for alternative in ("two-sided", "greater", "less"):
        vectorised = sequential_p_values(
            Moments.from_sums(n_c, s_c, s_c, "proportion"),
            Moments.from_sums(n_t, s_t, s_t, "proportion"),
            alternative=alternative,
        )
        scalar = [
            sequential_test(
                ProportionStats(int(a), int(b)),
                ProportionStats(int(c), int(d)),
                alternative=alternative,
            ).p_value
            for a, b, c, d in zip(n_c, s_c, n_t, s_t, strict=True)
        ]
        np.testing.assert_allclose(vectorised, scalar, rtol=1e-12)


def test_non_inferiority_is_shown_for_a_tie_with_enough_data_and_mirrors_the_guardrail() -> None:
    champion = ProportionStats(40000, 33600)  # 84 %
    tie, worse = ProportionStats(40000, 33600), ProportionStats(40000, 31200)  # 84 %, 78 %
    shown = non_inferiority_test(champion, tie, higher_is_better=True, margin=0.02)
    assert shown.significant and shown.alternative == "greater"
    assert shown.ci_low > -0.02 and math.isinf(shown.ci_high)
    # the same bound, seen from the harm side: not worse by more than the margin
    assert not guardrail_test(champion, tie, higher_is_better=True, margin=0.02).significant
    assert not non_inferiority_test(champion, worse, higher_is_better=True, margin=0.02).significant
    assert guardrail_test(champion, worse, higher_is_better=True, margin=0.02).significant


def test_non_inferiority_needs_data_a_small_tie_proves_nothing() -> None:
    champion, canary = ProportionStats(200, 168), ProportionStats(200, 168)
    result = non_inferiority_test(champion, canary, higher_is_better=True, margin=0.02)
    assert not result.significant


def test_non_inferiority_for_a_metric_where_lower_is_better() -> None:
    champion, canary = ProportionStats(40000, 2000), ProportionStats(40000, 2000)  # 5 % errors
    shown = non_inferiority_test(champion, canary, higher_is_better=False, margin=0.2)
    assert shown.significant and shown.alternative == "less"
    with pytest.raises(ValueError, match="margin"):
        non_inferiority_test(champion, canary, higher_is_better=False, margin=-0.1)
