"""The ramp loop: gather observations, ask the policy, apply its decision.

All state lives in Redis (step, start times, the totals snapshots the steps
are measured from), so Ctrl-C pauses safely and running ``abgate ramp`` again
resumes at the same step. A lock with an expiry refuses a second controller
on the same experiment. Every weight change goes through the store as a new
config version that all gateway replicas follow, with the decision's
evidence in the audit log.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from abgate.errors import AbgateError, Conflict
from abgate.logs import fields
from abgate.reporting import experiment_data, write_report
from abgate.store import Store
from experiments import changes
from experiments.config import ExperimentConfig
from ramp.decision_log import DecisionLog
from ramp.display import RampDisplay
from ramp.policy import Decision, Observation, RampState, decide, observe
from ramp.progress import is_final

__all__ = ["EXIT_PROMOTED", "EXIT_ROLLED_BACK", "RampController", "RampOutcome"]

EXIT_PROMOTED = 0
EXIT_ROLLED_BACK = 3
ACTOR = "ramp-controller"
LOCK_TTL_S = 30.0

log = logging.getLogger("abgate.ramp")


@dataclass(frozen=True)
class RampOutcome:
    """How a ramp ended."""

    action: str  # "promote" | "rollback"
    reason: str
    reports: dict[str, Path]

    @property
    def exit_code(self) -> int:
        """0 on promotion, 3 on rollback."""
        return EXIT_PROMOTED if self.action == "promote" else EXIT_ROLLED_BACK


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

    # --- state ----------------------------------------------------------------

    def _config(self) -> ExperimentConfig:
        return ExperimentConfig.model_validate(self.store.get_config(self.name).config)

    def _snapshot(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.store.totals(self.name).items()}

    def _save(self, state: RampState, ramp_base: dict[str, str], step_base: dict[str, str]) -> None:
        self.store.save_ramp_state(
            self.name,
            {
                **state.as_dict(),
                "ramp_baseline": ramp_base,
                "step_baseline": step_base,
                "owner": self.owner,
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
        """Ramp to the end; raises Conflict when another controller holds the lock."""
        if self.store.acquire_ramp_lock(self.name, self.owner, LOCK_TTL_S) is None:
            holder = self.store.ramp_lock_owner(self.name) or "another controller"
            raise Conflict(
                f"a ramp of {self.name} is already running ({holder}); wait for it or stop it first"
            )
        try:
            return self._run()
        finally:
            self.store.release_ramp_lock(self.name, self.owner)

    def _resume_or_start(self) -> tuple[RampState, dict[str, str], dict[str, str]]:
        stored = self.store.ramp_state(self.name)
        if stored is not None and stored.get("status") == "running":
            state = RampState(
                int(stored["step"]), float(stored["started_at"]), float(stored["step_started_at"])
            )
            self.out.write(
                f"resuming the ramp of {self.name} at step {state.step + 1}/"
                f"{len(self.plan.steps)} ({self.plan.steps[state.step]:g} %)\n"
            )
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
        while True:
            self.store.refresh_ramp_lock(self.name, self.owner, LOCK_TTL_S)
            obs = self._observe(ramp_base, step_base)
            decision = decide(self.plan, state, obs)
            self._log_decision(state, decision)
            self._progress(state, obs, decision)
            if decision.action == "advance":
                assert decision.weight is not None
                self._set_weight(decision.weight, decision, "ramp_advance")
                now = self.clock()
                state = RampState(state.step + 1, state.started_at, now)
                step_base = self._snapshot()
                self._save(state, ramp_base, step_base)
                self.out.write("\n")
            elif decision.action in ("promote", "rollback"):
                return self._finish(state, decision, ramp_base)
            elif decision.action == "hold":
                self.store.add_audit(
                    self.name,
                    actor=ACTOR,
                    action="ramp_hold",
                    reason=decision.reason,
                    evidence=decision.evidence,
                )
            self.sleep(self.plan.check_interval_s)

    def _finish(
        self, state: RampState, decision: Decision, ramp_base: dict[str, str]
    ) -> RampOutcome:
        config = self._config()
        if decision.action == "promote":
            updated = changes.promote(config, self.variant)
            action, status = "promote", "promoted"
        else:
            updated = changes.rollback(config)
            action, status = "rollback", "rolled_back"
        data = experiment_data(self.store, self.name, baseline=ramp_base, config=config)
        self.store.put_config(
            self.name,
            updated.model_dump(mode="json"),
            actor=ACTOR,
            action=action,
            reason=decision.reason,
            evidence={"rule": decision.rule, **decision.evidence},
        )
        self.store.save_ramp_state(
            self.name,
            {**RampState(state.step, state.started_at, state.step_started_at, status).as_dict()},
        )
        if decision.action == "promote" and self.on_promote is not None:
            self.on_promote(config.variant(self.variant))
        reports = write_report(data, self.out_dir, self.report_stem)
        word = "PROMOTED" if action == "promote" else "ROLLED BACK"
        self.out.write(f"\n{word} {self.variant}: {decision.reason}\n")
        for fmt, path in reports.items():
            self.out.write(f"  report ({fmt}): {path}\n")
        return RampOutcome(action, decision.reason, reports)

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
