"""Fixed-horizon Welch t-test on sufficient statistics, as gbstats runs it.

Means and proportions alike: unpooled variances (p(1 - p) for proportions, not
the pooled z-test), Welch–Satterthwaite degrees of freedom, absolute or
relative (delta-method) lift. Valid when looked at once, at the planned end;
for continuous monitoring use ``analysis.sequential``.
"""

from __future__ import annotations

import numpy as np

from analysis._distributions import t_cdf, t_ppf
from analysis.effect import (
    check_alpha,
    effect_problem,
    lift_moments,
    testable,
    uninformative_result,
    welch_dof,
)
from analysis.results import Alternative, DifferenceType, TestResult
from analysis.sufficient import FloatArray, Moments, SampleStatistic

__all__ = ["WELCH_T", "welch_interval", "welch_p_value", "welch_p_values", "welch_test"]

WELCH_T = "welch_t"
"""``TestResult.test`` of this module's test."""


def welch_p_value(
    estimate: FloatArray,
    variance: FloatArray,
    dof: FloatArray,
    *,
    alternative: Alternative = "two-sided",
    null: float = 0.0,
) -> FloatArray:
    """p-value of H0: lift = ``null`` from a lift estimate, its variance and the dof."""
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = (estimate - null) / np.sqrt(variance)
    if alternative == "two-sided":
        # 2·P(T < -|t|) rather than 2·(1 - P(T < |t|)): no cancellation for small p.
        return 2.0 * t_cdf(-np.abs(statistic), dof)
    if alternative == "greater":
        return t_cdf(-statistic, dof)
    return t_cdf(statistic, dof)


def welch_interval(
    estimate: FloatArray,
    variance: FloatArray,
    dof: FloatArray,
    *,
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
) -> tuple[FloatArray, FloatArray]:
    """Confidence interval of the lift; one-sided alternatives leave one end infinite."""
    stddev = np.sqrt(variance)
    if alternative == "two-sided":
        halfwidth = t_ppf(1.0 - alpha / 2.0, dof) * stddev
        return estimate - halfwidth, estimate + halfwidth
    halfwidth = t_ppf(1.0 - alpha, dof) * stddev
    if alternative == "greater":
        return estimate - halfwidth, np.full_like(estimate, np.inf)
    return np.full_like(estimate, -np.inf), estimate + halfwidth


def welch_test(
    control: SampleStatistic,
    treatment: SampleStatistic,
    *,
    difference_type: DifferenceType = "relative",
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
    null: float = 0.0,
) -> TestResult:
    """Welch's t-test of treatment against control.

    Edge cases (an empty arm, fewer than 2 units, zero variance, a zero control
    mean for a relative lift) return a result with ``error`` set and a message.
    """
    check_alpha(alpha)
    problem = effect_problem(control, treatment, difference_type)
    if problem is not None:
        return uninformative_result(
            WELCH_T,
            sizes=(control.n, treatment.n),
            means=(control.unadjusted_mean, treatment.unadjusted_mean),
            difference_type=difference_type,
            alternative=alternative,
            alpha=alpha,
            null=null,
            message=problem,
        )
    arm_c, arm_t = Moments.of(control), Moments.of(treatment)
    estimate, variance = lift_moments(arm_c, arm_t, difference_type)
    dof = welch_dof(arm_c, arm_t)
    p_value = welch_p_value(estimate, variance, dof, alternative=alternative, null=null)
    low, high = welch_interval(estimate, variance, dof, alternative=alternative, alpha=alpha)
    return TestResult(
        test=WELCH_T,
        difference_type=difference_type,
        alternative=alternative,
        alpha=alpha,
        estimate=float(estimate),
        ci_low=float(low),
        ci_high=float(high),
        p_value=float(p_value),
        stddev=float(np.sqrt(variance)),
        dof=float(dof),
        control_n=control.n,
        treatment_n=treatment.n,
        control_mean=control.unadjusted_mean,
        treatment_mean=treatment.unadjusted_mean,
        null=null,
    )


def welch_p_values(
    control: Moments,
    treatment: Moments,
    *,
    difference_type: DifferenceType = "relative",
    alternative: Alternative = "two-sided",
    null: float = 0.0,
) -> FloatArray:
    """Vectorised ``welch_test(...).p_value``: NaN wherever the test cannot run."""
    estimate, variance = lift_moments(control, treatment, difference_type)
    dof = welch_dof(control, treatment)
    ok = testable(control, treatment, variance)
    safe = np.where(ok, variance, 1.0)
    p_value = welch_p_value(
        np.where(ok, estimate, 0.0),
        safe,
        np.where(ok, dof, 1.0),
        alternative=alternative,
        null=null,
    )
    return np.where(ok, p_value, np.nan)
