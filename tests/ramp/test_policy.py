"""The ramp policy tick by tick, on fixed observations (no I/O)."""

from __future__ import annotations

import math

import pytest

from analysis.decisions import Verdict
from analysis.epochs import Epoch
from analysis.inputs import AnalysisSettings, ExperimentData, VariantData
from analysis.srm import sample_ratio_mismatch
from analysis.stratified import StratifiedStats
from analysis.sufficient import MetricStats, ProportionStats, VariantStats
from experiments.ramp_plan import Ramp
from ramp.evidence import PrimaryEvidence
from ramp.policy import (
    Observation,
    RampState,
    _moments,
    advance_bound,
    decide,
    next_state,
    observe,
)

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


def evidence(
    low: float, high: float, *, higher_is_better: bool = True, look: int | None = None
) -> PrimaryEvidence:
    return PrimaryEvidence(
        test="confidence_sequence" if look is None else "group_sequential",
        higher_is_better=higher_is_better,
        estimate=(low + high) / 2 if math.isfinite(low + high) else 0.0,
        low=low,
        high=high,
        critical=2.5,
        samples={"champion": 10_000, "canary": 500},
        information_fraction=None if look is None else look / 10,
        look=look,
        looks=None if look is None else 10,
    )


def observation(
    *,
    now: float = 100.0,
    samples: int = 500,
    verdict: str = "continue",
    rule: str = "primary",
    srm_counts=(9900, 100),
    srm_weights=(99, 1),
    primary: PrimaryEvidence | None = None,
) -> Observation:
    srm = sample_ratio_mismatch(
        {"champion": srm_counts[0], "canary": srm_counts[1]},
        {"champion": srm_weights[0], "canary": srm_weights[1]},
    )
    return Observation(
        now=now,
        variant="canary",
        step_samples={"canary": samples},
        step_srm=srm,
        verdict=Verdict("canary", verdict, rule, "because"),
        primary=evidence(-0.001, 0.03) if primary is None else primary,
    )


def state(step: int = 0, step_started_at: float = 0.0, looks: int = 0) -> RampState:
    return RampState(step=step, started_at=0.0, step_started_at=step_started_at, looks=looks)


def test_100_is_the_promotion_not_a_served_step() -> None:
    assert PLAN.served_steps == (1.0, 5.0, 25.0)
    assert PLAN.model_copy(update={"steps": (10.0, 50.0)}).served_steps == (10.0, 50.0)


def test_waits_for_minimum_time_then_samples_then_advances_on_evidence() -> None:
    assert decide(PLAN, state(), observation(now=5)).rule == "min_duration"
    assert decide(PLAN, state(), observation(now=20, samples=50)).rule == "min_samples"
    advance = decide(PLAN, state(), observation(now=20, samples=150))
    assert (advance.action, advance.weight) == ("advance", 5.0)
    assert advance.evidence["bound"] == pytest.approx(0.02)


def test_no_harm_shown_is_not_enough_to_advance() -> None:
    """The bounds straddle the 2-margin harm: nothing shown either way, so the step holds."""
    unsure = observation(now=20, primary=evidence(-0.05, 0.04))
    decision = decide(PLAN, state(), unsure)
    assert (decision.action, decision.rule) == ("wait", "advance_evidence")
    assert decision.weight is None


def test_the_advance_bound_tightens_as_the_exposure_grows() -> None:
    plan = PLAN.model_copy(update={"steps": (5.0, 10.0, 25.0, 50.0)})
    bounds = [advance_bound(plan, k) for k in range(3)]
    assert bounds == pytest.approx([0.02, 0.02, 0.01 * math.sqrt(2)])
    # a canary bounded at -1.8 % may go to 25 % but not to 50 %
    shown = observation(now=20, primary=evidence(-0.018, 0.02))
    assert decide(plan, state(step=1), shown).action == "advance"
    assert decide(plan, state(step=2), shown).rule == "advance_evidence"


def test_last_served_step_promotes_to_100_once_non_inferiority_is_shown() -> None:
    at_25 = {"now": 20, "srm_counts": (7500, 2500), "srm_weights": (75, 25)}
    decision = decide(PLAN, state(step=2), observation(**at_25))
    assert (decision.action, decision.rule, decision.weight) == ("promote", "promotion", 100.0)
    assert decision.evidence["ci"][0] == pytest.approx(-0.001)


@pytest.mark.parametrize("primary", [evidence(-0.02, 0.03), None])
def test_last_served_step_waits_without_evidence_of_non_inferiority(primary) -> None:
    """No failed gate is not enough: an underpowered ramp holds the last step below 100 %."""
    obs = Observation(
        now=20,
        variant="canary",
        step_samples={"canary": 500},
        step_srm=sample_ratio_mismatch({"champion": 750, "canary": 250}, {"champion": 75,
                                                                          "canary": 25}),
        verdict=Verdict("canary", "continue", "primary", "because"),
        primary=primary,
    )  # fmt: skip
    decision = decide(PLAN, state(step=2), obs)
    assert (decision.action, decision.rule) == ("wait", "promotion_evidence")
    assert "25 %" in decision.reason
    late = decide(PLAN, state(step=2), Observation(**{**obs.__dict__, "now": 601}))
    assert (late.action, late.rule) == ("expire", "max_duration")
    lenient = PLAN.model_copy(update={"promote_on": "no_harm"})
    assert decide(lenient, state(step=2), obs).action == "promote"


def test_superiority_needs_the_canary_shown_better() -> None:
    plan = PLAN.model_copy(update={"promote_on": "superiority"})
    assert decide(plan, state(step=2), observation(now=20)).rule == "promotion_evidence"
    better = observation(now=20, primary=evidence(0.002, 0.03))
    assert decide(plan, state(step=2), better).action == "promote"


@pytest.mark.parametrize("rule", ["guardrail:error_rate", "guardrail:p99_latency_ms"])
def test_a_failed_guardrail_rolls_back_at_once_even_before_minimums(rule: str) -> None:
    decision = decide(PLAN, state(), observation(now=1, samples=3, verdict="rollback", rule=rule))
    assert (decision.action, decision.rule) == ("rollback", rule)


def test_the_primary_metric_rolls_back_only_when_worse_by_more_than_the_margin() -> None:
    slightly_worse = observation(now=20, verdict="rollback", primary=evidence(-0.05, -0.002))
    assert decide(PLAN, state(), slightly_worse).action == "wait"
    harmful = decide(PLAN, state(), observation(now=1, primary=evidence(-0.06, -0.012)))
    assert (harmful.action, harmful.rule) == ("rollback", "harm")
    assert harmful.evidence["margin"] == 0.01 and harmful.evidence["ci"] == [-0.06, -0.012]


def test_for_a_metric_where_lower_is_better_harm_is_a_rise() -> None:
    rise = evidence(0.012, 0.06, higher_is_better=False)
    assert decide(PLAN, state(), observation(now=20, primary=rise)).rule == "harm"
    fall = evidence(-0.06, 0.012, higher_is_better=False)
    assert decide(PLAN, state(), observation(now=20, primary=fall)).action == "advance"
    assert decide(PLAN, state(step=2), observation(now=20, primary=fall)).action == "wait"


def test_srm_holds_the_ramp_or_rolls_back_per_plan_and_a_hold_still_expires() -> None:
    skewed = observation(now=20, srm_counts=(9000, 1000))
    assert decide(PLAN, state(), skewed).action == "hold"
    strict = PLAN.model_copy(update={"on_srm": "rollback"})
    assert decide(strict, state(), skewed).action == "rollback"
    late = observation(now=601, srm_counts=(9000, 1000))
    assert decide(PLAN, state(), late).action == "expire"


def test_expiry_is_its_own_ending_not_a_rollback() -> None:
    decision = decide(PLAN, state(), observation(now=601, primary=evidence(-0.05, 0.04)))
    assert (decision.action, decision.rule) == ("expire", "max_duration")
    assert next_state(state(), decision, 601).status == "expired"


def test_a_promote_verdict_does_not_skip_steps() -> None:
    decision = decide(PLAN, state(), observation(now=20, verdict="promote"))
    assert (decision.action, decision.weight) == ("advance", 5.0)


def test_group_sequential_acts_only_at_a_new_look_and_takes_it_once() -> None:
    shown = evidence(-0.001, 0.03, look=3)
    taken = decide(PLAN, state(looks=2), observation(now=20, primary=shown))
    assert (taken.action, taken.look) == ("advance", 3)
    again = decide(PLAN, state(looks=3), observation(now=20, primary=shown))
    assert (again.action, again.rule, again.look) == ("wait", "advance_evidence", None)
    harm = evidence(-0.06, -0.012, look=3)
    assert decide(PLAN, state(looks=3), observation(now=20, primary=harm)).action == "wait"
    assert decide(PLAN, state(looks=2), observation(now=20, primary=harm)).rule == "harm"
    waiting = decide(PLAN, state(looks=2), observation(now=5, primary=shown))
    assert waiting.rule == "min_duration" and next_state(state(looks=2), waiting, 5).looks == 3


def test_group_sequential_last_look_is_final() -> None:
    final = evidence(-0.02, 0.03, look=10)
    decision = decide(PLAN, state(step=2, looks=9), observation(now=20, primary=final))
    assert (decision.action, decision.rule) == ("expire", "final_look")
    shown = evidence(-0.001, 0.03, look=10)
    assert decide(PLAN, state(step=2, looks=9), observation(now=20, primary=shown)).action == (
        "promote"
    )


def test_next_state_moves_a_step_and_records_endings() -> None:
    start = state()
    advance = decide(PLAN, start, observation(now=20))
    moved = next_state(start, advance, 20)
    assert (moved.step, moved.step_started_at, moved.status) == (1, 20, "running")
    harm = decide(PLAN, moved, observation(now=21, primary=evidence(-0.06, -0.012)))
    assert next_state(moved, harm, 21).status == "rolled_back"


def test_whole_ramp_totals_never_hold_the_guardrails_even_when_their_srm_p_underflows() -> None:
    from analysis.inputs import AnalysisSettings, ExperimentData, VariantData
    from analysis.sufficient import ProportionStats
    from ramp.policy import observe

    def data(champion: int, canary: int) -> ExperimentData:
        return ExperimentData(
            "demo",
            (
                VariantData(
                    "champion",
                    "champion",
                    50.0,
                    champion,
                    champion // 500,
                    metrics={"accuracy": ProportionStats(champion, champion * 0.84)},
                ),
                VariantData(
                    "canary",
                    "canary",
                    50.0,
                    canary,
                    canary // 5,
                    metrics={"accuracy": ProportionStats(canary, canary * 0.84)},
                ),
            ),
            AnalysisSettings(alpha=0.05, tuning_n=500, min_samples=50, max_p99_ratio=None),
        )

    # 90,000 / 10,000 at 50/50: the chi-square p-value is 0.0 in floating point
    obs = observe(PLAN, data(90_000, 10_000), data(1000, 1000), now=20.0)
    decision = decide(PLAN, state(), obs)
    assert (decision.action, decision.rule) == ("rollback", "guardrail:error_rate")


def _arm(n: int, rate: float) -> VariantStats:
    return VariantStats(n, metrics={"accuracy": MetricStats(n, n * rate, n * rate)})


def _two_steps(rates: tuple[float, float], canary_rates: tuple[float, float]) -> ExperimentData:
    """Step 1 at 90/10, step 2 at 50/50, 20,000 requests each; accuracy per step and arm."""
    epochs = [
        Epoch(
            version,
            {"champion": split, "canary": 1 - split},
            variants={
                "champion": _arm(int(20_000 * split), rate),
                "canary": _arm(int(20_000 * (1 - split)), canary_rate),
            },
        )
        for version, split, rate, canary_rate in zip(
            (1, 2), (0.9, 0.5), rates, canary_rates, strict=True
        )
    ]
    arms = ("champion", "canary")
    totals = {arm: sum((e.variants[arm] for e in epochs), VariantStats()) for arm in arms}
    variants = tuple(
        VariantData(
            arm,
            arm,
            50.0,
            totals[arm].requests,
            metrics={"accuracy": totals[arm].proportion("accuracy")},
        )
        for arm in arms
    )
    settings = AnalysisSettings(min_samples=50, max_p99_ratio=None, max_error_rate_increase=None)
    return ExperimentData("demo", variants, settings, epochs=tuple(epochs))


def test_a_metric_drifting_during_the_ramp_is_not_read_as_the_canarys_doing() -> None:
    # Accuracy rose from 0.80 to 0.90 between the steps, the same for both arms.
    data = _two_steps((0.80, 0.90), (0.80, 0.90))
    obs = observe(PLAN, data, data, now=20.0)
    assert obs.primary is not None
    assert abs(obs.primary.estimate) < 1e-9  # pooled: 0.871 / 0.843 - 1 = +3.4 %
    assert obs.primary.low < 0 < obs.primary.high
    # A real drop is still seen for what it is.
    worse = observe(PLAN, _two_steps((0.80, 0.90), (0.76, 0.86)), data, now=20.0)
    assert worse.primary is not None and worse.primary.high < 0


def test_one_step_reads_the_counts_exactly_as_before() -> None:
    counts = ProportionStats(4000, 3400.0)
    moments = _moments(counts, proportion=True)
    assert (float(moments.n), float(moments.mean)) == (4000.0, 0.85)
    combined = StratifiedStats(n=4000, mean=0.85, variance=0.85 * 0.15, proportion=True)
    effective = _moments(combined, proportion=True)
    assert float(effective.n) == pytest.approx(4000.0, rel=1e-12)
