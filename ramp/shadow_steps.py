"""The ramp's shadow phase as it acts on the stored config and reads Redis.

Entering it takes the candidate off the live variants and mirrors it; each
check reads the paired counts since the phase began (``observe``); a pass first
stops mirroring and waits for the candidate's mirrored calls to end
(``drain_mirror``), then exposes it at the first step. The decisions
themselves are ``ramp.shadow_policy``'s (pure).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.store import Store
from experiments import changes
from experiments.config import ExperimentConfig
from experiments.ramp_plan import Ramp
from ramp.policy import Decision, RampState
from ramp.shadow_policy import ShadowObservation, counts_since
from recorded.reporting import recorded_shadows, shadow_paired_counts, shadow_paired_counts_in

__all__ = ["DRAIN_MARGIN_S", "DRAIN_POLL_S", "DRAIN_QUIET_S", "ShadowSteps", "shadow_record"]

# Between the shadow phase and the first exposed step, mirroring stops and the ramp waits
# until the candidate's shadow calls stop being counted (DRAIN_QUIET_S without a change):
# the calls in flight then have ended, so its first users do not queue behind mirrored
# requests on its servers. At most the shadow's timeout plus DRAIN_MARGIN_S (a gateway
# that missed the config change catches up within its 5 s resync).
DRAIN_POLL_S = 0.25
DRAIN_QUIET_S = 1.0
DRAIN_MARGIN_S = 7.0


class ShadowSteps:
    """The shadow phase's changes and readings for one ramp."""

    def __init__(
        self,
        store: Store,
        name: str,
        variant: str,
        plan: Ramp,
        config: Callable[[], ExperimentConfig],
        clock: Callable[[], float],
        sleep: Callable[[float], Any],
        actor: str,
    ) -> None:
        self.actor = actor
        self.store = store
        self.name = name
        self.variant = variant
        self.plan = plan
        self.config = config
        self.clock = clock
        self.sleep = sleep

    def enter(self, mirror: float) -> None:
        """The candidate leaves the live variants and is mirrored: no user can be routed to it."""
        self.store.put_config(
            self.name,
            changes.shadow_phase(self.config(), mirror).model_dump(mode="json"),
            actor=self.actor,
            action="ramp_shadow_start",
            reason=f"ramp starts with a shadow phase: {self.variant} mirrored for "
            f"{mirror:.0%} of units, 0 % of users",
            evidence={"weight": 0.0, "mirror": mirror},
        )

    def expose(self, decision: Decision) -> None:
        """The shadow gate passed: the candidate serves the first step, mirrored no more."""
        assert decision.weight is not None
        self.drain_mirror()
        self.store.put_config(
            self.name,
            changes.expose(self.config(), decision.weight).model_dump(mode="json"),
            actor=self.actor,
            action="ramp_advance",
            reason=decision.reason,
            evidence={"weight": decision.weight, **decision.evidence},
        )

    def drain_mirror(self) -> None:
        """Stop mirroring the candidate and wait for its mirrored calls to end."""
        config = self.config()
        shadow = next((s for s in config.shadows if s.name == self.variant), None)
        if shadow is None:
            return
        self.store.put_config(
            self.name,
            changes.shadow_phase(config, 0.0).model_dump(mode="json"),
            actor=self.actor,
            action="ramp_shadow_drain",
            reason=f"shadow phase passed: {self.variant} mirrored no more; its calls in "
            "flight end before it serves users",
            evidence={"weight": 0.0, "mirror": 0.0},
        )
        started = self.clock()
        deadline = started + shadow.timeout_ms / 1000.0 + DRAIN_MARGIN_S
        counted = self._shadow_calls_counted()
        quiet_since = started
        while self.clock() < deadline:
            self.sleep(DRAIN_POLL_S)
            now = self.clock()
            seen = self._shadow_calls_counted()
            if seen != counted:
                counted, quiet_since = seen, now
            elif now - quiet_since >= DRAIN_QUIET_S:
                break

    def _shadow_calls_counted(self) -> tuple[int, int]:
        stats = recorded_shadows(self.store, self.name).get(self.variant)
        return (0, 0) if stats is None else (stats.requests, stats.shed)

    def observe(self, ramp_base: dict[str, str]) -> ShadowObservation:
        """The paired counts of the candidate since its shadow phase began."""
        config = self.config()
        phase = self.plan.shadow
        assert phase is not None
        metric = phase.metric or config.metrics.primary.name
        now = self.clock()
        counts = counts_since(
            shadow_paired_counts(self.store, self.name, self.variant, metric),
            shadow_paired_counts_in(ramp_base, self.variant, metric),
        )
        return ShadowObservation(
            now=now,
            variant=self.variant,
            metric=metric,
            counts=counts,
            alpha=config.statistics.alpha,
            tuning=float(config.statistics.tuning_n),
        )


def shadow_record(state: RampState, decision: Decision, ended_at: float) -> dict[str, Any]:
    """How the shadow phase ended, for the ramp state and the report."""
    return {
        "started_at": state.started_at,
        "ended_at": ended_at,
        "rule": decision.rule,
        "reason": decision.reason,
        "evidence": decision.evidence,
    }
