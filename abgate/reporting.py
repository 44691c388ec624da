"""Reports from recorded outcomes: Redis → sufficient statistics → engine → files.

The I/O edge of the analysis: reads the experiment's config and stats hashes
through the store, builds ``ExperimentData`` (the engine's pure input), and
renders or writes the report. Nothing here scans raw events.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from abgate.drift import drift_from_stats, drift_since
from abgate.store import Store
from analysis.drift import ExperimentDrift
from analysis.inputs import AnalysisSettings, ExperimentData, Stats, VariantData, WindowData
from analysis.report import FORMATS, render
from analysis.sufficient import LatencyHistogram, MetricStats, ProportionStats
from experiments.config import ExperimentConfig
from gateway.outcomes import LATENCY_BOUNDS_MS, VariantOutcomes, parse_outcome_fields

__all__ = [
    "assemble_experiment_data",
    "experiment_data",
    "render",
    "settings_from_config",
    "subtract_totals",
    "write_report",
]


def settings_from_config(config: ExperimentConfig, duration_s: float | None) -> AnalysisSettings:
    """The engine's settings from an experiment config."""
    stats = config.statistics
    error_increase = p99_ratio = None
    for guard in config.metrics.guardrails:
        if guard.name == "error_rate":
            error_increase = guard.max_absolute_increase
        elif guard.name == "p99_latency_ms":
            p99_ratio = guard.max_ratio
    return AnalysisSettings(
        alpha=stats.alpha,
        sequential=stats.sequential,
        tuning_n=stats.tuning_n,
        min_samples=stats.min_samples,
        mde=stats.mde,
        power=stats.power,
        correction=stats.correction,
        primary_metric=config.metrics.primary.name,
        direction=config.metrics.primary.direction,
        max_error_rate_increase=error_increase,
        max_p99_ratio=p99_ratio,
        duration_s=duration_s,
    )


def _metrics(outcome: VariantOutcomes | None, kinds: dict[str, str]) -> dict[str, Stats]:
    if outcome is None:
        return {}
    out: dict[str, Stats] = {}
    for name, m in outcome.metrics.items():
        n = int(m.get("n", 0))
        if kinds.get(name, "mean") == "proportion":
            out[name] = ProportionStats(n, float(m.get("sum", 0.0)))
        else:
            out[name] = MetricStats(n, float(m.get("sum", 0.0)), float(m.get("ss", 0.0)))
    return out


def subtract_totals(now: dict[Any, Any], baseline: dict[str, Any]) -> dict[str, float]:
    """Totals recorded since ``baseline`` (an earlier copy of the same hash): sums subtract."""
    out = {}
    for raw_name, raw_value in now.items():
        name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
        value = float(raw_value) - float(baseline.get(name, 0))
        out[name] = value
    return out


def experiment_data(
    store: Store,
    name: str,
    *,
    since: float | None = None,
    now: float | None = None,
    baseline: dict[str, Any] | None = None,
    config: ExperimentConfig | None = None,
) -> ExperimentData:
    """Everything recorded for ``name``: from window ``since`` on, or since a ``baseline``
    copy of the totals hash (the ramp snapshots one when a step starts)."""
    if config is None:
        config = ExperimentConfig.model_validate(store.get_config(name).config)
    raw_windows = store.windows(name)
    starts = [s for s in sorted(raw_windows) if since is None or s >= since - 1e-9]
    parsed = {s: parse_outcome_fields(raw_windows[s]) for s in starts}
    if baseline is not None:
        totals = parse_outcome_fields(subtract_totals(store.totals(name), baseline))
    elif since is None:
        totals = parse_outcome_fields(store.totals(name))
    else:
        totals = _sum_windows(parsed.values())
    clock = time.time() if now is None else now
    duration = clock - starts[0] if starts else None
    # Drift over the config's lookback period up to ``now``, whatever
    # ``since``/``baseline`` say: an input shift is about the traffic now.
    drift = drift_from_stats(
        config,
        store.windows_since(name, drift_since(config, now)),
        store.drift_reference(name),
    )
    return assemble_experiment_data(name, config, totals, parsed, duration_s=duration, drift=drift)


def assemble_experiment_data(
    name: str,
    config: ExperimentConfig,
    totals: dict[str, VariantOutcomes],
    windows: dict[int, dict[str, VariantOutcomes]],
    *,
    duration_s: float | None,
    drift: ExperimentDrift | None = None,
) -> ExperimentData:
    """The engine's input from parsed stats hashes; pure, so the gateway's async
    dashboard and the synchronous report build the same thing."""
    kinds = {config.metrics.primary.name: config.metrics.primary.kind}
    variants = []
    for v in config.variants:
        outcome = totals.get(v.name)
        latency = None
        if outcome is not None and outcome.latency.get("n"):
            latency = LatencyHistogram(LATENCY_BOUNDS_MS, tuple(outcome.latency_hist))
        variants.append(
            VariantData(
                name=v.name,
                role=v.role,
                weight=v.weight,
                requests=outcome.requests if outcome else 0,
                errors=outcome.errors if outcome else 0,
                latency=latency,
                metrics=_metrics(outcome, kinds),
            )
        )
    window_data = tuple(
        WindowData(
            start=float(start),
            requests={v: o.requests for v, o in per.items()},
            metrics={v: _metrics(o, kinds) for v, o in per.items()},
        )
        for start, per in windows.items()
    )
    return ExperimentData(
        name=name,
        variants=tuple(variants),
        settings=settings_from_config(config, duration_s),
        windows=window_data,
        drift=drift,
    )


def _sum_windows(windows: Any) -> dict[str, VariantOutcomes]:
    total: dict[str, VariantOutcomes] = {}
    for per in windows:
        for variant, o in per.items():
            t = total.setdefault(variant, VariantOutcomes())
            t.requests += o.requests
            t.errors += o.errors
            t.client_errors += o.client_errors
            t.fallbacks += o.fallbacks
            for key in ("n", "sum", "ss"):
                t.latency[key] = t.latency.get(key, 0) + o.latency.get(key, 0)
            t.latency_hist = [a + b for a, b in zip(t.latency_hist, o.latency_hist, strict=True)]
            for metric, values in o.metrics.items():
                target = t.metrics.setdefault(metric, {"n": 0, "sum": 0.0, "ss": 0.0})
                for key, amount in values.items():
                    target[key] = target.get(key, 0) + amount
    return total


def write_report(data: ExperimentData, out_dir: Path, stem: str) -> dict[str, Path]:
    """Write all three formats next to each other; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for fmt in FORMATS:
        path = out_dir / f"{stem}.{fmt}"
        path.write_text(render(data, fmt))
        paths[fmt] = path
    return paths
