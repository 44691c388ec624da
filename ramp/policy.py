"""What the ramp does next, as a pure function of plan, state and observations.

``decide(plan, state, observation) -> Decision`` holds every rule; the
controller only gathers observations and applies decisions (``next_state``
says what a decision does to the state). The canary serves the plan's steps
below 100 %; 100 % is the promotion, a decision taken only once the promotion
evidence holds. Every larger step is bought with evidence: to grow from one
step to the next, the data must rule out harm larger than ``advance_bound``,
a bound that tightens as the exposure grows. Rules, first match wins:

1. ``srm``: the traffic split of the current step (weights are constant within
   a step) does not match the configured one → hold (or rollback, per plan);
   a hold still expires at ``max_duration_s``.
2. ``guardrail:*``: error rate or p99 latency worse than the guardrail, on all
   data since the ramp started (sequential tests) → rollback at once.
3. ``harm``: the primary metric is shown worse than the champion's by more
   than ``non_inferiority_margin`` → rollback at once.
4. ``max_duration``: the ramp ran past ``max_duration_s`` without being shown
   good enough → expire (the plan's ``on_expiry`` says rollback or hold);
   ``final_look``: a group-sequential design passed its last look unpromoted.
5. ``min_duration`` / ``min_samples``: the step has not lasted or collected
   enough yet → wait.
6. at the last served step: ``promotion`` when the evidence ``promote_on``
   names holds (within the margin, or better) → promote; else wait.
7. ``advance``: harm beyond ``advance_bound`` ruled out → the next step; else wait.

The primary-metric bounds come from ``ramp.evidence`` (the plan's ``test``);
under a group-sequential design rules 3, 4 (final look), 6 and 7 act only at a
planned look, each look taken once (``RampState.looks``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from analysis.decisions import Analysis, Verdict, analyze
from analysis.inputs import ExperimentData
from analysis.srm import SrmResult, sample_ratio_mismatch
from analysis.sufficient import Moments, ProportionStats, SampleStatistic, is_proportion
from experiments.ramp_plan import PROMOTION_PERCENT, Ramp
from ramp.evidence import PrimaryEvidence, evidence_design, primary_evidence

__all__ = [
    "ADVANCE_BOUND_CAP",
    "NO_SRM",
    "Decision",
    "Observation",
    "RampState",
    "advance_bound",
    "decide",
    "next_state",
    "observe",
]

Action = Literal["wait", "hold", "advance", "promote", "rollback", "expire"]
Status = Literal["running", "promoted", "rolled_back", "expired"]

ADVANCE_BOUND_CAP = 2.0
"""The largest harm, in margins, any advance may leave unexcluded: a canary
worse by 3 margins stays at the first step."""

# SRM is judged per step, where weights are constant; on data spanning several
# steps the configured split has changed, so the whole-ramp analysis must not flag it.
NO_SRM = 0.0  # no p-value is below it, even one that underflows to 0

_STATUSES: tuple[Status, ...] = ("running", "promoted", "rolled_back", "expired")
_ENDINGS: dict[str, Status] = {
    "promote": "promoted",
    "rollback": "rolled_back",
    "expire": "expired",
}


@dataclass(frozen=True)
class RampState:
    """Where a ramp is; stored in Redis so a new controller resumes it."""

    step: int
    started_at: float
    step_started_at: float
    status: Status = "running"
    looks: int = 0  # group-sequential looks taken
    # In the shadow phase (``ramp.shadow``): the candidate is mirrored and serves no
    # user; ``step`` is then the first exposed step, not yet served, and
    # ``started_at`` the start of the phase (the exposed steps' clock starts anew).
    shadow: bool = False

    @property
    def phase(self) -> Literal["shadow", "exposed"]:
        """``shadow`` while the candidate is mirrored only, else ``exposed``."""
        return "shadow" if self.shadow else "exposed"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "step": self.step,
            "started_at": self.started_at,
            "step_started_at": self.step_started_at,
            "status": self.status,
            "looks": self.looks,
            "phase": self.phase,
        }

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> RampState:
        """The state ``as_dict`` stored; a record without ``phase`` (older) is exposed."""
        status = stored.get("status", "running")
        return cls(
            step=int(stored["step"]),
            started_at=float(stored["started_at"]),
            step_started_at=float(stored["step_started_at"]),
            status=status if status in _STATUSES else "running",
            looks=int(stored.get("looks", 0)),
            shadow=stored.get("phase") == "shadow",
        )


@dataclass(frozen=True)
class Observation:
    """What the controller measured at one check."""

    now: float
    variant: str
    step_samples: dict[str, int]
    step_srm: SrmResult
    verdict: Verdict  # the whole-ramp analysis; its guardrail rollbacks count
    primary: PrimaryEvidence | None  # the canary's lift on the primary metric, with bounds
    analysis: Analysis | None = None


@dataclass(frozen=True)
class Decision:
    """The next move, why, and the evidence."""

    action: Action
    rule: str
    reason: str
    weight: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    look: int | None = None  # the group-sequential look this check took


def advance_bound(plan: Ramp, step: int) -> float:
    """Harm (relative drop of the primary metric) the data must rule out to leave ``step``.

    margin · min(2, sqrt(100 / next weight)): the more traffic the next step
    gives the canary, the smaller the harm it may still hide; promotion (100 %)
    needs the margin itself.
    """
    following = plan.served_steps[step + 1]
    return plan.non_inferiority_margin * min(
        ADVANCE_BOUND_CAP, math.sqrt(PROMOTION_PERCENT / following)
    )


def _moments(stats: SampleStatistic, proportion: bool) -> Moments:
    """An arm's moments; a proportion combined across steps as its effective binomial count.

    The likelihood-ratio bounds read a proportion as successes out of n. A
    stratified rate is no such count, but n_eff = p(1-p) / Var(p) with p·n_eff
    successes has its rate and its variance (Kish's effective sample size); for
    plain counts n_eff is n, so one step reads exactly as before.
    """
    moments = Moments.of(stats)
    if not proportion or isinstance(stats, ProportionStats) or stats.n == 0:
        return moments
    rate = float(stats.mean)
    variance_of_rate = float(stats.variance) / stats.n
    if variance_of_rate <= 0.0:
        return moments
    n_eff = rate * (1.0 - rate) / variance_of_rate
    return Moments(
        n=np.asarray(n_eff), mean=np.asarray(rate), variance=np.asarray(rate * (1.0 - rate))
    )


def observe(
    plan: Ramp, ramp_data: ExperimentData, step_data: ExperimentData, now: float
) -> Observation:
    """Run the gates: per-step SRM, and the tests on everything since the ramp began."""
    variant = plan.variant or ""
    settings = ramp_data.settings
    whole = analyze(replace(ramp_data, settings=replace(settings, srm_threshold=NO_SRM)))
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
    primary = None
    if champion is not None and canary is not None:
        proportion = is_proportion(champion)
        # Every step is an epoch with its own weights: the arms are compared within
        # steps and combined (as the verdict is), so a metric drifting during the
        # ramp is not read as the canary's doing.
        arms: tuple[SampleStatistic, SampleStatistic] = (champion, canary)
        strata = next(a.strata for a in whole.variants if a.variant == variant)
        if strata is not None and strata.count > 1:
            arms = (strata.control, strata.treatment)
        primary = primary_evidence(
            evidence_design(plan, settings),
            _moments(arms[0], proportion),
            _moments(arms[1], proportion),
            proportion=proportion,
            higher_is_better=settings.direction == "increase",
        )
    return Observation(
        now=now,
        variant=variant,
        step_samples={v.name: v.requests for v in step_data.variants},
        step_srm=step_srm,
        verdict=verdict,
        primary=primary,
        analysis=whole,
    )


def _lift(primary: PrimaryEvidence) -> str:
    return f"lift {primary.estimate:+.2%} [{primary.low:+.2%}, {primary.high:+.2%}]"


def _primary_evidence(plan: Ramp, primary: PrimaryEvidence | None) -> dict[str, Any]:
    out: dict[str, Any] = {"margin": plan.non_inferiority_margin}
    if primary is not None:
        out.update(primary.as_dict())
    return out


def decide(plan: Ramp, state: RampState, obs: Observation) -> Decision:
    """The next move of the ramp."""
    elapsed = obs.now - state.started_at
    expired = elapsed > plan.max_duration_s
    margin = plan.non_inferiority_margin
    primary = obs.primary
    # A group-sequential design may act on the primary metric only at a new look.
    look = None
    if primary is not None and primary.look is not None:
        look = primary.look if primary.look > state.looks else None
        usable = look is not None
    else:
        usable = primary is not None
    srm = obs.step_srm
    if srm.mismatch and not (expired and plan.on_srm == "hold"):
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
            look=look,
        )
    verdict = obs.verdict
    if verdict.action == "rollback" and verdict.rule.startswith("guardrail:"):
        return Decision("rollback", verdict.rule, verdict.reason, evidence=verdict.evidence)
    if usable and primary is not None and primary.shows_harm_beyond(margin):
        return Decision(
            "rollback",
            "harm",
            f"primary metric shown worse than the champion's by more than {margin:.1%}: "
            f"{_lift(primary)}",
            evidence=_primary_evidence(plan, primary),
            look=look,
        )
    if expired:
        return Decision(
            "expire",
            "max_duration",
            f"not shown good enough within max_duration_s={plan.max_duration_s:g} "
            f"({elapsed:.0f}s)" + (f": {_lift(primary)}" if primary is not None else ""),
            evidence={"elapsed_s": elapsed, **_primary_evidence(plan, primary)},
            look=look,
        )
    in_step = obs.now - state.step_started_at
    samples = obs.step_samples.get(obs.variant, 0)
    weights = plan.served_steps
    last = state.step + 1 >= len(weights)
    promotable = usable and primary is not None and _promotion_shown(plan, primary)
    final = look is not None and primary is not None and primary.look == primary.looks
    if final and primary is not None and not (last and promotable):
        return Decision(
            "expire",
            "final_look",
            f"the group-sequential design's last look passed without the promotion "
            f"evidence: {_lift(primary)}",
            evidence=_primary_evidence(plan, primary),
            look=look,
        )
    if in_step < plan.min_duration_s:
        return Decision(
            "wait",
            "min_duration",
            f"step {state.step + 1}: {in_step:.0f}s of {plan.min_duration_s:g}s",
            evidence={"seconds_in_step": in_step},
            look=look,
        )
    if samples < plan.min_samples:
        return Decision(
            "wait",
            "min_samples",
            f"step {state.step + 1}: {samples} of {plan.min_samples} samples",
            evidence={"samples": samples},
            look=look,
        )
    gates = {"samples_in_step": samples, "seconds_in_step": in_step}
    if last:
        if plan.promote_on == "no_harm" or promotable:
            shown = {
                "non_inferiority": f"shown within {margin:.1%} of the champion",
                "superiority": "shown better than the champion",
                "no_harm": "no harm shown (promote_on: no_harm)",
            }[plan.promote_on]
            return Decision(
                "promote",
                "promotion",
                f"{obs.variant} {shown}" + (f": {_lift(primary)}" if primary is not None else ""),
                weight=PROMOTION_PERCENT,
                evidence={
                    **gates,
                    "promote_on": plan.promote_on,
                    **_primary_evidence(plan, primary),
                },
                look=look,
            )
        needed = "within" if plan.promote_on == "non_inferiority" else "better than"
        return _waiting(
            plan, state, primary, usable, gates, look,
            "promotion_evidence",
            f"holding {obs.variant} at {weights[state.step]:g} % until it is shown {needed} "
            + (f"{margin:.1%} of " if needed == "within" else "")
            + "the champion",
        )  # fmt: skip
    bound = advance_bound(plan, state.step)
    weight = weights[state.step + 1]
    if usable and primary is not None and primary.excludes_harm_beyond(bound):
        return Decision(
            "advance",
            "advance",
            f"step {state.step + 1} passed: harm beyond {bound:.2%} ruled out "
            f"({_lift(primary)}); next {weight:g} %",
            weight=weight,
            evidence={**gates, "bound": bound, **_primary_evidence(plan, primary)},
            look=look,
        )
    return _waiting(
        plan, state, primary, usable, {**gates, "bound": bound}, look,
        "advance_evidence",
        f"holding {obs.variant} at {weights[state.step]:g} % until harm beyond {bound:.2%} "
        f"is ruled out before {weight:g} %",
    )  # fmt: skip


def _promotion_shown(plan: Ramp, primary: PrimaryEvidence) -> bool:
    if plan.promote_on == "superiority":
        return primary.excludes_harm_beyond(0.0)
    return primary.excludes_harm_beyond(plan.non_inferiority_margin)


def _waiting(
    plan: Ramp,
    state: RampState,
    primary: PrimaryEvidence | None,
    usable: bool,
    gates: dict[str, Any],
    look: int | None,
    rule: str,
    reason: str,
) -> Decision:
    if primary is None:
        shown = "no primary-metric data yet"
    elif primary.look is not None and not usable:
        shown = (
            f"next look {state.looks + 1}/{primary.looks} at "
            f"{(state.looks + 1) / (primary.looks or 1):.0%} of the planned information, "
            f"now {primary.information_fraction or 0.0:.0%}"
        )
    else:
        shown = _lift(primary)
    return Decision(
        "wait",
        rule,
        f"{reason} ({shown})",
        evidence={**gates, **_primary_evidence(plan, primary)},
        look=look,
    )


def next_state(state: RampState, decision: Decision, now: float) -> RampState:
    """The state after ``decision`` was applied at ``now``."""
    looks = state.looks if decision.look is None else max(state.looks, decision.look)
    if decision.action == "advance" and state.shadow:
        # The shadow gate passed: the first exposed step begins, and with it the
        # exposed ramp's own clock (max_duration_s counts from here).
        return RampState(state.step, now, now, "running", 0)
    if decision.action == "advance":
        return RampState(state.step + 1, state.started_at, now, "running", looks)
    if decision.action in _ENDINGS:
        return replace(state, status=_ENDINGS[decision.action], looks=looks)
    return state if looks == state.looks else replace(state, looks=looks)
