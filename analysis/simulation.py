"""Calibration by simulation: how often each way of looking at an experiment says "significant".

Simulates many seeded A/A (no effect) and A/B experiments observed at K
equally spaced looks and reports the rejection rate of three procedures:

* fixed horizon — Welch's t-test once, at the last look (valid, by design);
* naive peeking — Welch's t-test at every look, stopping at the first p < alpha
  (what a dashboard invites; its false-positive rate grows with K);
* sequential — the confidence-sequence test at every look (valid under peeking).

The rejection rate is the false-positive rate for A/A and the power for A/B.
Per-look statistics are cumulative sums of per-look blocks, and the tests are
the vectorised forms of the very functions the reports call.

``simulate_sides`` splits A/A false decisions into "worse" and "better" (the
sign of the difference at the look that stopped the experiment), for the test
verdicts use (the difference) and for the delta-method relative test, so their
symmetry can be measured; ``python -m analysis.simulation`` prints that table.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from analysis._distributions import t_ppf
from analysis.difference import fieller_lift_interval
from analysis.effect import lift_moments, welch_dof
from analysis.frequentist import welch_p_values
from analysis.results import DifferenceType
from analysis.sequential import sequential_p_value, sequential_p_values
from analysis.sufficient import FloatArray, MetricKind, Moments

__all__ = [
    "ALLOCATIONS",
    "SYMMETRY_CASES",
    "Calibration",
    "IntervalCoverage",
    "RejectionRates",
    "SidedRates",
    "SymmetryCase",
    "allocation_sides",
    "calibrate",
    "interval_coverage",
    "sided_noise",
    "simulate_rejections",
    "simulate_sides",
    "symmetry_table",
]

SidedTest = Literal["difference", "delta_relative"]


@dataclass(frozen=True)
class RejectionRates:
    """Share of simulated experiments each procedure declared significant."""

    experiments: int
    looks: int
    lift: float
    fixed_horizon: float
    naive_peeking: float
    sequential: float


@dataclass(frozen=True)
class Calibration:
    """False-positive rates (A/A) and power (A/B at ``power.lift``) side by side."""

    alpha: float
    false_positive: RejectionRates
    power: RejectionRates


def _arm_sums(
    rng: np.random.Generator,
    shape: tuple[int, int],
    units: int,
    mean: float,
    stddev: float,
    kind: MetricKind,
) -> tuple[FloatArray, FloatArray]:
    """Sum and sum of squares of each look's block of ``units`` new units."""
    if kind == "proportion":
        successes = rng.binomial(units, mean, size=shape).astype(np.float64)
        return successes, successes
    # For normal data a block's sum and its spread about the block mean are independent:
    # sum ~ N(units·mean, units·sd²) and ss - sum²/units ~ sd²·χ²(units - 1). Drawing
    # them directly is exact and costs two draws per block instead of one per unit.
    block_sum = rng.normal(units * mean, np.sqrt(units) * stddev, size=shape)
    spread = stddev**2 * rng.chisquare(units - 1, size=shape)
    return block_sum, block_sum**2 / units + spread


def _cumulative_moments(
    rng: np.random.Generator,
    shape: tuple[int, int],
    units: int,
    mean: float,
    stddev: float,
    kind: MetricKind,
) -> Moments:
    block_sum, block_ss = _arm_sums(rng, shape, units, mean, stddev, kind)
    looks = np.arange(1, shape[1] + 1, dtype=np.float64)
    n = np.broadcast_to(looks * units, shape)
    return Moments.from_sums(n, np.cumsum(block_sum, axis=1), np.cumsum(block_ss, axis=1), kind)


def simulate_rejections(
    *,
    lift: float = 0.0,
    experiments: int = 2000,
    looks: int = 20,
    units_per_look: int = 100,
    mean: float = 1.0,
    stddev: float = 1.0,
    kind: MetricKind = "mean",
    difference_type: DifferenceType = "relative",
    alpha: float = 0.05,
    tuning: float | None = None,
    seed: int | np.random.SeedSequence = 0,
) -> RejectionRates:
    """Rejection rates of the three procedures over ``experiments`` seeded simulations.

    Each arm gains ``units_per_look`` units between looks; the treatment mean
    is ``mean·(1 + lift)`` (relative) or ``mean + lift`` (absolute). For
    ``kind="proportion"`` ``mean`` is the conversion rate and ``stddev`` is
    ignored. ``tuning`` (N*) defaults to the planned total, both arms.
    """
    if looks < 1 or experiments < 1 or units_per_look < 2:
        raise ValueError("need looks >= 1, experiments >= 1 and units_per_look >= 2")
    rng = np.random.default_rng(seed)
    shape = (experiments, looks)
    treated = mean * (1.0 + lift) if difference_type == "relative" else mean + lift
    control = _cumulative_moments(rng, shape, units_per_look, mean, stddev, kind)
    treatment = _cumulative_moments(rng, shape, units_per_look, treated, stddev, kind)
    planned = 2.0 * looks * units_per_look if tuning is None else tuning

    welch = welch_p_values(control, treatment, difference_type=difference_type)
    sequential = sequential_p_values(
        control, treatment, difference_type=difference_type, alpha=alpha, tuning=planned
    )
    # NaN (an untestable look) compares False: never a rejection.
    return RejectionRates(
        experiments=experiments,
        looks=looks,
        lift=lift,
        fixed_horizon=float(np.mean(welch[:, -1] < alpha)),
        naive_peeking=float(np.mean(np.any(welch < alpha, axis=1))),
        sequential=float(np.mean(np.any(sequential < alpha, axis=1))),
    )


def calibrate(
    lift: float,
    *,
    experiments: int = 2000,
    looks: int = 20,
    units_per_look: int = 100,
    mean: float = 1.0,
    stddev: float = 1.0,
    kind: MetricKind = "mean",
    difference_type: DifferenceType = "relative",
    alpha: float = 0.05,
    tuning: float | None = None,
    seed: int = 0,
) -> Calibration:
    """A/A false-positive rates and A/B power at ``lift``, from independent seeded streams."""
    aa_seed, ab_seed = np.random.SeedSequence(seed).spawn(2)

    def run(effect: float, stream: np.random.SeedSequence) -> RejectionRates:
        return simulate_rejections(
            lift=effect,
            experiments=experiments,
            looks=looks,
            units_per_look=units_per_look,
            mean=mean,
            stddev=stddev,
            kind=kind,
            difference_type=difference_type,
            alpha=alpha,
            tuning=tuning,
            seed=stream,
        )

    return Calibration(alpha=alpha, false_positive=run(0.0, aa_seed), power=run(lift, ab_seed))


@dataclass(frozen=True)
class SidedRates:
    """Share of A/A experiments each procedure stopped as significantly worse or better.

    "Worse" is a lower treatment mean at the stopping look, "better" a higher
    one; each pair is (worse, better). ``noise`` is the Monte-Carlo standard
    error of worse − better for the sequential procedure.
    """

    test: SidedTest
    experiments: int
    looks: int
    fixed_horizon: tuple[float, float]
    naive_peeking: tuple[float, float]
    sequential: tuple[float, float]

    @property
    def noise(self) -> float:
        """Standard error of (worse − better) of the sequential procedure (multinomial)."""
        return sided_noise(*self.sequential, self.experiments)

    @property
    def naive_noise(self) -> float:
        """Standard error of (worse − better) of the naive every-look test."""
        return sided_noise(*self.naive_peeking, self.experiments)


def sided_noise(worse: float, better: float, experiments: int) -> float:
    """Monte-Carlo standard error of worse − better, two shares of one multinomial sample."""
    return math.sqrt(max(0.0, worse + better - (worse - better) ** 2) / experiments)


def _sides(p_values: FloatArray, difference: FloatArray, alpha: float) -> tuple[float, float]:
    """(worse, better) shares when each experiment stops at its first p < alpha."""
    reject = p_values < alpha  # NaN compares False: never a rejection
    stopped = reject.any(axis=1)
    first = reject.argmax(axis=1)
    sign = difference[np.arange(difference.shape[0]), first]
    return float(np.mean(stopped & (sign < 0))), float(np.mean(stopped & (sign > 0)))


def simulate_sides(
    *,
    test: SidedTest = "difference",
    experiments: int = 2000,
    looks: int = 20,
    units_per_look: int = 250,
    mean: float = 0.1,
    stddev: float = 1.0,
    kind: MetricKind = "proportion",
    alpha: float = 0.05,
    tuning: float | None = None,
    seed: int | np.random.SeedSequence = 0,
) -> SidedRates:
    """A/A false decisions split by side, for ``test`` at every look (and at the last).

    ``difference`` is what verdicts test (``analysis.difference``: the relative
    lift reported beside it has the same rejections); ``delta_relative`` is the
    delta-method relative-lift test. The same seed gives both the same data.
    """
    if looks < 1 or experiments < 1 or units_per_look < 2:
        raise ValueError("need looks >= 1, experiments >= 1 and units_per_look >= 2")
    rng = np.random.default_rng(seed)
    shape = (experiments, looks)
    control = _cumulative_moments(rng, shape, units_per_look, mean, stddev, kind)
    treatment = _cumulative_moments(rng, shape, units_per_look, mean, stddev, kind)
    planned = 2.0 * looks * units_per_look if tuning is None else tuning
    difference_type: DifferenceType = "absolute" if test == "difference" else "relative"
    welch = welch_p_values(control, treatment, difference_type=difference_type)
    sequential = sequential_p_values(
        control, treatment, difference_type=difference_type, alpha=alpha, tuning=planned
    )
    difference = treatment.mean - control.mean
    return SidedRates(
        test=test,
        experiments=experiments,
        looks=looks,
        fixed_horizon=_sides(welch[:, -1:], difference[:, -1:], alpha),
        naive_peeking=_sides(welch, difference, alpha),
        sequential=_sides(sequential, difference, alpha),
    )


@dataclass(frozen=True)
class SymmetryCase:
    """One row group of the symmetry table: an A/A setting."""

    label: str
    kind: MetricKind
    mean: float
    units_per_look: int
    stddev: float = 1.0


SYMMETRY_CASES = (
    SymmetryCase("p = 0.10, 250 per arm per look", "proportion", 0.10, 250),
    SymmetryCase("p = 0.10, 25,000 per arm per look", "proportion", 0.10, 25_000),
    SymmetryCase("mean 0.2, sd 1, 250 per arm per look", "mean", 0.2, 250),
)
"""The documented cases: small and large n on a proportion, and a mean near 0."""


def symmetry_table(
    cases: Sequence[SymmetryCase] = SYMMETRY_CASES,
    *,
    experiments: int = 2000,
    looks: int = 20,
    alpha: float = 0.05,
    seed: int = 2024,
) -> list[tuple[SymmetryCase, SidedRates, SidedRates]]:
    """Per case, (delta-method relative, difference) rates on the same seeded data."""
    rows = []
    for case, stream in zip(cases, np.random.SeedSequence(seed).spawn(len(cases)), strict=True):
        runs = [
            simulate_sides(
                test=test,
                experiments=experiments,
                looks=looks,
                units_per_look=case.units_per_look,
                mean=case.mean,
                stddev=case.stddev,
                kind=case.kind,
                alpha=alpha,
                seed=stream,
            )
            for test in ("delta_relative", "difference")
        ]
        rows.append((case, runs[0], runs[1]))
    return rows


@dataclass(frozen=True)
class IntervalCoverage:
    """How often a relative-lift interval (fixed horizon) missed the true lift, per side."""

    method: Literal["delta", "fieller"]
    experiments: int
    lift: float
    below: float  # the whole interval above the true lift
    above: float  # the whole interval below the true lift
    unbounded: float = 0.0  # Fieller only: the champion's interval included 0 (no relative lift)

    @property
    def covered(self) -> float:
        """Share of intervals that contained the true lift."""
        return 1.0 - self.below - self.above


def interval_coverage(
    *,
    lift: float,
    experiments: int = 2000,
    units: int = 250,
    mean: float = 0.1,
    stddev: float = 1.0,
    kind: MetricKind = "proportion",
    alpha: float = 0.05,
    seed: int | np.random.SeedSequence = 0,
) -> tuple[IntervalCoverage, IntervalCoverage]:
    """Coverage of the delta-method and of Fieller's interval for the relative lift.

    Both at Welch's t quantile, on the same seeded experiments of ``units`` per
    arm with a true relative lift ``lift``. An unbounded Fieller set covers.
    """
    rng = np.random.default_rng(seed)
    shape = (experiments, 1)
    control = _cumulative_moments(rng, shape, units, mean, stddev, kind)
    treatment = _cumulative_moments(rng, shape, units, mean * (1.0 + lift), stddev, kind)
    critical = t_ppf(1.0 - alpha / 2.0, welch_dof(control, treatment))
    estimate, variance = lift_moments(control, treatment, "relative")
    halfwidth = critical * np.sqrt(variance)
    fieller = fieller_lift_interval(control, treatment, critical)
    results = []
    for method, (low, high) in (
        ("delta", (estimate - halfwidth, estimate + halfwidth)),
        ("fieller", fieller),
    ):
        results.append(
            IntervalCoverage(
                method=method,  # type: ignore[arg-type]
                experiments=experiments,
                lift=lift,
                below=float(np.mean(low > lift)),
                above=float(np.mean(high < lift)),
                unbounded=float(np.mean(np.isnan(low))),
            )
        )
    return results[0], results[1]


def allocation_sides(
    *,
    control_per_look: int,
    treatment_per_look: int,
    rate: float = 0.10,
    experiments: int = 4000,
    looks: int = 10,
    alpha: float = 0.05,
    seed: int = 5,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """A/A sequential (worse, better) shares on a proportion with unequal arms.

    The first pair uses the unpooled variance the verdicts use; the second the
    variance pooled under the null (the score test's), for comparison.
    """
    rng = np.random.default_rng(seed)
    shape = (experiments, looks)
    control = _cumulative_moments(rng, shape, control_per_look, rate, 1.0, "proportion")
    treatment = _cumulative_moments(rng, shape, treatment_per_look, rate, 1.0, "proportion")
    tuning = float(looks * (control_per_look + treatment_per_look))
    difference = treatment.mean - control.mean
    unpooled = sequential_p_values(
        control, treatment, difference_type="absolute", alpha=alpha, tuning=tuning
    )
    n_total = control.n + treatment.n
    rate_under_null = (control.mean * control.n + treatment.mean * treatment.n) / n_total
    null_variance = rate_under_null * (1.0 - rate_under_null) * (1 / control.n + 1 / treatment.n)
    pooled = sequential_p_value(difference, null_variance, n_total, alpha=alpha, tuning=tuning)
    return _sides(unpooled, difference, alpha), _sides(pooled, difference, alpha)


ALLOCATIONS = ((900, 100), (500, 500), (9000, 1000))
"""Requests a look (champion, canary) of the allocation table."""


def _pair(rates: tuple[float, float]) -> str:
    return f"{rates[0]:.4f} / {rates[1]:.4f}"


def _allocation_main() -> int:
    print("A/A on p = 0.10, 10 looks, 4,000 experiments, sequential; worse / better")
    print("| requests a look (champion / canary) | unpooled (verdicts) | pooled under H0 |")
    print("| --- | --- | --- |")
    for control, treatment in ALLOCATIONS:
        unpooled, pooled = allocation_sides(control_per_look=control, treatment_per_look=treatment)
        print(f"| {control} / {treatment} | {_pair(unpooled)} | {_pair(pooled)} |")
    return 0


def _main(argv: Sequence[str]) -> int:
    if argv[:1] == ["allocation"]:
        return _allocation_main()
    experiments = int(argv[0]) if argv else 2000
    seed = int(argv[1]) if len(argv) > 1 else 2024
    print(
        f"A/A: {experiments} experiments x 20 looks, alpha 0.05, seed {seed}; "
        "worse / better, ± the Monte-Carlo s.e. of worse − better"
    )
    print(
        "| case | test | fixed horizon | every look (naive) ± s.e. | sequential ± s.e. | "
        "sequential, any look |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    names = {"delta_relative": "relative, delta method", "difference": "difference (verdicts)"}
    for case, *runs in symmetry_table(experiments=experiments, seed=seed):
        for rates in runs:
            print(
                f"| {case.label} | {names[rates.test]} | {_pair(rates.fixed_horizon)} | "
                f"{_pair(rates.naive_peeking)} ± {rates.naive_noise:.4f} | "
                f"{_pair(rates.sequential)} ± {rates.noise:.4f} | {sum(rates.sequential):.4f} |"
            )
    print()
    print("Relative-lift intervals (fixed horizon, 95 %), same seeded experiments per row:")
    print(
        "| case | true lift | delta: covered (misses: interval above / below the lift) | "
        "Fieller: covered (above / below) | Fieller unbounded |"
    )
    print("| --- | --- | --- | --- | --- |")
    cases: tuple[tuple[float, int, float, MetricKind], ...] = (
        (0.10, 250, 0.2, "proportion"),
        (0.10, 250, -0.2, "proportion"),
        (0.2, 250, 0.5, "mean"),
        (0.2, 250, -0.5, "mean"),
    )
    streams = np.random.SeedSequence(seed).spawn(len(cases))
    for (base, units, lift, kind), stream in zip(cases, streams, strict=True):
        delta, fieller = interval_coverage(
            lift=lift, experiments=experiments, units=units, mean=base, kind=kind, seed=stream
        )
        label = f"{kind} {base:g}, {units} per arm"
        print(
            f"| {label} | {lift:+.0%} | {delta.covered:.4f} ({delta.below:.4f} / "
            f"{delta.above:.4f}) | {fieller.covered:.4f} ({fieller.below:.4f} / "
            f"{fieller.above:.4f}) | {fieller.unbounded:.4f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
