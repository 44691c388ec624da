"""Simulated ramps through the real decision code: what the harness itself must get right."""

from __future__ import annotations

from analysis.inputs import AnalysisSettings
from experiments.ramp_plan import Ramp
from ramp.simulation import simulate_ramps

PLAN = Ramp(
    variant="canary",
    steps=(10.0, 50.0, 100.0),
    min_duration_s=5,
    min_samples=100,
    check_interval_s=2,
    max_duration_s=300,
    on_srm="hold",
    non_inferiority_margin=0.03,
)
SETTINGS = AnalysisSettings(alpha=0.05, tuning_n=500, min_samples=50, max_p99_ratio=None)


def test_every_run_ends_in_exactly_one_of_three_endings() -> None:
    result = simulate_ramps(PLAN, SETTINGS, runs=60, rate=200, seed=11)
    assert result.promotions + result.rollbacks + result.expiries + result.unfinished == 60
    assert result.promotions >= 50, result
    assert result.reached[0] == 60 and result.reached[1] >= result.promotions
    assert len(result.canary_requests) == len(result.decision_s) == 60


def test_a_much_worse_canary_is_rolled_back_for_harm_at_the_first_step() -> None:
    result = simulate_ramps(PLAN, SETTINGS, runs=40, rate=200, seed=12, canary_p=0.70)
    assert result.rollbacks == 40 and result.rules == {"harm": 40}, result
    assert result.reached[1] == 0
    assert max(result.decision_s) < PLAN.max_duration_s


def test_too_little_traffic_expires_instead_of_rolling_back() -> None:
    slow = PLAN.model_copy(update={"max_duration_s": 20.0})
    result = simulate_ramps(slow, SETTINGS, runs=30, rate=20, seed=13)
    assert result.expiries == 30 and result.rules == {"max_duration": 30}, result


def test_same_seed_same_outcome() -> None:
    first = simulate_ramps(PLAN, SETTINGS, runs=20, rate=200, seed=5, canary_p=0.83)
    again = simulate_ramps(PLAN, SETTINGS, runs=20, rate=200, seed=5, canary_p=0.83)
    assert first == again
