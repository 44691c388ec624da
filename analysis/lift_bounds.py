"""Bounds on the relative lift of a treatment over a control that err equally both ways.

A ramp compares a canary with few units against a champion with many, at a
baseline such as an accuracy of 0.84, where a proportion's sampling
distribution is skewed at small n. The Wald interval with the delta-method
variance then says "better" far more often than "worse" in an A/A test (its
variance shrinks as the canary's rate rises towards 1): in 20,000 simulated
A/A ramps at 5 % weight, monitored with the one-sided confidence sequence,
7.9 % were falsely "better" and 1.7 % falsely "worse". The pooled variance
errs the other way (2.1 % / 3.4 %).

For proportions these bounds invert the signed root of the likelihood ratio
of the ratio of the two rates (the restricted maximum likelihood of
Farrington and Manning, 1990): 3.1 % / 2.5 % in the same simulation. Means
keep the delta-method Wald bounds. Either way the caller supplies the critical
value on the z scale (a confidence sequence, an mSPRT or a group-sequential
boundary), so one function serves every design.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from analysis.effect import lift_moments
from analysis.sufficient import FloatArray, Moments

__all__ = ["LiftBounds", "null_variance", "proportion_lift_bounds", "wald_lift_bounds"]

# log(ratio) searched in [-_LOG_SPAN, +_LOG_SPAN] by bisection: rates from e^-12 apart.
_LOG_SPAN = 12.0
_BISECTIONS = 24
_TINY = 1e-300


class LiftBounds:
    """Estimate and bounds of the relative lift (treatment - control) / control, as arrays.

    A bound is -inf or +inf where the data exclude nothing on that side.
    """

    __slots__ = ("estimate", "high", "low")

    def __init__(self, estimate: FloatArray, low: FloatArray, high: FloatArray) -> None:
        self.estimate = estimate
        self.low = low
        self.high = high


def _xlogy(x: FloatArray, y: FloatArray) -> FloatArray:
    """x·log(y), 0 where x is 0 (an empty cell contributes nothing to the likelihood)."""
    return np.where(x > 0.0, x * np.log(np.maximum(y, _TINY)), 0.0)


def _log_likelihood(successes: FloatArray, n: FloatArray, rate: FloatArray) -> FloatArray:
    return _xlogy(successes, rate) + _xlogy(n - successes, 1.0 - rate)


def _restricted_control_rate(
    s_t: FloatArray, n_t: FloatArray, s_c: FloatArray, n_c: FloatArray, ratio: FloatArray
) -> FloatArray:
    """Maximum-likelihood control rate under rate_t = ratio · rate_c (the smaller root)."""
    a = ratio * (n_t + n_c)
    b = -(ratio * n_t + s_t + n_c + ratio * s_c)
    c = s_t + s_c
    root = np.sqrt(np.maximum(b * b - 4.0 * a * c, 0.0))
    # (-b - root) / 2a, written so it does not cancel when 4ac is small; -b > 0 always.
    rate = 2.0 * c / np.maximum(-b + root, _TINY)
    return np.clip(rate, 0.0, np.minimum(1.0, 1.0 / ratio))


def _signed_root(
    s_t: FloatArray,
    n_t: FloatArray,
    s_c: FloatArray,
    n_c: FloatArray,
    log_ratio: FloatArray,
    best: FloatArray,
    log_hat: FloatArray,
) -> FloatArray:
    ratio = np.exp(log_ratio)
    rate_c = _restricted_control_rate(s_t, n_t, s_c, n_c, ratio)
    rate_t = np.minimum(ratio * rate_c, 1.0)
    restricted = _log_likelihood(s_t, n_t, rate_t) + _log_likelihood(s_c, n_c, rate_c)
    deviance = np.maximum(2.0 * (best - restricted), 0.0)
    return np.sign(log_hat - log_ratio) * np.sqrt(deviance)


def proportion_lift_bounds(
    treatment: Moments, control: Moments, critical: npt.ArrayLike
) -> LiftBounds:
    """Bounds on (p_t - p_c) / p_c where the signed-root likelihood ratio equals ±critical.

    ``critical`` is a z-scale boundary (array or scalar). Arms without data, or a
    control with no successes, give infinite bounds: nothing is excluded.
    """
    n_t, n_c = np.asarray(treatment.n, float), np.asarray(control.n, float)
    s_t = np.asarray(treatment.mean, float) * n_t
    s_c = np.asarray(control.mean, float) * n_c
    crit = np.broadcast_to(np.asarray(critical, float), np.broadcast(n_t, n_c).shape)
    usable = (n_t > 0) & (n_c > 0) & (s_c > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_t = np.where(n_t > 0, s_t / n_t, 0.0)
        p_c = np.where(n_c > 0, s_c / n_c, 1.0)
        estimate = np.where(usable, p_t / np.where(p_c > 0, p_c, 1.0) - 1.0, 0.0)
        log_hat = np.where(usable, np.log(np.maximum(estimate + 1.0, 1e-300)), 0.0)
    log_hat = np.clip(log_hat, -_LOG_SPAN, _LOG_SPAN)
    best = _log_likelihood(s_t, n_t, p_t) + _log_likelihood(s_c, n_c, p_c)

    def root(log_ratio: FloatArray) -> FloatArray:
        return _signed_root(s_t, n_t, s_c, n_c, log_ratio, best, log_hat)

    def solve(inner: FloatArray, outer: FloatArray, target: FloatArray) -> FloatArray:
        # root() decreases in log_ratio; inner is on the estimate's side of target.
        for _ in range(_BISECTIONS):
            middle = 0.5 * (inner + outer)
            beyond = np.abs(root(middle)) >= np.abs(target)
            outer = np.where(beyond, middle, outer)
            inner = np.where(beyond, inner, middle)
        return 0.5 * (inner + outer)

    low_edge = np.full_like(log_hat, -_LOG_SPAN)
    high_edge = np.full_like(log_hat, _LOG_SPAN)
    excludes_low = usable & (root(low_edge) >= crit)
    excludes_high = usable & (root(high_edge) <= -crit)
    # Bisect within a few Wald widths of the estimate where that brackets the bound
    # (nearly always), over the whole span otherwise: fewer steps, same answer.
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = np.sqrt((1.0 - p_t) / np.maximum(s_t, 0.5) + (1.0 - p_c) / np.maximum(s_c, 0.5))
    reach = np.where(np.isfinite(crit), 2.0 * crit + 2.0, _LOG_SPAN) * spread + 1e-6
    near_low = np.maximum(log_hat - reach, -_LOG_SPAN)
    near_high = np.minimum(log_hat + reach, _LOG_SPAN)
    low_start = np.where(root(near_low) >= crit, near_low, low_edge)
    high_start = np.where(root(near_high) <= -crit, near_high, high_edge)
    low_log = solve(log_hat, low_start, crit)
    high_log = solve(log_hat, high_start, -crit)
    low = np.where(excludes_low, np.expm1(low_log), -np.inf)
    high = np.where(excludes_high, np.expm1(high_log), np.inf)
    return LiftBounds(estimate=estimate, low=low, high=high)


def wald_lift_bounds(treatment: Moments, control: Moments, critical: npt.ArrayLike) -> LiftBounds:
    """Delta-method bounds on the relative lift of means: estimate ± critical · stddev."""
    estimate, variance = lift_moments(control, treatment, "relative")
    usable = np.isfinite(variance) & (variance > 0) & (control.n >= 2) & (treatment.n >= 2)
    half = np.asarray(critical, float) * np.sqrt(np.where(usable, variance, 0.0))
    return LiftBounds(
        estimate=np.where(usable, estimate, 0.0),
        low=np.where(usable, estimate - half, -np.inf),
        high=np.where(usable, estimate + half, np.inf),
    )


def null_variance(treatment: Moments, control: Moments, *, proportion: bool) -> FloatArray:
    """Variance of the relative lift when both arms are alike (pooled for proportions).

    It is the information an mSPRT's mixture and a group-sequential design's
    looks are measured in, and it does not depend on which arm happens to lead.
    """
    n_t, n_c = np.asarray(treatment.n, float), np.asarray(control.n, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if proportion:
            pooled = (treatment.mean * n_t + control.mean * n_c) / (n_t + n_c)
            variance = (1.0 - pooled) / pooled * (1.0 / n_t + 1.0 / n_c)
        else:
            base = control.mean
            variance = (treatment.variance / n_t + control.variance / n_c) / base**2
    return np.where(np.isfinite(variance) & (variance > 0), variance, np.inf)
