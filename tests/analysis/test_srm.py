"""Sample-ratio mismatch against scipy's chi-square goodness of fit."""

from __future__ import annotations

import pytest
from scipy import stats

from analysis.srm import sample_ratio_mismatch


@pytest.mark.parametrize(
    ("observed", "weights"),
    [
        ({"champion": 5200, "canary": 4800}, {"champion": 0.5, "canary": 0.5}),
        ({"champion": 5050, "canary": 4950}, {"champion": 1, "canary": 1}),
        ({"champion": 9100, "canary": 900}, {"champion": 90, "canary": 10}),
        ({"a": 3300, "b": 3400, "c": 3300}, {"a": 1, "b": 1, "c": 1}),
        ({"a": 7000, "b": 2100, "c": 900}, {"a": 0.7, "b": 0.2, "c": 0.1}),
    ],
)
def test_matches_scipy_chisquare(observed: dict[str, int], weights: dict[str, float]) -> None:
    result = sample_ratio_mismatch(observed, weights)
    total, weight_total = sum(observed.values()), sum(weights.values())
    expected = [total * weights[arm] / weight_total for arm in observed]
    reference = stats.chisquare(list(observed.values()), expected)
    assert result.checked
    assert result.statistic == pytest.approx(reference.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert result.mismatch == (reference.pvalue < 0.001)
    assert result.dof == len(observed) - 1


def test_flags_a_broken_split_with_a_message() -> None:
    result = sample_ratio_mismatch({"champion": 5200, "canary": 4800}, {"champion": 1, "canary": 1})
    assert result.mismatch
    assert "sample ratio mismatch" in result.message
    assert "52.0%/48.0%" in result.message


def test_passes_a_sound_split() -> None:
    result = sample_ratio_mismatch({"champion": 5050, "canary": 4950}, {"champion": 1, "canary": 1})
    assert result.checked and not result.mismatch
    assert "matches" in result.message


def test_too_few_units_is_not_checked() -> None:
    result = sample_ratio_mismatch({"champion": 100, "canary": 7}, {"champion": 1, "canary": 1})
    assert not result.checked
    assert not result.mismatch
    assert "canary (7)" in result.message


def test_unused_arm_with_zero_weight_is_ignored() -> None:
    result = sample_ratio_mismatch(
        {"champion": 500, "challenger": 510, "canary": 0},
        {"champion": 1, "challenger": 1, "canary": 0},
    )
    assert result.arms == ("champion", "challenger")
    assert result.checked and not result.mismatch


def test_traffic_to_a_zero_weight_arm_is_a_mismatch() -> None:
    result = sample_ratio_mismatch({"champion": 500, "canary": 20}, {"champion": 1, "canary": 0})
    assert result.mismatch
    assert result.p_value == 0.0


@pytest.mark.parametrize(
    ("observed", "weights", "fragment"),
    [
        ({"a": 1}, {"b": 1}, "same arms"),
        ({"a": -1, "b": 2}, {"a": 1, "b": 1}, "observed"),
        ({"a": 1.5, "b": 2}, {"a": 1, "b": 1}, "observed"),
        ({"a": 1, "b": 2}, {"a": -1, "b": 1}, "weights"),
        ({"a": 1, "b": 2}, {"a": 0, "b": 0}, "weights"),
    ],
)
def test_invalid_input(observed: dict[str, int], weights: dict[str, float], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        sample_ratio_mismatch(observed, weights)
