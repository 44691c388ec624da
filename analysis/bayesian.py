"""Bayesian read-out of a lift: chance to win and expected loss, as gbstats reports them.

The lift's likelihood is the same normal the frequentist test uses (estimate,
delta-method variance); with a flat prior the posterior is that normal, with a
proper normal prior the two combine by precision. Offered for reports that
prefer "probability treatment is better" to p-values; ramp gates use the
sequential test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from analysis._distributions import normal_cdf, normal_ppf
from analysis.effect import check_alpha, effect_problem, lift_moments
from analysis.results import DifferenceType
from analysis.sufficient import Moments, SampleStatistic

__all__ = ["BayesianResult", "GaussianPrior", "bayesian_test", "expected_loss"]


@dataclass(frozen=True)
class GaussianPrior:
    """Normal prior on the lift (in the lift's units: relative or absolute)."""

    mean: float = 0.0
    variance: float = 0.09

    def __post_init__(self) -> None:
        if not self.variance > 0.0:
            raise ValueError(f"variance must be > 0, got {self.variance!r}")


@dataclass(frozen=True)
class BayesianResult:
    """Posterior of the lift: mean (``estimate``), sd, credible interval, P(lift > 0), risks.

    ``risk_control`` is the expected loss of keeping control, ``risk_treatment``
    of shipping the treatment, both in the lift's units. On ``error`` the
    numbers are uninformative (lift 0, chance 0.5) and ``message`` says why.
    """

    difference_type: DifferenceType
    estimate: float
    stddev: float
    ci_low: float
    ci_high: float
    chance_to_win: float
    risk_control: float
    risk_treatment: float
    control_n: int
    treatment_n: int
    message: str = ""
    error: bool = False


def expected_loss(mean: float, stddev: float) -> tuple[float, float]:
    """(E[max(X, 0)], E[max(-X, 0)]) for X ~ N(mean, stddev²): the two decisions' risks."""
    z = mean / stddev
    density = stddev * math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    # Both written as mean·Φ(±z) + sd·φ(z), so neither is a difference of near-equal terms.
    above = mean * float(normal_cdf(z)) + density
    below = -mean * float(normal_cdf(-z)) + density
    return above, below


def bayesian_test(
    control: SampleStatistic,
    treatment: SampleStatistic,
    *,
    difference_type: DifferenceType = "relative",
    prior: GaussianPrior | None = None,
    alpha: float = 0.05,
) -> BayesianResult:
    """Posterior of the treatment's lift over control (``prior=None``: flat prior)."""
    check_alpha(alpha)
    problem = effect_problem(control, treatment, difference_type)
    if problem is not None:
        return BayesianResult(
            difference_type=difference_type,
            estimate=0.0,
            stddev=0.0,
            ci_low=0.0,
            ci_high=0.0,
            chance_to_win=0.5,
            risk_control=0.0,
            risk_treatment=0.0,
            control_n=control.n,
            treatment_n=treatment.n,
            message=problem,
            error=True,
        )
    estimate, variance = lift_moments(Moments.of(control), Moments.of(treatment), difference_type)
    mean, var = float(estimate), float(variance)
    if prior is not None:
        precision = 1.0 / prior.variance + 1.0 / var
        mean = (prior.mean / prior.variance + mean / var) / precision
        var = 1.0 / precision
    stddev = math.sqrt(var)
    halfwidth = float(normal_ppf(1.0 - alpha / 2.0)) * stddev
    risk_control, risk_treatment = expected_loss(mean, stddev)
    return BayesianResult(
        difference_type=difference_type,
        estimate=mean,
        stddev=stddev,
        ci_low=mean - halfwidth,
        ci_high=mean + halfwidth,
        chance_to_win=float(normal_cdf(mean / stddev)),
        risk_control=risk_control,
        risk_treatment=risk_treatment,
        control_n=control.n,
        treatment_n=treatment.n,
    )
