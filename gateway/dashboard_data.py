"""What the live dashboard shows, as JSON-ready data: pure, no Redis and no HTTP.

The verdicts, the split check and the primary metric's interval come from the
same engine and JSON report as ``abgate report`` (``analysis.decisions.analyze``
and ``analysis.reports.report_json``); this module adds only what a report has
no use for: per-window rates for the charts, the ramp position and the audit
tail. A ``drift`` array, when a drift source supplies one, is passed through
untouched; the page says "no drift data" without it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from analysis.decisions import analyze
from analysis.drift import ExperimentDrift
from analysis.epochs import Epoch
from analysis.reports.json_report import jsonable, report_json
from analysis.reports.plots import variant_colours
from analysis.sufficient import LatencyHistogram, VariantStats
from core.schema import ShadowStats, StatsHash
from experiments.config import ExperimentConfig
from recorded.reporting import assemble_experiment_data

__all__ = ["AUDIT_ROWS", "CHART_WINDOWS", "dashboard_payload", "drift_rows", "window_series"]

CHART_WINDOWS = 60
"""Most recent time windows charted (an hour at the default 60-s window)."""

AUDIT_ROWS = 15
"""Newest audit entries shown."""

# A window younger than this is not charted yet: a rate over a few milliseconds
# of a window that just opened would spike.
_MIN_ELAPSED_S = 0.5


def _p99(histogram: LatencyHistogram | None) -> float | None:
    return None if histogram is None or histogram.n == 0 else histogram.quantile(0.99)


def window_series(
    windows: Mapping[int, StatsHash],
    variants: Sequence[str],
    *,
    window_s: int,
    now: float,
) -> list[dict[str, Any]]:
    """One point per window: requests/s, error rate and p99 latency of every variant.

    The current window is still filling, so its rate divides by the time elapsed
    in it, not by the window's width. A variant without requests in a window has
    ``None`` for its error rate and p99 (a gap in the chart, not a zero).
    """
    points = []
    for start in sorted(windows):
        elapsed = min(float(window_s), now - start)
        if elapsed < _MIN_ELAPSED_S:
            continue
        per = windows[start].variants()
        row: dict[str, Any] = {"start": start, "seconds": elapsed, "variants": {}}
        for name in variants:
            o = per.get(name, VariantStats())
            row["variants"][name] = {
                "requests": o.requests,
                "rps": o.requests / elapsed,
                "error_rate": o.errors / o.requests if o.requests else None,
                "p99_ms": _p99(o.latency),
            }
        points.append(row)
    return points


def _split(
    config: ExperimentConfig, arms: list[dict[str, Any]], srm: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Each arm's share of all requests and today's configured share, and beside them
    what the split check compared: the share of the requests it counted against the
    share the weights in force when they were served called for (``expected_share``,
    per epoch, so a weight change is not a mismatch)."""
    total_weight = sum(v.weight for v in config.variants) or 1.0
    checked = {a["variant"]: a for a in srm.get("arms", [])}
    total = sum(int(a["requests"]) for a in arms)
    rows = []
    for arm in arms:
        split = checked.get(arm["variant"])
        rows.append(
            {
                **arm,
                "configured_share": arm["weight"] / total_weight,
                "observed_share": arm["requests"] / total if total else None,
                "checked_share": split["observed_share"] if split else None,
                "expected_share": split["configured_share"] if split else None,
            }
        )
    return rows


def _ramp(config: ExperimentConfig, state: Mapping[str, Any] | None) -> dict[str, Any] | None:
    plan = config.ramp
    variant = config.ramp_variant
    if plan is not None and config.in_shadow_phase:
        # Mirrored, serving no user: no step yet.
        status = state.get("status", "running") if state else "not started"
        return {
            "variant": plan.variant,
            "steps": list(plan.steps),
            "weight": 0.0,
            "step": None,
            "phase": "shadow",
            "status": f"shadow phase (mirrored, serving no user) · {status}",
            "step_started_at": state.get("step_started_at") if state else None,
            "min_duration_s": plan.min_duration_s,
            "min_samples": plan.min_samples,
        }
    if plan is None or variant is None:
        return None
    step = state.get("step") if state else None
    return {
        "variant": variant.name,
        "steps": list(plan.steps),
        "weight": variant.weight,
        "step": step,
        "status": state.get("status", "running") if state else "not started",
        "step_started_at": state.get("step_started_at") if state else None,
        "min_duration_s": plan.min_duration_s,
        "min_samples": plan.min_samples,
    }


def _shadow(analysis: Mapping[str, Any]) -> dict[str, Any]:
    difference = analysis["difference"]
    return {
        "shadow": analysis["shadow"],
        "model_version": analysis["model_version"],
        "metric": analysis["metric"],
        "paired": analysis["paired"],
        "estimate": difference["estimate"] if analysis["paired"]["n"] else None,
        "ci": difference["ci"] if analysis["paired"]["n"] and not difference["message"] else None,
        "verdict": analysis["verdict"],
        "reason": analysis["reason"],
        "shed": analysis["calls"]["shed"],
        "late": analysis["calls"]["late"],
    }


def _audit(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for entry in list(entries)[-AUDIT_ROWS:][::-1]:
        evidence = entry.get("evidence")
        rule = evidence.get("rule") if isinstance(evidence, Mapping) else None
        rows.append(
            {
                "ts": entry.get("ts", ""),
                "actor": entry.get("actor", ""),
                "action": entry.get("action", ""),
                "reason": entry.get("reason", ""),
                "version": entry.get("version", ""),
                "rule": rule,
            }
        )
    return rows


def dashboard_payload(
    config: ExperimentConfig,
    *,
    version: int,
    paused: bool,
    epochs: Sequence[Epoch],
    windows: Mapping[int, StatsHash],
    first_window: int | None,
    ramp_state: Mapping[str, Any] | None,
    audit: Sequence[Mapping[str, Any]],
    window_s: int,
    now: float,
    experiments: Sequence[str],
    drift: Sequence[Mapping[str, Any]] | None = None,
    shadows: Mapping[str, ShadowStats] | None = None,
) -> dict[str, Any]:
    """Everything the dashboard draws for one experiment, JSON-ready.

    The analysis runs on every epoch's all-time statistics (as ``abgate report``
    does); ``windows`` (the recent ones) feed only the charts, so the
    effect-over-time series, which needs every window since the start, is left
    to the report.
    """
    duration = now - first_window if first_window is not None else None
    data = assemble_experiment_data(
        config.name, config, epochs, {}, duration_s=duration, shadows=shadows
    )
    report = report_json(analyze(data))
    settings = data.settings
    kind = "sequence" if settings.sequential else "interval"
    payload = {
        "experiment": config.name,
        "experiments": list(experiments),
        "model": config.model,
        "version": version,
        "paused": paused,
        "generated_at": now,
        "window_s": window_s,
        "colours": variant_colours([v.name for v in config.variants], data.champion.name),
        "test": report["test"],
        "srm": report["srm"],
        "verdicts": report["verdicts"],
        "split": _split(config, report["arms"], report["srm"]),
        "primary": {
            "metric": settings.primary_metric,
            "direction": settings.direction,
            "interval": f"{1 - settings.alpha:.0%} confidence {kind}",
            "variants": [
                {"variant": v["variant"], **v["primary"]}
                for v in report["variants"]
                if v["primary"] is not None
            ],
        },
        # Per challenger: every configured guardrail with its result (empty: none set).
        "guardrails": [
            {"variant": v["variant"], "checks": v["guardrails"], "power": v["power"]}
            for v in report["variants"]
        ],
        "series": window_series(
            windows, [v.name for v in config.variants], window_s=window_s, now=now
        ),
        # Per shadow and metric: paired counts, shadow - live with its interval, verdict.
        "shadows": [_shadow(a) for a in report["shadows"]],
        "ramp": _ramp(config, ramp_state),
        "audit": _audit(audit),
    }
    if drift is not None:
        payload["drift"] = list(drift)
    result: dict[str, Any] = jsonable(payload)
    return result


def drift_rows(drift: ExperimentDrift) -> list[dict[str, Any]]:
    """One row per variant and check (each feature, and the predictions), alerts first,
    then by PSI: what the page's drift table shows. Empty without references or samples.
    ``drifted`` flags the row; ``status`` says why a high PSI may not be an alert."""
    rows = []
    for variant in drift.variants:
        for check in (*variant.features, *variant.predictions):
            if check.alert:
                status = "DRIFT"
            elif check.checked:
                status = "ok"
            else:
                status = f"n < {drift.min_samples}"
            rows.append(
                {
                    "variant": f"{variant.variant} ({variant.model_version})",
                    "check": check.name,
                    "n": check.n,
                    "PSI": round(check.psi, 3),
                    "p": check.p_value,
                    "status": status,
                    "drifted": check.alert,
                }
            )
    rows.sort(key=lambda r: (not r["drifted"], -r["PSI"]))
    return rows
