"""McNemar's tests of the discordant pairs: exact (binomial) and chi-square."""

from __future__ import annotations

from dataclasses import dataclass

from analysis._distributions import binomial_cdf, chi2_sf
from analysis.effect import check_alpha
from analysis.paired.counts import NO_DISCORDANT, PairedCounts
from analysis.paired.results import MCNEMAR_CHI2, MCNEMAR_EXACT, check_alternative
from analysis.results import Alternative

__all__ = ["McNemarResult", "mcnemar_chi_square", "mcnemar_exact"]


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


def mcnemar_exact(
    counts: PairedCounts, *, alternative: Alternative = "two-sided", alpha: float = 0.05
) -> McNemarResult:
    """Exact McNemar test: a binomial test of shadow_only out of the discordant pairs at 1/2.

    Two-sided: min(1, 2·P(X <= min(live_only, shadow_only))), as statsmodels
    and scipy's ``binomtest`` compute it. ``greater`` means the shadow is better.
    """
    check_alpha(alpha)
    check_alternative(alternative)
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
        message="" if pairs else NO_DISCORDANT,
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
        message="" if pairs else NO_DISCORDANT,
    )


def _difference(counts: PairedCounts) -> float:
    return (counts.shadow_only - counts.live_only) / counts.n if counts.n else 0.0
