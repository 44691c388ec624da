"""Group-sequential boundaries: a fixed number of planned looks with alpha spent over time.

An alternative to confidence sequences when the looks are few and planned:
Lan–DeMets alpha spending with the power family alpha·t^rho (rho = 2 by
default, as spotify/confidence uses), two-sided, computed by the recursive
numerical integration of Armitage, McPherson and Rowe (1969). Each look's
boundary is a z threshold, reported also as the per-look "adjusted alpha".
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analysis._distributions import normal_cdf, normal_ppf
from analysis.effect import check_alpha
from analysis.sufficient import FloatArray

__all__ = ["GroupSequentialBounds", "group_sequential_bounds"]

# Grid points per unit of z for the integration, and a cap on |z| past which
# the boundary is "never" (spotify/confidence truncates at 8 as well).
_POINTS_PER_UNIT = 100
_Z_CAP = 8.0


@dataclass(frozen=True)
class GroupSequentialBounds:
    """Two-sided z boundaries per look and the nominal alpha each look tests at."""

    information: tuple[float, ...]
    z_bounds: tuple[float, ...]
    adjusted_alpha: tuple[float, ...]
    alpha: float
    rho: float


def _simpson_weights(points: int, step: float) -> FloatArray:
    weights = np.ones(points)
    weights[1:-1:2] = 4.0
    weights[2:-1:2] = 2.0
    return weights * step / 3.0


def _grid(bound: float) -> tuple[FloatArray, FloatArray]:
    """Odd number of points on [-bound, bound] and their Simpson weights."""
    intervals = max(2, 2 * math.ceil(_POINTS_PER_UNIT * bound))
    z = np.linspace(-bound, bound, intervals + 1)
    return z, _simpson_weights(z.size, z[1] - z[0])


def _crossing(bound: float, mass: FloatArray, centre: FloatArray, spread: float) -> float:
    """P(|Z_k| >= bound and no earlier crossing), given the previous look's weighted density."""
    upper = 1.0 - normal_cdf((bound - centre) / spread)
    lower = normal_cdf((-bound - centre) / spread)
    return float(np.sum(mass * (upper + lower)))


def _solve_bound(target: float, mass: FloatArray, centre: FloatArray, spread: float) -> float:
    """The bound whose crossing probability equals ``target`` (bisection: it is monotone)."""
    low, high = 0.0, _Z_CAP
    if _crossing(high, mass, centre, spread) >= target:
        return _Z_CAP
    for _ in range(60):
        middle = 0.5 * (low + high)
        if _crossing(middle, mass, centre, spread) > target:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def group_sequential_bounds(
    information: Sequence[float], *, alpha: float = 0.05, rho: float = 2.0
) -> GroupSequentialBounds:
    """Boundaries at cumulative information fractions ``information`` (increasing, in (0, 1]).

    The fraction at a look is the sample so far over the planned final sample
    (or over the current sample, once it passes the plan).
    """
    check_alpha(alpha)
    fractions = [float(t) for t in information]
    if not fractions or any(not 0.0 < t <= 1.0 for t in fractions):
        raise ValueError("information fractions must lie in (0, 1]")
    if any(b <= a for a, b in itertools.pairwise(fractions)):
        raise ValueError("information fractions must be strictly increasing")
    if rho <= 0.0:
        raise ValueError(f"rho must be > 0, got {rho!r}")

    spent = [alpha * t**rho for t in fractions]
    bounds = [min(_Z_CAP, float(normal_ppf(1.0 - spent[0] / 2.0)))]
    z, weights = _grid(bounds[0])
    density = np.exp(-0.5 * z**2) / math.sqrt(2.0 * math.pi)
    for k in range(1, len(fractions)):
        previous, current = fractions[k - 1], fractions[k]
        # Z_k given Z_{k-1} = z: N(z·sqrt(t_{k-1}/t_k), (t_k - t_{k-1})/t_k).
        shrink = math.sqrt(previous / current)
        spread = math.sqrt((current - previous) / current)
        mass = density * weights
        bound = _solve_bound(spent[k] - spent[k - 1], mass, z * shrink, spread)
        bounds.append(bound)
        z_next, weights_next = _grid(bound)
        kernel = np.exp(-0.5 * ((z_next[:, None] - shrink * z[None, :]) / spread) ** 2)
        density = kernel @ mass / (spread * math.sqrt(2.0 * math.pi))
        z, weights = z_next, weights_next
    adjusted = tuple(float(2.0 * (1.0 - normal_cdf(b))) for b in bounds)
    return GroupSequentialBounds(
        information=tuple(fractions),
        z_bounds=tuple(bounds),
        adjusted_alpha=adjusted,
        alpha=alpha,
        rho=rho,
    )
