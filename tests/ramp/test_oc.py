"""The shipped plans meet the ramp's targets, simulated through the real ``decide``.

Targets (issue 13), for experiments/canary.yaml at 250 requests/s and the plan
``make demo`` ramps with at its 300 requests/s, champion accuracy 0.84:
- equal canary: rolled back for harm <= 5 %, promoted >= 80 % within max_duration_s;
- worse by 3x the margin: past the first step <= 5 %, promoted <= 1 %;
- worse by 1x the margin: promoted <= 5 %;
- better by 1x the margin: promoted >= 80 %.
Each check runs 500 seeded ramps; the tolerance is two Monte-Carlo standard errors.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from experiments.config import ExperimentConfig
from experiments.demo_plan import DEMO_CONFIG, DEMO_RAMP_RATE, demo_ramp_config
from experiments.loader import load_experiment
from ramp.simulation import RampSimulation, simulate_ramps
from recorded.reporting import settings_from_config

pytestmark = pytest.mark.slow

RUNS = 500
BASELINE = 0.84
CANARY = Path(__file__).resolve().parents[2] / "experiments" / "canary.yaml"


def plans() -> dict[str, tuple[ExperimentConfig, float]]:
    return {
        "canary.yaml": (load_experiment(CANARY), 250.0),
        "demo": (demo_ramp_config(load_experiment(DEMO_CONFIG), "v3"), DEMO_RAMP_RATE),
    }


def run(name: str, margins: float, seed: int) -> RampSimulation:
    config, rate = plans()[name]
    assert config.ramp is not None
    return simulate_ramps(
        config.ramp,
        settings_from_config(config, None),
        runs=RUNS,
        rate=rate,
        champion_p=BASELINE,
        canary_p=BASELINE * (1 + margins * config.ramp.non_inferiority_margin),
        seed=seed,
    )


def at_most(rate: float, target: float) -> bool:
    return rate <= target + 2 * math.sqrt(target * (1 - target) / RUNS)


def at_least(rate: float, target: float) -> bool:
    return rate >= target - 2 * math.sqrt(target * (1 - target) / RUNS)


PLANS = ["canary.yaml", "demo"]


@pytest.mark.parametrize("name", PLANS)
def test_an_equal_canary_is_promoted_and_rarely_rolled_back(name: str) -> None:
    result = run(name, 0.0, seed=101)
    harm = sum(n for rule, n in result.rules.items() if rule == "harm")
    assert at_most(harm / RUNS, 0.05), result
    assert at_least(result.promotion_rate, 0.80), result


@pytest.mark.parametrize("name", PLANS)
def test_a_canary_worse_by_3_margins_stays_at_the_first_step(name: str) -> None:
    result = run(name, -3.0, seed=102)
    assert at_most(result.reach_rate(1), 0.05), result
    assert at_most(result.promotion_rate, 0.01), result


@pytest.mark.parametrize("name", PLANS)
def test_a_canary_worse_by_1_margin_is_rarely_promoted(name: str) -> None:
    result = run(name, -1.0, seed=103)
    assert at_most(result.promotion_rate, 0.05), result


@pytest.mark.parametrize("name", PLANS)
def test_a_canary_better_by_1_margin_is_promoted(name: str) -> None:
    result = run(name, 1.0, seed=104)
    assert at_least(result.promotion_rate, 0.80), result
