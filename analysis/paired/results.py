"""What the paired tests share: their names, their argument checks, and their results.

Every paired test reports a ``TestResult`` of the difference shadow − live with
both sizes the number of pairs; the sequential ones read the confidence
sequence of ``analysis.sequential`` with n pairs as one sample.
"""

from __future__ import annotations

import math

import numpy as np

from analysis._distributions import normal_cdf
from analysis.effect import check_alpha
from analysis.results import Alternative, TestResult
from analysis.sequential import sequential_halfwidth, sequential_p_value
from analysis.sufficient import FloatArray

__all__ = [
    "MCNEMAR_CHI2",
    "MCNEMAR_EXACT",
    "PAIRED_SEQUENTIAL_CS",
    "PAIRED_T",
    "PAIRED_Z",
    "check_alternative",
    "check_null",
    "check_sequential",
    "interval_around",
    "normal_p_value",
    "paired_result",
    "sequential_result",
]

MCNEMAR_EXACT = "mcnemar_exact"
MCNEMAR_CHI2 = "mcnemar_chi2"
PAIRED_Z = "paired_z"
PAIRED_T = "paired_t"
PAIRED_SEQUENTIAL_CS = "paired_sequential_cs"
"""``test`` names of the paired tests' results."""


def check_alternative(alternative: Alternative) -> None:
    """Reject an alternative other than two-sided, greater or less."""
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative must be two-sided, greater or less, got {alternative!r}")


def check_null(alternative: Alternative, null: float) -> None:
    """Reject an unknown alternative, or a null that is no accuracy difference."""
    check_alternative(alternative)
    if not math.isfinite(null) or abs(null) >= 1.0:
        raise ValueError(f"null must be an accuracy difference in (-1, 1), got {null!r}")


def check_sequential(alternative: Alternative, alpha: float, tuning: float) -> None:
    """Reject a level, alternative or tuning (N*) the confidence sequence cannot use."""
    check_alpha(alpha)
    check_alternative(alternative)
    if alternative != "two-sided" and alpha >= 0.5:
        raise ValueError(f"a one-sided sequential test needs alpha < 0.5, got {alpha!r}")
    if not tuning > 0:
        raise ValueError(f"tuning (N*) must be > 0, got {tuning!r}")


def paired_result(
    test: str,
    counts_n: int,
    estimate: float,
    variance: float,
    p_value: float,
    interval: tuple[float, float],
    *,
    alternative: Alternative,
    alpha: float,
    null: float,
    dof: float,
    live_mean: float,
    shadow_mean: float,
    tuning: float | None = None,
) -> TestResult:
    """A paired test's result: the difference shadow − live, ``counts_n`` pairs on each side."""
    return TestResult(
        test=test,
        difference_type="absolute",
        alternative=alternative,
        alpha=alpha,
        estimate=estimate,
        ci_low=interval[0],
        ci_high=interval[1],
        p_value=p_value,
        stddev=math.sqrt(variance),
        dof=dof,
        control_n=counts_n,
        treatment_n=counts_n,
        control_mean=live_mean,
        treatment_mean=shadow_mean,
        null=null,
        sequential_tuning=tuning,
    )


def normal_p_value(statistic: float, alternative: Alternative) -> float:
    """The p-value of a standard normal ``statistic`` against ``alternative``."""
    if alternative == "two-sided":
        return float(2.0 * normal_cdf(-abs(statistic)))
    if alternative == "greater":
        return float(normal_cdf(-statistic))
    return float(normal_cdf(statistic))


def interval_around(
    estimate: float, halfwidth: float, alternative: Alternative
) -> tuple[float, float]:
    """estimate ± halfwidth, with the end a one-sided test does not bound at infinity."""
    low = -math.inf if alternative == "less" else estimate - halfwidth
    high = math.inf if alternative == "greater" else estimate + halfwidth
    return low, high


def _array(value: float) -> FloatArray:
    return np.asarray(value, dtype=np.float64)


def sequential_result(
    n: int,
    estimate: float,
    variance: float,
    *,
    alternative: Alternative,
    alpha: float,
    tuning: float,
    null: float,
    live_mean: float,
    shadow_mean: float,
) -> TestResult:
    """The confidence-sequence result for the mean of ``n`` paired differences."""
    one_sided = alternative != "two-sided"
    # The per-request differences are n units of one sample: the confidence sequence
    # for their mean is the engine's, with n units (not two arms' worth).
    halfwidth = float(
        sequential_halfwidth(
            _array(variance), _array(n), alpha=alpha, tuning=tuning, one_sided=one_sided
        )
    )
    p_value = float(
        sequential_p_value(
            _array(estimate),
            _array(variance),
            _array(n),
            alpha=alpha,
            tuning=tuning,
            alternative=alternative,
            null=null,
        )
    )
    return paired_result(
        PAIRED_SEQUENTIAL_CS,
        n,
        estimate,
        variance,
        p_value,
        interval_around(estimate, halfwidth, alternative),
        alternative=alternative,
        alpha=alpha,
        null=null,
        dof=math.inf,
        live_mean=live_mean,
        shadow_mean=shadow_mean,
        tuning=tuning,
    )
