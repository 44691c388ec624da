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
from analysis.guardrails import GuardrailResult
from analysis.latency import LatencyComparison
from analysis.reports.integrity_tables import split_rows
from analysis.results import TestResult
from analysis.srm import EpochSrm
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


def _epoch(check: EpochSrm) -> dict[str, Any]:
    epoch, result = check.epoch, check.result
    return {
        "version": epoch.version,
        "last_version": epoch.last_version or epoch.version,
        "label": epoch.label,
        "start": epoch.start,
        "end": epoch.end,
        "weights": epoch.weights,
        "model_versions": epoch.model_versions,
        "paused": epoch.paused,
        "checked": check.adjusted_p_value is not None,
        "mismatch": check.mismatch,
        "observed": dict(zip(result.arms, result.observed, strict=True)),
        "expected": dict(zip(result.arms, result.expected, strict=True)),
        "p_value": result.p_value if check.adjusted_p_value is not None else None,
        "adjusted_p_value": check.adjusted_p_value,
        "message": result.message,
    }


def _srm(analysis: Analysis) -> dict[str, Any]:
    srm = analysis.srm
    return {
        "mismatch": srm.mismatch,
        "checked": srm.checked,
        "message": srm.message,
        "p_value": srm.p_value,
        "threshold": srm.threshold,
        "statistic": srm.statistic,
        "dof": srm.dof,
        "method": "per epoch, Holm across epochs" if srm.epochs else "chi-square on totals",
        "arms": [
            {
                "variant": row.variant,
                "observed": row.observed,
                "expected": row.expected,
                "observed_share": row.observed_share,
                "configured_share": row.configured_share,
            }
            for row in split_rows(analysis)
        ],
        "epochs": [_epoch(check) for check in srm.epochs],
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
        "difference_ms": latency.difference,
        "max_increase_ms": latency.max_increase,
        "samples": {"champion": latency.champion_n, "variant": latency.treatment_n},
        "conclusive": latency.conclusive,
        "worse": latency.worse,
        "message": latency.message,
    }


def _guardrail(result: GuardrailResult) -> dict[str, Any]:
    return {
        "rule": result.rule,
        "metric": result.spec.metric,
        "limit": result.spec.limit,
        "threshold": result.spec.value,
        "status": result.status,
        "failed": result.failed,
        "checked": result.checked,
        "champion": result.champion,
        "variant": result.variant,
        "message": result.message,
        "test": None if result.test is None else _test(result.test),
        "latency": _latency(result.latency),
    }


def _across_epochs(va: VariantAnalysis) -> dict[str, Any]:
    """How the epochs entered the estimate: stratified (deciding) and pooled (for comparison)."""
    strata = va.strata
    return {
        "estimator": "stratified" if va.pooled is not None else "single_epoch",
        "epochs_compared": [] if strata is None else list(strata.epochs),
        "epochs_left_out": [] if strata is None else list(strata.left_out),
        "pooled": None if va.pooled is None else _test(va.pooled),
    }


def _variant(va: VariantAnalysis, analysis: Analysis) -> dict[str, Any]:
    primary = None if va.primary is None else _test(va.primary, va.adjusted_p_value)
    return {
        "variant": va.variant,
        "primary": None
        if primary is None
        else {
            "metric": analysis.data.settings.primary_metric,
            **primary,
            # The test is of the difference; this says how the effect is reported, and why.
            "difference": None
            if va.difference is None
            else {
                "tested": "absolute",
                "reported": va.difference.difference_type,
                "requested": va.difference.requested,
                "reason": va.difference.reason,
            },
            **_across_epochs(va),
        },
        # Every configured guardrail with its result, in the configured order.
        "guardrails": [_guardrail(result) for result in va.guardrails],
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


def _analysis_unit(analysis: Analysis) -> dict[str, Any]:
    unit = analysis.data.analysis_unit
    return {
        "unit": unit.name,
        "primary": unit.of(analysis.data.settings.primary_metric),
        "per_unit_metrics": list(unit.metrics),
        "notes": dict(unit.notes),
    }


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
        "srm": _srm(analysis),
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
        "shadows": [a.as_dict() for a in analysis.shadows],
        "analysis_unit": _analysis_unit(analysis),
        "variants": [_variant(va, analysis) for va in analysis.variants],
        "arms": _arms(analysis),
        "effect_over_time": [dataclasses.asdict(p) for p in effect_over_time(data)],
        "drift": None if data.drift is None else data.drift.as_dict(),
        "settings": {
            **dataclasses.asdict(data.settings),
            # The guardrails checked, however they were given (the list or the original keys).
            "guardrails": [dataclasses.asdict(g) for g in data.settings.active_guardrails],
        },
    }
    result: dict[str, Any] = jsonable(report)
    return result
