"""Paired tests: a shadow and the live model scored on the same labelled requests.

When both models answer every request and the label scores both answers, the
requests on which they agree carry no information about which is better: the
accuracy difference shadow − live is (shadow_only − live_only)/n and its
variance comes from the discordant pairs alone,

    Var = ((shadow_only + live_only) − (shadow_only − live_only)²/n) / n²,

which for models that agree on most requests is several times smaller than
that of two independent arms of the same total size.

The tests here, on the four paired counts (``PairedCounts``):

* ``mcnemar_exact`` — the binomial test of the discordant pairs (H0: either
  model is as likely to be the one that is right), as statsmodels'
  ``mcnemar(exact=True)``; ``mcnemar_chi_square`` with or without continuity
  correction, as ``mcnemar(exact=False)``;
* ``paired_z_test`` — the Wald test of the difference, with its interval;
* ``paired_sequential_test`` — the normal-mixture confidence sequence of
  ``analysis.sequential`` on the per-request differences d ∈ {−1, 0, 1}: valid
  however often it is looked at, so a shadow gate may check after every batch;
* ``paired_non_inferiority_test`` / ``paired_harm_test`` — its one-sided forms,
  as the shadow gate asks them.

For numeric outcomes (a value or reward computed from each answer and the
label) the per-request differences' sufficient statistics (n, Σd, Σd²) as a
``MetricStats`` feed ``paired_t_test`` (as scipy's ``ttest_rel``) and
``paired_mean_sequential_test``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analysis._distributions import binomial_cdf, chi2_sf, normal_cdf, normal_ppf, t_cdf, t_ppf
from analysis.effect import check_alpha
from analysis.results import Alternative, TestResult
from analysis.sequential import DEFAULT_TUNING, sequential_halfwidth, sequential_p_value
from analysis.sufficient import FloatArray, MetricStats
from analysis.sufficient.validation import whole_count

__all__ = [
    "MCNEMAR_CHI2",
    "MCNEMAR_EXACT",
    "PAIRED_SEQUENTIAL_CS",
    "PAIRED_T",
    "PAIRED_Z",
    "McNemarResult",
    "PairedCounts",
    "mcnemar_chi_square",
    "mcnemar_exact",
    "paired_difference",
    "paired_harm_test",
    "paired_mean_sequential_test",
    "paired_non_inferiority_test",
    "paired_sequential_p_values",
    "paired_sequential_test",
    "paired_t_test",
    "paired_z_p_values",
    "paired_z_test",
]

MCNEMAR_EXACT = "mcnemar_exact"
MCNEMAR_CHI2 = "mcnemar_chi2"
PAIRED_Z = "paired_z"
PAIRED_T = "paired_t"
PAIRED_SEQUENTIAL_CS = "paired_sequential_cs"
"""``test`` names of this module's results."""


@dataclass(frozen=True)
class PairedCounts:
    """One shadow against the live model over the same labelled requests.

    ``both``: both answers right; ``live_only``: only the live answer right;
    ``shadow_only``: only the shadow's right; ``neither``: both wrong. Counts
    from several windows or gateway replicas add with ``+``.
    """

    both: int
    live_only: int
    shadow_only: int
    neither: int

    def __post_init__(self) -> None:
        for name in ("both", "live_only", "shadow_only", "neither"):
            object.__setattr__(self, name, whole_count(name, getattr(self, name)))

    @classmethod
    def from_outcomes(
        cls, live_right: Iterable[bool], shadow_right: Iterable[bool]
    ) -> PairedCounts:
        """Counts of per-request outcomes (for tests, imports and small batches)."""
        live = np.fromiter(live_right, dtype=bool)
        shadow = np.fromiter(shadow_right, dtype=bool)
        if live.shape != shadow.shape:
            raise ValueError(
                f"live_right and shadow_right differ in length: {live.size} vs {shadow.size}"
            )
        return cls(
            both=int(np.sum(live & shadow)),
            live_only=int(np.sum(live & ~shadow)),
            shadow_only=int(np.sum(~live & shadow)),
            neither=int(np.sum(~live & ~shadow)),
        )

    @property
    def n(self) -> int:
        """Labelled requests scored for both models."""
        return self.both + self.live_only + self.shadow_only + self.neither

    @property
    def discordant(self) -> int:
        """Requests on which exactly one of the two models was right."""
        return self.live_only + self.shadow_only

    @property
    def live_accuracy(self) -> float:
        """Share of requests the live model got right; 0 when there are none."""
        return (self.both + self.live_only) / self.n if self.n else 0.0

    @property
    def shadow_accuracy(self) -> float:
        """Share of requests the shadow got right; 0 when there are none."""
        return (self.both + self.shadow_only) / self.n if self.n else 0.0

    @property
    def differences(self) -> MetricStats:
        """Sufficient statistics of d = shadow right − live right, per request."""
        return MetricStats(
            n=self.n,
            sum=float(self.shadow_only - self.live_only),
            sum_squares=float(self.discordant),
        )

    def __add__(self, other: PairedCounts) -> PairedCounts:
        if not isinstance(other, PairedCounts):
            return NotImplemented
        return PairedCounts(
            both=self.both + other.both,
            live_only=self.live_only + other.live_only,
            shadow_only=self.shadow_only + other.shadow_only,
            neither=self.neither + other.neither,
        )


@dataclass(frozen=True)
class McNemarResult:
    """A McNemar test of H0: shadow_only and live_only are equally likely.

    ``statistic`` is what statsmodels reports: the smaller discordant count for
    the exact test, the chi-square value otherwise. ``difference`` is the
    accuracy difference shadow − live it tests. With no discordant pair there
    is no evidence either way: p-value 1 and a ``message`` saying so.
    """

    # Not a pytest test class, despite the name.
    __test__ = False

    test: str
    alternative: Alternative
    alpha: float
    statistic: float
    p_value: float
    difference: float
    discordant: int
    n: int
    correction: bool = False
    message: str = ""

    @property
    def significant(self) -> bool:
        """Whether the test rejects equal accuracy at level ``alpha``."""
        return self.p_value < self.alpha


_NO_DISCORDANT = "no request on which only one of the two models was right: no evidence either way"


def mcnemar_exact(
    counts: PairedCounts, *, alternative: Alternative = "two-sided", alpha: float = 0.05
) -> McNemarResult:
    """Exact McNemar test: a binomial test of shadow_only out of the discordant pairs at 1/2.

    Two-sided: min(1, 2·P(X <= min(live_only, shadow_only))), as statsmodels
    and scipy's ``binomtest`` compute it. ``greater`` means the shadow is better.
    """
    check_alpha(alpha)
    _check_alternative(alternative)
    pairs = counts.discordant
    if alternative == "two-sided":
        tail = float(binomial_cdf(min(counts.live_only, counts.shadow_only), pairs, 0.5))
        p_value = min(1.0, 2.0 * tail)
    elif alternative == "greater":
        # P(X >= shadow_only) = P(pairs − X <= live_only), and pairs − X is Binomial(pairs, 1/2).
        p_value = float(binomial_cdf(counts.live_only, pairs, 0.5))
    else:
        p_value = float(binomial_cdf(counts.shadow_only, pairs, 0.5))
    return McNemarResult(
        test=MCNEMAR_EXACT,
        alternative=alternative,
        alpha=alpha,
        statistic=float(min(counts.live_only, counts.shadow_only)),
        p_value=p_value,
        difference=_difference(counts),
        discordant=pairs,
        n=counts.n,
        message="" if pairs else _NO_DISCORDANT,
    )


def mcnemar_chi_square(
    counts: PairedCounts, *, correction: bool = True, alpha: float = 0.05
) -> McNemarResult:
    """McNemar's chi-square test (1 dof), two-sided, with or without continuity correction.

    (|shadow_only − live_only| − c)² / discordant with c = 1 when corrected, as
    statsmodels computes it, except that the corrected distance stops at 0:
    statsmodels' (0 − 1)² would call a perfect tie a deviation.
    """
    check_alpha(alpha)
    pairs = counts.discordant
    if pairs == 0:
        statistic, p_value = 0.0, 1.0
    else:
        distance = abs(counts.shadow_only - counts.live_only)
        if correction:
            distance = max(distance - 1, 0)
        statistic = distance**2 / pairs
        p_value = chi2_sf(statistic, 1.0)
    return McNemarResult(
        test=MCNEMAR_CHI2,
        alternative="two-sided",
        alpha=alpha,
        statistic=float(statistic),
        p_value=float(p_value),
        difference=_difference(counts),
        discordant=pairs,
        n=counts.n,
        correction=correction,
        message="" if pairs else _NO_DISCORDANT,
    )


def _difference(counts: PairedCounts) -> float:
    return (counts.shadow_only - counts.live_only) / counts.n if counts.n else 0.0


def paired_difference(
    live_only: npt.ArrayLike, shadow_only: npt.ArrayLike, n: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Accuracy difference shadow − live and its variance, element-wise (NaN where n = 0).

    ((s + l) − (s − l)²/n)/n²: the variance of the mean of the per-request
    differences d ∈ {−1, 0, 1}, with the 1/n (maximum-likelihood) variance of d.
    """
    s = np.asarray(shadow_only, dtype=np.float64)
    lo = np.asarray(live_only, dtype=np.float64)
    size = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = (s - lo) / size
        variance = ((s + lo) - (s - lo) ** 2 / size) / size**2
    return estimate, np.maximum(variance, 0.0)


def _counts_problem(counts: PairedCounts) -> str | None:
    """Why no interval can be computed from these counts, or None when one can."""
    if counts.n == 0:
        return "no labelled request has been scored for both models yet"
    if counts.discordant == 0:
        return _NO_DISCORDANT + ", so the difference has no variance estimate"
    if counts.discordant == counts.n:
        better = "shadow" if counts.shadow_only else "live model"
        return (
            f"the {better} was the only one right on every labelled request, so the difference "
            "has no variance estimate; see the exact McNemar test"
        )
    return None


def _check_alternative(alternative: Alternative) -> None:
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative must be two-sided, greater or less, got {alternative!r}")


def _check_null(alternative: Alternative, null: float) -> None:
    _check_alternative(alternative)
    if not math.isfinite(null) or abs(null) >= 1.0:
        raise ValueError(f"null must be an accuracy difference in (-1, 1), got {null!r}")


def _result(
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


def _uninformative(
    test: str,
    n: int,
    *,
    alternative: Alternative,
    alpha: float,
    null: float,
    live_mean: float,
    shadow_mean: float,
    message: str,
    tuning: float | None = None,
) -> TestResult:
    """No effect, no evidence, and why: as ``analysis.effect.uninformative_result``."""
    return TestResult(
        test=test,
        difference_type="absolute",
        alternative=alternative,
        alpha=alpha,
        estimate=0.0,
        ci_low=0.0,
        ci_high=0.0,
        p_value=1.0,
        stddev=0.0,
        dof=0.0,
        control_n=n,
        treatment_n=n,
        control_mean=live_mean,
        treatment_mean=shadow_mean,
        null=null,
        sequential_tuning=tuning,
        message=message,
        error=True,
    )


def _normal_p_value(statistic: float, alternative: Alternative) -> float:
    if alternative == "two-sided":
        return float(2.0 * normal_cdf(-abs(statistic)))
    if alternative == "greater":
        return float(normal_cdf(-statistic))
    return float(normal_cdf(statistic))


def _interval(estimate: float, halfwidth: float, alternative: Alternative) -> tuple[float, float]:
    low = -math.inf if alternative == "less" else estimate - halfwidth
    high = math.inf if alternative == "greater" else estimate + halfwidth
    return low, high


def paired_z_test(
    counts: PairedCounts,
    *,
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
    null: float = 0.0,
) -> TestResult:
    """Fixed-horizon Wald test of the accuracy difference shadow − live, with its interval.

    z = (difference − null)/SE with the unrestricted SE above; the interval is
    difference ± z_{1−α/2}·SE (one end infinite when one-sided). Valid when
    looked at once; under continuous monitoring use ``paired_sequential_test``.
    """
    check_alpha(alpha)
    _check_null(alternative, null)
    live, shadow = counts.live_accuracy, counts.shadow_accuracy
    problem = _counts_problem(counts)
    if problem is not None:
        return _uninformative(
            PAIRED_Z,
            counts.n,
            alternative=alternative,
            alpha=alpha,
            null=null,
            live_mean=live,
            shadow_mean=shadow,
            message=problem,
        )
    estimate, variance = (
        float(x) for x in paired_difference(counts.live_only, counts.shadow_only, counts.n)
    )
    stddev = math.sqrt(variance)
    level = alpha / 2.0 if alternative == "two-sided" else alpha
    halfwidth = float(-normal_ppf(level)) * stddev
    return _result(
        PAIRED_Z,
        counts.n,
        estimate,
        variance,
        _normal_p_value((estimate - null) / stddev, alternative),
        _interval(estimate, halfwidth, alternative),
        alternative=alternative,
        alpha=alpha,
        null=null,
        dof=math.inf,
        live_mean=live,
        shadow_mean=shadow,
    )


def _array(value: float) -> FloatArray:
    return np.asarray(value, dtype=np.float64)


def _sequential(
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
    return _result(
        PAIRED_SEQUENTIAL_CS,
        n,
        estimate,
        variance,
        p_value,
        _interval(estimate, halfwidth, alternative),
        alternative=alternative,
        alpha=alpha,
        null=null,
        dof=math.inf,
        live_mean=live_mean,
        shadow_mean=shadow_mean,
        tuning=tuning,
    )


def _check_sequential(alternative: Alternative, alpha: float, tuning: float) -> None:
    check_alpha(alpha)
    _check_alternative(alternative)
    if alternative != "two-sided" and alpha >= 0.5:
        raise ValueError(f"a one-sided sequential test needs alpha < 0.5, got {alpha!r}")
    if not tuning > 0:
        raise ValueError(f"tuning (N*) must be > 0, got {tuning!r}")


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
    _check_null(alternative, null)
    _check_sequential(alternative, alpha, tuning)
    live, shadow = counts.live_accuracy, counts.shadow_accuracy
    problem = _counts_problem(counts)
    if problem is not None:
        return _uninformative(
            PAIRED_SEQUENTIAL_CS,
            counts.n,
            alternative=alternative,
            alpha=alpha,
            null=null,
            live_mean=live,
            shadow_mean=shadow,
            message=problem,
            tuning=tuning,
        )
    estimate, variance = paired_difference(counts.live_only, counts.shadow_only, counts.n)
    return _sequential(
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
    _check_alternative(alternative)
    if not math.isfinite(null):
        raise ValueError(f"null must be a finite number, got {null!r}")
    estimate = differences.mean
    problem = _differences_problem(differences)
    if problem is not None:
        return _uninformative(
            PAIRED_T,
            differences.n,
            alternative=alternative,
            alpha=alpha,
            null=null,
            live_mean=live_mean,
            shadow_mean=live_mean + estimate,
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
    return _result(
        PAIRED_T,
        differences.n,
        estimate,
        variance,
        p_value,
        _interval(estimate, halfwidth, alternative),
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
    _check_sequential(alternative, alpha, tuning)
    if not math.isfinite(null):
        raise ValueError(f"null must be a finite number, got {null!r}")
    estimate = differences.mean
    problem = _differences_problem(differences)
    if problem is not None:
        return _uninformative(
            PAIRED_SEQUENTIAL_CS,
            differences.n,
            alternative=alternative,
            alpha=alpha,
            null=null,
            live_mean=live_mean,
            shadow_mean=live_mean + estimate,
            message=problem,
            tuning=tuning,
        )
    return _sequential(
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
