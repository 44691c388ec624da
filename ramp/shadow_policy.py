"""The shadow phase of a ramp: judge the candidate on paired evidence before any user sees it.

While the plan's ``shadow`` phase runs, the candidate serves 0 % of users and
is mirrored as a shadow; every labelled request scores both answers, so the
gate reads the four paired counts (``analysis.paired.PairedCounts``) since the
phase began. ``decide_shadow(plan, state, observation) -> Decision`` holds its
rules, first match wins:

1. ``shadow_min_labels``: fewer than ``min_labels`` requests scored for both
   models → wait (or, past ``max_duration_s``, expire: ``shadow_max_duration``).
2. ``shadow_harm``: the paired harm test shows the candidate less accurate
   than the live model (``rollback_on: worse``) or worse by more than the
   margin (``beyond_margin``) → rollback, with no user ever served by it.
3. ``shadow_pass``: the paired non-inferiority test shows it within the
   margin (or, when no request had only the live answer right, enough
   requests passed that a candidate worse by the margin would have shown one)
   → advance to the first exposed step.
4. ``shadow_max_duration``: the phase ran past its ``max_duration_s`` → expire
   (the plan's ``on_expiry``).
5. ``shadow_evidence``: neither shown yet → wait.

Both tests are the one-sided forms of the paired confidence sequence
(``analysis.paired``), valid however often the controller looks. The plan's
``non_inferiority_margin`` is a relative drop, as on the exposed steps: in
accuracy points it is margin × the live model's accuracy on the same requests.
Pure: the controller reads the counts, ``ramp/shadow_simulation.py`` draws them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from analysis.paired import PairedCounts, paired_harm_test, paired_non_inferiority_test
from analysis.results import TestResult
from analysis.sequential import DEFAULT_TUNING
from analysis.shadows import relative_margin
from experiments.ramp_plan import Ramp, ShadowPhase
from ramp.policy import Decision, RampState

__all__ = [
    "ShadowObservation",
    "counts_since",
    "decide_shadow",
    "shadow_margin",
]


@dataclass(frozen=True)
class ShadowObservation:
    """What the controller measured at one check of the shadow phase.

    ``counts``: the paired counts since the phase began, or ``None`` when no
    paired count of the candidate has been recorded at all (a gateway that does
    not score mirrored answers). ``alpha`` and ``tuning`` (N*, in labelled
    requests) are the statistics settings of the experiment.
    """

    now: float
    variant: str
    metric: str
    counts: PairedCounts | None
    alpha: float = 0.05
    tuning: float = DEFAULT_TUNING


def counts_since(now: PairedCounts | None, before: PairedCounts | None) -> PairedCounts | None:
    """The paired counts recorded between two readings of the same totals.

    A cell that went down (the totals were reset) reads as 0, not as a negative count.
    """
    if now is None:
        return None
    if before is None:
        return now
    return PairedCounts(
        both=max(now.both - before.both, 0),
        live_only=max(now.live_only - before.live_only, 0),
        shadow_only=max(now.shadow_only - before.shadow_only, 0),
        neither=max(now.neither - before.neither, 0),
    )


def shadow_margin(plan: Ramp, counts: PairedCounts) -> float:
    """The non-inferiority margin in accuracy points: the relative margin of the
    plan times the live model's accuracy on these requests (the margin reports show
    for an experiment whose plan has a shadow phase: ``recorded.reporting``)."""
    return relative_margin(plan.non_inferiority_margin, counts)


def _phase(plan: Ramp) -> ShadowPhase:
    if plan.shadow is None:
        raise ValueError("the plan has no shadow phase")
    return plan.shadow


def _counts(counts: PairedCounts | None) -> dict[str, int]:
    if counts is None:
        return {}
    return {
        "both": counts.both,
        "live_only": counts.live_only,
        "shadow_only": counts.shadow_only,
        "neither": counts.neither,
    }


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _difference(counts: PairedCounts, harm: TestResult, passed: TestResult) -> str:
    # The two one-sided bounds together: the harm test's upper, the pass test's lower.
    estimate = (counts.shadow_only - counts.live_only) / counts.n
    return (
        f"accuracy {counts.shadow_accuracy:.2%} vs {counts.live_accuracy:.2%} live on "
        f"{counts.n} labelled requests, difference {estimate:+.2%} "
        f"[{passed.ci_low:+.2%}, {harm.ci_high:+.2%}]"
    )


def _never_worse(counts: PairedCounts, margin: float, alpha: float) -> bool:
    """No request on which only the live model was right, in enough requests that a
    candidate worse by the margin would have shown one with probability 1 - alpha.

    The confidence sequence has no variance to work with when no pair is
    discordant (a retrained model that answers as the live one does); this exact
    bound covers it. It stays valid under monitoring: once a live-only pair is
    seen the clause is off for good, so the first n at which (1 - margin)^n <
    alpha is the only look that matters.
    """
    if counts.live_only or margin <= 0.0:
        return False
    return counts.n * math.log1p(-margin) < math.log(alpha)


def decide_shadow(plan: Ramp, state: RampState, obs: ShadowObservation) -> Decision:
    """The next move of a ramp in its shadow phase."""
    phase = _phase(plan)
    elapsed = obs.now - state.started_at
    expired = elapsed > phase.max_duration_s
    counts = obs.counts
    labels = counts.n if counts is not None else 0
    evidence: dict[str, Any] = {
        "phase": "shadow",
        "metric": obs.metric,
        "paired": _counts(counts),
        "labels": labels,
        "min_labels": phase.min_labels,
        "elapsed_s": elapsed,
        "relative_margin": plan.non_inferiority_margin,
    }
    expiry = (
        f"{obs.variant} not shown within {plan.non_inferiority_margin:.1%} of the live "
        f"model in its shadow phase within max_duration_s={phase.max_duration_s:g} "
        f"({elapsed:.0f}s)"
    )
    if counts is None or labels < phase.min_labels:
        if expired:
            return Decision("expire", "shadow_max_duration", expiry, evidence=evidence)
        if counts is None:
            reason = (
                f"no paired {obs.metric} counts recorded for the shadow {obs.variant} yet "
                "(labels must come back through /feedback)"
            )
        else:
            reason = f"shadow phase: {labels} of {phase.min_labels} labelled requests"
        return Decision("wait", "shadow_min_labels", reason, evidence=evidence)
    margin = shadow_margin(plan, counts)
    harm_margin = margin if phase.rollback_on == "beyond_margin" else 0.0
    harm = paired_harm_test(counts, margin=harm_margin, alpha=obs.alpha, tuning=obs.tuning)
    passed = paired_non_inferiority_test(counts, margin=margin, alpha=obs.alpha, tuning=obs.tuning)
    evidence.update(
        {
            "margin": margin,
            "harm_margin": harm_margin,
            "estimate": harm.estimate,
            "ci": [_finite(passed.ci_low), _finite(harm.ci_high)],
            "live_accuracy": counts.live_accuracy,
            "shadow_accuracy": counts.shadow_accuracy,
            "p_harm": harm.p_value,
            "p_non_inferiority": passed.p_value,
            "alpha": obs.alpha,
            "tuning": obs.tuning,
            "test": harm.test,
        }
    )
    shown = _difference(counts, harm, passed)
    if harm.significant:
        beyond = f"by more than {margin:.2%} points " if harm_margin > 0 else ""
        return Decision(
            "rollback",
            "shadow_harm",
            f"{obs.variant} shown less accurate than the live model {beyond}in its shadow "
            f"phase, before any user saw it: {shown}",
            weight=0.0,
            evidence=evidence,
        )
    if passed.significant or _never_worse(counts, margin, obs.alpha):
        weight = plan.served_steps[0]
        return Decision(
            "advance",
            "shadow_pass",
            f"{obs.variant} shown within {margin:.2%} points of the live model in its shadow "
            f"phase ({shown}); first exposed step {weight:g} %",
            weight=weight,
            evidence=evidence,
        )
    if expired:
        return Decision("expire", "shadow_max_duration", f"{expiry}: {shown}", evidence=evidence)
    return Decision(
        "wait",
        "shadow_evidence",
        f"shadow phase: neither harm nor non-inferiority (within {margin:.2%} points) shown "
        f"yet: {shown}",
        evidence=evidence,
    )
