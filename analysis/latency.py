"""Latency quantile guardrails: a variant's p50/p95/p99 against the champion's, from buckets.

Quantiles come from ``LatencyHistogram.quantile`` (Prometheus-style
interpolation), so they are exact only to the bucket: the comparison also
reports the range of ratios the buckets allow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from analysis.sufficient import LatencyHistogram

__all__ = ["DEFAULT_MIN_SAMPLES", "LatencyComparison", "compare_latency"]

DEFAULT_MIN_SAMPLES = 100
"""Requests per arm before a p99 means anything (below it, p99 is the maximum)."""


@dataclass(frozen=True)
class LatencyComparison:
    """Quantile ``q`` of treatment vs champion latency (in the histograms' unit).

    ``ratio`` = treatment / champion and ``difference`` = treatment - champion,
    from interpolated quantiles; ``ratio_low``/``ratio_high`` bound the ratio
    using the edges of the buckets the quantiles fall in. ``worse`` is set only
    when the comparison is ``conclusive`` and ``ratio`` exceeds ``max_ratio`` or
    ``difference`` exceeds ``max_increase``.
    """

    q: float
    champion_n: int
    treatment_n: int
    champion: float
    treatment: float
    ratio: float
    difference: float
    ratio_low: float
    ratio_high: float
    max_ratio: float | None
    conclusive: bool
    worse: bool
    message: str
    max_increase: float | None = None


def _ratio(numerator: float, denominator: float) -> float:
    if denominator > 0.0:
        return numerator / denominator
    return 1.0 if numerator == 0.0 else math.inf


def compare_latency(
    champion: LatencyHistogram,
    treatment: LatencyHistogram,
    *,
    q: float = 0.99,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    max_ratio: float | None = None,
    max_increase: float | None = None,
) -> LatencyComparison:
    """Compare quantile ``q`` of two latency histograms with the same buckets.

    With fewer than ``min_samples`` requests in either arm the result is
    inconclusive (never a pass). With ``max_ratio`` set (say 1.2 for "p99 at
    most 20 % slower") or ``max_increase`` (in the histograms' unit, say 50 for
    "at most 50 ms slower"), ``worse`` says whether the treatment breaks a limit.
    """
    if champion.bounds != treatment.bounds:
        raise ValueError("champion and treatment histograms must have the same bounds")
    if max_ratio is not None and not max_ratio > 0.0:
        raise ValueError(f"max_ratio must be > 0, got {max_ratio!r}")
    if max_increase is not None and not max_increase >= 0.0:
        raise ValueError(f"max_increase must be >= 0, got {max_increase!r}")
    label = f"p{100 * q:g}"
    if champion.n < min_samples or treatment.n < min_samples:
        return LatencyComparison(
            q=q,
            champion_n=champion.n,
            treatment_n=treatment.n,
            champion=math.nan,
            treatment=math.nan,
            ratio=math.nan,
            difference=math.nan,
            ratio_low=math.nan,
            ratio_high=math.nan,
            max_ratio=max_ratio,
            conclusive=False,
            worse=False,
            max_increase=max_increase,
            message=(
                f"inconclusive: {label} latency needs >= {min_samples} requests per arm "
                f"(champion {champion.n}, treatment {treatment.n})"
            ),
        )
    base, new = champion.quantile(q), treatment.quantile(q)
    base_low, base_high = champion.quantile_bucket(q)
    new_low, new_high = treatment.quantile_bucket(q)
    ratio = _ratio(new, base)
    over_ratio = max_ratio is not None and ratio > max_ratio
    over_increase = max_increase is not None and new - base > max_increase
    worse = over_ratio or over_increase
    message = f"{label} {new:.4g} vs champion {base:.4g}: {ratio:.3g}x"
    if max_ratio is not None:
        message += f", {'over' if over_ratio else 'within'} the {max_ratio:g}x limit"
    if max_increase is not None:
        verdict = "over" if over_increase else "within"
        message += f", {new - base:+.4g} {verdict} the +{max_increase:g} limit"
    if math.isinf(new_high) or math.isinf(base_high):
        message += f" (a {label} lies above the largest bucket, {champion.bounds[-1]:g})"
    return LatencyComparison(
        q=q,
        champion_n=champion.n,
        treatment_n=treatment.n,
        champion=base,
        treatment=new,
        ratio=ratio,
        difference=new - base,
        ratio_low=_ratio(new_low, base_high),
        ratio_high=_ratio(new_high, base_low),
        max_ratio=max_ratio,
        conclusive=True,
        worse=worse,
        message=message,
        max_increase=max_increase,
    )
