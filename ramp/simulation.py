"""Calibration of the ramp: simulated A/A ramps through the real decision code.

Each simulated ramp sends the same model to both arms (canary = champion),
draws the outcomes of every check interval from the same distributions, and
runs ``observe`` + ``decide`` exactly as the controller does. The share of
ramps that end in a rollback is the false-rollback rate, which must stay at
or under alpha despite the repeated looks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.inputs import AnalysisSettings, ExperimentData, VariantData
from analysis.sufficient import ProportionStats
from experiments.config import Ramp
from ramp.policy import RampState, decide, observe

__all__ = ["RampSimulation", "simulate_ramps"]


@dataclass(frozen=True)
class RampSimulation:
    """Outcomes of simulated ramps."""

    runs: int
    rollbacks: int
    promotions: int
    unfinished: int
    rules: dict[str, int]

    @property
    def rollback_rate(self) -> float:
        """Share of ramps rolled back."""
        return self.rollbacks / self.runs


def _data(
    settings: AnalysisSettings,
    weight: float,
    n: dict[str, int],
    ok: dict[str, int],
    errors: dict[str, int],
) -> ExperimentData:
    variants = tuple(
        VariantData(
            name=name,
            role="champion" if name == "champion" else "canary",
            weight=(100 - weight) if name == "champion" else weight,
            requests=n[name],
            errors=errors[name],
            metrics={settings.primary_metric: ProportionStats(n[name], float(ok[name]))},
        )
        for name in ("champion", "canary")
    )
    return ExperimentData("simulated", variants, settings)


def simulate_ramps(
    plan: Ramp,
    settings: AnalysisSettings,
    *,
    runs: int = 200,
    rate: float = 200.0,
    champion_p: float = 0.84,
    canary_p: float | None = None,
    error_rate: float = 0.002,
    seed: int = 0,
) -> RampSimulation:
    """Run ``runs`` ramps at ``rate`` requests/s; ``canary_p=None`` means A/A."""
    rng = np.random.default_rng(seed)
    p = {"champion": champion_p, "canary": champion_p if canary_p is None else canary_p}
    names = ("champion", "canary")
    rules: dict[str, int] = {}
    finished = {"promote": 0, "rollback": 0}
    for _ in range(runs):
        state = RampState(0, 0.0, 0.0)
        total = {k: {v: 0 for v in names} for k in ("n", "ok", "err")}
        step = {k: {v: 0 for v in names} for k in ("n", "ok", "err")}
        now = 0.0
        outcome = None
        while now <= plan.max_duration_s + plan.check_interval_s:
            now += plan.check_interval_s
            weight = float(plan.steps[state.step])
            arrivals = rng.poisson(rate * plan.check_interval_s)
            to_canary = rng.binomial(arrivals, weight / 100)
            for name, count in (("champion", arrivals - to_canary), ("canary", to_canary)):
                ok = rng.binomial(count, p[name])
                err = rng.binomial(count, error_rate)
                for bucket in (total, step):
                    bucket["n"][name] += count
                    bucket["ok"][name] += ok
                    bucket["err"][name] += err
            ramp_data = _data(settings, weight, total["n"], total["ok"], total["err"])
            step_data = _data(settings, weight, step["n"], step["ok"], step["err"])
            decision = decide(plan, state, observe(plan, ramp_data, step_data, now))
            if decision.action == "advance":
                state = RampState(state.step + 1, state.started_at, now)
                step = {k: {v: 0 for v in names} for k in ("n", "ok", "err")}
            elif decision.action in ("promote", "rollback"):
                outcome = decision.action
                rules[decision.rule] = rules.get(decision.rule, 0) + 1
                break
        if outcome is not None:
            finished[outcome] += 1
    return RampSimulation(
        runs=runs,
        rollbacks=finished["rollback"],
        promotions=finished["promote"],
        unfinished=runs - finished["rollback"] - finished["promote"],
        rules=rules,
    )
