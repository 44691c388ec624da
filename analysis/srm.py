"""Sample-ratio mismatch: does the observed traffic split match the configured weights?

A mismatch means assignment or recording is broken (a crashing variant, a
biased fallback, a filter that drops units from one arm), so every other number
in the report is suspect: an SRM holds the ramp and is shown first.

Counts must come from one period with constant weights (one ramp step, one
time window): cumulative counts across a weight change are expected to differ
from the current split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from analysis._distributions import chi2_sf

__all__ = ["DEFAULT_MIN_UNITS", "DEFAULT_THRESHOLD", "SrmResult", "sample_ratio_mismatch"]

DEFAULT_THRESHOLD = 0.001
"""p-value below which the split is flagged; strict because the check runs at every look."""

DEFAULT_MIN_UNITS = 8
"""Units every arm needs before the chi-square approximation is trusted."""


@dataclass(frozen=True)
class SrmResult:
    """Chi-square goodness-of-fit of observed units per arm against the configured split.

    ``checked`` is False when there is too little data to judge (then
    ``mismatch`` is False too: too little data is never a pass *or* a fail, the
    message says so). Arms with weight 0 and no units are left out.
    """

    arms: tuple[str, ...]
    observed: tuple[int, ...]
    expected: tuple[float, ...]
    statistic: float
    p_value: float
    dof: int
    threshold: float
    checked: bool
    mismatch: bool
    message: str


def _split(values: tuple[float, ...]) -> str:
    total = sum(values)
    return "/".join(f"{100.0 * v / total:.1f}%" for v in values) if total else "-"


def sample_ratio_mismatch(
    observed: Mapping[str, int],
    weights: Mapping[str, float],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    min_units: int = DEFAULT_MIN_UNITS,
) -> SrmResult:
    """Test ``observed`` units per arm against ``weights`` (any positive scale).

    Flags a mismatch when p < ``threshold`` and every arm with a positive weight
    has at least ``min_units`` units. Arms must be the same in both mappings.
    """
    if set(observed) != set(weights):
        raise ValueError(
            f"observed and weights must name the same arms, got {sorted(observed)} "
            f"and {sorted(weights)}"
        )
    for arm, count in observed.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"observed[{arm!r}] must be a non-negative integer, got {count!r}")
    for arm, weight in weights.items():
        if not (math.isfinite(weight) and weight >= 0.0):
            raise ValueError(f"weights[{arm!r}] must be a finite number >= 0, got {weight!r}")
    if sum(weights.values()) <= 0.0:
        raise ValueError("weights must not all be 0")

    arms = tuple(arm for arm in observed if weights[arm] > 0.0 or observed[arm] > 0)
    counts = tuple(observed[arm] for arm in arms)
    total = sum(counts)
    weight_total = sum(weights[arm] for arm in arms)
    expected = tuple(total * weights[arm] / weight_total for arm in arms)
    dof = len(arms) - 1

    def result(statistic: float, p_value: float, checked: bool, message: str) -> SrmResult:
        return SrmResult(
            arms=arms,
            observed=counts,
            expected=expected,
            statistic=statistic,
            p_value=p_value,
            dof=dof,
            threshold=threshold,
            checked=checked,
            mismatch=checked and p_value < threshold,
            message=message,
        )

    if dof < 1:
        return result(0.0, 1.0, False, "fewer than two arms with traffic: nothing to compare")
    short = [
        f"{arm} ({observed[arm]})" for arm in arms if weights[arm] > 0 and observed[arm] < min_units
    ]
    if short:
        return result(
            0.0,
            1.0,
            False,
            f"too few units to check the traffic split: every arm needs >= {min_units}, "
            f"short: {', '.join(short)}",
        )
    # An arm configured at weight 0 that still receives units is a mismatch outright.
    statistic = sum(
        (o - e) ** 2 / e if e > 0.0 else math.inf for o, e in zip(counts, expected, strict=True)
    )
    p_value = chi2_sf(statistic, dof)
    split = f"observed {_split(tuple(map(float, counts)))} vs configured {_split(expected)}"
    if p_value < threshold:
        message = (
            f"sample ratio mismatch: {split} (chi-square p = {p_value:.2g} < {threshold:g}); "
            "assignment or recording is broken, so no other result can be trusted"
        )
    else:
        message = f"traffic split matches the configuration: {split} (p = {p_value:.3g})"
    return result(statistic, p_value, True, message)
