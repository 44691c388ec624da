"""``abgate ramp --dry-run``: the plan, the time it needs, and its operating characteristics."""

from __future__ import annotations

import math
import time
from typing import Any

from analysis.power import sample_size_per_arm
from core.errors import AbgateError
from experiments.config import ExperimentConfig
from experiments.ramp_plan import Ramp
from ramp.policy import advance_bound
from ramp.simulation import RampSimulation, Scenario, operating_characteristics

__all__ = [
    "describe_plan",
    "minimum_seconds",
    "oc_table",
    "promotion_samples",
    "target_warnings",
]


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
    from core.schema import parse_outcome_fields

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
        f"within {margin:.1%} (power {config.statistics.power:g}, fixed horizon; monitoring "
        "at every check needs more)"
    )


_TARGETS = (
    # scenario margins, what, limit, at most?
    (0.0, "rolled back for harm", 0.05, True),
    (0.0, "promoted", 0.80, False),
    (-3.0, "past the first step", 0.05, True),
    (-3.0, "promoted", 0.01, True),
    (-1.0, "promoted", 0.05, True),
    (1.0, "promoted", 0.80, False),
)


def _measure(sim: RampSimulation, what: str) -> float:
    if what == "rolled back for harm":
        return sim.rules.get("harm", 0) / sim.runs
    if what == "past the first step":
        return sim.reach_rate(1) if len(sim.reached) > 1 else 0.0
    return sim.promotion_rate


def target_warnings(
    results: list[tuple[Scenario, RampSimulation]], plan: Ramp, *, runs: int
) -> list[str]:
    """The targets a plan misses (beyond two Monte-Carlo standard errors), one line each."""
    by_margins = {scenario.margins: (scenario, sim) for scenario, sim in results}
    out = []
    for margins, what, limit, at_most in _TARGETS:
        if margins not in by_margins:
            continue
        scenario, sim = by_margins[margins]
        value = _measure(sim, what)
        slack = 2 * math.sqrt(limit * (1 - limit) / runs)
        missed = value > limit + slack if at_most else value < limit - slack
        if missed:
            sign = "<=" if at_most else ">="
            hint = (
                "raise max_duration_s, the traffic, or non_inferiority_margin"
                if not at_most
                else "use more traffic per step or a smaller first step"
            )
            out.append(
                f"warning: a canary {scenario.name} is {what} in {value:.0%} of runs "
                f"(target {sign} {limit:.0%}): {hint}"
            )
    return out


def minimum_seconds(plan: Ramp, rate: float) -> list[float]:
    """Least time each served step takes at ``rate`` (its minimum time and requests)."""
    return [
        max(plan.min_duration_s, plan.min_samples / (rate * w / 100)) for w in plan.served_steps
    ]


def oc_table(results: list[tuple[Scenario, RampSimulation]], plan: Ramp) -> list[str]:
    """The operating characteristics as text rows."""
    steps = "".join(f"{f'@{w:g}%':>7}" for w in plan.served_steps)
    lines = [
        f"  {'canary':<22}{'promoted':>9}{'harm':>7}{'other':>7}{'expired':>8}  reached:{steps}"
        f"{'median canary req':>19}{'median s':>10}"
    ]
    for scenario, sim in results:
        harm = sim.rules.get("harm", 0) / sim.runs
        other = sim.rollback_rate - harm
        reached = "".join(f"{sim.reach_rate(k):>7.0%}" for k in range(len(sim.reached)))
        lines.append(
            f"  {scenario.name:<22}{sim.promotion_rate:>9.0%}{harm:>7.0%}{other:>7.0%}"
            f"{sim.expiry_rate:>8.0%}  {'':8}{reached}"
            f"{sim.median_canary_requests:>19,.0f}{sim.median_decision_s:>10.0f}"
        )
    return lines


def shadow_oc_lines(config: ExperimentConfig, *, rate: float, runs: int, seed: int) -> list[str]:
    """The shadow phase's operating characteristics at ``rate`` x mirror labelled requests/s."""
    from ramp.shadow_simulation import LIVE_ACCURACY, SHADOW_SCENARIOS, simulate_shadow_phases

    plan = config.ramp
    assert plan is not None and plan.shadow is not None
    labelled = rate * plan.shadow.mirror
    lines = [
        f"  shadow phase: {runs} simulated phases per candidate through "
        f"ramp.shadow_policy.decide_shadow at {labelled:g} labelled requests/s (every mirrored "
        f"answer labelled), live accuracy {LIVE_ACCURACY}, models agreeing on 90 % "
        "(python -m ramp.shadow_simulation for more)",
        f"  {'candidate':<22} {'passed':>7} {'rolled back':>12} {'expired':>8} "
        f"{'median labels':>14} {'median s':>9}",
    ]
    for k, scenario in enumerate(SHADOW_SCENARIOS):
        sim = simulate_shadow_phases(
            plan, scenario.design(), rate=labelled, runs=runs, alpha=config.statistics.alpha,
            tuning=float(config.statistics.tuning_n), seed=seed + k,
        )  # fmt: skip
        lines.append(
            f"  {scenario.name:<22} {sim.pass_rate:>7.0%} {sim.rollback_rate:>12.0%} "
            f"{sim.expiry_rate:>8.0%} {sim.median_labels:>14,.0f} {sim.median_decision_s:>9.0f}"
        )
    return lines


def describe_plan(
    config: ExperimentConfig,
    *,
    registry: Any,
    store: Any,
    rate: float | None = None,
    runs: int = 500,
    seed: int = 0,
) -> str:
    """Readable plan, the evidence each step needs, the time it takes at the traffic
    rate, and its operating characteristics from simulated ramps."""
    plan = config.ramp
    if plan is None:
        return f"{config.name}: no ramp plan"
    stats = config.statistics
    margin = plan.non_inferiority_margin
    served = plan.served_steps
    lines = [
        f"ramp of {plan.variant} in {config.name} (champion {config.champion.name}):",
        f"  serves {' → '.join(f'{s:g}' for s in served)} %, each step at least "
        f"{plan.min_duration_s:g}s and {plan.min_samples} canary requests, checked every "
        f"{plan.check_interval_s:g}s; 100 % is the promotion ({plan.promote_on}); after "
        f"{plan.max_duration_s:g}s a canary not shown good enough expires ({plan.on_expiry})",
        "  evidence to grow: "
        + ", ".join(
            f"harm beyond {advance_bound(plan, k):.2%} ruled out before {served[k + 1]:g} %"
            for k in range(len(served) - 1)
        )
        + ("; " if len(served) > 1 else "")
        + f"promotion: within {margin:.1%} of the champion"
        + (" and better" if plan.promote_on == "superiority" else ""),
        f"  gates: guardrails {', '.join(g.name for g in config.metrics.guardrails) or 'none'}; "
        f"harm: {config.metrics.primary.name} worse by more than {margin:.1%} → rollback; "
        f"SRM → {plan.on_srm}; test: {plan.test}, alpha {stats.alpha:g}",
    ]
    if plan.shadow is not None:
        phase = plan.shadow
        beyond = " beyond the margin" if phase.rollback_on == "beyond_margin" else ""
        lines.insert(
            1,
            f"  shadow phase first: {plan.variant} mirrored for {phase.mirror:.0%} of units, "
            f"serving no user; {phase.metric} judged paired (at least {phase.min_labels} "
            f"labels): shown worse{beyond} "
            f"→ rollback, within {margin:.1%} → step 1; after {phase.max_duration_s:g}s → "
            f"{plan.on_expiry}",
        )
    baseline, source = _baseline(config, registry)
    if baseline is not None:
        result = sample_size_per_arm(
            baseline,
            baseline * (1 - baseline),
            stats.mde,
            target_power=stats.power,
            alpha=stats.alpha,
            tuning=float(stats.tuning_n) if stats.sequential else None,
        )
        lines.append(
            f"  to detect a {stats.mde:.1%} relative change with power {stats.power:g} from "
            f"{source}: {result.n_per_arm or 'n/a'} labelled outcomes per arm"
        )
        if plan.promote_on == "non_inferiority":
            lines.append(f"  to promote: {_promotion_line(config, baseline)}")
    else:
        lines.append(f"  sample size: unknown ({source})")
    if rate is None:
        rate, rate_source = _rate(config, store)
    else:
        rate_source = f"{rate:g} requests/s (--rate)"
    lines.append(f"  traffic: {rate_source}")
    if not rate:
        lines.append("  give --rate R (requests/s) for the time and the operating characteristics")
        lines.append(f"  (computed {time.strftime('%Y-%m-%d %H:%M:%S')})")
        return "\n".join(lines)
    seconds = minimum_seconds(plan, rate)
    for index, (step, need) in enumerate(zip(served, seconds, strict=True)):
        lines.append(
            f"  step {index + 1}: {step:g} %, {rate * step / 100:.1f} canary requests/s → "
            f"at least {need:.0f}s"
        )
    lines.append(
        f"  the plan needs at least {sum(seconds):.0f}s at {rate:g} requests/s (more until the "
        f"evidence holds), and stops at max_duration_s={plan.max_duration_s:g}s"
    )
    if config.metrics.primary.kind != "proportion":
        lines.append("  operating characteristics: simulated for proportions only")
        return "\n".join(lines)
    simulated = baseline if baseline is not None else 0.84
    assumed = "" if baseline is not None else " (assumed: no baseline known)"
    from recorded.reporting import settings_from_config

    results = operating_characteristics(
        plan, settings_from_config(config, None), rate=rate, baseline=simulated,
        runs=runs, seed=seed,
    )  # fmt: skip
    lines.append(
        f"  operating characteristics: {runs} simulated ramps per canary through "
        f"ramp.policy.decide at {rate:g} requests/s, champion {config.metrics.primary.name} "
        f"{simulated:.4g}{assumed}, seed {seed}; canaries differ by the margin "
        f"({margin:.1%} relative); harm/other = rolled back for harm / for a guardrail or SRM"
    )
    lines += oc_table(results, plan)
    if plan.shadow is not None:
        lines += shadow_oc_lines(config, rate=rate, runs=runs, seed=seed)
    warnings = target_warnings(results, plan, runs=runs)
    lines += ["  " + w for w in warnings] or [
        "  targets met: equal canary promoted >= 80 %, rolled back <= 5 %; 3x worse past "
        "step 1 <= 5 %, promoted <= 1 %; 1x worse promoted <= 5 %; 1x better promoted >= 80 %"
    ]
    lines.append(f"  (computed {time.strftime('%Y-%m-%d %H:%M:%S')})")
    return "\n".join(lines)
