"""The ramp policy tick by tick, on fixed observations (no I/O)."""

from __future__ import annotations

import pytest

from analysis.decisions import Verdict
from analysis.results import TestResult
from analysis.srm import sample_ratio_mismatch
from experiments.config import Ramp
from ramp.policy import Observation, RampState, decide

PLAN = Ramp(
    variant="canary",
    steps=(1.0, 5.0, 25.0, 100.0),
    min_duration_s=10,
    min_samples=100,
    check_interval_s=1,
    max_duration_s=600,
    on_srm="hold",
    non_inferiority_margin=0.01,
)


def observation(
    *,
    now: float = 100.0,
    samples: int = 500,
    verdict: str = "continue",
    rule: str = "primary",
    srm_counts=(9900, 100),
    srm_weights=(99, 1),
    ni_significant: bool = False,
    proven: bool | None = True,
) -> Observation:
    srm = sample_ratio_mismatch(
        {"champion": srm_counts[0], "canary": srm_counts[1]},
        {"champion": srm_weights[0], "canary": srm_weights[1]},
    )
    ni = TestResult(
        test="sequential_cs",
        difference_type="relative",
        alternative="less",
        alpha=0.05,
        estimate=-0.05,
        ci_low=-1.0,
        ci_high=-0.02,
        p_value=0.001 if ni_significant else 0.6,
        stddev=0.01,
        dof=float("inf"),
        control_n=1000,
        treatment_n=samples,
        control_mean=0.84,
        treatment_mean=0.8,
    )
    return Observation(
        now=now,
        variant="canary",
        step_samples={"canary": samples},
        step_srm=srm,
        verdict=Verdict("canary", verdict, rule, "because"),
        non_inferiority=ni,
        proven_non_inferior=None if proven is None else evidence(proven),
    )


def evidence(significant: bool) -> TestResult:
    """The non-inferiority evidence test: lower bound above -1 % when significant."""
    return TestResult(
        test="sequential_cs",
        difference_type="relative",
        alternative="greater",
        alpha=0.05,
        estimate=0.03,
        ci_low=0.005 if significant else -0.04,
        ci_high=float("inf"),
        p_value=0.01 if significant else 0.3,
        stddev=0.01,
        dof=float("inf"),
        control_n=1000,
        treatment_n=500,
        control_mean=0.84,
        treatment_mean=0.86,
    )


def state(step: int = 0, step_started_at: float = 0.0) -> RampState:
    return RampState(step=step, started_at=0.0, step_started_at=step_started_at)


def test_waits_for_minimum_time_then_samples_then_advances() -> None:
    assert decide(PLAN, state(), observation(now=5)).rule == "min_duration"
    assert decide(PLAN, state(), observation(now=20, samples=50)).rule == "min_samples"
    advance = decide(PLAN, state(), observation(now=20, samples=150))
    assert (advance.action, advance.weight) == ("advance", 5.0)


def test_last_step_promotes_once_non_inferiority_is_shown() -> None:
    at_100 = {"now": 20, "srm_counts": (0, 500), "srm_weights": (0, 100)}
    assert decide(PLAN, state(step=3), observation(**at_100)).action == "promote"


@pytest.mark.parametrize("proven", [False, None])
def test_last_step_waits_without_evidence_of_non_inferiority(proven: bool | None) -> None:
    """No failed gate is not enough: an underpowered ramp holds 100 % (until max_duration_s)."""
    at_100 = {"now": 20, "srm_counts": (0, 500), "srm_weights": (0, 100), "proven": proven}
    decision = decide(PLAN, state(step=3), observation(**at_100))
    assert (decision.action, decision.rule) == ("wait", "non_inferiority_unproven")
    assert decision.evidence["margin"] == PLAN.non_inferiority_margin
    late = decide(PLAN, state(step=3), observation(**{**at_100, "now": 601}))
    assert (late.action, late.rule) == ("rollback", "max_duration")
    lenient = PLAN.model_copy(update={"promote_on": "no_harm"})
    assert decide(lenient, state(step=3), observation(**at_100)).action == "promote"


@pytest.mark.parametrize("rule", ["guardrail:error_rate", "guardrail:p99_latency", "primary"])
def test_a_failed_gate_rolls_back_at_once_even_before_minimums(rule: str) -> None:
    decision = decide(PLAN, state(), observation(now=1, samples=3, verdict="rollback", rule=rule))
    assert (decision.action, decision.rule) == ("rollback", rule)


def test_non_inferiority_failure_rolls_back() -> None:
    decision = decide(PLAN, state(), observation(now=20, ni_significant=True))
    assert (decision.action, decision.rule) == ("rollback", "non_inferiority")


def test_srm_holds_the_ramp_or_rolls_back_per_plan() -> None:
    skewed = observation(now=20, srm_counts=(9000, 1000))
    assert decide(PLAN, state(), skewed).action == "hold"
    strict = PLAN.model_copy(update={"on_srm": "rollback"})
    assert decide(strict, state(), skewed).action == "rollback"


def test_max_duration_rolls_back() -> None:
    assert decide(PLAN, state(), observation(now=601)).rule == "max_duration"


def test_a_promote_verdict_does_not_skip_steps() -> None:
    decision = decide(PLAN, state(), observation(now=20, verdict="promote"))
    assert (decision.action, decision.weight) == ("advance", 5.0)
