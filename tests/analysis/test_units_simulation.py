"""Correlated requests of a user: per request the A/A false-positive rate exceeds α,
per unit it does not (``analysis.units_simulation``, through ``difference_test``)."""

from __future__ import annotations

import pytest

from analysis.units_simulation import UNIT_CASES, UnitCase, UnitRates, simulate_units, units_table


def _check(rates: UnitRates, alpha: float = 0.05) -> None:
    assert rates.request_fixed > 3 * alpha  # design effect ~6.7: the request level fails
    assert rates.request_sequential > alpha
    # Per unit: within Monte-Carlo noise of α (fixed horizon), under α (sequential).
    assert rates.unit_fixed <= alpha + 2.6 * rates.standard_error
    assert rates.unit_sequential <= alpha


def test_per_unit_analysis_keeps_the_false_positive_rate_small_sample() -> None:
    rates = simulate_units(UnitCase("proportion", 100), experiments=300, seed=7)
    print(units_table([rates]))
    _check(rates)


@pytest.mark.slow
@pytest.mark.parametrize("case", UNIT_CASES, ids=lambda c: c.label)
def test_per_unit_analysis_keeps_the_false_positive_rate(case: UnitCase) -> None:
    rates = simulate_units(case, experiments=2000, seed=2024 + UNIT_CASES.index(case))
    print(units_table([rates]))
    _check(rates)
