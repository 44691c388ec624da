"""The ramp's progress display as text: fixed observations in, lines out (no I/O)."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from analysis.inputs import AnalysisSettings, ExperimentData, VariantData
from analysis.sufficient import LatencyHistogram, ProportionStats
from experiments.ramp_plan import Ramp
from ramp.policy import Decision, Observation, RampState, observe
from ramp.progress import change_key, is_final, render_block, render_line

PLAN = Ramp(
    variant="canary",
    steps=(10.0, 50.0, 100.0),
    min_duration_s=3,
    min_samples=100,
    check_interval_s=1,
    max_duration_s=90,
    non_inferiority_margin=0.02,
)
BOUNDS = (5.0, 10.0, 20.0, 50.0)
WAIT = Decision("wait", "min_samples", "step 2: 80 of 100 samples")


def arm(name: str, role: str, weight: float, requests: int, errors: int, correct: int,
        latency: tuple[int, ...]) -> VariantData:  # fmt: skip
    return VariantData(
        name=name,
        role=role,
        weight=weight,
        requests=requests,
        errors=errors,
        latency=LatencyHistogram(bounds=BOUNDS, counts=latency),
        metrics={"accuracy": ProportionStats(requests - errors, float(correct))},
    )


def observation(
    *, canary_errors: int = 20, champion_errors: int = 20, slow: bool = False, now: float = 40.0
) -> Observation:
    """A ramp at 50 %: champion 2000 requests (1 % errors, 84 % accurate), canary 2000."""
    latency = (0, 0, 0, 100, 1900) if slow else (1900, 80, 20, 0, 0)
    variants = (
        arm("champion", "champion", 50, 2000, champion_errors, 1663, (1900, 80, 20, 0, 0)),
        arm("canary", "canary", 50, 2000, canary_errors, 1700, latency),
    )
    settings = AnalysisSettings(tuning_n=500, min_samples=100, max_p99_ratio=2.0)
    whole = ExperimentData("demo", variants, settings)
    step = ExperimentData(
        "demo",
        (
            VariantData("champion", "champion", 50, 90),
            VariantData("canary", "canary", 50, 80),
        ),
        settings,
    )
    return observe(PLAN, whole, step, now)


STATE = RampState(step=1, started_at=10.0, step_started_at=28.0)


def rows(lines: list[str]) -> dict[str, str]:
    """Gate rows by name (the first word after the indent)."""
    return {line.split()[0]: line.strip() for line in lines if line.startswith("  ")}


def test_block_shows_step_time_samples_every_gate_and_the_action() -> None:
    lines = render_block(
        PLAN, STATE, observation(), WAIT, experiment="demo", log_path="out/ramp-demo.log"
    )
    assert lines[0].startswith("ramp demo · canary   step 2/3 at 50 %")
    assert "(10 → 50 → 100 %)" in lines[0]
    by_name = rows(lines)
    assert by_name["time"] == "time     12s in step (min 3s)   (ramp 30s, max 90s)"
    assert by_name["samples"] == "samples  80 in step (min 100); champion 90"
    assert by_name["errors"].startswith("errors   ok  1.00% vs 1.00% champion (p=")
    assert by_name["p99"].startswith("p99      ok  ")
    assert by_name["p99"].endswith("(×1.00, max ×2)")
    # 1700/1980 vs 1663/1980 correct: a relative lift of +2.22 %.
    assert by_name["accuracy"].startswith("accuracy +2.22%  [")
    # At the last served step the promotion needs harm beyond the 2 % margin ruled out.
    low = observation().primary.low  # type: ignore[union-attr]
    assert -0.02 < low < 0.0222
    assert (
        by_name["non-inf"] == f"non-inf  shown  bound {low:+.2%} vs -2.00% to promote (margin 2.0%)"
    )
    assert by_name["SRM"].startswith("SRM      ok  champion/canary 90/80, expected 85/85 (p=")
    assert lines[-2] == "  → wait (min_samples): step 2: 80 of 100 samples"
    assert lines[-1] == "  decision log: out/ramp-demo.log"


def test_failed_gates_say_fail() -> None:
    obs = observation(canary_errors=200, slow=True)
    by_name = rows(render_block(PLAN, STATE, obs, WAIT, experiment="demo"))
    assert by_name["errors"].startswith("errors   FAIL  10.00% vs 1.00% champion")
    assert by_name["p99"].startswith("p99      FAIL  ")
    assert not any(line.startswith("  decision log") for line in by_name)


def test_no_errors_in_either_arm_is_a_pass_not_a_test() -> None:
    obs = observation(canary_errors=0, champion_errors=0)
    by_name = rows(render_block(PLAN, STATE, obs, WAIT, experiment="demo"))
    assert by_name["errors"] == "errors   ok  0.00% vs 0.00% champion (no variance to test)"


def test_srm_mismatch_and_non_inferiority_states() -> None:
    obs = observation()
    srm = SimpleNamespace(mismatch=True, checked=True, message="observed 90/10 vs 50/50")
    harm = replace(obs.primary, estimate=-0.05, low=-0.08, high=-0.03)  # type: ignore[type-var]
    odd = SimpleNamespace(**{**vars_of(obs), "step_srm": srm, "primary": harm})
    by_name = rows(render_block(PLAN, STATE, odd, WAIT, experiment="demo"))  # type: ignore[arg-type]
    assert by_name["SRM"] == "SRM      MISMATCH  observed 90/10 vs 50/50"
    assert by_name["non-inf"].startswith("non-inf  FAIL  worse than the champion")
    assert "-5.00%" in by_name["non-inf"]


def vars_of(obs: Observation) -> dict[str, object]:
    return {name: getattr(obs, name) for name in obs.__dataclass_fields__}


def test_non_inferiority_shown_and_not_yet() -> None:
    base = observation()
    proof = replace(base.primary, estimate=0.0, low=-0.012, high=0.01)  # type: ignore[type-var]
    obs = SimpleNamespace(**{**vars_of(base), "primary": proof})
    by_name = rows(render_block(PLAN, STATE, obs, WAIT, experiment="demo"))  # type: ignore[arg-type]
    assert by_name["non-inf"] == "non-inf  shown  bound -1.20% vs -2.00% to promote (margin 2.0%)"
    obs.primary = replace(proof, low=-0.031)
    by_name = rows(render_block(PLAN, STATE, obs, WAIT, experiment="demo"))  # type: ignore[arg-type]
    assert by_name["non-inf"] == "non-inf  not yet  bound -3.10% vs -2.00% to promote (margin 2.0%)"
    # Before the last served step, the bound is the one the next advance needs:
    # margin · min(2, sqrt(100 / 50)) = 2.83 % to go from 10 % to 50 %.
    first = RampState(step=0, started_at=10.0, step_started_at=28.0)
    by_name = rows(render_block(PLAN, first, obs, WAIT, experiment="demo"))  # type: ignore[arg-type]
    assert by_name["non-inf"] == "non-inf  not yet  bound -3.10% vs -2.83% to advance (margin 2.0%)"


def test_an_observation_with_fields_missing_renders_as_not_available() -> None:
    bare = SimpleNamespace(now=40.0, variant="canary")
    expired = Decision("expired", "max_duration", "not shown good enough in 90s")
    lines = render_block(PLAN, STATE, bare, expired, experiment="demo")  # type: ignore[arg-type]
    by_name = rows(lines)
    assert by_name["samples"] == "samples  0 in step (min 100)"
    for gate in ("guards", "primary", "non-inf", "SRM"):
        assert by_name[gate].split()[1] == "n/a", by_name[gate]
    assert lines[-1] == "  → expired (max_duration): not shown good enough in 90s"
    none_fields = Observation(
        now=40.0, variant="canary", step_samples={}, step_srm=None,  # type: ignore[arg-type]
        verdict=None, primary=None,  # type: ignore[arg-type]
    )  # fmt: skip
    assert rows(render_block(PLAN, STATE, none_fields, expired, experiment="demo")) == by_name


@pytest.mark.parametrize(
    ("action", "final"),
    [("wait", False), ("hold", False), ("advance", False), ("promote", True),
     ("rollback", True), ("expired", True)],
)  # fmt: skip
def test_every_action_but_wait_hold_and_advance_ends_the_ramp(action: str, final: bool) -> None:
    assert is_final(Decision(action, "rule", "why")) is final  # type: ignore[arg-type]


def test_one_line_form_has_the_same_facts_in_short() -> None:
    line = render_line(PLAN, STATE, observation(), WAIT, experiment="demo")
    assert "\n" not in line
    assert line.startswith(
        "[demo] step 2/3 at 50 % | 12s in step (min 3s) | samples 80 in step (min 100); "
        "champion 90 | errors ok | p99 ok | accuracy +2.22% | non-inf shown | SRM ok | "
    )
    assert line.endswith("| wait (min_samples): step 2: 80 of 100 samples")


def test_a_change_is_a_new_step_action_or_rule() -> None:
    key = change_key(STATE, WAIT)
    assert change_key(STATE, Decision("wait", "min_samples", "step 2: 99 of 100")) == key
    assert change_key(STATE, Decision("wait", "min_duration", "1s of 3s")) != key
    assert change_key(STATE, Decision("advance", "min_samples", "x")) != key
    assert change_key(RampState(2, 10.0, 50.0), WAIT) != key
