"""Calibration by simulation: peeking breaks the t-test, not the confidence sequence."""

from __future__ import annotations

import math
import time

import pytest

from analysis.difference import difference_test
from analysis.sequential import sequential_p_values
from analysis.simulation import (
    SYMMETRY_CASES,
    Calibration,
    SidedRates,
    SymmetryCase,
    allocation_sides,
    calibrate,
    interval_coverage,
    sided_noise,
    simulate_rejections,
    symmetry_table,
)
from analysis.sufficient import Moments, ProportionStats

ALPHA = 0.05
EXPERIMENTS = 2000
# Three Monte-Carlo standard errors of a rate near alpha over EXPERIMENTS runs.
ALLOWANCE = 3 * math.sqrt(ALPHA * (1 - ALPHA) / EXPERIMENTS)


@pytest.fixture(scope="module")
def calibration() -> Calibration:
    """2000 A/A and 2000 A/B experiments (+15 % lift), 20 looks of 100 units per arm."""
    started = time.perf_counter()
    result = calibrate(0.15, experiments=EXPERIMENTS, looks=20, units_per_look=100, seed=2024)
    assert time.perf_counter() - started < 5.0
    return result


def test_fixed_horizon_test_holds_its_level(calibration: Calibration) -> None:
    assert abs(calibration.false_positive.fixed_horizon - ALPHA) <= ALLOWANCE


def test_naive_peeking_inflates_false_positives(calibration: Calibration) -> None:
    assert calibration.false_positive.naive_peeking > 2 * ALPHA


def test_sequential_test_holds_its_level_under_peeking(calibration: Calibration) -> None:
    assert calibration.false_positive.sequential <= ALPHA + ALLOWANCE


def test_sequential_test_detects_a_real_effect(calibration: Calibration) -> None:
    # The price of peeking safely: the sequential test needs a larger effect (or more
    # data) than the fixed-horizon one for the same power.
    assert calibration.power.sequential > 0.8
    assert calibration.power.fixed_horizon > calibration.power.sequential


def test_proportions_behave_the_same() -> None:
    aa = simulate_rejections(
        kind="proportion", mean=0.2, experiments=EXPERIMENTS, looks=20, units_per_look=100, seed=7
    )
    assert aa.sequential <= ALPHA + ALLOWANCE
    assert aa.naive_peeking > 2 * ALPHA


def test_seeded_runs_repeat() -> None:
    first = simulate_rejections(lift=0.1, experiments=200, looks=5, seed=3)
    assert first == simulate_rejections(lift=0.1, experiments=200, looks=5, seed=3)
    assert first != simulate_rejections(lift=0.1, experiments=200, looks=5, seed=4)


def test_invalid_sizes() -> None:
    with pytest.raises(ValueError, match="looks"):
        simulate_rejections(looks=0)


@pytest.fixture(scope="module")
def symmetry() -> list[tuple[SymmetryCase, SidedRates, SidedRates]]:
    """The documented table: 2,000 A/A x 20 looks per case, seed 2024 (under a second)."""
    return symmetry_table(SYMMETRY_CASES, experiments=EXPERIMENTS, looks=20, seed=2024)


def test_verdict_false_positives_are_as_often_better_as_worse(
    symmetry: list[tuple[SymmetryCase, SidedRates, SidedRates]],
) -> None:
    for case, _, difference in symmetry:
        assert difference.test == "difference"
        assert sum(difference.sequential) <= ALPHA, case.label
        for worse, better in (difference.sequential, difference.naive_peeking):
            noise = sided_noise(worse, better, EXPERIMENTS)
            assert abs(worse - better) <= 3 * noise, (case.label, worse, better)


def test_the_delta_method_relative_test_leans_towards_worse(
    symmetry: list[tuple[SymmetryCase, SidedRates, SidedRates]],
) -> None:
    # What verdicts tested before: far outside the noise at small n, so the check
    # above is one that an asymmetric rule fails.
    for case, delta, _ in symmetry:
        if case.units_per_look > 1000:
            continue
        for worse, better in (delta.sequential, delta.naive_peeking):
            assert worse - better > 4 * sided_noise(worse, better, EXPERIMENTS), case.label


def test_the_simulated_test_is_the_one_verdicts_run() -> None:
    # One simulated look through the report's own function gives the same p-value.
    control, treatment = ProportionStats(2500, 262.0), ProportionStats(2500, 231.0)
    result, _ = difference_test(control, treatment, sequential=True, tuning=10_000.0)
    vectorised = sequential_p_values(
        Moments.of(control), Moments.of(treatment), difference_type="absolute", tuning=10_000.0
    )
    assert result.p_value == pytest.approx(float(vectorised), rel=1e-12)


@pytest.mark.parametrize("lift", [0.2, -0.2])
def test_fieller_misses_the_true_lift_evenly_where_the_delta_method_leans(lift: float) -> None:
    delta, fieller = interval_coverage(lift=lift, experiments=EXPERIMENTS, units=250, seed=2024)
    assert abs(fieller.covered - 0.95) <= ALLOWANCE
    assert abs(fieller.below - fieller.above) <= 3 * sided_noise(
        fieller.below, fieller.above, EXPERIMENTS
    )
    # The delta-method interval sits too low: nearly every miss is on one side.
    assert delta.above - delta.below > 4 * sided_noise(delta.below, delta.above, EXPERIMENTS)


def test_small_unbalanced_arms_lean_towards_worse_with_the_unpooled_variance() -> None:
    """The documented allocation table's first row, at a smaller size."""
    unpooled, pooled = allocation_sides(
        control_per_look=900, treatment_per_look=100, experiments=2000, seed=5
    )
    assert unpooled[0] > 3 * unpooled[1]  # worse flagged far more often than better
    assert pooled[0] < pooled[1]  # the null variance tips the other way
    assert sum(unpooled) <= 0.05 and sum(pooled) <= 0.05
