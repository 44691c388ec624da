"""Verdicts from fixed sufficient statistics: each rule fires, in order, with evidence."""

from __future__ import annotations

import copy

import pytest
from scipy import stats as scipy_stats

from analysis.decisions import analyze
from analysis.inputs import InputError, experiment_from_json

BASE = {
    "experiment": "demo",
    "settings": {"duration_s": 3600, "sequential": False},
    "variants": [
        {
            "name": "champion",
            "role": "champion",
            "weight": 50,
            "requests": 5000,
            "errors": 5,
            "metrics": {"accuracy": {"type": "proportion", "n": 5000, "sum": 4200}},
        },
        {
            "name": "canary",
            "role": "canary",
            "weight": 50,
            "requests": 5000,
            "errors": 5,
            "metrics": {"accuracy": {"type": "proportion", "n": 5000, "sum": 4200}},
        },
    ],
}


def verdict(data: dict) -> tuple[str, str, dict]:
    result = analyze(experiment_from_json(data))
    (only,) = result.verdicts
    return only.action, only.rule, only.evidence


def with_canary(**changes) -> dict:
    data = copy.deepcopy(BASE)
    data["variants"][1].update(changes)
    return data


def test_no_difference_short_of_the_planned_sample_continues() -> None:
    action, rule, evidence = verdict(BASE)
    # 2 % relative MDE at 84 % needs ~7,500 per arm: 5,000 is not there yet.
    assert (action, rule) == ("continue", "primary"), evidence
    assert evidence["required_per_arm"] > 5000


def test_no_difference_at_the_planned_sample_is_inconclusive_not_a_pass() -> None:
    data = copy.deepcopy(BASE)
    for v in data["variants"]:
        v["requests"] = 20000
        v["metrics"]["accuracy"] = {"type": "proportion", "n": 20000, "sum": 16800}
    action, rule, evidence = verdict(data)
    assert (action, rule) == ("inconclusive", "planned_sample"), evidence
    assert evidence["p_value"] == pytest.approx(1.0)


def test_too_little_data_is_inconclusive() -> None:
    data = with_canary(
        requests=50, metrics={"accuracy": {"type": "proportion", "n": 50, "sum": 49}}
    )
    data["variants"][0].update(
        requests=50, metrics={"accuracy": {"type": "proportion", "n": 50, "sum": 30}}
    )
    action, rule, _ = verdict(data)
    assert (action, rule) == ("inconclusive", "min_samples")


def test_better_model_is_promoted_with_welch_evidence_matching_scipy() -> None:
    data = with_canary(metrics={"accuracy": {"type": "proportion", "n": 5000, "sum": 4400}})
    action, rule, evidence = verdict(data)
    assert (action, rule) == ("promote", "primary")
    # The verdict tests the difference (Welch on unpooled p(1-p) variances, as scipy
    # computes it); the relative lift is reported beside it.
    p1, p2, n = 0.84, 0.88, 5000
    welch = scipy_stats.ttest_ind_from_stats(
        p2, (p2 * (1 - p2)) ** 0.5, n, p1, (p1 * (1 - p1)) ** 0.5, n, equal_var=False
    )
    assert evidence["estimate"] == pytest.approx(p2 / p1 - 1)
    assert evidence["p_value"] == pytest.approx(welch.pvalue, rel=1e-6)
    assert evidence["difference"]["reported"] == "relative"
    assert evidence["samples"] == {"champion": 5000, "variant": 5000}
    assert evidence["ci"][0] > 0


def test_worse_model_is_rolled_back() -> None:
    data = with_canary(metrics={"accuracy": {"type": "proportion", "n": 5000, "sum": 3900}})
    assert verdict(data)[:2] == ("rollback", "primary")


def test_error_guardrail_fires_before_the_metric() -> None:
    data = with_canary(
        errors=400, metrics={"accuracy": {"type": "proportion", "n": 5000, "sum": 4600}}
    )
    action, rule, evidence = verdict(data)
    assert (action, rule) == ("rollback", "guardrail:error_rate")
    assert evidence["threshold"] == 0.01


def test_latency_guardrail() -> None:
    bounds = [1.0, 2.0, 5.0, 10.0, 50.0]
    fast = {"bounds": bounds, "counts": [4000, 900, 90, 10, 0, 0]}
    slow = {"bounds": bounds, "counts": [100, 900, 1000, 1000, 1900, 100]}
    data = copy.deepcopy(BASE)
    data["variants"][0]["latency_ms"] = fast
    data["variants"][1]["latency_ms"] = slow
    assert verdict(data)[:2] == ("rollback", "guardrail:p99_latency_ms")


def test_sample_ratio_mismatch_holds_everything() -> None:
    data = with_canary(
        requests=4000, metrics={"accuracy": {"type": "proportion", "n": 4000, "sum": 3800}}
    )
    action, rule, evidence = verdict(data)
    assert (action, rule) == ("hold", "srm")
    assert evidence["p_value"] < 0.001


def test_holm_adjusts_across_variants() -> None:
    data = copy.deepcopy(BASE)
    data["variants"].append(
        {"name": "challenger", "role": "challenger", "weight": 0, "requests": 0, "metrics": {}}
    )
    data["variants"][1]["metrics"]["accuracy"]["sum"] = 4290
    data["variants"][2] = {
        "name": "challenger",
        "role": "challenger",
        "weight": 50,
        "requests": 5000,
        "errors": 5,
        "metrics": {"accuracy": {"type": "proportion", "n": 5000, "sum": 4250}},
    }
    data["variants"][0]["weight"] = 50
    data["variants"][1]["weight"] = 50
    data["variants"][2]["weight"] = 50
    for v in data["variants"]:
        v["requests"] = 5000
    result = analyze(experiment_from_json(data))
    raw = sorted(a.primary.p_value for a in result.variants)
    adjusted = sorted(a.adjusted_p_value for a in result.variants)
    assert adjusted[0] == pytest.approx(min(1.0, 2 * raw[0]))
    assert adjusted[1] == pytest.approx(max(adjusted[0], raw[1]))


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (
            lambda d: d["variants"][1]["metrics"]["accuracy"].pop("n"),
            "variants.1.metrics.accuracy.n",
        ),
        (
            lambda d: d["variants"][1]["metrics"].update(
                {"accuracy": {"type": "proportion", "n": -3, "sum": 0}}
            ),
            "variants.1.metrics.accuracy.n",
        ),
        (
            lambda d: d["variants"][1]["metrics"].update(
                {"revenue": {"type": "mean", "n": 10, "sum": 100.0, "sum_squares": 50.0}}
            ),
            "variants.1.metrics.revenue.sum_squares",
        ),
        (lambda d: d["variants"][0].update(role="challenger"), "variants"),
        (lambda d: d["settings"].update(alpha=2), "settings.alpha"),
    ],
)
def test_malformed_input_names_the_field(mutate, path: str) -> None:
    data = copy.deepcopy(BASE)
    mutate(data)
    with pytest.raises(InputError) as err:
        experiment_from_json(data)
    assert err.value.path == path
