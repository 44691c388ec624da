"""What the ramp does next, as a pure function of plan, state and observations.

``decide(plan, state, observation) -> Decision`` holds every rule; the
controller only gathers observations and applies decisions. Rules, first
match wins:

1. ``max_duration``: the ramp ran past ``max_duration_s`` → rollback.
2. ``srm``: the traffic split of the current step (weights are constant within
   a step) does not match the configured one → hold (or rollback, per plan).
3. a gate failed on all data since the ramp started (sequential tests, valid
   under continuous monitoring): error rate or p99 latency worse than the
   guardrail, or the primary metric significantly worse → rollback at once.
4. ``non_inferiority``: the primary metric is worse than the champion's by more
   than the plan's margin (one-sided sequential test) → rollback.
5. ``min_duration`` / ``min_samples``: the step has not lasted or collected
   enough yet → wait.
6. otherwise advance to the next step, or promote after the last one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from analysis.decisions import Analysis, Verdict, analyze
from analysis.inputs import ExperimentData
from analysis.results import TestResult
from analysis.sequential import guardrail_test, non_inferiority_test
from analysis.srm import SrmResult, sample_ratio_mismatch
from experiments.config import Ramp

__all__ = ["Decision", "Observation", "RampState", "decide", "observe"]

Action = Literal["wait", "hold", "advance", "promote", "rollback"]

# SRM is judged per step, where weights are constant; on data spanning several
# steps the configured split has changed, so the whole-ramp analysis must not flag it.
_NO_SRM = 1e-300


@dataclass(frozen=True)
class RampState:
    """Where a ramp is; stored in Redis so a new controller resumes it."""

    step: int
    started_at: float
    step_started_at: float
    status: Literal["running", "promoted", "rolled_back"] = "running"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "step": self.step,
            "started_at": self.started_at,
            "step_started_at": self.step_started_at,
            "status": self.status,
        }


@dataclass(frozen=True)
class Observation:
    """What the controller measured at one check."""

    now: float
    variant: str
    step_samples: dict[str, int]
    step_srm: SrmResult
    verdict: Verdict
    non_inferiority: TestResult | None  # harm: worse than the champion by more than the margin
    analysis: Analysis | None = None
    proven_non_inferior: TestResult | None = None  # evidence: within the margin of the champion


@dataclass(frozen=True)
class Decision:
    """The next move, why, and the evidence."""

    action: Action
    rule: str
    reason: str
    weight: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


def observe(
    plan: Ramp, ramp_data: ExperimentData, step_data: ExperimentData, now: float
) -> Observation:
    """Run the gates: per-step SRM, and the tests on everything since the ramp began."""
    variant = plan.variant or ""
    settings = ramp_data.settings
    whole = analyze(replace(ramp_data, settings=replace(settings, srm_threshold=_NO_SRM)))
    verdict = next(v for v in whole.verdicts if v.variant == variant)
    # A 0 % arm can still see a few requests served just before the weight
    # change reached every gateway: judge the split among the live arms only.
    live = [v for v in step_data.variants if v.weight > 0]
    step_srm = sample_ratio_mismatch(
        {v.name: v.requests for v in live},
        {v.name: v.weight for v in live},
        threshold=settings.srm_threshold,
    )
    champion = ramp_data.champion.metrics.get(settings.primary_metric)
    canary_data = next(v for v in ramp_data.variants if v.name == variant)
    canary = canary_data.metrics.get(settings.primary_metric)
    non_inferiority = proven = None
    if champion is not None and canary is not None:
        options: dict[str, Any] = {
            "higher_is_better": settings.direction == "increase",
            "margin": plan.non_inferiority_margin,
            "difference_type": "relative",
            "alpha": settings.alpha,
            "tuning": float(settings.tuning_n),
        }
        non_inferiority = guardrail_test(champion, canary, **options)
        proven = non_inferiority_test(champion, canary, **options)
    return Observation(
        now=now,
        variant=variant,
        step_samples={v.name: v.requests for v in step_data.variants},
        step_srm=step_srm,
        verdict=verdict,
        non_inferiority=non_inferiority,
        analysis=whole,
        proven_non_inferior=proven,
    )


def decide(plan: Ramp, state: RampState, obs: Observation) -> Decision:
    """The next move of the ramp."""
    elapsed = obs.now - state.started_at
    if elapsed > plan.max_duration_s:
        return Decision(
            "rollback",
            "max_duration",
            f"ramp ran {elapsed:.0f}s, over max_duration_s={plan.max_duration_s:g}",
            evidence={"elapsed_s": elapsed},
        )
    srm = obs.step_srm
    if srm.mismatch:
        action: Action = "hold" if plan.on_srm == "hold" else "rollback"
        return Decision(
            action,
            "srm",
            f"sample-ratio mismatch in this step: {srm.message}",
            evidence={
                "observed": dict(zip(srm.arms, srm.observed, strict=True)),
                "expected": dict(zip(srm.arms, srm.expected, strict=True)),
                "p_value": srm.p_value,
            },
        )
    if obs.verdict.action == "rollback":
        return Decision(
            "rollback", obs.verdict.rule, obs.verdict.reason, evidence=obs.verdict.evidence
        )
    ni = obs.non_inferiority
    if ni is not None and ni.significant:
        return Decision(
            "rollback",
            "non_inferiority",
            f"primary metric worse than the champion's by more than "
            f"{plan.non_inferiority_margin:.1%}: lift {ni.estimate:+.2%} "
            f"[{ni.ci_low:+.2%}, {ni.ci_high:+.2%}], p={ni.p_value:.4g}",
            evidence={
                "estimate": ni.estimate,
                "ci": [ni.ci_low, ni.ci_high],
                "p_value": ni.p_value,
                "margin": plan.non_inferiority_margin,
                "samples": {"champion": ni.control_n, "variant": ni.treatment_n},
            },
        )
    in_step = obs.now - state.step_started_at
    samples = obs.step_samples.get(obs.variant, 0)
    if in_step < plan.min_duration_s:
        return Decision(
            "wait",
            "min_duration",
            f"step {state.step + 1}: {in_step:.0f}s of {plan.min_duration_s:g}s",
            evidence={"seconds_in_step": in_step},
        )
    if samples < plan.min_samples:
        return Decision(
            "wait",
            "min_samples",
            f"step {state.step + 1}: {samples} of {plan.min_samples} samples",
            evidence={"samples": samples},
        )
    gates = {
        "verdict": obs.verdict.action,
        "rule": obs.verdict.rule,
        "samples_in_step": samples,
        "seconds_in_step": in_step,
    }
    if state.step + 1 >= len(plan.steps):
        proof = obs.proven_non_inferior
        if plan.promote_on == "non_inferiority" and (proof is None or not proof.significant):
            shown = (
                "no primary-metric data yet"
                if proof is None
                else f"lift {proof.estimate:+.2%}, bound {proof.ci_low:+.2%}..{proof.ci_high:+.2%}"
            )
            return Decision(
                "wait",
                "non_inferiority_unproven",
                f"holding {obs.variant} at 100 % until it is shown to be within "
                f"{plan.non_inferiority_margin:.1%} of the champion ({shown})",
                evidence={
                    **gates,
                    "estimate": None if proof is None else proof.estimate,
                    "ci": None if proof is None else [proof.ci_low, proof.ci_high],
                    "margin": plan.non_inferiority_margin,
                },
            )
        return Decision(
            "promote",
            "completed",
            f"every step passed its gates; {obs.variant} held 100 % cleanly"
            + ("" if plan.promote_on == "no_harm" else ", shown non-inferior"),
            evidence=gates,
        )
    weight = float(plan.steps[state.step + 1])
    return Decision(
        "advance",
        "gates_passed",
        f"step {state.step + 1} passed: {samples} samples in {in_step:.0f}s, "
        f"no gate failed; next {weight:g} %",
        weight=weight,
        evidence=gates,
    )
