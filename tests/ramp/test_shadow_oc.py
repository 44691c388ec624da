"""Operating characteristics of the shadow phase, through the real ``decide_shadow``.

For experiments/shadow-canary.yaml at 250 labelled requests/s and for the demo's
plan with a shadow phase added at its 300 requests/s (live accuracy 0.84, the
models agree on 90 % of requests), 400 seeded phases per candidate:
- equal or better candidate rolled back (a false rollback) <= alpha;
- a candidate worse by more than the margin passed to users (a false pass) <= alpha;
- a candidate 2 or 4 points worse caught before any exposure >= 95 %;
and, at the same number of labelled requests, the paired harm test finds a
worse candidate more often than the two-sample test an exposed canary has.
Python -m ramp.shadow_simulation prints the full tables (docs/ramp.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.demo_plan import DEMO_RAMP, DEMO_RAMP_RATE
from experiments.loader import load_experiment
from experiments.ramp_plan import Ramp
from ramp.shadow_simulation import ShadowScenario, shadow_power, simulate_shadow_phases

pytestmark = pytest.mark.slow

RUNS = 400
ALPHA = 0.05
EXAMPLE = Path(__file__).resolve().parents[2] / "experiments" / "shadow-canary.yaml"


def plans() -> dict[str, tuple[Ramp, float]]:
    example = load_experiment(EXAMPLE).ramp
    assert example is not None
    # What `make demo` would ramp with: its plan, starting with a shadow phase.
    demo = Ramp.model_validate(DEMO_RAMP)
    return {"shadow-canary.yaml": (example, 250.0), "demo": (demo, DEMO_RAMP_RATE)}


def run(name: str, points: float, seed: int) -> tuple[float, float]:
    """(rolled back, passed) shares of a candidate ``points`` better or worse."""
    plan, rate = plans()[name]
    sim = simulate_shadow_phases(
        plan, ShadowScenario("", points).design(), rate=rate, runs=RUNS, alpha=ALPHA, seed=seed
    )
    assert sim.rolled_back + sim.passed + sim.expired == RUNS
    return sim.rollback_rate, sim.pass_rate


@pytest.mark.parametrize("name", ["shadow-canary.yaml", "demo"])
def test_equal_and_better_candidates_are_rarely_rolled_back(name: str) -> None:
    for seed, points in enumerate((0.0, 1.0)):
        rolled_back, passed = run(name, points, seed)
        assert rolled_back <= ALPHA, (name, points, rolled_back)
        assert passed >= 0.9, (name, points, passed)


@pytest.mark.parametrize("name", ["shadow-canary.yaml", "demo"])
def test_worse_candidates_are_caught_before_any_user_sees_them(name: str) -> None:
    # Worse by more than the margin (0.84 points on the example, 1.7 on the demo's plan).
    beyond = -2.0 if name == "demo" else -1.0
    _, passed = run(name, beyond, 10)
    assert passed <= ALPHA, (name, passed)
    for seed, points in enumerate((-2.0, -4.0), start=11):
        rolled_back, passed = run(name, points, seed)
        assert rolled_back >= 0.95, (name, points, rolled_back)
        assert passed <= ALPHA, (name, points, passed)


def test_the_paired_test_finds_a_worse_model_with_fewer_labels_than_two_arms() -> None:
    power = shadow_power(ShadowScenario("", -2.0).design(), 2000, experiments=RUNS, seed=3)
    assert power.paired_sequential >= 3 * power.two_sample_sequential, power
    assert power.paired_fixed > power.two_sample_fixed + 0.3, power
