"""Sample-ratio mismatch: does the observed traffic split match the configured weights?

A mismatch means assignment or recording is broken (a crashing variant, a
biased fallback, a filter that drops units from one arm), so every other number
in the report is suspect: an SRM holds the ramp and is shown first.

Counts must come from one period with constant weights: cumulative counts
across a weight change are expected to differ from the current split. So
``epoch_sample_ratio_mismatch`` checks each epoch (see ``analysis.epochs``)
against that epoch's own weights and combines the epochs with Holm's
correction: the split is flagged when any epoch's Holm-adjusted p-value is
below the threshold, and the message names that epoch. Holm rather than one
chi-square summed over epochs: a broken epoch among many healthy ones would
be diluted by their degrees of freedom (one epoch at p = 2e-5 among nine
sound ones sums to p ~ 0.002, not flagged), while Holm costs a factor of at
most the number of epochs checked and says which epoch broke.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from analysis._distributions import chi2_sf
from analysis.epochs import Epoch, describe_weights, routing_spans
from analysis.multiple_testing import holm

__all__ = [
    "DEFAULT_MIN_UNITS",
    "DEFAULT_THRESHOLD",
    "EpochSrm",
    "SrmResult",
    "epoch_sample_ratio_mismatch",
    "sample_ratio_mismatch",
]

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
    epochs: tuple[EpochSrm, ...] = ()  # per-epoch checks, when counted per epoch


@dataclass(frozen=True)
class EpochSrm:
    """The split check of one epoch (or of neighbouring epochs that routed alike).

    ``adjusted_p_value`` is Holm-adjusted over the epochs checked (None when
    this one was not checked: too few units, or fewer than two arms routed).
    """

    epoch: Epoch
    result: SrmResult
    adjusted_p_value: float | None
    mismatch: bool


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


def _epoch_checks(
    epochs: Iterable[Epoch], threshold: float, min_units: int
) -> tuple[list[tuple[Epoch, SrmResult]], list[tuple[Epoch, SrmResult | None, str]], bool]:
    """The epochs checked, those listed but not checked (and why), and whether any
    epoch had traffic while routing one arm only (left out: nothing to compare)."""
    checked: list[tuple[Epoch, SrmResult]] = []
    skipped: list[tuple[Epoch, SrmResult | None, str]] = []
    one_arm = False
    for span in routing_spans(epochs):
        counts = {name: stats.requests for name, stats in span.variants.items()}
        if not span.known or span.weights is None:
            if sum(counts.values()):
                skipped.append((span, None, "weights unknown"))
            continue
        # Only the arms routed in this epoch: a 0-weight arm's units (forced by an
        # override header, say) say nothing about the split.
        weights = {arm: w for arm, w in span.weights.items() if w > 0}
        observed = {arm: counts.get(arm, 0) for arm in weights}
        if len(weights) < 2 or sum(observed.values()) == 0:
            # one arm routed (paused, a shadow phase, all on one variant): nothing to compare
            one_arm = one_arm or sum(counts.values()) > 0
            continue
        result = sample_ratio_mismatch(observed, weights, threshold=threshold, min_units=min_units)
        if result.checked:
            checked.append((span, result))
        else:
            skipped.append((span, result, result.message))
    return checked, skipped, one_arm


def epoch_sample_ratio_mismatch(
    epochs: Iterable[Epoch],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    min_units: int = DEFAULT_MIN_UNITS,
) -> SrmResult:
    """Check every epoch's units against that epoch's weights; flag when any epoch's
    Holm-adjusted p-value is below ``threshold``.

    Consecutive epochs with the same routing are checked as one; epochs whose
    weights are unknown or where an arm has fewer than ``min_units`` units are
    listed but not checked; epochs that routed one arm only are left out. The result's ``arms``,
    ``observed`` and ``expected`` add up the checked epochs (expected: each
    epoch's units split by its weights); ``p_value`` is the smallest adjusted
    p-value, and ``statistic``/``dof`` belong to that epoch.
    """
    checked, skipped, one_arm = _epoch_checks(epochs, threshold, min_units)
    adjusted = holm([r.p_value for _, r in checked]) if checked else ()
    per_epoch = [
        EpochSrm(span, result, p, p < threshold)
        for (span, result), p in zip(checked, adjusted, strict=True)
    ]
    observed: dict[str, int] = {}
    expected: dict[str, float] = {}
    for _, check in checked:
        for arm, o, e in zip(check.arms, check.observed, check.expected, strict=True):
            observed[arm] = observed.get(arm, 0) + o
            expected[arm] = expected.get(arm, 0.0) + e
    not_checked = [
        EpochSrm(span, result or _unchecked(span, reason, threshold), None, False)
        for span, result, reason in skipped
    ]
    all_epochs = tuple(sorted([*per_epoch, *not_checked], key=lambda c: c.epoch.version))
    arms = tuple(observed)

    def combined(
        p_value: float, statistic: float, dof: int, mismatch: bool, message: str
    ) -> SrmResult:
        return SrmResult(
            arms=arms,
            observed=tuple(observed[a] for a in arms),
            expected=tuple(expected[a] for a in arms),
            statistic=statistic,
            p_value=p_value,
            dof=dof,
            threshold=threshold,
            checked=bool(per_epoch),
            mismatch=mismatch,
            message=message,
            epochs=all_epochs,
        )

    left_out = _left_out(not_checked)
    if not per_epoch:
        reasons = "; ".join(f"{c.epoch.label}: {c.result.message}" for c in not_checked)
        if reasons:
            why = f" ({reasons})"
        elif one_arm:
            why = ": the traffic so far went to one variant only, so there is no split to compare"
        else:
            why = ": no traffic yet"
        return combined(1.0, 0.0, 0, False, f"no epoch could be checked{why}")
    adjusted_of = {id(c): p for c, p in zip(per_epoch, adjusted, strict=True)}
    worst = min(per_epoch, key=lambda c: (adjusted_of[id(c)], c.result.p_value))
    p_min = adjusted_of[id(worst)]
    flagged = [c for c in per_epoch if c.mismatch]
    n = len(per_epoch)
    if flagged:
        parts = [
            f"in {c.epoch.label}: {_split_text(c.result)} "
            f"(chi-square p = {c.result.p_value:.2g}, Holm-adjusted over {n} epoch"
            f"{'s' if n > 1 else ''} {c.adjusted_p_value:.2g} < {threshold:g})"
            for c in flagged
        ]
        message = (
            "sample ratio mismatch "
            + "; ".join(parts)
            + "; assignment or recording is broken, so no other result can be trusted"
        )
    else:
        message = (
            f"traffic split matches the weights of each of the {n} epoch"
            f"{'s' if n > 1 else ''} checked (smallest Holm-adjusted p = {p_min:.3g})" + left_out
        )
    return combined(p_min, worst.result.statistic, worst.result.dof, bool(flagged), message)


def _split_text(result: SrmResult) -> str:
    observed = dict(zip(result.arms, map(float, result.observed), strict=True))
    expected = dict(zip(result.arms, result.expected, strict=True))
    return f"observed {describe_weights(observed)} vs configured {describe_weights(expected)}"


def _unchecked(span: Epoch, reason: str, threshold: float) -> SrmResult:
    return SrmResult((), (), (), 0.0, 1.0, 0, threshold, False, False, reason)


def _left_out(not_checked: list[EpochSrm]) -> str:
    if not not_checked:
        return ""
    n = len(not_checked)
    return f"; {n} epoch{'s' if n > 1 else ''} not checked (too few units or weights unknown)"
