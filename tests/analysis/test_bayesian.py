"""Bayesian read-out: gbstats' Gaussian-posterior vectors."""

from __future__ import annotations

from typing import Any

import pytest

from analysis.bayesian import GaussianPrior, bayesian_test, expected_loss
from analysis.sufficient import MetricStats, ProportionStats
from tests.analysis._vectors import TOLERANCE, arm, gbstats_cases


@pytest.mark.parametrize("case", gbstats_cases("bayes_binomial", "bayes_mean"))
def test_gbstats_vectors(case: dict[str, Any]) -> None:
    given, expected = case["input"], case["expected"]
    prior_spec = given["config"]["prior"]
    prior = (
        None
        if prior_spec == "improper"
        else GaussianPrior(mean=prior_spec["mean"], variance=prior_spec["variance"])
    )
    result = bayesian_test(arm(given["control"]), arm(given["treatment"]), prior=prior)
    assert result.estimate == pytest.approx(expected["expected"], abs=TOLERANCE)
    assert (result.ci_low, result.ci_high) == pytest.approx(tuple(expected["ci"]), abs=TOLERANCE)
    assert result.stddev == pytest.approx(expected["uplift_stddev"], abs=TOLERANCE)
    assert result.chance_to_win == pytest.approx(expected["chanceToWin"], abs=TOLERANCE)
    assert (result.risk_control, result.risk_treatment) == pytest.approx(
        tuple(expected["risk"]), abs=TOLERANCE
    )


@pytest.mark.parametrize("case", gbstats_cases("bayes_get_risk"))
def test_gbstats_risk_regression(case: dict[str, Any]) -> None:
    risk = expected_loss(case["input"]["mu"], case["input"]["sigma"])
    assert risk == pytest.approx(tuple(case["expected"]["risk"]), abs=1e-10)


def test_edge_case_is_a_message() -> None:
    result = bayesian_test(ProportionStats(10, 0), ProportionStats(10, 3))
    assert result.error and "control mean is 0" in result.message
    assert result.chance_to_win == 0.5


def test_prior_must_have_positive_variance() -> None:
    with pytest.raises(ValueError, match="variance"):
        GaussianPrior(variance=0.0)
    assert bayesian_test(MetricStats(5, 5.0, 6.0), MetricStats(5, 6.0, 8.0)).chance_to_win > 0.5
