"""Always-valid inference for continuous monitoring: asymptotic confidence sequences.

The normal-mixture boundary of Waudby-Smith et al. (2023, arXiv:2103.06476),
as gbstats implements it: the interval is valid at every look at once, so a ramp
gate may check after every batch of traffic without inflating false positives.
The mixture's width ρ is tuned so the interval is tightest at ``tuning`` (N*)
total units: the planned sample size, 5000 when unknown.
"""

from __future__ import annotations

import math

import numpy as np

from analysis.effect import (
    check_alpha,
    effect_problem,
    lift_moments,
    testable,
    uninformative_result,
)
from analysis.results import Alternative, DifferenceType, TestResult
from analysis.sufficient import FloatArray, Moments, SampleStatistic

__all__ = [
    "DEFAULT_TUNING",
    "SEQUENTIAL_CS",
    "guardrail_test",
    "mixture_critical",
    "non_inferiority_test",
    "sequential_halfwidth",
    "sequential_p_value",
    "sequential_p_values",
    "sequential_rho",
    "sequential_test",
]

DEFAULT_TUNING = 5000.0
"""N*: total sample size (both arms) at which the confidence sequence is tightest."""

SEQUENTIAL_CS = "sequential_cs"
"""``TestResult.test`` of this module's tests."""


def sequential_rho(
    alpha: float, tuning: float = DEFAULT_TUNING, *, one_sided: bool = False
) -> float:
    """Mixture width ρ that minimises the interval's width at ``tuning`` units.

    A one-sided boundary spends all of alpha on one side, so it is tuned as a
    two-sided one at 2·alpha.
    """
    if tuning <= 0:
        raise ValueError(f"tuning (N*) must be > 0, got {tuning!r}")
    level = 2.0 * alpha if one_sided else alpha
    return math.sqrt((-2.0 * math.log(level) + math.log(-2.0 * math.log(level) + 1.0)) / tuning)


def _mixture_terms(n_total: FloatArray, rho: float) -> tuple[FloatArray, FloatArray]:
    """n·ρ² + 1 and 2(n·ρ² + 1)/(n·ρ)²: the boundary's pieces shared by width and p-value."""
    spread = n_total * rho**2 + 1.0
    return spread, 2.0 * spread / (n_total * rho) ** 2


def mixture_critical(
    reach: FloatArray, *, alpha: float = 0.05, one_sided: bool = False
) -> FloatArray:
    """The normal-mixture boundary as a critical value on the z scale.

    ``reach`` is the mixture's variance over the estimate's variance: n·ρ² for
    the confidence sequence above (ρ per unit), τ²/variance for an mSPRT whose
    mixture has scale τ on the effect itself (Johari et al. 2017). An estimate
    more than ``critical · stddev`` from a null excludes it at every look at once.
    ``sequential_halfwidth`` is this value times the estimate's standard deviation.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = reach + 1.0
        scale = 2.0 * spread / reach
        if one_sided:
            return np.sqrt(scale * np.log(1.0 + np.sqrt(spread) / (2.0 * alpha)))
        return np.sqrt(scale * np.log(np.sqrt(spread) / alpha))


def sequential_halfwidth(
    variance: FloatArray,
    n_total: FloatArray,
    *,
    alpha: float = 0.05,
    tuning: float = DEFAULT_TUNING,
    one_sided: bool = False,
    rho: float | None = None,
) -> FloatArray:
    """Half-width of the confidence sequence around the lift estimate.

    ``variance`` is the estimate's variance and ``n_total`` the units in both
    arms; the boundary is written per unit, so it works on s² = variance·n.
    """
    if rho is None:
        rho = sequential_rho(alpha, tuning, one_sided=one_sided)
    s2 = variance * n_total
    spread, scale = _mixture_terms(n_total, rho)
    if one_sided:
        return np.sqrt(s2 * scale * np.log(1.0 + np.sqrt(spread) / (2.0 * alpha)))
    return np.sqrt(s2 * scale * np.log(np.sqrt(spread) / alpha))


def sequential_p_value(
    estimate: FloatArray,
    variance: FloatArray,
    n_total: FloatArray,
    *,
    alpha: float = 0.05,
    tuning: float = DEFAULT_TUNING,
    alternative: Alternative = "two-sided",
    null: float = 0.0,
) -> FloatArray:
    """Always-valid p-value: the smallest level whose confidence sequence excludes ``null``.

    ρ stays the one tuned for ``alpha`` (as in gbstats), so ``p < alpha`` exactly
    when the reported interval excludes ``null``. Two-sided: 1/e-value of the
    normal mixture (eq. 155 of the paper), computed in logs so it cannot
    overflow. One-sided: the one-sided boundary solved in closed form for the
    level at which it touches ``null`` (gbstats bisects for the same number).
    """
    one_sided = alternative != "two-sided"
    rho = sequential_rho(alpha, tuning, one_sided=one_sided)
    spread, scale = _mixture_terms(n_total, rho)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if not one_sided:
            z2 = n_total * (estimate - null) ** 2 / variance
            log_evalue = rho**2 * z2 / (2.0 * spread) - 0.5 * np.log(spread)
            return np.minimum(1.0, np.exp(-log_evalue))
        towards = estimate - null if alternative == "greater" else null - estimate
        # Solve halfwidth(level) = towards for the level, with the one-sided halfwidth.
        exponent = towards**2 / (variance * n_total * scale)
        level = np.sqrt(spread) / (2.0 * np.expm1(exponent))
        return np.where(towards > 0.0, np.minimum(1.0, level), 1.0)


def sequential_test(
    control: SampleStatistic,
    treatment: SampleStatistic,
    *,
    difference_type: DifferenceType = "relative",
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
    tuning: float = DEFAULT_TUNING,
    null: float = 0.0,
) -> TestResult:
    """Sequential test of treatment against control, valid under continuous monitoring.

    Two-sided for goal metrics; ``greater``/``less`` use the one-sided boundary
    (gbstats requires alpha < 0.5 there). Edge cases come back as a result with
    ``error`` set and a message, like ``welch_test``.
    """
    check_alpha(alpha)
    one_sided = alternative != "two-sided"
    if one_sided and alpha >= 0.5:
        raise ValueError(f"a one-sided sequential test needs alpha < 0.5, got {alpha!r}")
    if tuning <= 0:
        raise ValueError(f"tuning (N*) must be > 0, got {tuning!r}")
    problem = effect_problem(control, treatment, difference_type)
    if problem is not None:
        return uninformative_result(
            SEQUENTIAL_CS,
            sizes=(control.n, treatment.n),
            means=(control.unadjusted_mean, treatment.unadjusted_mean),
            difference_type=difference_type,
            alternative=alternative,
            alpha=alpha,
            null=null,
            message=problem,
            sequential_tuning=tuning,
        )
    arm_c, arm_t = Moments.of(control), Moments.of(treatment)
    estimate, variance = lift_moments(arm_c, arm_t, difference_type)
    n_total = arm_c.n + arm_t.n
    halfwidth = sequential_halfwidth(
        variance, n_total, alpha=alpha, tuning=tuning, one_sided=one_sided
    )
    p_value = sequential_p_value(
        estimate, variance, n_total, alpha=alpha, tuning=tuning, alternative=alternative, null=null
    )
    low = -math.inf if alternative == "less" else float(estimate - halfwidth)
    high = math.inf if alternative == "greater" else float(estimate + halfwidth)
    return TestResult(
        test=SEQUENTIAL_CS,
        difference_type=difference_type,
        alternative=alternative,
        alpha=alpha,
        estimate=float(estimate),
        ci_low=low,
        ci_high=high,
        p_value=float(p_value),
        stddev=float(np.sqrt(variance)),
        # The boundary rests on the normal approximation: no t degrees of freedom.
        dof=math.inf,
        control_n=control.n,
        treatment_n=treatment.n,
        control_mean=control.unadjusted_mean,
        treatment_mean=treatment.unadjusted_mean,
        null=null,
        sequential_tuning=tuning,
    )


def guardrail_test(
    control: SampleStatistic,
    treatment: SampleStatistic,
    *,
    higher_is_better: bool,
    margin: float = 0.0,
    difference_type: DifferenceType = "relative",
    alpha: float = 0.05,
    tuning: float = DEFAULT_TUNING,
) -> TestResult:
    """Is the treatment significantly worse than control by more than ``margin``?

    A one-sided sequential test, so a ramp gate may check it after every batch.
    ``margin`` (>= 0, in the lift's units) is the harm tolerated: for an error
    rate (lower is better) with a relative margin of 0.1, ``significant`` means
    "the error rate is up by more than 10 %, and we can tell already". A rate the
    champion can have at 0 (errors) has no relative lift: use ``absolute`` there.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    if higher_is_better:
        return sequential_test(
            control,
            treatment,
            difference_type=difference_type,
            alternative="less",
            alpha=alpha,
            tuning=tuning,
            null=-margin,
        )
    return sequential_test(
        control,
        treatment,
        difference_type=difference_type,
        alternative="greater",
        alpha=alpha,
        tuning=tuning,
        null=margin,
    )


def non_inferiority_test(
    control: SampleStatistic,
    treatment: SampleStatistic,
    *,
    higher_is_better: bool,
    margin: float,
    difference_type: DifferenceType = "relative",
    alpha: float = 0.05,
    tuning: float = DEFAULT_TUNING,
) -> TestResult:
    """Is the treatment shown to be no worse than control by more than ``margin``?

    The mirror of ``guardrail_test``: ``significant`` means the one-sided
    sequential bound excludes a drop larger than ``margin`` (for a metric where
    higher is better, the interval's lower end is above ``-margin``). Absence of
    evidence of harm is not evidence of no harm: a ramp promotes on this one.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    return sequential_test(
        control,
        treatment,
        difference_type=difference_type,
        alternative="greater" if higher_is_better else "less",
        alpha=alpha,
        tuning=tuning,
        null=-margin if higher_is_better else margin,
    )


def sequential_p_values(
    control: Moments,
    treatment: Moments,
    *,
    difference_type: DifferenceType = "relative",
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
    tuning: float = DEFAULT_TUNING,
    null: float = 0.0,
) -> FloatArray:
    """Vectorised ``sequential_test(...).p_value``: NaN wherever the test cannot run."""
    estimate, variance = lift_moments(control, treatment, difference_type)
    ok = testable(control, treatment, variance)
    p_value = sequential_p_value(
        np.where(ok, estimate, 0.0),
        np.where(ok, variance, 1.0),
        control.n + treatment.n,
        alpha=alpha,
        tuning=tuning,
        alternative=alternative,
        null=null,
    )
    return np.where(ok, p_value, np.nan)
