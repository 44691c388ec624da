"""The accuracy difference shadow − live on the paired counts: Wald and sequential tests.

``paired_z_test`` looks once; ``paired_sequential_test`` may look after every
batch; the shadow gate asks its one-sided forms (``paired_non_inferiority_test``,
``paired_harm_test``). The ``*_p_values`` functions are their vectorised twins
for simulations.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from analysis._distributions import normal_cdf, normal_ppf
from analysis.effect import check_alpha, uninformative_result
from analysis.paired.counts import NO_DISCORDANT, PairedCounts, paired_difference
from analysis.paired.results import (
    PAIRED_SEQUENTIAL_CS,
    PAIRED_Z,
    check_null,
    check_sequential,
    interval_around,
    normal_p_value,
    paired_result,
    sequential_result,
)
from analysis.results import Alternative, TestResult
from analysis.sequential import DEFAULT_TUNING, sequential_p_value
from analysis.sufficient import FloatArray

__all__ = [
    "paired_harm_test",
    "paired_non_inferiority_test",
    "paired_sequential_p_values",
    "paired_sequential_test",
    "paired_z_p_values",
    "paired_z_test",
]


def _counts_problem(counts: PairedCounts) -> str | None:
    """Why no interval can be computed from these counts, or None when one can."""
    if counts.n == 0:
        return "no labelled request has been scored for both models yet"
    if counts.discordant == 0:
        return NO_DISCORDANT + ", so the difference has no variance estimate"
    if counts.discordant == counts.n:
        better = "shadow" if counts.shadow_only else "live model"
        return (
            f"the {better} was the only one right on every labelled request, so the difference "
            "has no variance estimate; see the exact McNemar test"
        )
    return None


def paired_z_test(
    counts: PairedCounts,
    *,
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
    null: float = 0.0,
) -> TestResult:
    """Fixed-horizon Wald test of the accuracy difference shadow − live, with its interval.

    z = (difference − null)/SE with the unrestricted SE of ``paired_difference``; the
    interval is difference ± z_{1−α/2}·SE (one end infinite when one-sided). Valid
    when looked at once; under continuous monitoring use ``paired_sequential_test``.
    """
    check_alpha(alpha)
    check_null(alternative, null)
    live, shadow = counts.live_accuracy, counts.shadow_accuracy
    problem = _counts_problem(counts)
    if problem is not None:
        return uninformative_result(
            PAIRED_Z,
            sizes=(counts.n, counts.n),
            means=(live, shadow),
            difference_type="absolute",
            alternative=alternative,
            alpha=alpha,
            null=null,
            message=problem,
        )
    estimate, variance = (
        float(x) for x in paired_difference(counts.live_only, counts.shadow_only, counts.n)
    )
    stddev = math.sqrt(variance)
    level = alpha / 2.0 if alternative == "two-sided" else alpha
    halfwidth = float(-normal_ppf(level)) * stddev
    return paired_result(
        PAIRED_Z,
        counts.n,
        estimate,
        variance,
        normal_p_value((estimate - null) / stddev, alternative),
        interval_around(estimate, halfwidth, alternative),
        alternative=alternative,
        alpha=alpha,
        null=null,
        dof=math.inf,
        live_mean=live,
        shadow_mean=shadow,
    )


def paired_sequential_test(
    counts: PairedCounts,
    *,
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
    tuning: float = DEFAULT_TUNING,
    null: float = 0.0,
) -> TestResult:
    """Sequential test of the accuracy difference shadow − live, valid under continuous monitoring.

    The normal-mixture confidence sequence of ``analysis.sequential`` on the
    per-request differences, tightest at ``tuning`` (N*) labelled requests:
    the planned length of the shadow phase. ``p_value < alpha`` exactly when
    the interval excludes ``null``.
    """
    check_null(alternative, null)
    check_sequential(alternative, alpha, tuning)
    live, shadow = counts.live_accuracy, counts.shadow_accuracy
    problem = _counts_problem(counts)
    if problem is not None:
        return uninformative_result(
            PAIRED_SEQUENTIAL_CS,
            sizes=(counts.n, counts.n),
            means=(live, shadow),
            difference_type="absolute",
            alternative=alternative,
            alpha=alpha,
            null=null,
            message=problem,
            sequential_tuning=tuning,
        )
    estimate, variance = paired_difference(counts.live_only, counts.shadow_only, counts.n)
    return sequential_result(
        counts.n,
        float(estimate),
        float(variance),
        alternative=alternative,
        alpha=alpha,
        tuning=tuning,
        null=null,
        live_mean=live,
        shadow_mean=shadow,
    )


def paired_non_inferiority_test(
    counts: PairedCounts,
    *,
    margin: float,
    alpha: float = 0.05,
    tuning: float = DEFAULT_TUNING,
    sequential: bool = True,
) -> TestResult:
    """Is the shadow's accuracy shown to be no worse than live by more than ``margin``?

    One-sided (H0: difference <= −margin): ``significant`` means the interval's
    lower end is above −margin. ``margin`` is in accuracy points (0.01 = one
    point). Sequential by default, so a shadow gate may ask after every batch.
    """
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"margin must be in [0, 1), got {margin!r}")
    if sequential:
        return paired_sequential_test(
            counts, alternative="greater", alpha=alpha, tuning=tuning, null=0.0 - margin
        )
    return paired_z_test(counts, alternative="greater", alpha=alpha, null=0.0 - margin)


def paired_harm_test(
    counts: PairedCounts,
    *,
    margin: float = 0.0,
    alpha: float = 0.05,
    tuning: float = DEFAULT_TUNING,
    sequential: bool = True,
) -> TestResult:
    """Is the shadow's accuracy shown to be worse than live by more than ``margin``?

    One-sided (H0: difference >= −margin): ``significant`` means the interval's
    upper end is below −margin. The mirror of ``paired_non_inferiority_test``.
    """
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"margin must be in [0, 1), got {margin!r}")
    if sequential:
        return paired_sequential_test(
            counts, alternative="less", alpha=alpha, tuning=tuning, null=0.0 - margin
        )
    return paired_z_test(counts, alternative="less", alpha=alpha, null=0.0 - margin)


def _testable(
    live_only: FloatArray, shadow_only: FloatArray, n: FloatArray
) -> npt.NDArray[np.bool_]:
    """Element-wise twin of ``_counts_problem``: some, but not only, discordant pairs."""
    pairs = live_only + shadow_only
    return (n > 0) & (pairs > 0) & (pairs < n)


def paired_sequential_p_values(
    live_only: npt.ArrayLike,
    shadow_only: npt.ArrayLike,
    n: npt.ArrayLike,
    *,
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
    tuning: float = DEFAULT_TUNING,
    null: float = 0.0,
) -> FloatArray:
    """Vectorised ``paired_sequential_test(...).p_value``: 1 wherever the test cannot run."""
    lo, s, size = (np.asarray(x, dtype=np.float64) for x in (live_only, shadow_only, n))
    estimate, variance = paired_difference(lo, s, size)
    ok = _testable(lo, s, size)
    p_value = sequential_p_value(
        np.where(ok, estimate, 0.0),
        np.where(ok, variance, 1.0),
        np.where(ok, size, 1.0),
        alpha=alpha,
        tuning=tuning,
        alternative=alternative,
        null=null,
    )
    return np.where(ok, p_value, 1.0)


def paired_z_p_values(
    live_only: npt.ArrayLike,
    shadow_only: npt.ArrayLike,
    n: npt.ArrayLike,
    *,
    alternative: Alternative = "two-sided",
    null: float = 0.0,
) -> FloatArray:
    """Vectorised ``paired_z_test(...).p_value``: 1 wherever the test cannot run."""
    lo, s, size = (np.asarray(x, dtype=np.float64) for x in (live_only, shadow_only, n))
    estimate, variance = paired_difference(lo, s, size)
    ok = _testable(lo, s, size)
    statistic = (np.where(ok, estimate, 0.0) - null) / np.sqrt(np.where(ok, variance, 1.0))
    if alternative == "two-sided":
        p_value = 2.0 * normal_cdf(-np.abs(statistic))
    elif alternative == "greater":
        p_value = normal_cdf(-statistic)
    else:
        p_value = normal_cdf(statistic)
    return np.where(ok, p_value, 1.0)
