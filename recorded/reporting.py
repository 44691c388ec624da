"""Reports from recorded outcomes: Redis → sufficient statistics → engine → files.

The I/O edge of the analysis: reads the experiment's config, stats hashes and
epochs through the store, builds ``ExperimentData`` (the engine's pure input),
and renders or writes the report. Nothing here scans raw events.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from analysis.drift import ExperimentDrift
from analysis.epochs import Epoch, variant_totals
from analysis.guardrails import GUARDRAIL_LIMITS, GuardrailSpec
from analysis.inputs import AnalysisSettings, ExperimentData, Stats, VariantData, WindowData
from analysis.paired import PairedCounts
from analysis.report import FORMATS, render
from analysis.shadows import ShadowData
from analysis.sufficient import VariantStats
from analysis.units import choose_unit_statistics
from core.schema import ShadowStats, StatsHash, decode_epochs, decode_stats
from core.store import Store
from experiments.config import ExperimentConfig
from recorded.drift import drift_from_stats, drift_since

__all__ = [
    "assemble_experiment_data",
    "experiment_data",
    "guardrail_specs",
    "recorded_shadows",
    "render",
    "settings_from_config",
    "shadow_data",
    "shadow_paired_counts",
    "shadow_paired_counts_in",
    "unit_label",
    "write_report",
]


def settings_from_config(config: ExperimentConfig, duration_s: float | None) -> AnalysisSettings:
    """The engine's settings from an experiment config."""
    stats = config.statistics
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
        difference=config.metrics.primary.difference,
        # Every configured limit becomes a spec; the original keys stay unset so the
        # guardrails have one source (``guardrails: []`` checks none).
        max_error_rate_increase=None,
        max_p99_ratio=None,
        guardrails=guardrail_specs(config),
        duration_s=duration_s,
        shadow_margin=stats.shadow_margin,
        # A plan with a shadow phase gates on its own margin: the reports show that one,
        # so their shadow verdicts and the gate's decision read the same threshold.
        shadow_margin_relative=(
            config.ramp.non_inferiority_margin
            if config.ramp is not None and config.ramp.shadow is not None
            else None
        ),
    )


def unit_label(config: ExperimentConfig) -> str:
    """How the experiment's units are identified: ``request`` or e.g. ``header X-User-ID``."""
    if config.unit.source == "request_id":
        return "request"
    return f"{config.unit.source} {config.unit.name}"


def guardrail_specs(config: ExperimentConfig) -> tuple[GuardrailSpec, ...]:
    """Every limit of every configured guardrail, in the config's order."""
    specs = []
    for guard in config.metrics.guardrails:
        for limit in GUARDRAIL_LIMITS:
            value = getattr(guard, limit)
            if value is not None:
                specs.append(GuardrailSpec(guard.name, limit, float(value)))
    return tuple(specs)


def _metrics(stats: VariantStats | None, kinds: dict[str, str]) -> dict[str, Stats]:
    if stats is None:
        return {}
    return {
        name: stats.proportion(name) if kinds.get(name, "mean") == "proportion" else m
        for name, m in stats.metrics.items()
    }


def recorded_shadows(
    store: Store, name: str, *, baseline: Mapping[Any, Any] | None = None
) -> dict[str, ShadowStats]:
    """Every shadow's recorded figures (paired counts per live variant and metric, calls,
    shed, late), all-time or since a ``baseline`` copy of the totals hash: the one
    place a shadow gate reads them (``ShadowStats.pairs`` sums the live variants)."""
    totals, _ = store.recorded(name)
    recorded = decode_stats(totals)
    if baseline is not None:
        recorded = recorded - decode_stats(baseline)
    return dict(recorded.shadows)


def shadow_data(
    config: ExperimentConfig, shadows: Mapping[str, ShadowStats]
) -> tuple[ShadowData, ...]:
    """The analysis's view of each configured shadow: one entry per metric it was scored
    on (the primary metric first, shown even before any label came back; for a reward,
    which a shadow cannot earn, the labels' ``accuracy``), paired against whichever
    variant answered."""
    primary = config.metrics.primary
    out = []
    for shadow in config.shadows:
        stats = shadows.get(shadow.name, ShadowStats())
        # A reward is earned by the answer a user saw: a shadow's cannot be known, so
        # its shadows are shown on labels (feedback kind ``label``'s metric) instead.
        first = "accuracy" if primary.source == "reward" else primary.name
        for metric in dict.fromkeys([first, *stats.paired_metrics, *stats.error_metrics]):
            squared = stats.error_differences(metric)
            out.append(
                ShadowData(
                    name=shadow.name,
                    metric=metric,
                    counts=stats.pairs(metric),
                    squared_error=squared if squared.n else None,
                    model_version=shadow.model_version,
                    requests=stats.requests,
                    errors=stats.errors,
                    shed=stats.shed,
                    late=stats.late,
                )
            )
    return tuple(out)


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
    windows = {s: decode_stats(raw_windows[s]) for s in starts}
    totals, epoch_records = store.recorded(name)
    if baseline is not None:
        recorded = decode_stats(totals) - decode_stats(baseline)
    elif since is None:
        recorded = decode_stats(totals)
    else:
        recorded = StatsHash({}, {})
        for window in windows.values():
            recorded = recorded + window
    clock = time.time() if now is None else now
    duration = clock - starts[0] if starts else None
    # Drift over the config's lookback period up to ``now``, whatever
    # ``since``/``baseline`` say: an input shift is about the traffic now.
    drift = drift_from_stats(
        config,
        store.windows_since(name, drift_since(config, now)),
        store.drift_reference(name),
    )
    return assemble_experiment_data(
        name,
        config,
        decode_epochs(epoch_records, recorded),
        windows,
        duration_s=duration,
        drift=drift,
        shadows=recorded.shadows,
    )


def assemble_experiment_data(
    name: str,
    config: ExperimentConfig,
    epochs: Sequence[Epoch],
    windows: Mapping[int, StatsHash],
    *,
    duration_s: float | None,
    drift: ExperimentDrift | None = None,
    shadows: Mapping[str, ShadowStats] | None = None,
) -> ExperimentData:
    """The engine's input from decoded stats; pure, so the gateway's async dashboard and
    the synchronous report build the same thing.

    A variant is read as the model version it runs now: epochs in which it ran
    another version are left out of its totals and windows (they stay in the
    epochs, where the sample-ratio check counts them against their own weights).
    """
    kinds = {config.metrics.primary.name: config.metrics.primary.kind}
    current = {v.name: v.model_version for v in config.variants}
    totals = variant_totals(epochs, current)
    versions_by_epoch = {e.version: e.model_versions for e in epochs}
    # Per unit where the recorder kept complete unit sums (analysis.units).
    choice = choose_unit_statistics(totals, kinds, unit_label(config))
    variants = []
    for v in config.variants:
        stats = totals.get(v.name)
        latency = stats.latency if stats is not None and stats.latency_ms.n else None
        variants.append(
            VariantData(
                name=v.name,
                role=v.role,
                weight=v.weight,
                requests=stats.requests if stats else 0,
                errors=stats.errors if stats else 0,
                latency=latency,
                metrics=choice.metrics.get(v.name, {}),
                unit_errors=choice.errors.get(v.name),
                model_version=v.model_version,
                latency_ms=stats.latency_ms if stats is not None and stats.latency_ms.n else None,
            )
        )
    window_data = []
    for start, recorded in windows.items():
        per = variant_totals(
            (
                Epoch(epoch, None, versions_by_epoch.get(epoch, {}), variants=stats)
                for epoch, stats in recorded.epochs.items()
            ),
            current,
        )
        window_data.append(
            WindowData(
                start=float(start),
                requests={v: o.requests for v, o in per.items()},
                metrics={v: _metrics(o, kinds) for v, o in per.items()},
            )
        )
    return ExperimentData(
        name=name,
        variants=tuple(variants),
        settings=settings_from_config(config, duration_s),
        windows=tuple(window_data),
        drift=drift,
        epochs=tuple(epochs),
        analysis_unit=choice.unit,
        shadows=shadow_data(config, shadows or {}),
    )


def shadow_paired_counts(
    store: Store, experiment: str, shadow: str, metric: str
) -> PairedCounts | None:
    """All-time paired counts of ``shadow`` on ``metric`` against the live answers of
    the same requests (both right, live only, shadow only, neither), summed over the
    live variants that answered; None when none were recorded. Read through
    ``recorded_shadows``, as every shadow gate reads them."""
    return _pairs(recorded_shadows(store, experiment).get(shadow), metric)


def shadow_paired_counts_in(
    totals: Mapping[Any, Any], shadow: str, metric: str
) -> PairedCounts | None:
    """``shadow_paired_counts`` of a copy of the totals hash (a ramp's baseline, say)."""
    return _pairs(decode_stats(totals).shadows.get(shadow), metric)


def _pairs(stats: ShadowStats | None, metric: str) -> PairedCounts | None:
    if stats is None or all(name != metric for _, name in stats.paired):
        return None
    return stats.pairs(metric)


def write_report(data: ExperimentData, out_dir: Path, stem: str) -> dict[str, Path]:
    """Write all three formats next to each other; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for fmt in FORMATS:
        path = out_dir / f"{stem}.{fmt}"
        path.write_text(render(data, fmt))
        paths[fmt] = path
    return paths
