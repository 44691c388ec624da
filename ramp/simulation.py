"""Operating characteristics of a ramp plan: simulated ramps through the real decision code.

Each simulated ramp draws the traffic of every check interval (Poisson
arrivals split by the step's weight, binomial outcomes and errors), measures
it with the same functions ``observe`` uses (the primary metric's bounds from
``ramp.evidence``, the error-rate guardrails' sequential tests, the per-step
SRM), vectorised over all runs, and then asks the real ``decide`` for every
run, applying the decision with ``next_state``. What comes out: how often a
ramp is promoted, rolled back for harm or expires; how far it gets; how many
canary requests it serves and how long it takes to a decision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from analysis.decisions import Verdict
from analysis.inputs import AnalysisSettings
from analysis.results import DifferenceType
from analysis.sequential import sequential_p_values
from analysis.srm import DEFAULT_MIN_UNITS, SrmResult, sample_ratio_mismatch
from analysis.sufficient import FloatArray, Moments
from experiments.ramp_plan import Ramp, RampTest
from ramp.evidence import evidence_arrays, evidence_at, evidence_design
from ramp.policy import Observation, RampState, decide, next_state

__all__ = [
    "SCENARIOS",
    "RampSimulation",
    "Scenario",
    "operating_characteristics",
    "simulate_ramps",
]


@dataclass(frozen=True)
class Scenario:
    """A canary whose primary metric differs from the champion's by ``margins`` margins."""

    name: str
    margins: float


SCENARIOS = (
    Scenario("better by 3x margin", 3.0),
    Scenario("better by 1x margin", 1.0),
    Scenario("equal", 0.0),
    Scenario("worse by 1x margin", -1.0),
    Scenario("worse by 3x margin", -3.0),
)


@dataclass(frozen=True)
class RampSimulation:
    """Outcomes of simulated ramps of one canary."""

    runs: int
    promotions: int
    rollbacks: int
    expiries: int
    rules: dict[str, int]
    reached: tuple[int, ...]  # runs that served each served step (the first: all)
    canary_requests: tuple[int, ...] = field(repr=False)  # per run, until it ended
    decision_s: tuple[float, ...] = field(repr=False)  # per run; max_duration_s if none

    @property
    def unfinished(self) -> int:
        """Runs that were still going after max_duration_s (an SRM hold, say)."""
        return self.runs - self.promotions - self.rollbacks - self.expiries

    @property
    def rollback_rate(self) -> float:
        """Share of ramps rolled back (harm, a guardrail or SRM)."""
        return self.rollbacks / self.runs

    @property
    def promotion_rate(self) -> float:
        """Share of ramps promoted."""
        return self.promotions / self.runs

    @property
    def expiry_rate(self) -> float:
        """Share of ramps that expired."""
        return self.expiries / self.runs

    def reach_rate(self, step: int) -> float:
        """Share of ramps that served step ``step`` (0-based)."""
        return self.reached[step] / self.runs

    @property
    def median_canary_requests(self) -> float:
        """Median canary requests served before the ramp ended."""
        return float(np.median(self.canary_requests))

    @property
    def median_decision_s(self) -> float:
        """Median time from the start to the ramp's ending."""
        return float(np.median(self.decision_s))


_CONTINUE = Verdict("canary", "continue", "primary", "simulated: no guardrail failed")


def _srm_of(champion: int, canary: int, weight: float, p_value: float) -> SrmResult:
    if p_value < 1e-3 and min(champion, canary) >= DEFAULT_MIN_UNITS:
        return sample_ratio_mismatch(
            {"champion": champion, "canary": canary}, {"champion": 100 - weight, "canary": weight}
        )
    return SrmResult(
        arms=("champion", "canary"),
        observed=(champion, canary),
        expected=(0.0, 0.0),
        statistic=0.0,
        p_value=p_value,
        dof=1,
        threshold=1e-3,
        checked=True,
        mismatch=False,
        message="simulated: split matches",
    )


def _two_arm_srm_p(
    champion: npt.NDArray[np.int64], canary: npt.NDArray[np.int64], weight: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Chi-square p-value (1 dof) of the step's split, vectorised."""
    total = champion + canary
    with np.errstate(divide="ignore", invalid="ignore"):
        expected_c = total * weight / 100.0
        expected_h = total - expected_c
        statistic = (canary - expected_c) ** 2 / expected_c + (
            champion - expected_h
        ) ** 2 / expected_h
    statistic = np.where(total > 0, statistic, 0.0)
    return np.asarray([math.erfc(math.sqrt(s / 2.0)) for s in statistic], dtype=np.float64)


def _error_p(
    champion: Moments,
    canary: Moments,
    settings: AnalysisSettings,
    kind: DifferenceType,
    null: float,
) -> FloatArray:
    """One-sided sequential p-values of "the canary's error rate is worse than ``null``"."""
    return sequential_p_values(
        champion,
        canary,
        difference_type=kind,
        alternative="greater",
        alpha=settings.alpha,
        tuning=float(settings.tuning_n),
        null=null,
    )


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
    test: RampTest | None = None,
) -> RampSimulation:
    """Run ``runs`` ramps at ``rate`` requests/s; ``canary_p=None`` means A/A."""
    rng = np.random.default_rng(seed)
    design = evidence_design(plan, settings, test=test)
    if test is not None:
        plan = plan.model_copy(update={"test": test})
    p_canary = champion_p if canary_p is None else canary_p
    weights = np.asarray(plan.served_steps)
    higher = settings.direction == "increase"
    # The error-rate guardrails as configured (the simulated error rate is the
    # same for both arms); latency is not simulated.
    error_guards = [g for g in settings.active_guardrails if g.metric == "error_rate"]
    interval = plan.check_interval_s
    checks = math.ceil(plan.max_duration_s / interval) + 2

    states = [RampState(0, 0.0, 0.0) for _ in range(runs)]
    active = np.ones(runs, dtype=bool)
    step = np.zeros(runs, dtype=np.int64)
    # cumulative and in-step counts: [champion, canary]
    n = np.zeros((2, runs), dtype=np.int64)
    ok = np.zeros((2, runs), dtype=np.int64)
    err = np.zeros((2, runs), dtype=np.int64)
    step_n = np.zeros((2, runs), dtype=np.int64)
    reached_max = np.zeros(runs, dtype=np.int64)
    decision_s = np.full(runs, plan.max_duration_s, dtype=np.float64)
    canary_at_end = np.zeros(runs, dtype=np.int64)
    rules: dict[str, int] = {}
    endings = {"promoted": 0, "rolled_back": 0, "expired": 0}

    for check in range(1, checks + 1):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        now = check * interval
        weight = weights[step[idx]]
        arrivals = rng.poisson(rate * interval, size=idx.size)
        to_canary = rng.binomial(arrivals, weight / 100.0)
        served = np.stack([arrivals - to_canary, to_canary])
        good = rng.binomial(served, np.asarray([[champion_p], [p_canary]]))
        bad = rng.binomial(served, error_rate)
        n[:, idx] += served
        ok[:, idx] += good
        err[:, idx] += bad
        step_n[:, idx] += served

        champion = Moments.from_sums(n[0, idx], ok[0, idx], ok[0, idx], kind="proportion")
        canary = Moments.from_sums(n[1, idx], ok[1, idx], ok[1, idx], kind="proportion")
        arrays = evidence_arrays(design, champion, canary, proportion=True)
        guard = np.zeros(idx.size, dtype=bool)
        errors_c = Moments.from_sums(n[0, idx], err[0, idx], err[0, idx], kind="proportion")
        errors_t = Moments.from_sums(n[1, idx], err[1, idx], err[1, idx], kind="proportion")
        for spec in error_guards:
            relative = spec.relative
            if relative is None:
                p_err = _error_p(errors_c, errors_t, settings, "absolute", spec.value)
            else:
                # As ``analysis.guardrails``: a champion with no errors gives the
                # relative limit no base, and any significant increase fails.
                p_err = np.where(
                    err[0, idx] == 0,
                    _error_p(errors_c, errors_t, settings, "absolute", 0.0),
                    _error_p(errors_c, errors_t, settings, "relative", relative),
                )
            guard |= np.nan_to_num(p_err, nan=1.0) < settings.alpha
        srm_p = _two_arm_srm_p(step_n[0, idx], step_n[1, idx], weight)

        for j, run in enumerate(idx):
            verdict = _CONTINUE
            if guard[j]:
                verdict = Verdict(
                    "canary", "rollback", "guardrail:error_rate", "simulated error rate"
                )
            obs = Observation(
                now=now,
                variant="canary",
                step_samples={"champion": int(step_n[0, run]), "canary": int(step_n[1, run])},
                step_srm=_srm_of(
                    int(step_n[0, run]), int(step_n[1, run]), float(weight[j]), float(srm_p[j])
                ),
                verdict=verdict,
                primary=evidence_at(design, arrays, j, champion, canary, higher_is_better=higher),
            )
            state = states[run]
            decision = decide(plan, state, obs)
            states[run] = new = next_state(state, decision, now)
            if decision.action == "advance":
                step[run] = new.step
                reached_max[run] = new.step
                step_n[:, run] = 0
            elif new.status != "running":
                active[run] = False
                endings[new.status] += 1
                rules[decision.rule] = rules.get(decision.rule, 0) + 1
                decision_s[run] = now
                canary_at_end[run] = n[1, run]
    canary_at_end[active] = n[1, active]
    return RampSimulation(
        runs=runs,
        promotions=endings["promoted"],
        rollbacks=endings["rolled_back"],
        expiries=endings["expired"],
        rules=rules,
        reached=tuple(int(np.sum(reached_max >= k)) for k in range(len(weights))),
        canary_requests=tuple(int(x) for x in canary_at_end),
        decision_s=tuple(float(x) for x in decision_s),
    )


def operating_characteristics(
    plan: Ramp,
    settings: AnalysisSettings,
    *,
    rate: float,
    baseline: float,
    runs: int = 500,
    seed: int = 0,
    scenarios: tuple[Scenario, ...] = SCENARIOS,
    test: RampTest | None = None,
) -> list[tuple[Scenario, RampSimulation]]:
    """``simulate_ramps`` for each scenario; a scenario's lift is relative to ``baseline``."""
    out = []
    sign = 1.0 if settings.direction == "increase" else -1.0
    for k, scenario in enumerate(scenarios):
        lift = sign * scenario.margins * plan.non_inferiority_margin
        canary_p = min(1.0, max(0.0, baseline * (1.0 + lift)))
        result = simulate_ramps(
            plan,
            settings,
            runs=runs,
            rate=rate,
            champion_p=baseline,
            canary_p=canary_p,
            seed=seed + k,
            test=test,
        )
        out.append((scenario, result))
    return out
