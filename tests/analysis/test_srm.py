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


# --- per epoch ------------------------------------------------------------------------------

from statsmodels.stats.multitest import multipletests  # noqa: E402

from analysis.epochs import Epoch  # noqa: E402
from analysis.srm import epoch_sample_ratio_mismatch  # noqa: E402
from analysis.sufficient import VariantStats  # noqa: E402

VERSIONS = {"champion": "v1", "canary": "v2"}


def epoch(version: int, weights: dict[str, float], counts: dict[str, int], **kw) -> Epoch:
    return Epoch(
        version, weights, VERSIONS, start=1000.0 * version, end=1000.0 * (version + 1),
        variants={arm: VariantStats(requests=n) for arm, n in counts.items()}, **kw,
    )  # fmt: skip


def scipy_p(counts: dict[str, int], weights: dict[str, float]) -> float:
    total, weight_total = sum(counts.values()), sum(weights.values())
    expected = [total * weights[arm] / weight_total for arm in counts]
    return float(stats.chisquare(list(counts.values()), expected).pvalue)


WEIGHT_CHANGE = [
    epoch(3, {"champion": 90, "canary": 10}, {"champion": 9040, "canary": 960}),
    epoch(4, {"champion": 50, "canary": 50}, {"champion": 4960, "canary": 5040}),
]


def test_a_weight_change_is_no_mismatch_and_each_epoch_matches_scipy() -> None:
    result = epoch_sample_ratio_mismatch(WEIGHT_CHANGE)
    raw = [
        scipy_p({"champion": 9040, "canary": 960}, {"champion": 90, "canary": 10}),
        scipy_p({"champion": 4960, "canary": 5040}, {"champion": 50, "canary": 50}),
    ]
    adjusted = multipletests(raw, method="holm")[1]
    assert result.checked and not result.mismatch
    assert [c.result.p_value for c in result.epochs] == pytest.approx(raw, rel=1e-9)
    assert [c.adjusted_p_value for c in result.epochs] == pytest.approx(list(adjusted), rel=1e-9)
    assert result.p_value == pytest.approx(min(adjusted), rel=1e-9)
    # Expected requests add up per epoch: 90 % of 10,000 plus 50 % of 10,000.
    assert dict(zip(result.arms, result.expected, strict=True)) == {
        "champion": 14000.0, "canary": 6000.0
    }  # fmt: skip
    # The same counts against today's weights alone are the false alarm this replaces.
    pooled = sample_ratio_mismatch(
        {"champion": 14000, "canary": 6000}, {"champion": 1, "canary": 1}
    )
    assert pooled.mismatch


def test_a_mismatch_in_one_epoch_is_flagged_and_named() -> None:
    lossy = {"champion": 5000, "canary": 4600}  # 8 % of the canary's records lost
    result = epoch_sample_ratio_mismatch(
        [WEIGHT_CHANGE[0], epoch(4, {"champion": 50, "canary": 50}, lossy)]
    )
    raw = [
        scipy_p({"champion": 9040, "canary": 960}, {"champion": 90, "canary": 10}),
        scipy_p({"champion": 5000, "canary": 4600}, {"champion": 50, "canary": 50}),
    ]
    adjusted = multipletests(raw, method="holm")[1]
    assert adjusted[1] < 0.001 <= adjusted[0]
    assert result.mismatch
    assert [c.mismatch for c in result.epochs] == [False, True]
    assert "config v4" in result.message and "champion 50 % / canary 50 %" in result.message
    assert "config v3" not in result.message
    assert result.p_value == pytest.approx(adjusted[1], rel=1e-9)


def test_holm_over_epochs_catches_one_bad_epoch_a_summed_chi_square_dilutes() -> None:
    # Nine sound epochs and one broken one (p ~ 2e-5 alone).
    even = {"champion": 1, "canary": 1}
    sound = [epoch(v, even, {"champion": 5000 + 30 * (v % 3), "canary": 5000})
             for v in range(1, 10)]  # fmt: skip
    broken = epoch(10, {"champion": 1, "canary": 1}, {"champion": 5215, "canary": 4785})
    # alternate weights so that neighbours do not merge into one span
    epochs = [
        Epoch(e.version, {"champion": 1 + e.version % 2, "canary": 1 + e.version % 2},
              {**VERSIONS, "canary": f"v{e.version}"}, variants=e.variants)
        for e in [*sound, broken]
    ]  # fmt: skip
    result = epoch_sample_ratio_mismatch(epochs)
    statistics = [
        stats.chisquare([e.variants["champion"].requests, e.variants["canary"].requests]).statistic
        for e in epochs
    ]
    summed = stats.chi2.sf(sum(statistics), df=len(epochs))
    assert summed > 0.001  # the sum would not flag it
    assert result.mismatch and "config v10" in result.message


def test_zero_weight_arms_small_and_unknown_epochs_are_not_checked() -> None:
    epochs = [
        Epoch(0, None, {}, variants={"champion": VariantStats(requests=500)}),  # before epochs
        epoch(1, {"champion": 100, "canary": 0}, {"champion": 800, "canary": 3}),  # override
        epoch(2, {"champion": 60, "canary": 40}, {"champion": 5, "canary": 4}),  # too few
        epoch(3, {"champion": 50, "canary": 50}, {"champion": 500, "canary": 510}),
    ]
    result = epoch_sample_ratio_mismatch(epochs)
    assert result.checked and not result.mismatch
    checked = [c.epoch.version for c in result.epochs if c.adjusted_p_value is not None]
    assert checked == [3]
    assert [c.epoch.version for c in result.epochs] == [0, 2, 3]  # epoch 1: one arm routed
    assert "2 epochs not checked" in result.message


def test_neighbours_that_routed_alike_are_checked_as_one() -> None:
    same = {"champion": 50, "canary": 50}
    epochs = [epoch(5, same, {"champion": 30, "canary": 12}),
              epoch(6, same, {"champion": 40, "canary": 18})]  # fmt: skip
    result = epoch_sample_ratio_mismatch(epochs)
    (check,) = result.epochs
    assert check.epoch.version == 5 and check.epoch.last_version == 6
    assert check.result.p_value == pytest.approx(scipy_p({"champion": 70, "canary": 30}, same))
    assert "config v5-v6" in check.epoch.label


def test_no_traffic_is_not_checked() -> None:
    result = epoch_sample_ratio_mismatch([epoch(1, {"champion": 1, "canary": 1}, {})])
    assert not result.checked and not result.mismatch
    assert result.message.endswith("no traffic yet")


def test_traffic_to_one_routed_arm_says_so_not_no_traffic() -> None:
    # A shadow phase: the candidate at weight 0 (mirrored, never served), the champion
    # answering everyone. There is traffic, and no split to compare.
    shadow_phase = epoch(2, {"champion": 100, "canary": 0}, {"champion": 4000})
    result = epoch_sample_ratio_mismatch([shadow_phase])
    assert not result.checked and not result.mismatch
    assert "no traffic" not in result.message
    assert "one variant only" in result.message
