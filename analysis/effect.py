"""The lift and its variance, shared by the fixed-horizon, sequential and power formulas.

Every function takes ``Moments`` (arrays), so a single report, a power curve and
thousands of simulated experiments all run the same formula code.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from analysis.results import Alternative, DifferenceType, TestResult
from analysis.sufficient import FloatArray, Moments, SampleStatistic

__all__ = [
    "check_alpha",
    "effect_problem",
    "lift_moments",
    "testable",
    "uninformative_result",
    "welch_dof",
]


def lift_moments(
    control: Moments, treatment: Moments, difference_type: DifferenceType
) -> tuple[FloatArray, FloatArray]:
    """Point estimate of the lift and the variance of that estimate.

    Absolute: mean_t - mean_c with variance var_t/n_t + var_c/n_c (unpooled).
    Relative: (mean_t - mean_c)/base_c with the delta-method variance
    var_t/(base_c² n_t) + var_c base_t²/(base_c⁴ n_c), as gbstats computes it;
    the base is the mean itself, or the unadjusted mean of a CUPED arm.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        if difference_type == "relative":
            base_c, base_t = control.baseline, treatment.baseline
            estimate = (treatment.mean - control.mean) / base_c
            variance = treatment.variance / (base_c**2 * treatment.n) + (
                control.variance * base_t**2 / (base_c**4 * control.n)
            )
        else:
            estimate = treatment.mean - control.mean
            variance = treatment.variance / treatment.n + control.variance / control.n
    return estimate, variance


def welch_dof(control: Moments, treatment: Moments) -> FloatArray:
    """Welch–Satterthwaite degrees of freedom of the unpooled two-sample t statistic."""
    with np.errstate(divide="ignore", invalid="ignore"):
        share_t = treatment.variance / treatment.n
        share_c = control.variance / control.n
        return (share_t + share_c) ** 2 / (
            share_t**2 / (treatment.n - 1.0) + share_c**2 / (control.n - 1.0)
        )


def testable(control: Moments, treatment: Moments, variance: FloatArray) -> npt.NDArray[np.bool_]:
    """Element-wise: can a test run here (the vectorised twin of ``effect_problem``)?"""
    return (control.n >= 2) & (treatment.n >= 2) & np.isfinite(variance) & (variance > 0.0)


def effect_problem(
    control: SampleStatistic, treatment: SampleStatistic, difference_type: DifferenceType
) -> str | None:
    """Why no test can run on these arms, or None when one can."""
    for arm, stats in (("control", control), ("treatment", treatment)):
        if stats.n == 0:
            return f"the {arm} arm has no samples yet"
        if stats.n < 2:
            return f"the {arm} arm has only {stats.n} sample; a variance needs at least 2"
    if difference_type == "relative" and control.unadjusted_mean == 0.0:
        return "the control mean is 0, so a relative lift is undefined; use an absolute difference"
    if control.variance == 0.0 and treatment.variance == 0.0:
        return "both arms have zero variance (every value is the same), so the test is undefined"
    _, variance = lift_moments(Moments.of(control), Moments.of(treatment), difference_type)
    if not (np.isfinite(variance) and variance > 0.0):
        return "the lift estimate has zero variance, so the test is undefined"
    return None


def check_alpha(alpha: float) -> None:
    """Reject a significance level outside (0, 1): a configuration error, not a data one."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")


def uninformative_result(
    test: str,
    *,
    sizes: tuple[int, int],
    means: tuple[float, float],
    difference_type: DifferenceType,
    alternative: Alternative,
    alpha: float,
    null: float,
    message: str,
    sequential_tuning: float | None = None,
) -> TestResult:
    """The result of a test that could not run: no effect, no evidence, and why.

    ``sizes`` and ``means`` are (control, treatment), shown as they are: the arms'
    counts and unadjusted means for a two-sample test; for a paired test both
    sizes are the number of pairs, and the means the live model's and the shadow's.
    """
    return TestResult(
        test=test,
        difference_type=difference_type,
        alternative=alternative,
        alpha=alpha,
        estimate=0.0,
        ci_low=0.0,
        ci_high=0.0,
        p_value=1.0,
        stddev=0.0,
        dof=0.0,
        control_n=sizes[0],
        treatment_n=sizes[1],
        control_mean=means[0],
        treatment_mean=means[1],
        null=null,
        sequential_tuning=sequential_tuning,
        message=message,
        error=True,
    )
