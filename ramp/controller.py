"""The ramp loop: gather observations, ask the policy, apply its decision.

All state lives in Redis (step, start times, the totals snapshots the steps
are measured from), so Ctrl-C pauses safely and running ``abgate ramp`` again
resumes at the same step. A lock with an expiry refuses a second controller
on the same experiment. Every weight change goes through the store as a new
config version that all gateway replicas follow, with the decision's
evidence in the audit log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from core.errors import AbgateError, Conflict, RedisUnavailable
from core.logs import fields
from core.schema import decode_stats
from core.store import Store
from experiments import changes
from experiments.config import ExperimentConfig
from ramp.decision_log import DecisionLog
from ramp.display import RampDisplay
from ramp.policy import Decision, Observation, RampState, decide, next_state, observe
from ramp.progress import is_final
from ramp.report import RampReport, StepRecord, render_ramp_report, step_record
from ramp.shadow_policy import decide_shadow
from ramp.shadow_steps import ShadowSteps, shadow_record
from recorded.reporting import experiment_data

__all__ = [
    "EXIT_EXPIRED",
    "EXIT_PROMOTED",
    "EXIT_ROLLED_BACK",
    "RampController",
    "RampOutcome",
]

EXIT_PROMOTED = 0
EXIT_ROLLED_BACK = 3
EXIT_EXPIRED = 4
_EXIT_CODES = {"promoted": EXIT_PROMOTED, "rolled_back": EXIT_ROLLED_BACK, "expired": EXIT_EXPIRED}
ACTOR = "ramp-controller"
LOCK_TTL_S = 30.0

log = logging.getLogger("abgate.ramp")


@dataclass(frozen=True)
class RampOutcome:
    """How a ramp ended: promoted, rolled back (harm shown) or expired (not shown good
    enough in time; ``on_expiry`` said whether the canary went back to 0 % or held)."""

    action: str  # "promote" | "rollback" | "expire"
    reason: str
    reports: dict[str, Path]
    status: str = ""  # "promoted" | "rolled_back" | "expired"
    rule: str = ""

    @property
    def exit_code(self) -> int:
        """0 promoted, 3 rolled back, 4 expired."""
        return _EXIT_CODES.get(self.status, EXIT_ROLLED_BACK)


class RampController:
    """Drives one experiment's ramp plan to promotion or rollback."""

    def __init__(
        self,
        store: Store,
        config: ExperimentConfig,
        *,
        out_dir: Path,
        out: TextIO = sys.stdout,
        on_promote: Any = None,
        clock: Any = time.time,
        sleep: Any = time.sleep,
        report_stem: str | None = None,
        decision_log: Path | None = None,
        verbose: bool = False,
    ) -> None:
        if config.ramp is None:
            raise AbgateError(f"{config.name} has no ramp plan (add a `ramp:` section)")
        self.store = store
        self.name = config.name
        self.plan = config.ramp
        self.variant = config.ramp.variant or ""
        self.out_dir = out_dir
        self.decision_log = DecisionLog(decision_log or out_dir / f"ramp-{config.name}.log")
        self.verbose = verbose
        # Everything the loop writes passes the display, so a message lands above
        # or below the live block, never inside it. With ``verbose`` the decision
        # records stream to stderr between redraws and would tear the block: the
        # display then writes plain lines.
        self.display = RampDisplay(
            out,
            experiment=config.name,
            plan=config.ramp,
            log_path=str(self.decision_log.path),
            live=out.isatty() and not verbose,
        )
        self.out: Any = self.display
        self.on_promote = on_promote
        self.clock = clock
        self.sleep = sleep
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{int(clock())}"
        self._file_config = config
        self.report_stem = report_stem or f"{config.name}-ramp-report"
        # How the shadow phase ended, once it has: kept with the state for the report.
        self._shadow_phase: dict[str, Any] | None = None
        self.shadow_steps = ShadowSteps(
            store, self.name, self.variant, self.plan, self._config, clock, sleep, ACTOR
        )

    # --- state ----------------------------------------------------------------

    def _config(self) -> ExperimentConfig:
        return ExperimentConfig.model_validate(self.store.get_config(self.name).config)

    def _snapshot(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.store.totals(self.name).items()}

    def _save(
        self,
        state: RampState,
        ramp_base: dict[str, str],
        step_base: dict[str, str],
        history: list[dict[str, Any]] | None = None,
    ) -> None:
        self.store.save_ramp_state(
            self.name,
            {
                **state.as_dict(),
                "ramp_baseline": ramp_base,
                "step_baseline": step_base,
                "owner": self.owner,
                # every step's start and totals snapshot: the report's per-step counts
                "history": history or [],
                **({"shadow_phase": self._shadow_phase} if self._shadow_phase else {}),
            },
        )

    def _set_weight(self, percent: float, decision: Decision | None, action: str) -> None:
        config = self._config()
        updated = config.with_weights(config.ramp_weights(percent))
        reason = decision.reason if decision else f"ramp starts at {percent:g} %"
        evidence = {"weight": percent, **(decision.evidence if decision else {})}
        self.store.put_config(
            self.name,
            updated.model_dump(mode="json"),
            actor=ACTOR,
            action=action,
            reason=reason,
            evidence=evidence,
        )

    # --- the loop ---------------------------------------------------------------

    def run(self) -> RampOutcome:
        """Ramp to the end; raises Conflict when another controller holds the lock.

        Redis going away pauses the ramp: it waits for Redis to answer again and
        resumes from the state it stored (as a second ``abgate ramp`` would), so a
        Redis restart never leaves a canary at a step with nobody deciding.
        """
        if self.store.acquire_ramp_lock(self.name, self.owner, LOCK_TTL_S) is None:
            holder = self.store.ramp_lock_owner(self.name) or "another controller"
            raise Conflict(
                f"a ramp of {self.name} is already running ({holder}); wait for it or stop it first"
            )
        try:
            while True:
                try:
                    return self._run()
                except RedisUnavailable as exc:
                    self._wait_for_redis(exc)
        finally:
            with contextlib.suppress(RedisUnavailable):
                self.store.release_ramp_lock(self.name, self.owner)

    def _hold_lock(self) -> None:
        """Extend the lock, or take it again when it expired (a long Redis outage);
        Conflict when another controller holds it now."""
        if self.store.refresh_ramp_lock(self.name, self.owner, LOCK_TTL_S):
            return
        if self.store.acquire_ramp_lock(self.name, self.owner, LOCK_TTL_S) is None:
            holder = self.store.ramp_lock_owner(self.name) or "another controller"
            raise Conflict(f"the ramp of {self.name} was taken over by {holder}; this one stops")

    def _wait_for_redis(self, exc: RedisUnavailable) -> None:
        self.out.write(
            f"Redis is unavailable ({exc.message}): the ramp waits, and resumes from its "
            "stored state when Redis answers\n"
        )
        log.warning("ramp paused, Redis unavailable: %s", exc.message, extra=fields(
            experiment=self.name))  # fmt: skip
        while True:
            self.sleep(min(self.plan.check_interval_s, 1.0))
            try:
                self.store.ping()
                self._hold_lock()
            except RedisUnavailable:
                continue
            self.out.write("Redis answers again: resuming the ramp\n")
            return

    def _resume_or_start(self) -> tuple[RampState, dict[str, str], dict[str, str]]:
        stored = self.store.ramp_state(self.name)
        if stored is not None and stored.get("status") == "running":
            state = RampState.from_dict(stored)
            if state.shadow:
                where = "in its shadow phase (0 % of users, mirrored)"
            else:
                where = (
                    f"at step {state.step + 1}/{len(self.plan.steps)} "
                    f"({self.plan.steps[state.step]:g} %)"
                )
            self.out.write(f"resuming the ramp of {self.name} {where}\n")
            return state, stored["ramp_baseline"], stored["step_baseline"]
        try:
            self.store.get_config(self.name)
        except AbgateError:
            self.store.put_config(
                self.name,
                self._file_config.model_dump(mode="json"),
                actor=ACTOR,
                action="apply",
                reason="ramp start",
            )
        now = self.clock()
        base = self._snapshot()
        phase = self.plan.shadow
        if phase is not None:
            state = RampState(0, now, now, shadow=True)
            self.shadow_steps.enter(phase.mirror)
            self._save(state, base, base)
            self.out.write(
                f"shadow phase of {self.variant} in {self.name}: mirrored for "
                f"{phase.mirror:.0%} of units, serving no user, judged on paired "
                f"{phase.metric}; then steps {' → '.join(f'{s:g}' for s in self.plan.steps)} %\n"
            )
            return state, base, base
        state = RampState(0, now, now)
        self._set_weight(float(self.plan.steps[0]), None, "ramp_start")
        self._save(state, base, base)
        self.out.write(
            f"ramping {self.variant} of {self.name}: steps "
            f"{' → '.join(f'{s:g}' for s in self.plan.steps)} %\n"
        )
        return state, base, base

    def _observe(self, ramp_base: dict[str, str], step_base: dict[str, str]) -> Observation:
        config = self._config()
        now = self.clock()
        ramp_data = experiment_data(self.store, self.name, baseline=ramp_base, config=config)
        step_data = experiment_data(self.store, self.name, baseline=step_base, config=config)
        return observe(self.plan, ramp_data, step_data, now)

    def _run(self) -> RampOutcome:
        state, ramp_base, step_base = self._resume_or_start()
        stored = self.store.ramp_state(self.name) or {}
        self._shadow_phase = stored.get("shadow_phase")  # a resumed ramp past its shadow phase
        history: list[dict[str, Any]] = list(stored.get("history") or [])
        if not history and not state.shadow:
            history = [self._history_entry(state, self.plan.served_steps[state.step], step_base)]
        self._save(state, ramp_base, step_base, history)
        while True:
            self._hold_lock()
            if state.shadow:
                shadow_obs = self.shadow_steps.observe(ramp_base)
                decision = decide_shadow(self.plan, state, shadow_obs)
                self._log_decision(state, decision)
                self.display.update_shadow(state, shadow_obs, decision)
                now = shadow_obs.now
            else:
                obs = self._observe(ramp_base, step_base)
                decision = decide(self.plan, state, obs)
                self._log_decision(state, decision)
                self._progress(state, obs, decision)
                now = obs.now
            after = next_state(state, decision, now)
            if decision.action == "advance":
                assert decision.weight is not None
                if state.shadow:
                    self.shadow_steps.expose(decision)
                else:
                    self._set_weight(decision.weight, decision, "ramp_advance")
                start = self.clock()
                step_base = self._snapshot()
                if state.shadow:
                    self._shadow_phase = shadow_record(state, decision, start)
                    # The exposed ramp is measured from here: the shadow phase served
                    # the candidate to no user, so its data are the champion's alone.
                    state = replace(after, started_at=start, step_started_at=start)
                    ramp_base = step_base
                else:
                    state = replace(after, step_started_at=start)
                history.append(self._history_entry(state, decision.weight, step_base))
                self._save(state, ramp_base, step_base, history)
                self.out.write("\n")
            elif after.status != "running":
                return self._finish(after, decision, ramp_base, history)
            else:
                if after.looks != state.looks:  # a group-sequential look taken: never twice
                    self._save(after, ramp_base, step_base, history)
                state = after
                if decision.action == "hold":
                    self.store.add_audit(
                        self.name,
                        actor=ACTOR,
                        action="ramp_hold",
                        reason=decision.reason,
                        evidence=decision.evidence,
                    )
            self.sleep(self.plan.check_interval_s)

    @staticmethod
    def _history_entry(state: RampState, weight: float, baseline: dict[str, str]) -> dict[str, Any]:
        return {
            "step": state.step,
            "weight": weight,
            "started_at": state.step_started_at,
            "baseline": baseline,
        }

    def _steps(
        self, config: ExperimentConfig, history: list[dict[str, Any]], now: float, threshold: float
    ) -> tuple[StepRecord, ...]:
        """Each step's requests (totals between its snapshot and the next) and its SRM."""
        if not history:  # ended in its shadow phase: no step served
            return ()
        ends = [*history[1:], {"started_at": now, "baseline": self._snapshot()}]
        records = []
        for start, end in zip(history, ends, strict=True):
            served = (decode_stats(end["baseline"]) - decode_stats(start["baseline"])).variants()
            weight = float(start["weight"])
            records.append(
                step_record(
                    int(start["step"]),
                    weight,
                    config.ramp_weights(weight),
                    {v.name: served[v.name].requests if v.name in served else 0
                     for v in config.variants},
                    started_at=float(start["started_at"]),
                    ended_at=float(end["started_at"]),
                    threshold=threshold,
                )
            )  # fmt: skip
        return tuple(records)

    def _finish(
        self,
        state: RampState,
        decision: Decision,
        ramp_base: dict[str, str],
        history: list[dict[str, Any]],
    ) -> RampOutcome:
        config = self._config()
        now = self.clock()
        data = experiment_data(self.store, self.name, baseline=ramp_base, config=config)
        steps = self._steps(config, history, now, data.settings.srm_threshold)
        evidence = {"rule": decision.rule, "ending": state.status, **decision.evidence}
        if decision.action == "promote":
            # one config change: 100 % and the new champion together
            updated = changes.promote(config, self.variant)
            evidence["weight"] = decision.weight
        elif decision.action == "rollback" or self.plan.on_expiry == "rollback":
            updated = changes.rollback(config)
            evidence["weight"] = 0.0
        else:
            updated = None  # expired, on_expiry: hold: the weights stay for a person to decide
        held_at = (
            f"keeping {self.variant} mirrored, serving no user,"
            if state.shadow
            else f"holding at {self.plan.served_steps[state.step]:g} %"
        )
        if updated is None:
            self.store.add_audit(
                self.name,
                actor=ACTOR,
                action="ramp_expired",
                reason=f"{decision.reason}; {held_at} for a person to promote or roll back",
                evidence={**evidence, "on_expiry": "hold"},
            )
        else:
            self.store.put_config(
                self.name,
                updated.model_dump(mode="json"),
                actor=ACTOR,
                action={"promote": "promote", "rollback": "rollback"}.get(
                    decision.action, "ramp_expired"
                ),
                reason=decision.reason,
                evidence=evidence
                if decision.action != "expire"
                else {**evidence, "on_expiry": self.plan.on_expiry},
            )
        if state.shadow:
            self._shadow_phase = shadow_record(state, decision, now)
        self.store.save_ramp_state(
            self.name,
            {
                **state.as_dict(),
                "history": history,
                "rule": decision.rule,
                **({"shadow_phase": self._shadow_phase} if self._shadow_phase else {}),
            },
        )
        if decision.action == "promote" and self.on_promote is not None:
            self.on_promote(config.variant(self.variant))
        report = RampReport(
            experiment=self.name,
            variant=self.variant,
            status=state.status,
            rule=decision.rule,
            reason=decision.reason,
            evidence=decision.evidence,
            plan={
                **self.plan.model_dump(mode="json"),
                "served_steps": list(self.plan.served_steps),
            },
            steps=steps,
            shadow=self._shadow_phase,
        )
        self.out_dir.mkdir(parents=True, exist_ok=True)
        reports = {}
        for fmt, text in render_ramp_report(report, data).items():
            path = self.out_dir / f"{self.report_stem}.{fmt}"
            path.write_text(text)
            reports[fmt] = path
        held = (
            ", weights held for a person" if state.status == "expired" and updated is None else ""
        )
        self.out.write(f"\n{report.headline}{held}\n")
        for fmt, path in reports.items():
            self.out.write(f"  report ({fmt}): {path}\n")
        return RampOutcome(decision.action, decision.reason, reports, state.status, decision.rule)

    def _log_decision(self, state: RampState, decision: Decision) -> None:
        """Every decision, with the evidence it rests on, to the decision log file.

        On the console (the process's log handlers) only when ``verbose``: once a
        second they would bury the live display. An ending other than promotion
        is a WARNING.
        """
        level = (
            logging.WARNING if is_final(decision) and decision.action != "promote" else logging.INFO
        )
        record = log.makeRecord(
            log.name,
            level,
            __file__,
            0,
            "ramp decision",
            (),
            None,
            extra=fields(
                experiment=self.name,
                variant=self.variant,
                phase=state.phase,
                step=state.step + 1,
                steps=len(self.plan.steps),
                weight=self.plan.steps[state.step],
                action=decision.action,
                rule=decision.rule,
                reason=decision.reason,
                next_weight=decision.weight,
                evidence=decision.evidence,
            ),
        )
        self.decision_log.append(record)
        if self.verbose and log.isEnabledFor(level):
            log.handle(record)

    def _progress(self, state: RampState, obs: Observation, decision: Decision) -> None:
        self.display.update(state, obs, decision)
