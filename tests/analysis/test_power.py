"""Power, MDE, sample size, time to decision: GrowthBook's vectors and statsmodels."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from statsmodels.stats.power import NormalIndPower

from analysis.effect import lift_moments
from analysis.power import (
    estimate_power,
    minimum_detectable_effect,
    sample_size_per_arm,
    time_to_decision,
)
from analysis.sufficient import Moments
from tests.analysis._vectors import TOLERANCE, load

CASES = {case["test"]: case for case in load("growthbook/shared_expected.json")["power"]["cases"]}
MEAN, VARIANCE = 10.0, 3909.9997749994377
N_PER_ARM = 400_000 / 3


def _arm(n: float, mean: float, variance: float) -> Moments:
    return Moments(n=np.asarray(n), mean=np.asarray(mean), variance=np.asarray(variance))


@pytest.mark.parametrize(
    ("name", "difference_type"),
    [
        ("delta method variance absolute correct", "absolute"),
        ("delta method variance relative correct", "relative"),
    ],
)
def test_lift_variance_vectors(name: str, difference_type: Any) -> None:
    # frequentistVariance(varA=2, meanA=7, nA=4, varB=0.5, meanB=5, nB=15)
    _, variance = lift_moments(_arm(4, 7.0, 2.0), _arm(15, 5.0, 0.5), difference_type)
    assert float(variance) == pytest.approx(CASES[name]["expected"], abs=TOLERANCE)


@pytest.mark.parametrize(
    ("name", "tuning"),
    [("calculates power correctly", None), ("calculates sequential power correctly", 5000.0)],
)
def test_power_vectors(name: str, tuning: float | None) -> None:
    case = CASES[name]
    power = estimate_power(MEAN, VARIANCE, 0.05, N_PER_ARM, alpha=0.05, tuning=tuning)
    assert power == pytest.approx(case["expected"], abs=TOLERANCE)


@pytest.mark.parametrize(
    ("name", "tuning"),
    [
        ("calculates two-tailed mde correctly", None),
        ("calculates sequential mde correctly", 5000.0),
    ],
)
def test_mde_vectors(name: str, tuning: float | None) -> None:
    result = minimum_detectable_effect(MEAN, VARIANCE, N_PER_ARM, target_power=0.8, tuning=tuning)
    assert result.mde == pytest.approx(CASES[name]["expected"], abs=TOLERANCE)


@pytest.mark.parametrize("tuning", [None, 5000.0])
def test_mde_has_the_target_power(tuning: float | None) -> None:
    mde = minimum_detectable_effect(MEAN, VARIANCE, N_PER_ARM, tuning=tuning).mde
    assert mde is not None
    # The MDE formula ignores the far tail, so power at the MDE is 0.8 up to that tail.
    assert estimate_power(MEAN, VARIANCE, mde, N_PER_ARM, tuning=tuning) == pytest.approx(
        0.8, abs=1e-5
    )


@pytest.mark.parametrize("effect", [0.05, 0.2, 0.5])
@pytest.mark.parametrize("n", [50, 400, 5000])
def test_absolute_power_matches_statsmodels(effect: float, n: int) -> None:
    sd = 2.0
    ours = estimate_power(3.0, sd**2, effect * sd, n, difference_type="absolute")
    reference = NormalIndPower().power(effect, nobs1=n, alpha=0.05, ratio=1.0)
    assert ours == pytest.approx(reference, rel=1e-9)
    one_sided = estimate_power(
        3.0, sd**2, effect * sd, n, difference_type="absolute", two_sided=False
    )
    reference = NormalIndPower().power(effect, nobs1=n, alpha=0.05, alternative="larger")
    assert one_sided == pytest.approx(reference, rel=1e-9)


@pytest.mark.parametrize("effect", [0.05, 0.1, 0.3])
def test_absolute_sample_size_matches_statsmodels(effect: float) -> None:
    result = sample_size_per_arm(0.0, 1.0, effect, difference_type="absolute")
    reference = NormalIndPower().solve_power(effect, alpha=0.05, power=0.8, ratio=1.0)
    assert result.n_per_arm == math.ceil(reference)


@pytest.mark.parametrize("tuning", [None, 5000.0])
def test_sample_size_is_the_smallest_with_enough_power(tuning: float | None) -> None:
    result = sample_size_per_arm(MEAN, VARIANCE, 0.05, tuning=tuning)
    n = result.n_per_arm
    assert n is not None
    assert estimate_power(MEAN, VARIANCE, 0.05, n, tuning=tuning) >= 0.8
    assert estimate_power(MEAN, VARIANCE, 0.05, n - 1, tuning=tuning) < 0.8


def test_unreachable_cases_are_messages() -> None:
    tiny = minimum_detectable_effect(MEAN, VARIANCE, 10)
    assert tiny.mde is None and "too few units" in tiny.message
    assert sample_size_per_arm(MEAN, VARIANCE, 0.0).n_per_arm is None
    assert minimum_detectable_effect(MEAN, VARIANCE, 1000, target_power=0.01).mde is None
    with pytest.raises(ValueError, match="variance"):
        estimate_power(MEAN, 0.0, 0.1, 100)
    with pytest.raises(ValueError, match="mean"):
        estimate_power(0.0, 1.0, 0.1, 100)
    with pytest.raises(ValueError, match="n_per_arm"):
        minimum_detectable_effect(MEAN, VARIANCE, 0, tuning=5000.0)


def test_time_to_decision_waits_for_the_slowest_arm() -> None:
    result = time_to_decision(
        1000, {"champion": 100, "canary": 500}, {"champion": 1.0, "canary": 2.0}
    )
    assert result.seconds == pytest.approx(900.0)
    assert result.remaining_per_arm == {"champion": 900, "canary": 500}
    assert "15.0 minutes" in result.message


def test_time_to_decision_edge_cases() -> None:
    done = time_to_decision(10, {"a": 10, "b": 12}, {"a": 0.0, "b": 0.0})
    assert done.seconds == 0.0
    starved = time_to_decision(10, {"a": 5, "b": 12}, {"a": 0.0, "b": 1.0})
    assert starved.seconds is None and "no traffic reaches a" in starved.message
    with pytest.raises(ValueError, match="same arms"):
        time_to_decision(10, {"a": 1}, {"b": 1.0})
