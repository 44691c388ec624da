"""Calibration by simulation: peeking breaks the t-test, not the confidence sequence."""

from __future__ import annotations

import math
import time

import pytest

from analysis.simulation import Calibration, calibrate, simulate_rejections

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
