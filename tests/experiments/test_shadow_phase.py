"""A ramp plan's shadow phase: its schema, and the config changes that move the candidate
between the live variants and the shadows (experiments/changes.py)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from core.errors import ConfigError
from experiments import changes
from experiments.config import ExperimentConfig, validation_problems
from tests.experiments.test_config import base


def planned(**shadow: Any) -> ExperimentConfig:
    data = base()
    data["ramp"] = {"steps": [5, 25, 50], "shadow": {"mirror": 0.5, **shadow}}
    return ExperimentConfig.model_validate(data)


def problems(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        ExperimentConfig.model_validate(data)
    return {p.path: p.message for p in validation_problems(caught.value)}


def test_the_shadow_phase_defaults_to_the_primary_metric() -> None:
    config = planned()
    assert config.ramp is not None and config.ramp.shadow is not None
    phase = config.ramp.shadow
    assert (phase.mirror, phase.metric, phase.min_labels, phase.rollback_on) == (
        0.5, "accuracy", 300, "worse",
    )  # fmt: skip
    assert not config.in_shadow_phase  # the file lists the candidate as a variant


@pytest.mark.parametrize(
    ("primary", "phrase"),
    [
        ({"name": "revenue", "kind": "mean", "source": "reward"}, "a shadow cannot measure"),
        ({"name": "ctr", "kind": "proportion", "source": "reward"}, "caused by the answer"),
        ({"name": "error", "kind": "mean", "source": "value"}, "a shadow cannot measure"),
    ],
)
def test_a_shadow_gate_on_a_reward_or_value_is_refused(
    primary: dict[str, Any], phrase: str
) -> None:
    data = base()
    data["metrics"] = {"primary": primary}
    data["ramp"] = {"steps": [5, 25], "shadow": {"metric": primary["name"]}}
    found = problems(data)
    assert list(found) == ["ramp.shadow.metric"], found
    assert phrase in found["ramp.shadow.metric"]
    assert "'accuracy' instead" in found["ramp.shadow.metric"]
    # Without the shadow phase the same metric is fine: the exposed steps judge it.
    data["ramp"] = {"steps": [5, 25]}
    ExperimentConfig.model_validate(data)


def test_beside_a_reward_the_shadow_phase_is_judged_on_the_labels_accuracy() -> None:
    data = base()
    data["metrics"] = {"primary": {"name": "revenue", "kind": "mean", "source": "reward"}}
    data["ramp"] = {"steps": [5, 25], "shadow": {}}
    config = ExperimentConfig.model_validate(data)
    assert config.ramp is not None and config.ramp.shadow is not None
    assert config.ramp.shadow.metric == "accuracy"  # what label feedback is recorded as


@pytest.mark.parametrize(
    "primary", [{"name": "accuracy", "direction": "decrease"}, {"name": "hits", "kind": "mean"}]
)
def test_a_label_metric_must_be_a_proportion_that_should_increase(primary: dict[str, Any]) -> None:
    data = base()
    data["metrics"] = {"primary": primary}
    data["ramp"] = {"steps": [5], "shadow": {}}
    assert "proportion whose direction is increase" in problems(data)["ramp.shadow.metric"]


def test_entering_the_shadow_phase_takes_the_candidate_off_the_live_variants() -> None:
    config = planned()
    shadowed = changes.shadow_phase(config, 0.5)
    assert shadowed.in_shadow_phase
    assert [v.name for v in shadowed.variants] == ["champion", "challenger"]
    # Its 10 % goes to the others in their proportions (80:10).
    assert shadowed.weights == pytest.approx({"champion": 88.888888889, "challenger": 11.11111111})
    (shadow,) = shadowed.shadows
    assert (shadow.name, shadow.model_version, shadow.sample_rate) == ("canary", "v3", 0.5)
    assert shadow.endpoints == ("http://127.0.0.1:8103",)
    # The stored form validates (the ramp names a shadow only in its shadow phase) and
    # no gateway can route to the candidate: there is no ramp variant to weigh.
    assert ExperimentConfig.model_validate(shadowed.model_dump(mode="json")) == shadowed
    assert shadowed.ramp_variant is None
    # Idempotent: a second call only changes the share.
    again = changes.shadow_phase(shadowed, 1.0)
    assert again.shadows[0].sample_rate == 1.0 and again.weights == shadowed.weights


def test_passing_the_gate_exposes_the_candidate_at_the_first_step() -> None:
    shadowed = changes.shadow_phase(planned(), 1.0)
    exposed = changes.expose(shadowed, 5.0)
    assert exposed.shadows == ()
    assert not exposed.in_shadow_phase
    candidate = exposed.variant("canary")
    assert (candidate.role, candidate.model_version, candidate.weight) == ("canary", "v3", 5.0)
    assert sum(exposed.weights.values()) == pytest.approx(100.0)
    assert exposed.ramp_variant == candidate
    with pytest.raises(ConfigError, match="not in a shadow phase"):
        changes.expose(exposed, 25.0)


def test_a_rollback_in_the_shadow_phase_stops_the_mirror_and_lists_the_candidate_at_0() -> None:
    shadowed = changes.shadow_phase(planned(), 1.0)
    rolled = changes.rollback(shadowed)
    assert rolled.shadows == ()
    assert rolled.weights == {"champion": 100.0, "challenger": 0.0, "canary": 0.0}
    assert rolled.ramp_variant is not None and rolled.ramp_variant.name == "canary"


def test_a_ramp_naming_a_shadow_without_a_shadow_phase_says_what_to_add() -> None:
    data = base()
    data["variants"] = data["variants"][:2]
    data["variants"][0]["weight"] = 90
    data["shadows"] = [{"name": "canary", "model_version": "v3",
                        "endpoints": ["http://127.0.0.1:8103"]}]  # fmt: skip
    data["ramp"] = {"variant": "canary", "steps": [5]}
    assert "add ramp.shadow" in problems(data)["ramp.variant"]
    data["ramp"]["shadow"] = {}
    assert ExperimentConfig.model_validate(data).in_shadow_phase


def test_a_candidate_in_its_shadow_phase_cannot_be_promoted_past_its_steps() -> None:
    shadowed = changes.shadow_phase(planned(), 1.0)
    with pytest.raises(ConfigError, match="in its shadow phase"):
        changes.promote(shadowed, "canary")
