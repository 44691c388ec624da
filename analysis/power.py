"""Power, minimum detectable effect, sample size and time to a decision.

The semantics are GrowthBook's power calculator: both arms share the metric's
variance, the lift's variance is evaluated at the treatment mean
mean·(1 + lift), and a sequential test is costed by its wider interval at the
final sample size (half-width / z*, used as the standard error).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from analysis._distributions import normal_cdf, normal_ppf
from analysis.effect import check_alpha, lift_moments
from analysis.results import DifferenceType
from analysis.sequential import sequential_halfwidth
from analysis.sufficient import Moments

__all__ = [
    "MdeResult",
    "SampleSizeResult",
    "TimeToDecision",
    "estimate_power",
    "minimum_detectable_effect",
    "sample_size_per_arm",
    "time_to_decision",
]

# Search ceiling for sample sizes: beyond this the effect is undetectable in practice.
_MAX_UNITS = 10**12


@dataclass(frozen=True)
class MdeResult:
    """Smallest lift detected with the target power, or None and why not."""

    mde: float | None
    message: str


@dataclass(frozen=True)
class SampleSizeResult:
    """Units needed per arm to detect the lift with the target power, or None and why not."""

    n_per_arm: int | None
    message: str


@dataclass(frozen=True)
class TimeToDecision:
    """Seconds until every arm has the units a decision needs, at the current traffic."""

    seconds: float | None
    remaining_per_arm: Mapping[str, int]
    message: str


def _z_star(alpha: float, two_sided: bool) -> float:
    return float(normal_ppf(1.0 - alpha / 2.0 if two_sided else 1.0 - alpha))


def _standard_error(
    mean: float,
    variance: float,
    lift: float,
    n_per_arm: float,
    *,
    difference_type: DifferenceType,
    alpha: float,
    two_sided: bool,
    tuning: float | None,
) -> float:
    """Standard error of the lift; for a sequential test, the one its wider interval implies."""
    treatment_mean = mean * (1.0 + lift) if difference_type == "relative" else mean + lift
    n = np.asarray(float(n_per_arm))
    control = Moments(n=n, mean=np.asarray(mean), variance=np.asarray(variance))
    treatment = Moments(n=n, mean=np.asarray(treatment_mean), variance=np.asarray(variance))
    _, lift_variance = lift_moments(control, treatment, difference_type)
    if tuning is None:
        return float(np.sqrt(lift_variance))
    halfwidth = sequential_halfwidth(
        lift_variance, 2.0 * n, alpha=alpha, tuning=tuning, one_sided=not two_sided
    )
    return float(halfwidth) / _z_star(alpha, two_sided)


def _check(
    mean: float, variance: float, difference_type: DifferenceType, n_per_arm: float = 1.0
) -> None:
    if not n_per_arm > 0:
        raise ValueError(f"n_per_arm must be > 0, got {n_per_arm!r}")
    if not variance > 0.0:
        raise ValueError(f"variance must be > 0, got {variance!r}")
    if difference_type == "relative" and mean == 0.0:
        raise ValueError("mean must not be 0 for a relative lift")


def estimate_power(
    mean: float,
    variance: float,
    lift: float,
    n_per_arm: float,
    *,
    difference_type: DifferenceType = "relative",
    alpha: float = 0.05,
    two_sided: bool = True,
    tuning: float | None = None,
) -> float:
    """Probability of a significant result when the true lift is ``lift``.

    ``mean`` and ``variance`` are the control metric's (per unit); ``tuning``
    is the sequential test's N*, or None for a fixed-horizon test.
    """
    check_alpha(alpha)
    _check(mean, variance, difference_type, n_per_arm)
    stderr = _standard_error(
        mean,
        variance,
        lift,
        n_per_arm,
        difference_type=difference_type,
        alpha=alpha,
        two_sided=two_sided,
        tuning=tuning,
    )
    z_star = _z_star(alpha, two_sided)
    standardized = lift / stderr
    power = 1.0 - float(normal_cdf(z_star - standardized))
    if two_sided:
        power += float(normal_cdf(-z_star - standardized))
    return power


def minimum_detectable_effect(
    mean: float,
    variance: float,
    n_per_arm: float,
    *,
    target_power: float = 0.8,
    difference_type: DifferenceType = "relative",
    alpha: float = 0.05,
    tuning: float | None = None,
) -> MdeResult:
    """Smallest positive lift a two-sided test detects with ``target_power``.

    For a relative lift the delta-method variance depends on the lift itself,
    so the MDE solves a quadratic (GrowthBook's ``findMdeFrequentist``).
    """
    check_alpha(alpha)
    _check(mean, variance, difference_type, n_per_arm)
    if not alpha < target_power < 1.0:
        return MdeResult(None, f"target power must be between alpha ({alpha}) and 1")
    z = float(normal_ppf(1.0 - alpha / 2.0) - normal_ppf(1.0 - target_power))
    if tuning is not None:
        # The sequential interval is wider than z*·se by a factor that does not depend on
        # the variance (its half-width for a unit-variance estimate, over z*): fold it in.
        widening = sequential_halfwidth(
            np.asarray(1.0), np.asarray(2.0 * n_per_arm), alpha=alpha, tuning=tuning
        )
        variance *= (float(widening) / _z_star(alpha, True)) ** 2
    sigma2 = variance / n_per_arm
    if difference_type == "absolute":
        return MdeResult(z * math.sqrt(2.0 * sigma2), "")
    if n_per_arm <= variance * z**2 / mean**2:
        return MdeResult(
            None,
            "too few units for any lift to reach the target power: add traffic or drop variants",
        )
    a = 1.0 - z**2 * sigma2 / mean**2
    b = -2.0 * mean
    c = mean**2 - z**2 * sigma2
    treatment_mean = (-b + math.sqrt(b**2 - 4.0 * a * c)) / (2.0 * a)
    return MdeResult((treatment_mean - mean) / mean, "")


def sample_size_per_arm(
    mean: float,
    variance: float,
    lift: float,
    *,
    target_power: float = 0.8,
    difference_type: DifferenceType = "relative",
    alpha: float = 0.05,
    two_sided: bool = True,
    tuning: float | None = None,
) -> SampleSizeResult:
    """Fewest units per arm for ``estimate_power`` to reach ``target_power`` at ``lift``."""
    check_alpha(alpha)
    _check(mean, variance, difference_type)
    if not alpha < target_power < 1.0:
        return SampleSizeResult(None, f"target power must be between alpha ({alpha}) and 1")
    if lift == 0.0:
        return SampleSizeResult(None, "a lift of 0 cannot be detected")

    def enough(n: int) -> bool:
        power = estimate_power(
            mean,
            variance,
            lift,
            n,
            difference_type=difference_type,
            alpha=alpha,
            two_sided=two_sided,
            tuning=tuning,
        )
        return power >= target_power

    # Power grows with n: double until enough, then bisect on integers.
    high = 2
    while not enough(high):
        if high >= _MAX_UNITS:
            return SampleSizeResult(None, f"more than {_MAX_UNITS:.0e} units per arm needed")
        high *= 2
    low = high // 2
    while high - low > 1:
        middle = (low + high) // 2
        if enough(middle):
            high = middle
        else:
            low = middle
    return SampleSizeResult(high, "")


def time_to_decision(
    required_per_arm: int,
    current_per_arm: Mapping[str, int],
    units_per_second: Mapping[str, float],
) -> TimeToDecision:
    """How long, at the current traffic, until every arm has ``required_per_arm`` units."""
    if set(current_per_arm) != set(units_per_second):
        raise ValueError("current_per_arm and units_per_second must name the same arms")
    remaining = {arm: max(0, required_per_arm - n) for arm, n in current_per_arm.items()}
    if not any(remaining.values()):
        return TimeToDecision(0.0, remaining, "every arm already has enough units")
    starved = [arm for arm, left in remaining.items() if left and units_per_second[arm] <= 0.0]
    if starved:
        return TimeToDecision(
            None, remaining, f"no traffic reaches {', '.join(sorted(starved))}: no decision ahead"
        )
    seconds = max(left / units_per_second[arm] for arm, left in remaining.items() if left)
    return TimeToDecision(seconds, remaining, f"about {_duration(seconds)} at the current traffic")


def _duration(seconds: float) -> str:
    for unit, size in (("days", 86_400.0), ("hours", 3_600.0), ("minutes", 60.0)):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} seconds"
