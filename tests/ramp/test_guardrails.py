"""The ramp rolls back on any configured guardrail, and on none when none is configured."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from analysis.inputs import ExperimentData
from experiments.ramp_plan import Ramp
from ramp.policy import RampState, decide, observe
from ramp.progress import render_block
from recorded.reporting import settings_from_config
from tests.analysis.test_guardrails import arm, config

PLAN = Ramp(
    variant="canary",
    steps=(10.0, 50.0, 100.0),
    min_duration_s=3,
    min_samples=100,
    check_interval_s=1,
    max_duration_s=90,
    non_inferiority_margin=0.02,
)
STATE = RampState(step=1, started_at=10.0, step_started_at=28.0)


def ramp_data(guardrails: list[dict[str, Any]] | None, **bad: Any) -> ExperimentData:
    settings = settings_from_config(config(guardrails), None)
    canary = replace(arm("canary", "canary", **bad), weight=50.0)
    return ExperimentData("guard", (arm("champion", "champion"), canary), settings)


@pytest.mark.parametrize(
    ("guardrail", "bad", "rule"),
    [
        ({"name": "p95_latency_ms", "max_ratio": 1.2}, {"slowdown": 1.4},
         "guardrail:p95_latency_ms"),
        ({"name": "p50_latency_ms", "max_absolute_increase": 20}, {"slowdown": 1.4},
         "guardrail:p50_latency_ms"),
        ({"name": "mean_latency_ms", "max_relative_increase": 0.2}, {"slowdown": 1.4},
         "guardrail:mean_latency_ms"),
        ({"name": "error_rate", "max_ratio": 1.5}, {"errors": 150}, "guardrail:error_rate"),
    ],
)  # fmt: skip
def test_the_ramp_rolls_back_on_a_configured_guardrail(
    guardrail: dict[str, Any], bad: dict[str, Any], rule: str
) -> None:
    data = ramp_data([guardrail], **bad)
    obs = observe(PLAN, data, data, now=40.0)
    decision = decide(PLAN, STATE, obs)
    assert (decision.action, decision.rule) == ("rollback", rule), decision.reason
    # The same canary without that guardrail is not rolled back for it.
    free = ramp_data([], **bad)
    assert not decide(PLAN, STATE, observe(PLAN, free, free, now=40.0)).rule.startswith(
        "guardrail:"
    )


def test_no_guardrails_never_roll_back_a_ramp_for_one() -> None:
    data = ramp_data([], errors=2500, slowdown=5.0)  # half the requests fail, 5x slower
    obs = observe(PLAN, data, data, now=40.0)
    assert obs.verdict.rule.startswith("guardrail:") is False
    assert not decide(PLAN, STATE, obs).rule.startswith("guardrail:")
    gates = [line.split()[0] for line in render_block(PLAN, STATE, obs, decide(PLAN, STATE, obs),
                                                      experiment="guard")]  # fmt: skip
    assert "guards" in gates


def test_the_ramp_display_shows_a_gate_per_configured_guardrail() -> None:
    data = ramp_data(
        [{"name": "error_rate", "max_absolute_increase": 0.01},
         {"name": "p95_latency_ms", "max_ratio": 1.2},
         {"name": "mean_latency_ms", "max_ratio": 1.1}],
        slowdown=1.4,
    )  # fmt: skip
    obs = observe(PLAN, data, data, now=40.0)
    lines = render_block(PLAN, STATE, obs, decide(PLAN, STATE, obs), experiment="guard")
    rows = {line.split()[0]: line.strip() for line in lines if line.startswith("  ")}
    assert rows["errors"].startswith("errors   ok  1.00% vs 1.00% champion")
    assert rows["p95"].startswith("p95      FAIL  ") and rows["p95"].endswith("max ×1.2)")
    assert rows["mean-lat"].startswith("mean-lat FAIL  ")
    assert "p99" not in rows
