"""One effect across epochs: estimated within each epoch, then combined.

When the weights change while the metric drifts over time, pooling every
epoch's data compares arms whose data come from different times in different
shares: at 90/10 then 50/50 the canary's data lie mostly in the second epoch,
the champion's mostly in the first, and a metric that rose in between makes
the canary look better with no effect at all (Simpson's paradox).

The stratified estimator compares the arms within each epoch and weights the
epochs by their share of the pair's data, w_k = (n_ck + n_tk) / Σ(n_c + n_t):

    mean_arm = Σ w_k · mean_arm,k        Var(mean_arm) = Σ w_k² · s²_arm,k / n_arm,k

It estimates the effect over the data's own mix of times (what pooling would
estimate if the split had never changed), and equals the pooled estimate when
the split stayed the same. Each arm's stratified mean is handed to the usual
difference test as a statistic whose variance / n is the variance above, with
n the arm's units, so the confidence sequence (``analysis.sequential``), which
needs an asymptotically normal estimate, its variance and the units it rests
on, keeps its any-look guarantee: with weights fixed by the data's shares the
estimate is a sum of independent epoch means. The A/A simulation
(``python -m analysis.stratified_simulation``) checks it.

Not inverse-variance weights: they estimate a different average (epochs with a
balanced split would count more than their share of time), and a real effect
that changes over time would then be read at the wrong mix.

Epochs in which one arm has fewer than ``MIN_PER_ARM`` units carry no
comparison (the canary at 0 %, a paused experiment) and are left out; epochs
that routed alike are read as one (``analysis.epochs.routing_spans``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from analysis.epochs import Epoch, routing_spans
from analysis.sufficient import SampleStatistic, VariantStats, is_proportion

__all__ = ["MIN_PER_ARM", "Strata", "StratifiedStats", "stratify"]

MIN_PER_ARM = 2  # units per arm for an epoch's variance to exist

Pick = Callable[[VariantStats], SampleStatistic | None]


@dataclass(frozen=True)
class StratifiedStats:
    """One arm's stratified mean as a statistic the difference tests read.

    ``variance`` is per unit (``variance / n`` is the mean's variance), as for
    any ``SampleStatistic``.
    """

    n: int
    mean: float
    variance: float
    proportion: bool = False  # every epoch's statistic was a proportion's

    @property
    def unadjusted_mean(self) -> float:
        """The same mean: nothing is regression-adjusted here."""
        return self.mean


@dataclass(frozen=True)
class Strata:
    """Both arms combined across the epochs that compared them."""

    control: SampleStatistic
    treatment: SampleStatistic
    epochs: tuple[int, ...]  # config versions of the epochs used (first of each span)
    left_out: tuple[int, ...]  # epochs in which one arm had too little data or another model

    @property
    def count(self) -> int:
        """How many epochs the estimate combines."""
        return len(self.epochs)


def _ran(epoch: Epoch, variant: str, version: str | None) -> bool:
    ran = epoch.model_versions.get(variant)
    return version is None or ran is None or ran == version


def stratify(
    epochs: Iterable[Epoch],
    control: str,
    treatment: str,
    pick: Pick,
    model_versions: Mapping[str, str | None] | None = None,
) -> Strata | None:
    """The two arms' stratified statistics, or None when no epoch compares them.

    ``pick`` reads the metric's statistic from an epoch's ``VariantStats``.
    With ``model_versions`` (variant -> the version it runs now) an epoch in
    which either arm ran another model is left out. One epoch gives back that
    epoch's own statistics unchanged.
    """
    versions = model_versions or {}
    used: list[tuple[int, SampleStatistic, SampleStatistic]] = []
    left_out: list[int] = []
    for span in routing_spans(epochs):
        c_stats, t_stats = span.variants.get(control), span.variants.get(treatment)
        c = pick(c_stats) if c_stats is not None else None
        t = pick(t_stats) if t_stats is not None else None
        if c is None or t is None or (c.n == 0 and t.n == 0):
            continue  # nothing of this pair recorded: not an epoch of this comparison
        if (
            c.n < MIN_PER_ARM
            or t.n < MIN_PER_ARM
            or not _ran(span, control, versions.get(control))
            or not _ran(span, treatment, versions.get(treatment))
        ):
            left_out.append(span.version)
            continue
        used.append((span.version, c, t))
    if not used:
        return None
    if len(used) == 1:
        version, c, t = used[0]
        return Strata(c, t, (version,), tuple(left_out))
    total = sum(c.n + t.n for _, c, t in used)
    weights = [(c.n + t.n) / total for _, c, t in used]
    return Strata(
        _combine([c for _, c, _ in used], weights),
        _combine([t for _, _, t in used], weights),
        tuple(version for version, _, _ in used),
        tuple(left_out),
    )


def _combine(arms: list[SampleStatistic], weights: list[float]) -> StratifiedStats:
    n = sum(arm.n for arm in arms)
    mean = sum(w * float(arm.mean) for w, arm in zip(weights, arms, strict=True))
    mean_variance = sum(
        w * w * float(arm.variance) / arm.n for w, arm in zip(weights, arms, strict=True)
    )
    proportion = all(is_proportion(arm) for arm in arms)
    return StratifiedStats(n=n, mean=mean, variance=mean_variance * n, proportion=proportion)
