"""A/A ramps through the real decision code: false rollbacks stay at or under alpha."""

from __future__ import annotations

import math

from analysis.inputs import AnalysisSettings
from experiments.config import Ramp
from ramp.simulation import simulate_ramps

PLAN = Ramp(
    variant="canary",
    steps=(1.0, 5.0, 25.0, 50.0, 100.0),
    min_duration_s=10,
    min_samples=100,
    check_interval_s=2,
    max_duration_s=600,
    on_srm="hold",
    non_inferiority_margin=0.02,
)
SETTINGS = AnalysisSettings(alpha=0.05, tuning_n=500, min_samples=50, max_p99_ratio=None)


def test_aa_ramps_rarely_roll_back() -> None:
    runs = 60
    result = simulate_ramps(PLAN, SETTINGS, runs=runs, rate=200, seed=11)
    allowance = 2 * math.sqrt(0.05 * 0.95 / runs)  # Monte-Carlo noise on the rate
    assert result.rollback_rate <= 0.05 + allowance, result
    assert result.promotions + result.rollbacks == runs


def test_a_worse_canary_is_caught() -> None:
    result = simulate_ramps(PLAN, SETTINGS, runs=20, rate=200, seed=12, canary_p=0.78)
    assert result.rollbacks >= 19, result
