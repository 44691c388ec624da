"""The ramp controller's shadow phase against a real Redis.

The paired counts are written straight into the experiment's totals hash, in
the fields the gateway records them in (``core.schema.paired_prefix``), as a
clock the test drives moves on: the controller reads them through
``shadow_paired_counts``, decides, and changes the stored config. What must
hold: a worse candidate is rolled back without any config ever routing a user
to it; an equal one is exposed at the first step, and a controller started
again resumes there.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from analysis.paired import PairedCounts
from core.schema import PAIRED_CELLS, Keys, paired_prefix, shadow_field
from core.store import Store
from experiments.config import ExperimentConfig
from experiments.loader import load_experiment
from ramp.controller import EXIT_ROLLED_BACK, RampController
from ramp.shadow_steps import DRAIN_QUIET_S
from recorded.reporting import shadow_paired_counts
from recorded.status import render_status

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NAME = "shadowed"
# Per 1,000 labelled requests: (both, live only, shadow only, neither); agree on 90 %.
EQUAL = (790, 50, 50, 110)
WORSE = (770, 70, 30, 130)  # 4 points less accurate
BETTER = (840, 0, 100, 60)


def plan_config(**ramp: Any) -> ExperimentConfig:
    data = load_experiment(ROOT / "experiments" / "shadow-canary.yaml").model_dump(mode="json")
    data["name"] = NAME
    data["ramp"] = {
        **data["ramp"],
        "check_interval_s": 10,
        "min_duration_s": 1,
        "max_duration_s": 30,
        "shadow": {**data["ramp"]["shadow"], "min_labels": 300, "max_duration_s": 600},
        **ramp,
    }
    return ExperimentConfig.model_validate(data)


def add_paired(
    client: redis.Redis, live: str, cells: tuple[int, ...], times: int = 1, metric: str = "accuracy"
) -> None:
    """Paired counts of the shadow ``canary`` against the live variant ``live``."""
    for cell, count in zip(PAIRED_CELLS, cells, strict=True):
        field = paired_prefix("canary", live, metric) + cell
        client.hincrby(Keys(NAME).totals, field, count * times)


class Paused(Exception):
    """Stops the controller's loop from its sleep, as Ctrl-C would."""


class Clock:
    """The controller's clock and sleep: each sleep moves time on and lets traffic in."""

    def __init__(self, feed: Any = None, stop: Any = None) -> None:
        self.now = 1_000.0
        self.feed = feed
        self.stop = stop

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        if self.feed is not None:
            self.feed()
        if self.stop is not None and self.stop():
            raise Paused


def controller(
    store: Store, config: ExperimentConfig, clock: Clock, out: Path, shown: io.StringIO
) -> RampController:
    return RampController(store, config, out_dir=out, clock=clock, sleep=clock.sleep, out=shown)


def decisions(out: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (out / f"ramp-{NAME}.log").read_text().splitlines()]


def routed_to_canary(store: Store) -> list[float]:
    """The canary's weight in every config version stored (each opens an epoch)."""
    return [
        float(json.loads(raw)["weights"].get("canary", 0.0)) for raw in store.epochs(NAME).values()
    ]


def test_the_reader_sums_the_paired_fields_over_the_live_variants(redis_url: str) -> None:
    store = Store(redis_url)
    client = redis.Redis.from_url(redis_url)
    assert shadow_paired_counts(store, NAME, "canary", "accuracy") is None
    add_paired(client, "champion", EQUAL)
    add_paired(client, "challenger", WORSE, times=2)
    add_paired(client, "champion", WORSE, metric="precision")
    assert shadow_paired_counts(store, NAME, "canary", "precision") == PairedCounts(*WORSE)
    client.hincrby(Keys(NAME).totals, paired_prefix("other", "champion", "accuracy") + "both", 99)
    expected = PairedCounts(*EQUAL) + PairedCounts(*(2 * x for x in WORSE))
    assert shadow_paired_counts(store, NAME, "canary", "accuracy") == expected


def test_a_worse_candidate_is_rolled_back_in_its_shadow_phase_with_no_user_exposed(
    redis_url: str, tmp_path: Path
) -> None:
    store = Store(redis_url)
    client = redis.Redis.from_url(redis_url)
    # Counts recorded before the ramp (an earlier, better candidate under the same name)
    # are not the phase's evidence: they would pass it.
    add_paired(client, "champion", BETTER, times=50)
    clock = Clock(feed=lambda: add_paired(client, "champion", WORSE, times=2))
    outcome = controller(store, plan_config(), clock, tmp_path, io.StringIO()).run()
    assert (outcome.status, outcome.rule) == ("rolled_back", "shadow_harm"), outcome.reason
    assert outcome.exit_code == EXIT_ROLLED_BACK
    records = decisions(tmp_path)
    assert {r["phase"] for r in records} == {"shadow"}
    assert records[-1]["evidence"]["paired"]["live_only"] < 50 * 70  # since the phase began
    # No stored config ever routed a user to the candidate, and none was served.
    assert routed_to_canary(store) and set(routed_to_canary(store)) == {0.0}
    assert not [f for f in store.totals(NAME) if f.endswith(b"|canary:requests")]
    config = ExperimentConfig.model_validate(store.get_config(NAME).config)
    assert config.shadows == () and config.weights == {"champion": 100.0, "canary": 0.0}
    actions = [entry["action"] for entry in store.audit(NAME)]
    assert actions[-2:] == ["ramp_shadow_start", "rollback"], actions
    state = store.ramp_state(NAME)
    assert state is not None and (state["status"], state["phase"]) == ("rolled_back", "shadow")
    report = outcome.reports["md"].read_text()
    assert "0 requests served to users by canary" in report
    assert (
        "ramp: ROLLED BACK (harm shown) at the shadow phase (mirrored, 0 % of users), "
        "rule shadow_harm" in render_status(store, NAME)
    )


def test_an_equal_candidate_is_exposed_at_the_first_step_and_the_ramp_resumes_there(
    redis_url: str, tmp_path: Path
) -> None:
    store = Store(redis_url)
    client = redis.Redis.from_url(redis_url)
    add_paired(client, "champion", WORSE, times=50)  # before the ramp: not the phase's evidence

    def exposed() -> bool:
        return not ExperimentConfig.model_validate(store.get_config(NAME).config).shadows

    clock = Clock(feed=lambda: add_paired(client, "champion", EQUAL, times=3), stop=exposed)
    config = plan_config()
    shown = io.StringIO()
    with pytest.raises(Paused):
        controller(store, config, clock, tmp_path, shown).run()
    stored = ExperimentConfig.model_validate(store.get_config(NAME).config)
    assert stored.weights == {"champion": 90.0, "canary": 10.0}
    assert stored.variant("canary").model_version == "v3"
    state = store.ramp_state(NAME)
    assert state is not None
    assert (state["status"], state["phase"], state["step"]) == ("running", "exposed", 0)
    assert state["shadow_phase"]["rule"] == "shadow_pass"
    # The exposed ramp's clock starts at the pass (one check interval before the pause).
    assert state["started_at"] == state["shadow_phase"]["ended_at"] == clock.now - 10
    assert state["shadow_phase"]["started_at"] == 1_000.0
    shadow_checks = len(decisions(tmp_path))
    assert routed_to_canary(store)[:-1] == [0.0] * (len(routed_to_canary(store)) - 1)

    # A new controller resumes at the first exposed step; with no traffic there the
    # exposed ramp expires after its own max_duration_s (30 s), not at once for the
    # time the shadow phase took.
    outcome = controller(store, config, Clock(), tmp_path, shown).run()
    assert (outcome.status, outcome.rule) == ("expired", "max_duration"), outcome.reason
    exposed_checks = decisions(tmp_path)[shadow_checks:]
    assert {r["phase"] for r in exposed_checks} == {"exposed"}
    assert len(exposed_checks) >= 3
    assert "resuming the ramp of shadowed at step 1/3" in shown.getvalue()
    assert "Shadow phase (shadow_pass" in outcome.reports["md"].read_text()
    final = ExperimentConfig.model_validate(store.get_config(NAME).config)
    assert final.weights == {"champion": 100.0, "canary": 0.0}  # on_expiry: rollback


def test_the_candidate_serves_users_only_once_its_mirrored_calls_have_ended(
    redis_url: str, tmp_path: Path
) -> None:
    """After the pass, mirroring stops first; the first step waits while the candidate's
    shadow calls are still being counted (calls in flight on its servers), then opens."""
    store = Store(redis_url)
    client = redis.Redis.from_url(redis_url)
    calls_field = shadow_field("canary", "requests")
    draining: list[float] = []  # clock times at which mirrored calls were still ending

    def traffic() -> None:
        stored = ExperimentConfig.model_validate(store.get_config(NAME).config)
        shadow = next((s for s in stored.shadows if s.name == "canary"), None)
        if shadow is None:
            return
        if shadow.sample_rate > 0:
            add_paired(client, "champion", EQUAL, times=3)
            client.hincrby(Keys(NAME).totals, calls_field, 3000)
        elif len(draining) < 12:  # mirroring has stopped: 3 s of calls still ending
            client.hincrby(Keys(NAME).totals, calls_field, 5)
            draining.append(clock.now)

    def exposed() -> bool:
        return not ExperimentConfig.model_validate(store.get_config(NAME).config).shadows

    clock = Clock(feed=traffic, stop=exposed)
    with pytest.raises(Paused):
        controller(store, plan_config(), clock, tmp_path, io.StringIO()).run()
    actions = [entry["action"] for entry in store.audit(NAME)]
    assert actions[-2:] == ["ramp_shadow_drain", "ramp_advance"], actions
    state = store.ramp_state(NAME)
    assert state is not None and state["phase"] == "exposed"
    assert len(draining) == 12
    # Exposed once a whole DRAIN_QUIET_S passed without a call counted, not before.
    assert state["shadow_phase"]["ended_at"] >= draining[-1] + DRAIN_QUIET_S
    assert routed_to_canary(store)[:-1] == [0.0] * (len(routed_to_canary(store)) - 1)
