"""Normal, Student-t, chi-square and binomial tail functions on numpy arrays.

Why not scipy: ``import scipy.special`` alone costs ~0.2 s on the machines we
measured, and ``abgate analyze`` has a 0.2 s budget on top of interpreter
start-up. These few functions need only numpy and the standard library; the
test suite checks every one of them against scipy to ~1e-10.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

__all__ = ["binomial_cdf", "chi2_sf", "normal_cdf", "normal_ppf", "t_cdf", "t_ppf"]

FloatArray = npt.NDArray[np.float64]


def _elementwise(function: Callable[[float], float]) -> Callable[[FloatArray], FloatArray]:
    """A math-module function applied to every element (numpy has no erfc or lgamma)."""
    vectorised = np.vectorize(function, otypes=[np.float64])

    def apply(x: FloatArray) -> FloatArray:
        return np.asarray(vectorised(x), dtype=np.float64)

    return apply


_erfc = _elementwise(math.erfc)
_lgamma = _elementwise(math.lgamma)
_inv_cdf = _elementwise(NormalDist().inv_cdf)

_EPS = 1e-15
_TINY = 1e-300
# From here on Hill's expansion replaces the (slower, ~sqrt(dof) steps) continued fraction.
_ASYMPTOTIC_DOF = 500.0


def normal_cdf(x: npt.ArrayLike) -> FloatArray:
    """Standard normal distribution function Φ(x)."""
    return 0.5 * _erfc(-np.asarray(x, dtype=np.float64) / math.sqrt(2.0))


def normal_ppf(p: npt.ArrayLike) -> FloatArray:
    """Standard normal quantile Φ⁻¹(p) for 0 < p < 1."""
    return _inv_cdf(np.asarray(p, dtype=np.float64))


def _beta_continued_fraction(a: FloatArray, b: FloatArray, x: FloatArray) -> FloatArray:
    """Continued fraction of the incomplete beta (modified Lentz), for x < (a+1)/(a+b+2)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = np.ones_like(x)
    d = 1.0 - qab * x / qap
    d = 1.0 / np.where(np.abs(d) < _TINY, _TINY, d)
    h = d.copy()
    for m in range(1, 10_000):
        m2 = 2.0 * m
        for numerator in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / np.where(np.abs(d) < _TINY, _TINY, d)
            c = 1.0 + numerator / c
            c = np.where(np.abs(c) < _TINY, _TINY, c)
            step = d * c
            h = h * step
        if np.all(np.abs(step - 1.0) < _EPS):
            break
    return h


def _betainc(a: FloatArray, b: FloatArray, x: FloatArray, y: FloatArray) -> FloatArray:
    """Regularised incomplete beta I_x(a, b), with y = 1 - x given exactly by the caller."""
    a, b, x, y = np.broadcast_arrays(a, b, x, y)
    with np.errstate(divide="ignore"):
        log_front = _lgamma(a + b) - _lgamma(a) - _lgamma(b) + a * np.log(x) + b * np.log(y)
    front = np.exp(log_front)
    direct = x < (a + 1.0) / (a + b + 2.0)
    out = np.empty_like(x)
    if np.any(direct):
        ad, bd, xd = a[direct], b[direct], x[direct]
        out[direct] = front[direct] * _beta_continued_fraction(ad, bd, xd) / ad
    # Past the mode the fraction converges slowly: use I_x(a, b) = 1 - I_y(b, a).
    swap = ~direct
    if np.any(swap):
        a_s, b_s, y_s = a[swap], b[swap], y[swap]
        out[swap] = 1.0 - front[swap] * _beta_continued_fraction(b_s, a_s, y_s) / b_s
    return np.where(x <= 0.0, 0.0, np.where(y <= 0.0, 1.0, out))


def t_cdf(t: npt.ArrayLike, dof: npt.ArrayLike) -> FloatArray:
    """Student-t distribution function with (real, positive) ``dof`` degrees of freedom."""
    t_arr, nu = _flat_pair(t, dof)
    both_tails = np.empty_like(t_arr)
    large = nu >= _ASYMPTOTIC_DOF
    if np.any(large):
        both_tails[large] = _two_tailed_asymptotic(t_arr[large], nu[large])
    small = ~large
    if np.any(small):
        ts, ns = t_arr[small], nu[small]
        # P(|T| > |t|) = I_x(ν/2, 1/2) with x = ν/(ν+t²); x and 1 - x are formed separately
        # so that neither tail loses digits to cancellation.
        denominator = ns + ts * ts
        half = np.full_like(ns, 0.5)
        both_tails[small] = _betainc(ns / 2.0, half, ns / denominator, ts * ts / denominator)
    out = np.where(t_arr > 0.0, 1.0 - 0.5 * both_tails, 0.5 * both_tails)
    return out.reshape(np.broadcast_shapes(np.shape(t), np.shape(dof)))


def _two_tailed_asymptotic(t: FloatArray, nu: FloatArray) -> FloatArray:
    """P(|T| > |t|) from Hill's normalising expansion (CACM algorithm 395).

    The continued fraction needs ~sqrt(dof) steps; this needs none, and from
    500 dof on it agrees with the exact value to ~1e-16 absolute.
    """
    a = nu - 0.5
    b = 48.0 * a * a
    y = a * np.log1p(t * t / nu)
    z = ((((-0.4 * y - 3.3) * y - 24.0) * y - 85.5) / (0.8 * y * y + 100.0 + b) + y + 3.0) / b + 1.0
    return _erfc(z * np.sqrt(y) / math.sqrt(2.0))


def _flat_pair(x: npt.ArrayLike, dof: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    x_arr, nu = np.broadcast_arrays(
        np.asarray(x, dtype=np.float64), np.asarray(dof, dtype=np.float64)
    )
    return x_arr.ravel().copy(), nu.ravel().copy()


def _t_pdf(t: FloatArray, nu: FloatArray) -> FloatArray:
    log_pdf = (
        _lgamma((nu + 1.0) / 2.0)
        - _lgamma(nu / 2.0)
        - 0.5 * np.log(nu * math.pi)
        - (nu + 1.0) / 2.0 * np.log1p(t * t / nu)
    )
    return np.exp(log_pdf)


def t_ppf(p: npt.ArrayLike, dof: npt.ArrayLike) -> FloatArray:
    """Student-t quantile for 0 < p < 1 and ``dof`` >= 1 (Welch dof never go below 1)."""
    shape = np.broadcast_shapes(np.shape(p), np.shape(dof))
    p_arr, nu = _flat_pair(p, dof)
    # Solve |t| from the smaller tail (symmetry) so that tiny tails keep their digits.
    tail = np.minimum(p_arr, 1.0 - p_arr)
    z = -normal_ppf(tail)
    # For dof >= 1, |t| lies between the normal and the Cauchy quantile.
    low = z.copy()
    with np.errstate(divide="ignore"):
        high = np.maximum(1.0 / np.tan(math.pi * tail), z)
    # Cornish-Fisher start (Abramowitz & Stegun 26.7.5), then safeguarded Newton.
    g1 = (z**3 + z) / 4.0
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96.0
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384.0
    t = np.clip(z + g1 / nu + g2 / nu**2 + g3 / nu**3, low, high)
    for _ in range(100):
        # The lower tail P(T < -t) falls as t grows: too much tail means t is too small.
        excess = t_cdf(-t, nu) - tail
        low = np.where(excess > 0.0, t, low)
        high = np.where(excess < 0.0, t, high)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = t + excess / _t_pdf(t, nu)
        # Newton inside the bracket, else bisection (far in a tail the density underflows).
        step = np.where((newton >= low) & (newton <= high), newton, 0.5 * (low + high))
        done = np.abs(step - t) <= 1e-13 * np.maximum(1.0, np.abs(t))
        t = step
        if np.all(done):
            break
    return np.where(p_arr < 0.5, -t, t).reshape(shape)


def _upper_gamma_regularised(a: float, x: float) -> float:
    """Q(a, x) = Γ(a, x)/Γ(a): series below a + 1, continued fraction above."""
    if x <= 0.0:
        return 1.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        denominator = a
        for _ in range(100_000):
            denominator += 1.0
            term *= x / denominator
            total += term
            if abs(term) < abs(total) * _EPS:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, 100_000):
        numerator = -i * (i - a)
        b += 2.0
        d = numerator * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + numerator / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        step = d * c
        h *= step
        if abs(step - 1.0) < _EPS:
            break
    return math.exp(log_front) * h


def chi2_sf(statistic: float, dof: float) -> float:
    """Upper tail P(χ²_dof > statistic)."""
    if dof <= 0:
        raise ValueError(f"dof must be > 0, got {dof}")
    if math.isinf(statistic):
        return 0.0
    return _upper_gamma_regularised(dof / 2.0, statistic / 2.0)


def binomial_cdf(k: npt.ArrayLike, n: npt.ArrayLike, p: float) -> FloatArray:
    """P(X <= k) for X ~ Binomial(n, p), element-wise; 0 below k = 0 and 1 from k = n on.

    Through the incomplete beta, P(X <= k) = I_{1-p}(n - k, k + 1), so an exact
    McNemar test over a million discordant pairs costs a continued fraction, not
    a million-term sum.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be between 0 and 1, got {p!r}")
    k_arr, n_arr = np.broadcast_arrays(
        np.floor(np.asarray(k, dtype=np.float64)), np.asarray(n, dtype=np.float64)
    )
    shape = k_arr.shape
    k_flat, n_flat = k_arr.ravel(), n_arr.ravel()
    out = np.where(k_flat < 0.0, 0.0, 1.0)
    inside = (k_flat >= 0.0) & (k_flat < n_flat)
    if np.any(inside):
        ki, ni = k_flat[inside], n_flat[inside]
        out[inside] = _betainc(ni - ki, ki + 1.0, np.full_like(ki, 1.0 - p), np.full_like(ki, p))
    return out.reshape(shape)
