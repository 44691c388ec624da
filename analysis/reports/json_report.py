"""The machine-readable report: plain JSON-ready data, SRM first.

Infinite numbers (the open end of a one-sided interval) become the strings
``"inf"``/``"-inf"`` and NaN (a quantile of too little data) becomes ``null``,
so ``json.dumps(..., allow_nan=False)`` accepts the result.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from analysis.decisions import Analysis, VariantAnalysis
from analysis.latency import LatencyComparison
from analysis.results import TestResult
from analysis.srm import SrmResult
from analysis.timeline import effect_over_time

__all__ = ["jsonable", "report_json"]


def jsonable(value: Any) -> Any:
    """``value`` as JSON-ready data: tuples as lists, NaN as null, infinities as "inf"/"-inf"."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return jsonable(value.item())
    return str(value)


def _srm(srm: SrmResult, weights: Mapping[str, float]) -> dict[str, Any]:
    total_weight = sum(weights[a] for a in srm.arms) or 1.0
    total = sum(srm.observed) or 1
    return {
        "mismatch": srm.mismatch,
        "checked": srm.checked,
        "message": srm.message,
        "p_value": srm.p_value,
        "threshold": srm.threshold,
        "statistic": srm.statistic,
        "dof": srm.dof,
        "arms": [
            {
                "variant": arm,
                "observed": observed,
                "expected": expected,
                "observed_share": observed / total,
                "configured_share": weights[arm] / total_weight,
            }
            for arm, observed, expected in zip(srm.arms, srm.observed, srm.expected, strict=True)
        ],
    }


def _test(result: TestResult, adjusted: float | None = None) -> dict[str, Any]:
    return {
        "test": result.test,
        "difference_type": result.difference_type,
        "alternative": result.alternative,
        "estimate": result.estimate,
        "ci": [result.ci_low, result.ci_high],
        "p_value": result.p_value,
        "adjusted_p_value": adjusted,
        "null": result.null,
        "alpha": result.alpha,
        "significant": result.significant,
        "samples": {"champion": result.control_n, "variant": result.treatment_n},
        "means": {"champion": result.control_mean, "variant": result.treatment_mean},
        "error": result.error,
        "message": result.message,
    }


def _latency(latency: LatencyComparison | None) -> dict[str, Any] | None:
    if latency is None:
        return None
    return {
        "quantile": latency.q,
        "champion_ms": latency.champion,
        "variant_ms": latency.treatment,
        "ratio": latency.ratio,
        "ratio_range": [latency.ratio_low, latency.ratio_high],
        "max_ratio": latency.max_ratio,
        "samples": {"champion": latency.champion_n, "variant": latency.treatment_n},
        "conclusive": latency.conclusive,
        "worse": latency.worse,
        "message": latency.message,
    }


def _variant(va: VariantAnalysis, analysis: Analysis) -> dict[str, Any]:
    primary = None if va.primary is None else _test(va.primary, va.adjusted_p_value)
    return {
        "variant": va.variant,
        "primary": None
        if primary is None
        else {"metric": analysis.data.settings.primary_metric, **primary},
        "guardrails": {
            "error_rate": {
                **_test(va.errors),
                "max_increase": analysis.data.settings.max_error_rate_increase,
            },
            "p99_latency": _latency(va.latency),
        },
        "power": {
            "required_per_arm": va.required_per_arm,
            "time_to_decision_s": va.time_to_decision_s,
            "time_to_decision": va.time_to_decision,
        },
    }


def _arms(analysis: Analysis) -> list[dict[str, Any]]:
    metric = analysis.data.settings.primary_metric
    arms = []
    for v in analysis.data.variants:
        stats = v.metrics.get(metric)
        hist = v.latency
        arms.append(
            {
                "variant": v.name,
                "role": v.role,
                "weight": v.weight,
                "requests": v.requests,
                "errors": v.errors,
                "primary": None if stats is None else {"n": stats.n, "mean": stats.mean},
                "latency": None
                if hist is None or hist.n == 0
                else {"n": hist.n, "p50_ms": hist.quantile(0.5), "p99_ms": hist.quantile(0.99)},
            }
        )
    return arms


def report_json(analysis: Analysis) -> dict[str, Any]:
    """The whole analysis as JSON-ready data: SRM, verdicts with evidence, tests, settings.

    Key order follows the reading order of the other reports: the experiment
    and the test that ran, the SRM check, the verdicts, then the per-variant
    tests, each arm's raw numbers, the effect over time and the settings.
    """
    data = analysis.data
    report = {
        "experiment": analysis.experiment,
        "test": analysis.test,
        "correction": data.settings.correction,
        "srm": _srm(analysis.srm, {v.name: v.weight for v in data.variants}),
        "verdicts": [
            {
                "variant": v.variant,
                "action": v.action,
                "rule": v.rule,
                "reason": v.reason,
                "evidence": v.evidence,
            }
            for v in analysis.verdicts
        ],
        "variants": [_variant(va, analysis) for va in analysis.variants],
        "arms": _arms(analysis),
        "effect_over_time": [dataclasses.asdict(p) for p in effect_over_time(data)],
        "drift": None if data.drift is None else data.drift.as_dict(),
        "settings": dataclasses.asdict(data.settings),
    }
    result: dict[str, Any] = jsonable(report)
    return result
