"""Every guardrail field the config accepts is enforced, and ``guardrails: []`` means none.

Each case goes config → ``settings_from_config`` → ``analyze``, so a field that
is read nowhere (or dropped on the way) fails its test: the variant breaks the
configured limit and must be rolled back under that guardrail's own rule, while
a looser value of the same field lets the same data pass.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pytest

from analysis.decisions import Verdict, analyze
from analysis.guardrails import GuardrailSpec, check_guardrail
from analysis.inputs import AnalysisSettings, ExperimentData, InputError, VariantData
from analysis.inputs import experiment_from_json as analysis_input
from analysis.report import render
from analysis.sufficient import LatencyHistogram, MetricStats, ProportionStats
from experiments.config import ExperimentConfig
from recorded.reporting import settings_from_config

BOUNDS = tuple(float(b) for b in range(1, 1001))  # 1 ms buckets: quantiles within 1 ms


def config(guardrails: list[dict[str, Any]] | None) -> ExperimentConfig:
    metrics: dict[str, Any] = {"primary": {"name": "accuracy", "kind": "proportion"}}
    if guardrails is not None:
        metrics["guardrails"] = guardrails
    return ExperimentConfig.model_validate(
        {
            "name": "guard",
            "model": "demo",
            "variants": [
                {"name": "champion", "role": "champion", "model_version": "v1",
                 "endpoints": ["http://127.0.0.1:8101"], "weight": 50},
                {"name": "canary", "role": "challenger", "model_version": "v2",
                 "endpoints": ["http://127.0.0.1:8102"], "weight": 50},
            ],
            "metrics": metrics,
            "statistics": {"min_samples": 100},
        }
    )  # fmt: skip


def arm(name: str, role: str, *, errors: int = 50, slowdown: float = 1.0) -> VariantData:
    """5,000 requests, accuracy 0.8, latencies lognormal around 100 ms times ``slowdown``."""
    rng = np.random.default_rng(7)  # the same draws in both arms: only the scale differs
    latencies = rng.lognormal(np.log(100.0), 0.3, size=5000) * slowdown
    return VariantData(
        name=name,
        role=role,
        weight=50.0,
        requests=5000,
        errors=errors,
        latency=LatencyHistogram.from_values(latencies, BOUNDS),
        latency_ms=MetricStats.from_values(latencies),
        metrics={"accuracy": ProportionStats(5000, 4000.0)},
    )


def verdict_for(
    guardrails: list[dict[str, Any]] | None, *, errors: int = 50, slowdown: float = 1.0
) -> Verdict:
    settings = settings_from_config(config(guardrails), None)
    data = ExperimentData(
        "guard",
        (
            arm("champion", "champion"),
            arm("canary", "challenger", errors=errors, slowdown=slowdown),
        ),
        settings,
    )
    (verdict,) = analyze(data).verdicts
    return verdict


# (metric, field, value the bad variant breaks, value it keeps, the bad variant)
# Error rate: 1 % for the champion, 3 % for the variant (+0.02, +200 %, ×3).
# Latency: the variant is 1.4× slower at every quantile (p95 ≈ 163 → 229 ms).
CASES = [
    ("error_rate", "max_absolute_increase", 0.005, 0.05, {"errors": 150}),
    ("error_rate", "max_relative_increase", 0.5, 5.0, {"errors": 150}),
    ("error_rate", "max_ratio", 1.5, 6.0, {"errors": 150}),
    ("mean_latency_ms", "max_absolute_increase", 20.0, 80.0, {"slowdown": 1.4}),
    ("mean_latency_ms", "max_relative_increase", 0.2, 0.6, {"slowdown": 1.4}),
    ("mean_latency_ms", "max_ratio", 1.2, 1.6, {"slowdown": 1.4}),
    ("p50_latency_ms", "max_absolute_increase", 20.0, 60.0, {"slowdown": 1.4}),
    ("p50_latency_ms", "max_relative_increase", 0.2, 0.6, {"slowdown": 1.4}),
    ("p50_latency_ms", "max_ratio", 1.2, 1.6, {"slowdown": 1.4}),
    ("p95_latency_ms", "max_absolute_increase", 30.0, 100.0, {"slowdown": 1.4}),
    ("p95_latency_ms", "max_relative_increase", 0.2, 0.6, {"slowdown": 1.4}),
    ("p95_latency_ms", "max_ratio", 1.2, 1.6, {"slowdown": 1.4}),
    ("p99_latency_ms", "max_absolute_increase", 40.0, 150.0, {"slowdown": 1.4}),
    ("p99_latency_ms", "max_relative_increase", 0.2, 0.6, {"slowdown": 1.4}),
    ("p99_latency_ms", "max_ratio", 1.2, 1.6, {"slowdown": 1.4}),
]


@pytest.mark.parametrize(("metric", "field", "breaks", "keeps", "bad"), CASES)
def test_each_guardrail_field_rolls_back_a_variant_that_breaks_it(
    metric: str, field: str, breaks: float, keeps: float, bad: dict[str, float]
) -> None:
    broken = verdict_for([{"name": metric, field: breaks}], **bad)  # type: ignore[arg-type]
    assert (broken.action, broken.rule) == ("rollback", f"guardrail:{metric}"), broken.reason
    assert broken.evidence["limit"] == field and broken.evidence["threshold"] == breaks
    # The same data within a looser value of the same field: not a guardrail rollback,
    # so it is the value that decided, not the guardrail's presence.
    kept = verdict_for([{"name": metric, field: keeps}], **bad)  # type: ignore[arg-type]
    assert not kept.rule.startswith("guardrail:"), kept.reason
    # And a different metric's guardrail does not see this harm.
    other = "p95_latency_ms" if metric == "error_rate" else "error_rate"
    unrelated = verdict_for([{"name": other, "max_ratio": 1.2}], **bad)  # type: ignore[arg-type]
    assert not unrelated.rule.startswith("guardrail:"), unrelated.reason


def test_an_empty_guardrail_list_checks_none_even_with_terrible_errors() -> None:
    terrible = {"errors": 2500, "slowdown": 5.0}  # 50 % errors, 5x slower
    assert verdict_for(None, **terrible).rule == "guardrail:error_rate"  # the defaults
    verdict = verdict_for([], **terrible)  # type: ignore[arg-type]
    assert not verdict.rule.startswith("guardrail:"), verdict.reason
    settings = settings_from_config(config([]), None)
    data = ExperimentData(
        "guard", (arm("champion", "champion"), arm("canary", "challenger", **terrible)), settings
    )  # type: ignore[arg-type]
    analysis = analyze(data)
    assert analysis.variants[0].guardrails == ()
    markdown = render(data, "md")
    assert "| canary | none configured | — | — | none checked |" in markdown
    assert json.loads(render(data, "json"))["variants"][0]["guardrails"] == []


def test_every_configured_guardrail_is_reported_with_its_own_rule() -> None:
    guards = [
        {"name": "error_rate", "max_absolute_increase": 0.01},
        {"name": "p95_latency_ms", "max_ratio": 1.2},
        {"name": "mean_latency_ms", "max_relative_increase": 0.1},
    ]
    settings = settings_from_config(config(guards), None)
    data = ExperimentData(
        "guard", (arm("champion", "champion"), arm("canary", "challenger", slowdown=1.4)), settings
    )
    (verdict,) = analyze(data).verdicts
    # The first failed in config order decides; the evidence lists every failed one.
    assert verdict.rule == "guardrail:p95_latency_ms"
    assert verdict.evidence["failed_guardrails"] == [
        "guardrail:p95_latency_ms",
        "guardrail:mean_latency_ms",
    ]
    report = json.loads(render(data, "json"))
    rows = report["variants"][0]["guardrails"]
    assert [(r["rule"], r["status"]) for r in rows] == [
        ("guardrail:error_rate", "ok"),
        ("guardrail:p95_latency_ms", "failed"),
        ("guardrail:mean_latency_ms", "failed"),
    ]
    markdown = render(data, "md")
    assert "| canary | p95_latency_ms | ×1.2 |" in markdown
    assert "| canary | mean_latency_ms | +10 % relative |" in markdown


def test_a_relative_error_limit_on_a_champion_without_errors_tests_any_increase() -> None:
    spec = GuardrailSpec("error_rate", "max_relative_increase", 0.5)
    champion = arm("champion", "champion", errors=0)
    result = check_guardrail(spec, champion, arm("canary", "challenger", errors=100))
    assert result.failed and "no base" in result.message
    assert result.test is not None and result.test.difference_type == "absolute"
    same = check_guardrail(spec, champion, arm("canary", "challenger", errors=0))
    assert not same.failed and same.checked  # no errors anywhere: nothing to fear
    assert "no errors in either arm" in same.message and "undefined" not in same.message


@pytest.mark.parametrize("empty", ["champion", "canary"])
def test_an_error_rate_with_an_arm_without_requests_is_not_checked(empty: str) -> None:
    spec = GuardrailSpec("error_rate", "max_absolute_increase", 0.02)
    champion, canary = arm("champion", "champion", errors=0), arm("canary", "challenger", errors=0)
    none = {"requests": 0, "errors": 0}
    if empty == "champion":
        champion = dataclasses.replace(champion, **none)
    else:
        canary = dataclasses.replace(canary, **none)
    result = check_guardrail(spec, champion, canary)
    assert (result.failed, result.status) == (False, "not checked")
    assert f"no requests recorded for {empty} yet" in result.message


def test_too_little_latency_data_is_not_checked_never_a_pass() -> None:
    spec = GuardrailSpec("p95_latency_ms", "max_ratio", 1.2)
    few = LatencyHistogram.from_values([100.0] * 50, BOUNDS)
    champion = VariantData("champion", "champion", 50.0, 50, latency=few)
    slow = VariantData("canary", "challenger", 50.0, 50, latency=few)
    result = check_guardrail(spec, champion, slow)
    assert (result.failed, result.checked, result.status) == (False, False, "not checked")
    mean = check_guardrail(GuardrailSpec("mean_latency_ms", "max_ratio", 1.2), champion, slow)
    assert mean.status == "not checked" and "no mean latency" in mean.message


def _input(settings: dict[str, Any], latency_sums: bool = True) -> dict[str, Any]:
    def variant(name: str, scale: float) -> dict[str, Any]:
        values = [100.0 * scale] * 300 + [120.0 * scale] * 300
        latency: dict[str, Any] = {"bounds": [50, 100, 150, 200], "counts": [0, 300, 300, 0, 0]}
        if latency_sums:
            latency |= {"sum": sum(values), "sum_squares": sum(v * v for v in values)}
        return {"name": name, "requests": 600, "errors": 6, "latency_ms": latency}

    return {"settings": settings, "variants": [variant("champion", 1.0), variant("canary", 1.25)]}


def test_analyze_input_reads_a_guardrail_list_and_the_original_keys() -> None:
    data = analysis_input(
        _input({"guardrails": [{"metric": "mean_latency_ms", "limit": "max_ratio", "value": 1.1}]})
    )
    assert data.settings.active_guardrails == (GuardrailSpec("mean_latency_ms", "max_ratio", 1.1),)
    assert data.variants[1].latency_ms == MetricStats(600, 600 * 137.5, 300 * (125**2 + 150**2))
    assert analyze(data).verdicts[0].rule == "guardrail:mean_latency_ms"
    old = analysis_input(_input({"max_error_rate_increase": 0.02, "max_p99_ratio": None}))
    assert old.settings.active_guardrails == (
        GuardrailSpec("error_rate", "max_absolute_increase", 0.02),
    )
    assert analysis_input(_input({"guardrails": []})).settings.active_guardrails == ()
    assert AnalysisSettings().active_guardrails == (
        GuardrailSpec("error_rate", "max_absolute_increase", 0.01),
        GuardrailSpec("p99_latency_ms", "max_ratio", 1.5),
    )


@pytest.mark.parametrize(
    ("settings", "path", "phrase"),
    [
        ({"guardrails": [{"metric": "cpu", "limit": "max_ratio", "value": 2}]},
         "settings.guardrails.0.metric", "must be one of error_rate"),
        ({"guardrails": [{"metric": "error_rate", "limit": "max_ratio", "value": 0.5}]},
         "settings.guardrails.0.value", "must be >= 1"),
        ({"guardrails": [{"metric": "error_rate", "limit": "max", "value": 0.5}]},
         "settings.guardrails.0.limit", "must be one of max_absolute_increase"),
        ({"guardrails": [{"metric": "error_rate", "limit": "max_ratio", "value": 2, "x": 1}]},
         "settings.guardrails.0.x", "unknown field"),
        ({"guardrails": [], "max_p99_ratio": 2.0}, "settings.max_p99_ratio", "not both"),
        ({"guardrails": {"error_rate": 0.01}}, "settings.guardrails", "must be a list"),
    ],
)  # fmt: skip
def test_a_bad_guardrail_setting_names_its_path(
    settings: dict[str, Any], path: str, phrase: str
) -> None:
    with pytest.raises(InputError) as caught:
        analysis_input(_input(settings))
    assert caught.value.path == path
    assert phrase in str(caught.value)


def test_latency_sums_need_both_sum_and_sum_squares() -> None:
    raw = _input({})
    del raw["variants"][0]["latency_ms"]["sum_squares"]
    with pytest.raises(InputError) as caught:
        analysis_input(raw)
    assert caught.value.path == "variants.0.latency_ms.sum_squares"
