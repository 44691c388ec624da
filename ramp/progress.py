"""What a person watching a ramp sees, as pure functions of one check.

``render_block`` gives the lines of the live display a terminal redraws in
place; ``render_line`` the one line written per meaningful change when the
output is not a terminal; ``change_key`` says what counts as such a change.
All of it takes (plan, state, observation, decision) and returns text: no
I/O, no clock (``ramp/display.py`` does the writing).

The observation is read defensively (a missing or empty field shows as
``n/a``) and any action that is not ``wait``, ``hold`` or ``advance`` is an
ending, so new endings and optional observation fields render without a
change here.
"""

from __future__ import annotations

import math
from typing import Any

from experiments.ramp_plan import Ramp
from ramp.policy import Decision, Observation, RampState, advance_bound

__all__ = [
    "CONTINUING",
    "change_key",
    "is_final",
    "render_block",
    "render_line",
    "render_shadow_line",
]

# The actions after which the ramp goes on; every other action ends it.
CONTINUING = frozenset({"wait", "hold", "advance"})


def is_final(decision: Decision) -> bool:
    """Whether this decision ends the ramp (promote, rollback, or any newer ending)."""
    return decision.action not in CONTINUING


def change_key(state: RampState, decision: Decision) -> tuple[int, str, str]:
    """Step, action and rule: a new value is worth a line; the same one is a repeat."""
    return state.step, decision.action, decision.rule


def render_block(
    plan: Ramp,
    state: RampState,
    obs: Observation,
    decision: Decision,
    *,
    experiment: str,
    log_path: str | None = None,
) -> list[str]:
    """The live display of one ramp: step, time, samples, every gate, the action."""
    variant = plan.variant or getattr(obs, "variant", "") or "?"
    lines = [
        f"ramp {experiment} · {variant}   {_step(plan, state)}   "
        f"({' → '.join(f'{s:g}' for s in plan.steps)} %)",
        f"  time     {_time_in_step(plan, state, obs)}   "
        f"(ramp {_seconds(obs.now - state.started_at)}, max {plan.max_duration_s:g}s)",
        f"  samples  {_samples(plan, obs, variant)}",
    ]
    lines += [f"  {name:<8} {text}" for name, text in _gates(plan, state, obs, variant)]
    lines.append(f"  → {_action(decision)}")
    if log_path:
        lines.append(f"  decision log: {log_path}")
    return lines


def render_line(
    plan: Ramp, state: RampState, obs: Observation, decision: Decision, *, experiment: str
) -> str:
    """One plain line: where the ramp is, the gates in short, and the action."""
    variant = plan.variant or getattr(obs, "variant", "") or "?"
    gates = " | ".join(f"{name} {_short(text)}" for name, text in _gates(plan, state, obs, variant))
    return (
        f"[{experiment}] {_step(plan, state)} | {_time_in_step(plan, state, obs)} | "
        f"samples {_samples(plan, obs, variant)} | {gates} | {_action(decision)}"
    )


def render_shadow_line(
    plan: Ramp, state: RampState, obs: Any, decision: Decision, *, experiment: str
) -> str:
    """One line of a check in the shadow phase: labels, paired counts, the action."""
    phase = plan.shadow
    counts = getattr(obs, "counts", None)
    labels = counts.n if counts is not None else 0
    least = phase.min_labels if phase is not None else 0
    longest = f"{phase.max_duration_s:g}s" if phase is not None else "?"
    paired = (
        f"live only {counts.live_only}, shadow only {counts.shadow_only}, both "
        f"{counts.both}, neither {counts.neither}"
        if counts is not None
        else "no paired counts yet"
    )
    return (
        f"[{experiment}] shadow phase of {getattr(obs, 'variant', plan.variant)} (0 % of "
        f"users) | {_seconds(obs.now - state.started_at)} (max {longest}) | labels {labels} "
        f"(min {least}): {paired} | {_action(decision)}"
    )


# --- pieces -------------------------------------------------------------------


def _step(plan: Ramp, state: RampState) -> str:
    total = len(plan.steps)
    weight = f"{plan.steps[state.step]:g} %" if 0 <= state.step < total else "? %"
    return f"step {state.step + 1}/{total} at {weight}"


def _time_in_step(plan: Ramp, state: RampState, obs: Observation) -> str:
    return f"{_seconds(obs.now - state.step_started_at)} in step (min {plan.min_duration_s:g}s)"


def _samples(plan: Ramp, obs: Observation, variant: str) -> str:
    per_arm = getattr(obs, "step_samples", None) or {}
    text = f"{per_arm.get(variant, 0)} in step (min {plan.min_samples})"
    others = [f"{name} {n}" for name, n in per_arm.items() if name != variant]
    return text + (f"; {', '.join(others)}" if others else "")


def _action(decision: Decision) -> str:
    return f"{decision.action} ({decision.rule}): {decision.reason}"


def _seconds(value: float) -> str:
    return f"{max(value, 0.0):.0f}s"


def _short(text: str) -> str:
    """The state word of a gate line, for the one-line form (``ok``, ``FAIL``, a lift)."""
    return text.split("  ", 1)[0]


def _gates(plan: Ramp, state: RampState, obs: Observation, variant: str) -> list[tuple[str, str]]:
    """(name, "STATE  detail") for every gate, in the order the policy applies them."""
    analysis = getattr(obs, "analysis", None)
    mine = None
    if analysis is not None:
        mine = next((a for a in analysis.variants if a.variant == variant), None)
    verdict = getattr(obs, "verdict", None)
    failed_rule = verdict.rule if verdict is not None and verdict.action == "rollback" else ""
    settings = analysis.data.settings if analysis is not None else None
    metric = settings.primary_metric if settings is not None else "primary"
    higher_is_better = settings is None or settings.direction == "increase"
    return [
        *_guardrail_gates(analysis, mine, failed_rule),
        (metric, _primary(mine, higher_is_better)),
        ("non-inf", _non_inferiority(plan, state, obs)),
        ("SRM", _srm(getattr(obs, "step_srm", None))),
    ]


# Gate names of the guardrail metrics (one word, so a gate row reads as "name state ...").
_GATE_NAMES = {
    "error_rate": "errors",
    "mean_latency_ms": "mean-lat",
    "p50_latency_ms": "p50",
    "p95_latency_ms": "p95",
    "p99_latency_ms": "p99",
}


def _guardrail_gates(analysis: Any, mine: Any, failed_rule: str) -> list[tuple[str, str]]:
    """One gate per configured guardrail metric (its limits together), in config order."""
    if analysis is None or mine is None:
        return [("guards", "n/a  no analysis yet")]
    results = getattr(mine, "guardrails", ())
    if not results:
        return [("guards", "none  no guardrails configured")]
    by_metric: dict[str, list[Any]] = {}
    for result in results:
        by_metric.setdefault(result.spec.metric, []).append(result)
    gates = []
    for metric, group in by_metric.items():
        failed = failed_rule == f"guardrail:{metric}" or any(g.failed for g in group)
        if metric == "error_rate":
            text = _errors(group, failed)
        elif metric == "mean_latency_ms":
            text = _mean_latency(group, failed)
        else:
            text = _latency(group, failed)
        gates.append((_GATE_NAMES.get(metric, metric), text))
    return gates


def _limits(group: list[Any]) -> str:
    return ", ".join(g.spec.text for g in group)


def _errors(group: list[Any], failed: bool) -> str:
    shown = next((g for g in group if g.failed), group[0])
    result = shown.test
    if result is None or result.treatment_n == 0:
        return "n/a  no requests yet"
    rates = f"{result.treatment_mean:.2%} vs {result.control_mean:.2%} champion"
    if result.error and not failed:
        # No errors in either arm (or only errors, too few yet for the verdict):
        # identical outcomes leave nothing to test, and only the first is fine.
        state = "ok" if result.treatment_mean <= result.control_mean else "n/a"
        return f"{state}  {rates} (no variance to test)"
    return f"{'FAIL' if failed else 'ok'}  {rates} (p={result.p_value:.3g}, max {_limits(group)})"


def _mean_latency(group: list[Any], failed: bool) -> str:
    shown = next((g for g in group if g.failed), group[0])
    result = shown.test
    if result is None or result.error:
        return f"{'FAIL' if failed else 'n/a'}  {shown.message}"
    return (
        f"{'FAIL' if failed else 'ok'}  {result.treatment_mean:.1f} ms vs "
        f"{result.control_mean:.1f} ms champion (p={result.p_value:.3g}, max {_limits(group)})"
    )


def _latency(group: list[Any], failed: bool) -> str:
    shown = next((g for g in group if g.failed), group[0])
    latency = shown.latency
    if latency is None:
        return "n/a  no latency data"
    if not latency.conclusive:
        return f"n/a  {latency.message}"
    return (
        f"{'FAIL' if failed else 'ok'}  {latency.treatment:.1f} ms vs "
        f"{latency.champion:.1f} ms champion (×{latency.ratio:.2f}, max {_limits(group)})"
    )


def _primary(mine: Any, higher_is_better: bool) -> str:
    result = mine.primary if mine is not None else None
    if result is None:
        return "n/a  no outcomes yet"
    if result.error:
        return f"n/a  {result.message or 'the test cannot run yet'}"
    fmt = _lift_format(result.difference_type)
    if result.significant:
        state = "better" if (result.estimate > 0) == higher_is_better else "WORSE"
    else:
        state = "no difference shown"
    return (
        f"{fmt(result.estimate)}  [{fmt(result.ci_low)}, {fmt(result.ci_high)}] "
        f"p={result.p_value:.3g}, {state}"
    )


def _non_inferiority(plan: Ramp, state: RampState, obs: Observation) -> str:
    """The primary metric's evidence against what the next move needs (ramp/policy.py)."""
    margin = f"margin {plan.non_inferiority_margin:.1%}"
    primary = getattr(obs, "primary", None)
    if primary is None:
        return f"n/a  no primary-metric data ({margin})"
    if primary.shows_harm_beyond(plan.non_inferiority_margin):
        return f"FAIL  worse than the champion by more than the {margin} ({primary.estimate:+.2%})"
    last = state.step + 1 >= len(plan.served_steps)
    if not last:
        needed, move = advance_bound(plan, state.step), "to advance"
    elif plan.promote_on == "superiority":
        needed, move = 0.0, "to promote"
    else:
        needed, move = plan.non_inferiority_margin, "to promote"
    # One-sided: the end of the interval on the side of harm must clear the bound.
    bound = primary.low if primary.higher_is_better else primary.high
    limit = -needed if primary.higher_is_better else needed
    state_word = "shown" if primary.excludes_harm_beyond(needed) else "not yet"
    shown = f"{bound:+.2%}" if math.isfinite(bound) else "none yet"
    return f"{state_word}  bound {shown} vs {limit:+.2%} {move} ({margin})"


def _srm(srm: Any) -> str:
    if srm is None:
        return "n/a  not measured"
    if srm.mismatch:
        return f"MISMATCH  {srm.message}"
    if not srm.checked:
        return f"n/a  {srm.message or 'too few requests yet'}"
    arms = "/".join(srm.arms)
    observed = "/".join(f"{n}" for n in srm.observed)
    expected = "/".join(f"{e:.0f}" for e in srm.expected)
    return f"ok  {arms} {observed}, expected {expected} (p={srm.p_value:.3g})"


def _lift_format(difference_type: str) -> Any:
    def relative(value: float) -> str:
        return f"{value:+.2%}" if math.isfinite(value) else f"{value:+}"

    def absolute(value: float) -> str:
        return f"{value:+.4g}"

    return relative if difference_type == "relative" else absolute
