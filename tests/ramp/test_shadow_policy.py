"""The shadow phase's rules (ramp/shadow_policy.py), one by one, and how its state resumes."""

from __future__ import annotations

import json

import pytest

from analysis.paired import PairedCounts, paired_harm_test, paired_non_inferiority_test
from experiments.ramp_plan import Ramp, ShadowPhase
from ramp.policy import RampState, next_state
from ramp.shadow_policy import ShadowObservation, counts_since, decide_shadow, shadow_margin

PHASE = ShadowPhase(mirror=1.0, metric="accuracy", min_labels=300, max_duration_s=600)
PLAN = Ramp(
    variant="canary",
    shadow=PHASE,
    steps=(5.0, 25.0, 50.0),
    check_interval_s=5,
    max_duration_s=900,
    non_inferiority_margin=0.01,
)
STATE = RampState(0, started_at=100.0, step_started_at=100.0, shadow=True)


def observe(counts: PairedCounts | None, now: float = 160.0) -> ShadowObservation:
    return ShadowObservation(now=now, variant="canary", metric="accuracy", counts=counts)


def counts(n: int, live_only: float, shadow_only: float, accuracy: float = 0.84) -> PairedCounts:
    """``n`` labelled requests with the given discordant shares; live accuracy ``accuracy``."""
    lo, so = round(n * live_only), round(n * shadow_only)
    both = round(n * accuracy) - lo
    return PairedCounts(both, lo, so, n - both - lo - so)


EQUAL = counts(20_000, 0.05, 0.05)  # agree on 90 %, equally accurate
WORSE = counts(5_000, 0.07, 0.03)  # 4 points less accurate
SLIGHTLY_WORSE = counts(200_000, 0.052, 0.048)  # 0.4 points worse: within the 0.84 margin


def test_fewer_labels_than_min_labels_wait_even_when_they_look_bad() -> None:
    few = PairedCounts(both=200, live_only=60, shadow_only=0, neither=39)  # 299 labels
    decision = decide_shadow(PLAN, STATE, observe(few))
    assert (decision.action, decision.rule) == ("wait", "shadow_min_labels")
    assert "299 of 300" in decision.reason


def test_no_paired_counts_at_all_wait_and_say_why() -> None:
    decision = decide_shadow(PLAN, STATE, observe(None))
    assert (decision.action, decision.rule) == ("wait", "shadow_min_labels")
    assert "no paired accuracy counts" in decision.reason


def test_harm_shown_rolls_back_before_any_user_is_exposed() -> None:
    decision = decide_shadow(PLAN, STATE, observe(WORSE))
    assert (decision.action, decision.rule) == ("rollback", "shadow_harm"), decision.reason
    assert decision.weight == 0.0
    # The rule is the sequential paired harm test, as analysis.paired computes it.
    assert paired_harm_test(WORSE, margin=0.0, tuning=5000.0).significant
    assert decision.evidence["paired"] == {
        "both": WORSE.both, "live_only": WORSE.live_only,
        "shadow_only": WORSE.shadow_only, "neither": WORSE.neither,
    }  # fmt: skip
    assert decision.evidence["ci"][1] < 0  # the upper bound of the difference
    after = next_state(STATE, decision, 160.0)
    assert (after.status, after.shadow) == ("rolled_back", True)


def test_non_inferiority_shown_advances_to_the_first_exposed_step() -> None:
    assert paired_non_inferiority_test(EQUAL, margin=shadow_margin(PLAN, EQUAL)).significant
    decision = decide_shadow(PLAN, STATE, observe(EQUAL))
    assert (decision.action, decision.rule) == ("advance", "shadow_pass"), decision.reason
    assert decision.weight == 5.0
    after = next_state(STATE, decision, 160.0)
    # Out of the shadow phase, at the first step, and the exposed ramp's clock starts now.
    assert after == RampState(0, started_at=160.0, step_started_at=160.0, status="running")


def test_the_margin_is_the_plans_relative_margin_in_accuracy_points() -> None:
    assert shadow_margin(PLAN, EQUAL) == pytest.approx(0.01 * EQUAL.live_accuracy)
    # 0.4 points worse on 200k labels: shown worse (rollback_on: worse) ...
    worse = decide_shadow(PLAN, STATE, observe(SLIGHTLY_WORSE))
    assert (worse.action, worse.rule) == ("rollback", "shadow_harm"), worse.reason
    # ... but not worse by more than the margin, and shown within it (beyond_margin).
    lenient = PLAN.model_copy(
        update={"shadow": PHASE.model_copy(update={"rollback_on": "beyond_margin"})}
    )
    passed = decide_shadow(lenient, STATE, observe(SLIGHTLY_WORSE))
    assert (passed.action, passed.rule) == ("advance", "shadow_pass"), passed.reason
    assert passed.evidence["harm_margin"] == pytest.approx(passed.evidence["margin"])


def test_neither_shown_waits_for_evidence() -> None:
    undecided = counts(1_000, 0.05, 0.05)
    decision = decide_shadow(PLAN, STATE, observe(undecided))
    assert (decision.action, decision.rule) == ("wait", "shadow_evidence"), decision.reason
    assert next_state(STATE, decision, 160.0) == STATE


@pytest.mark.parametrize("data", [None, PairedCounts(100, 10, 10, 20), counts(1_000, 0.05, 0.05)])
def test_past_max_duration_the_phase_expires(data: PairedCounts | None) -> None:
    late = observe(data, now=STATE.started_at + PHASE.max_duration_s + 1)
    decision = decide_shadow(PLAN, STATE, late)
    assert (decision.action, decision.rule) == ("expire", "shadow_max_duration")
    assert next_state(STATE, decision, late.now).status == "expired"


def test_shown_harm_wins_over_an_expired_clock() -> None:
    late = observe(WORSE, now=STATE.started_at + PHASE.max_duration_s + 1)
    assert decide_shadow(PLAN, STATE, late).rule == "shadow_harm"


def test_a_model_that_never_disagrees_against_live_passes_once_enough_labels_say_so() -> None:
    # No discordant pair: the confidence sequence has no variance; the exact bound
    # (1 - margin)^n < alpha needs n > log(0.05) / log(1 - 0.0083), about 360.
    identical = PairedCounts(both=290, live_only=0, shadow_only=0, neither=60)
    assert decide_shadow(PLAN, STATE, observe(identical)).rule == "shadow_evidence"
    enough = PairedCounts(both=340, live_only=0, shadow_only=0, neither=60)
    assert decide_shadow(PLAN, STATE, observe(enough)).rule == "shadow_pass"
    one_against = PairedCounts(both=340, live_only=1, shadow_only=0, neither=60)
    assert decide_shadow(PLAN, STATE, observe(one_against)).rule != "shadow_pass"


def test_counts_since_a_baseline_subtract_cell_by_cell() -> None:
    before = PairedCounts(10, 5, 1, 4)
    now = PairedCounts(110, 15, 11, 14)
    assert counts_since(now, before) == PairedCounts(100, 10, 10, 10)
    assert counts_since(now, None) == now
    assert counts_since(None, before) is None
    # Totals reset under the ramp: a cell that went down reads as 0.
    assert counts_since(PairedCounts(1, 0, 0, 0), before) == PairedCounts(0, 0, 0, 0)


def test_the_state_records_the_shadow_phase_and_resumes_it() -> None:
    stored = json.loads(json.dumps(STATE.as_dict()))  # as Redis keeps it
    assert stored["phase"] == "shadow"
    assert RampState.from_dict(stored) == STATE
    exposed = RampState(2, 10.0, 50.0, looks=3)
    assert RampState.from_dict(json.loads(json.dumps(exposed.as_dict()))) == exposed
    # A state stored before phases existed reads as exposed.
    older = {"step": 1, "started_at": 1.0, "step_started_at": 2.0, "status": "running"}
    assert RampState.from_dict(older) == RampState(1, 1.0, 2.0)


def test_a_plan_without_a_shadow_phase_has_no_shadow_decision() -> None:
    with pytest.raises(ValueError, match="no shadow phase"):
        decide_shadow(PLAN.model_copy(update={"shadow": None}), STATE, observe(EQUAL))
