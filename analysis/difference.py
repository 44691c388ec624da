"""The difference a verdict tests, and the relative lift reported beside it.

A verdict always tests the difference treatment − champion (Welch or the
confidence sequence, ``difference_type="absolute"``): its statistic is
symmetric in the sign of the effect, so A/A false "worse" and "better" calls
are equally likely, and its direction is the sign of the difference whatever
the champion's mean is. The delta-method relative test is neither: its
variance grows with the treatment mean, so it flags a drop more readily than
a rise, and a negative champion mean flips the sign of the lift.

When a relative lift is wanted (``difference: relative``, the default for
proportions) it is *derived*: the estimate mean_t / mean_c − 1 with Fieller's
interval for the ratio at the very critical value of the difference test that
ran. That interval is {ρ : |mean_t − ρ·mean_c| ≤ c·sqrt(v_t + ρ²·v_c)}, which
contains ρ = 1 exactly when the difference test does not reject: the relative
interval excludes 0 if and only if the verdict is significant, at every look.
It is a bounded interval exactly when the champion's own interval at that
critical value excludes 0; otherwise (or when the champion's mean is <= 0) no
relative lift is reported and the absolute difference is, with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from analysis.effect import lift_moments
from analysis.frequentist import welch_test
from analysis.results import Alternative, DifferenceType, TestResult
from analysis.sequential import DEFAULT_TUNING, sequential_test
from analysis.sufficient import FloatArray, Moments, SampleStatistic, is_proportion

__all__ = [
    "DifferenceChoice",
    "choose_difference",
    "critical_value",
    "default_difference",
    "difference_test",
    "fieller_lift_interval",
]


@dataclass(frozen=True)
class DifferenceChoice:
    """Which difference a result reports, what was asked for, and why."""

    difference_type: DifferenceType
    requested: DifferenceType | None  # None: the default for the metric's kind
    reason: str

    @property
    def switched(self) -> bool:
        """Whether a requested relative lift was refused in favour of the difference."""
        return self.requested is not None and self.requested != self.difference_type


def default_difference(control: SampleStatistic) -> DifferenceType:
    """Relative for a proportion, absolute for a mean (whose baseline can be 0 or negative)."""
    return "relative" if is_proportion(control) else "absolute"


def critical_value(result: TestResult) -> float:
    """The multiple of the standard error the test's interval spans on its bounded side.

    For Welch it is the t quantile, for the confidence sequence the mixture
    boundary at this look; reading it off the interval keeps both in one place.
    """
    if result.alternative == "greater":
        return (result.estimate - result.ci_low) / result.stddev
    return (result.ci_high - result.estimate) / result.stddev


def choose_difference(
    requested: DifferenceType | None, control: SampleStatistic, *, critical: float
) -> DifferenceChoice:
    """The difference to report: relative only on a champion mean clearly above 0.

    "Clearly" is: the champion's mean minus ``critical`` standard errors is
    above 0, the condition under which Fieller's interval is bounded.
    """
    wanted = requested or default_difference(control)
    if wanted == "absolute":
        reason = (
            "configured"
            if requested
            else "default for a mean metric: its baseline can be 0 or negative"
        )
        return DifferenceChoice("absolute", requested, reason)
    mean = float(control.unadjusted_mean)
    spread = critical * math.sqrt(control.variance / control.n) if control.n > 0 else math.inf
    if mean <= 0.0:
        reason = (
            f"no relative lift on a champion mean of {mean:.4g} (<= 0: the ratio has no "
            "meaning or flips sign); the absolute difference is reported"
        )
        return DifferenceChoice("absolute", requested, reason)
    if not mean - spread > 0.0:
        reason = (
            f"no relative lift: the champion's mean {mean:.4g} ± {spread:.2g} includes 0, so "
            "the lift's interval is unbounded; the absolute difference is reported"
        )
        return DifferenceChoice("absolute", requested, reason)
    why = "configured" if requested else "default for a proportion clearly above 0"
    return DifferenceChoice("relative", requested, why)


def fieller_lift_interval(
    control: Moments,
    treatment: Moments,
    critical: FloatArray | float,
    *,
    alternative: Alternative = "two-sided",
) -> tuple[FloatArray, FloatArray]:
    """Fieller's interval for mean_t / mean_c − 1 at ``critical`` standard errors.

    The roots of (m_c² − c²v_c)ρ² − 2·m_t·m_c·ρ + (m_t² − c²v_t) = 0 with
    v = variance / n per arm; NaN where m_c² <= c²·v_c (the set is unbounded).
    One-sided alternatives keep one root and leave the other end infinite.
    """
    v_c = control.variance / control.n
    v_t = treatment.variance / treatment.n
    m_c, m_t = control.mean, treatment.mean
    c2 = np.square(critical)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = m_c**2 - c2 * v_c
        root = np.sqrt(c2 * (m_t**2 * v_c + m_c**2 * v_t - c2 * v_t * v_c))
        low = np.where(a > 0.0, (m_t * m_c - root) / a - 1.0, np.nan)
        high = np.where(a > 0.0, (m_t * m_c + root) / a - 1.0, np.nan)
    if alternative == "greater":
        high = np.where(a > 0.0, np.inf, np.nan)
    elif alternative == "less":
        low = np.where(a > 0.0, -np.inf, np.nan)
    return low, high


def difference_test(
    control: SampleStatistic,
    treatment: SampleStatistic,
    *,
    difference: DifferenceType | None = None,
    sequential: bool = True,
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
    tuning: float = DEFAULT_TUNING,
) -> tuple[TestResult, DifferenceChoice]:
    """Test treatment − control (H0: no difference) and report it as ``difference`` asks.

    The p-value, and so the verdict, is the difference test's whichever way the
    effect is reported; a relative result carries the ratio's estimate and
    Fieller's interval (and the delta-method standard error, for reference).
    """
    if sequential:
        result = sequential_test(
            control,
            treatment,
            difference_type="absolute",
            alternative=alternative,
            alpha=alpha,
            tuning=tuning,
        )
    else:
        result = welch_test(
            control, treatment, difference_type="absolute", alternative=alternative, alpha=alpha
        )
    if result.error:
        return result, DifferenceChoice("absolute", difference, f"not tested: {result.message}")
    critical = critical_value(result)
    choice = choose_difference(difference, control, critical=critical)
    if choice.difference_type == "absolute":
        return result, choice
    arm_c, arm_t = Moments.of(control), Moments.of(treatment)
    low, high = fieller_lift_interval(arm_c, arm_t, critical, alternative=alternative)
    _, delta_variance = lift_moments(arm_c, arm_t, "relative")
    relative = replace(
        result,
        difference_type="relative",
        estimate=float(arm_t.mean / arm_c.mean - 1.0),
        ci_low=float(low),
        ci_high=float(high),
        stddev=float(np.sqrt(delta_variance)),
    )
    return relative, choice
