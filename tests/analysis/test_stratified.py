"""Estimates across epochs (``analysis/stratified.py``) and their place in a decision."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from scipy import stats as scipy_stats

from analysis.decisions import analyze
from analysis.epochs import Epoch
from analysis.inputs import experiment_from_json
from analysis.reports.json_report import report_json
from analysis.stratified import stratify
from analysis.stratified_simulation import TrendCase, simulate_trend
from analysis.sufficient import MetricStats, ProportionStats, VariantStats
from tests.analysis.test_inputs_v2 import stats


def mean_stats(values: np.ndarray) -> VariantStats:
    return VariantStats(requests=len(values), metrics={"m": MetricStats.from_values(values)})


def pick_m(stats: VariantStats) -> MetricStats | None:
    return stats.metrics.get("m")


def epoch(version: int, weights: dict[str, float], **arms: np.ndarray) -> Epoch:
    return Epoch(version, weights, variants={k: mean_stats(v) for k, v in arms.items()})


def test_one_epoch_gives_its_own_statistics_back() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 300), rng.normal(0.1, 1, 200)
    strata = stratify([epoch(1, {"a": 60, "b": 40}, a=a, b=b)], "a", "b", pick_m)
    assert strata is not None and strata.count == 1
    assert strata.control == MetricStats.from_values(a)
    assert strata.treatment == MetricStats.from_values(b)


def test_the_combination_matches_a_direct_computation_from_the_raw_values() -> None:
    rng = np.random.default_rng(2)
    raw = {  # epoch -> arm -> values; the metric rises by 1.0 between the epochs
        1: {"a": rng.normal(0.0, 1.0, 900), "b": rng.normal(0.0, 2.0, 100)},
        2: {"a": rng.normal(1.0, 1.5, 500), "b": rng.normal(1.0, 1.0, 500)},
    }
    epochs = [epoch(k, {"a": len(v["a"]), "b": len(v["b"])}, **v) for k, v in raw.items()]
    strata = stratify(epochs, "a", "b", pick_m)
    assert strata is not None and strata.epochs == (1, 2)
    sizes = np.array([len(v["a"]) + len(v["b"]) for v in raw.values()])
    w = sizes / sizes.sum()
    for arm, got in (("a", strata.control), ("b", strata.treatment)):
        means = np.array([v[arm].mean() for v in raw.values()])
        var_of_means = np.array([v[arm].var(ddof=1) / len(v[arm]) for v in raw.values()])
        assert got.mean == pytest.approx(float(w @ means), rel=1e-12)
        assert got.variance / got.n == pytest.approx(float(w**2 @ var_of_means), rel=1e-10)
        assert got.n == sum(len(v[arm]) for v in raw.values())
    # One epoch's within-epoch test is Welch's: the pieces are scipy's.
    one = raw[1]
    welch = scipy_stats.ttest_ind(one["b"], one["a"], equal_var=False)
    se = np.sqrt(one["a"].var(ddof=1) / 900 + one["b"].var(ddof=1) / 100)
    assert (one["b"].mean() - one["a"].mean()) / se == pytest.approx(welch.statistic, rel=1e-12)
    # Pooling the same data is biased by the trend (b's data lie mostly in epoch 2).
    pooled_gap = (
        np.concatenate([raw[1]["b"], raw[2]["b"]]).mean()
        - np.concatenate([raw[1]["a"], raw[2]["a"]]).mean()
    )
    assert pooled_gap > 0.3
    c, t = strata.control, strata.treatment
    assert abs(t.mean - c.mean) < 3 * np.sqrt(c.variance / c.n + t.variance / t.n)


def test_epochs_without_both_arms_or_with_another_model_are_left_out() -> None:
    rng = np.random.default_rng(3)
    champion_only = epoch(1, {"a": 100, "b": 0}, a=rng.normal(0, 1, 500))
    old_model = Epoch(
        2,
        {"a": 50, "b": 50},
        model_versions={"a": "v1", "b": "v2"},
        variants={"a": mean_stats(rng.normal(0, 1, 300)), "b": mean_stats(rng.normal(5, 1, 300))},
    )
    too_small = epoch(3, {"a": 50, "b": 50}, a=rng.normal(0, 1, 50), b=rng.normal(0, 1, 1))
    current = [
        Epoch(
            version,
            {"a": weight, "b": 100 - weight},
            model_versions={"a": "v1", "b": "v3"},
            variants={
                "a": mean_stats(rng.normal(0, 1, 10 * weight)),
                "b": mean_stats(rng.normal(0, 1, 10 * (100 - weight))),
            },
        )
        for version, weight in ((4, 90), (5, 50))
    ]
    epochs = [champion_only, old_model, too_small, *current]
    strata = stratify(epochs, "a", "b", pick_m, {"a": "v1", "b": "v3"})
    assert strata is not None
    assert strata.epochs == (4, 5)
    assert strata.left_out == (2, 3)  # b ran v2 / b had one unit (epoch 1 had no b at all)
    assert abs(strata.treatment.mean - strata.control.mean) < 0.2  # v2's +5 is not in it


def test_epochs_that_routed_alike_are_one_stratum() -> None:
    rng = np.random.default_rng(4)
    same = [
        epoch(k, {"a": 50, "b": 50}, a=rng.normal(0, 1, 200), b=rng.normal(0, 1, 200))
        for k in (1, 2)
    ]
    strata = stratify(same, "a", "b", pick_m)
    assert strata is not None and strata.count == 1  # an alpha change is no new stratum
    assert strata.control.n == 400


# No effect at all, but accuracy rose from 0.70 to 0.80 between the epochs while the
# split went from 90/10 to 50/50: pooled, the canary looks better.
TREND: dict[str, Any] = {
    "schema_version": 2,
    "experiment": "trend",
    "settings": {"sequential": True, "min_samples": 100, "tuning_n": 20000},
    "variants": [
        {"name": "champion", "role": "champion", "model_version": "v1"},
        {"name": "canary", "role": "canary", "model_version": "v2"},
    ],
    "epochs": [
        {
            "version": 1,
            "weights": {"champion": 90, "canary": 10},
            "variants": {"champion": stats(18000, 12600),
                         "canary": stats(2000, 1400)},
        },
        {
            "version": 2,
            "weights": {"champion": 50, "canary": 50},
            "variants": {"champion": stats(10000, 8000),
                         "canary": stats(10000, 8000)},
        },
    ],
}  # fmt: skip


def test_a_trend_across_a_weight_change_does_not_promote() -> None:
    result = analyze(experiment_from_json(TREND))
    va = result.variants[0]
    assert va.pooled is not None and va.strata is not None and va.strata.epochs == (1, 2)
    # Pooled: 0.767 against 0.736, a "significant" +4 %; stratified: exactly no difference.
    assert va.pooled.significant and va.pooled.estimate > 0.03
    assert va.primary is not None and abs(va.primary.estimate) < 1e-12
    assert result.verdicts[0].action != "promote"
    primary = report_json(result)["variants"][0]["primary"]
    assert primary["estimator"] == "stratified" and primary["epochs_compared"] == [1, 2]
    assert primary["pooled"]["significant"] and not primary["significant"]


def test_a_real_effect_is_found_stratified() -> None:
    data = copy.deepcopy(TREND)
    data["epochs"][0]["variants"]["canary"] = stats(2000, 1500)  # 0.75 vs 0.70
    data["epochs"][1]["variants"]["canary"] = stats(10000, 8500)  # 0.85 vs 0.80
    result = analyze(experiment_from_json(data))
    assert result.verdicts[0].action == "promote"
    assert result.variants[0].primary is not None
    assert result.variants[0].primary.estimate == pytest.approx(
        # Both epochs hold 20,000 requests: (0.75 + 0.85) / (0.70 + 0.80) - 1
        (0.5 * 0.75 + 0.5 * 0.85) / (0.5 * 0.70 + 0.5 * 0.80) - 1,
        rel=1e-9,
    )


def test_one_epoch_decides_exactly_as_before() -> None:
    data = copy.deepcopy(TREND)
    data["epochs"] = data["epochs"][1:]
    result = analyze(experiment_from_json(data))
    va = result.variants[0]
    assert va.pooled is None
    assert report_json(result)["variants"][0]["primary"]["estimator"] == "single_epoch"
    champion = next(v for v in result.data.variants if v.role == "champion")
    assert va.primary is not None and va.primary.control_n == champion.metrics["accuracy"].n


def test_proportions_keep_their_kind_in_each_epoch() -> None:
    strata = stratify(
        [
            Epoch(1, {"a": 1, "b": 1}, variants={"a": VariantStats(10), "b": VariantStats(10)}),
        ],
        "a",
        "b",
        lambda s: s.proportion("accuracy") if "accuracy" in s.metrics else None,
    )
    assert strata is None  # no outcomes recorded: nothing to compare
    stats = VariantStats(10, metrics={"accuracy": MetricStats(10, 7.0, 7.0)})
    strata = stratify([Epoch(1, {"a": 1, "b": 1}, variants={"a": stats, "b": stats})], "a", "b",
                      lambda s: s.proportion("accuracy"))  # fmt: skip
    assert strata is not None and isinstance(strata.control, ProportionStats)


def test_a_trend_across_a_weight_change_fools_pooling_but_not_the_stratified_decision() -> None:
    """A/A through the real decision code (table: python -m analysis.stratified_simulation)."""
    rates = simulate_trend(TrendCase(0.10, 0.20), experiments=200, seed=11)
    assert rates.pooled[0] > 0.3  # pooled promotes an identical model
    assert sum(rates.stratified) <= 0.08  # alpha 0.05 plus Monte-Carlo noise at 200 runs
