"""Numeric paired outcomes: tests of the mean difference shadow − live from (n, Σd, Σd²).

For a value or reward computed from each answer and the label, the per-request
differences' sufficient statistics (a ``MetricStats``) feed ``paired_t_test``
(as scipy's ``ttest_rel``) and ``paired_mean_sequential_test``.
"""

from __future__ import annotations

import math

from analysis._distributions import t_cdf, t_ppf
from analysis.effect import check_alpha, uninformative_result
from analysis.paired.results import (
    PAIRED_SEQUENTIAL_CS,
    PAIRED_T,
    check_alternative,
    check_sequential,
    interval_around,
    paired_result,
    sequential_result,
)
from analysis.results import Alternative, TestResult
from analysis.sequential import DEFAULT_TUNING
from analysis.sufficient import MetricStats

__all__ = ["paired_mean_sequential_test", "paired_t_test"]


def _differences_problem(differences: MetricStats) -> str | None:
    if differences.n == 0:
        return "no request has been scored for both models yet"
    if differences.n < 2:
        return "only 1 paired difference; a variance needs at least 2"
    if differences.variance == 0.0:
        return "every paired difference is the same, so the test is undefined"
    return None


def paired_t_test(
    differences: MetricStats,
    *,
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
    null: float = 0.0,
    live_mean: float = 0.0,
) -> TestResult:
    """Paired t-test of the mean difference shadow − live from (n, Σd, Σd²).

    t = (mean d − null)/(s_d/√n) with n − 1 dof, as scipy's ``ttest_rel``.
    ``live_mean`` (the live model's mean, when known) is only shown beside the
    shadow's, which is ``live_mean`` + mean d.
    """
    check_alpha(alpha)
    check_alternative(alternative)
    if not math.isfinite(null):
        raise ValueError(f"null must be a finite number, got {null!r}")
    estimate = differences.mean
    problem = _differences_problem(differences)
    if problem is not None:
        return uninformative_result(
            PAIRED_T,
            sizes=(differences.n, differences.n),
            means=(live_mean, live_mean + estimate),
            difference_type="absolute",
            alternative=alternative,
            alpha=alpha,
            null=null,
            message=problem,
        )
    variance = differences.variance / differences.n
    stddev = math.sqrt(variance)
    dof = float(differences.n - 1)
    statistic = (estimate - null) / stddev
    if alternative == "two-sided":
        p_value = float(2.0 * t_cdf(-abs(statistic), dof))
        halfwidth = float(t_ppf(1.0 - alpha / 2.0, dof)) * stddev
    else:
        p_value = float(t_cdf(-statistic if alternative == "greater" else statistic, dof))
        halfwidth = float(t_ppf(1.0 - alpha, dof)) * stddev
    return paired_result(
        PAIRED_T,
        differences.n,
        estimate,
        variance,
        p_value,
        interval_around(estimate, halfwidth, alternative),
        alternative=alternative,
        alpha=alpha,
        null=null,
        dof=dof,
        live_mean=live_mean,
        shadow_mean=live_mean + estimate,
    )


def paired_mean_sequential_test(
    differences: MetricStats,
    *,
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
    tuning: float = DEFAULT_TUNING,
    null: float = 0.0,
    live_mean: float = 0.0,
) -> TestResult:
    """Sequential test of the mean difference shadow − live from (n, Σd, Σd²).

    The same confidence sequence as ``paired_sequential_test``, with the
    unbiased sample variance of d; valid under continuous monitoring.
    """
    check_sequential(alternative, alpha, tuning)
    if not math.isfinite(null):
        raise ValueError(f"null must be a finite number, got {null!r}")
    estimate = differences.mean
    problem = _differences_problem(differences)
    if problem is not None:
        return uninformative_result(
            PAIRED_SEQUENTIAL_CS,
            sizes=(differences.n, differences.n),
            means=(live_mean, live_mean + estimate),
            difference_type="absolute",
            alternative=alternative,
            alpha=alpha,
            null=null,
            message=problem,
            sequential_tuning=tuning,
        )
    return sequential_result(
        differences.n,
        estimate,
        differences.variance / differences.n,
        alternative=alternative,
        alpha=alpha,
        tuning=tuning,
        null=null,
        live_mean=live_mean,
        shadow_mean=live_mean + estimate,
    )
