"""``abgate ramp --dry-run``: the plan, and how much traffic and time it needs."""

from __future__ import annotations

import time
from typing import Any

from abgate.errors import AbgateError
from analysis.power import sample_size_per_arm
from experiments.config import ExperimentConfig

__all__ = ["describe_plan", "promotion_samples"]


def _baseline(config: ExperimentConfig, registry: Any) -> tuple[float | None, str]:
    metric = config.metrics.primary
    if metric.kind != "proportion" or metric.name != "accuracy":
        return None, "no baseline known for this metric"
    try:
        meta = registry.metadata(config.model, config.champion.model_version)
    except AbgateError:
        return None, "champion not in the local registry"
    value = float(meta["holdout_metrics"]["accuracy"])
    return value, f"champion holdout accuracy {value:.4f} (registry)"


def _rate(config: ExperimentConfig, store: Any) -> tuple[float | None, str]:
    if store is None:
        return None, "no REDIS_URL: traffic unknown"
    try:
        windows = store.windows(config.name)
    except Exception:  # Redis unreachable or nothing recorded
        return None, "no recorded traffic"
    if len(windows) < 2:
        return None, "not enough recorded traffic to estimate a rate"
    starts = sorted(windows)[-6:-1]  # whole windows only
    from gateway.outcomes import parse_outcome_fields

    total = sum(sum(o.requests for o in parse_outcome_fields(windows[s]).values()) for s in starts)
    width = (starts[-1] - starts[0]) + (starts[1] - starts[0]) if len(starts) > 1 else 60
    return total / width, f"{total / width:.1f} requests/s recently"


def promotion_samples(config: ExperimentConfig, baseline: float) -> int | None:
    """Labelled outcomes per arm for a canary as good as the champion to be shown
    non-inferior (within the margin) with the configured power: the last step's gate.

    Showing ``lift > -margin`` when the truth is 0 is, in distribution, the
    one-sided test of detecting a lift of ``margin``.
    """
    assert config.ramp is not None
    stats = config.statistics
    return sample_size_per_arm(
        baseline,
        baseline * (1 - baseline),
        config.ramp.non_inferiority_margin,
        target_power=stats.power,
        alpha=stats.alpha,
        two_sided=False,
        tuning=float(stats.tuning_n) if stats.sequential else None,
    ).n_per_arm


def _promotion_line(config: ExperimentConfig, baseline: float) -> str:
    assert config.ramp is not None
    margin = config.ramp.non_inferiority_margin
    needed = promotion_samples(config, baseline) if margin > 0 else None
    if needed is None:
        return f"non-inferiority within {margin:.1%} cannot be shown: raise non_inferiority_margin"
    return (
        f"{needed} labelled outcomes per arm show a canary as good as the champion to be "
        f"within {margin:.1%} (power {config.statistics.power:g}); the champion collects its "
        "share before the last step, where it gets no traffic"
    )


def describe_plan(config: ExperimentConfig, *, registry: Any, store: Any) -> str:
    """Readable plan with the sample size needed and the time each step takes."""
    plan = config.ramp
    if plan is None:
        return f"{config.name}: no ramp plan"
    stats = config.statistics
    lines = [
        f"ramp of {plan.variant} in {config.name} (champion {config.champion.name}):",
        f"  steps {' → '.join(f'{s:g}' for s in plan.steps)} %, each at least "
        f"{plan.min_duration_s:g}s and {plan.min_samples} samples, checked every "
        f"{plan.check_interval_s:g}s, at most {plan.max_duration_s:g}s in all",
        f"  gates: guardrails {', '.join(g.name for g in config.metrics.guardrails)}; "
        f"{config.metrics.primary.name} non-inferior within {plan.non_inferiority_margin:.1%}; "
        f"SRM → {plan.on_srm}; test: {'sequential' if stats.sequential else 'Welch'}, "
        f"alpha {stats.alpha:g}",
    ]
    baseline, source = _baseline(config, registry)
    required = None
    if baseline is not None:
        result = sample_size_per_arm(
            baseline,
            baseline * (1 - baseline),
            stats.mde,
            target_power=stats.power,
            alpha=stats.alpha,
            tuning=float(stats.tuning_n) if stats.sequential else None,
        )
        required = result.n_per_arm
        lines.append(
            f"  to detect a {stats.mde:.1%} relative change with power {stats.power:g} from "
            f"{source}: {required if required else 'n/a'} labelled outcomes per arm"
        )
        if plan.promote_on == "non_inferiority":
            lines.append(f"  to promote: {_promotion_line(config, baseline)}")
    else:
        lines.append(f"  sample size: unknown ({source})")
    rate, rate_source = _rate(config, store)
    lines.append(f"  traffic: {rate_source}")
    for index, step in enumerate(plan.steps):
        row = f"  step {index + 1}: {step:g} %"
        if rate:
            per_s = rate * step / 100
            seconds = max(plan.min_duration_s, plan.min_samples / per_s if per_s else float("inf"))
            row += f", {per_s:.1f} canary requests/s → about {seconds:.0f}s"
        lines.append(row)
    lines.append(f"  (computed {time.strftime('%Y-%m-%d %H:%M:%S')})")
    return "\n".join(lines)
