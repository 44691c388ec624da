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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.frequentist import welch_p_values
from analysis.results import DifferenceType
from analysis.sequential import sequential_p_values
from analysis.sufficient import FloatArray, MetricKind, Moments

__all__ = ["Calibration", "RejectionRates", "calibrate", "simulate_rejections"]


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
