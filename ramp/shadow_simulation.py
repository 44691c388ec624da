"""Operating characteristics of a ramp's shadow phase, through the real ``decide_shadow``.

Each simulated shadow phase draws, at every check interval, the labelled
requests mirrored since the last check (Poisson at ``rate`` per second) and
their paired outcomes (both right, live only, shadow only, neither: a
multinomial with the cells of ``analysis.paired_simulation.PairedDesign``),
adds them up, and asks the real ``decide_shadow`` for every run, applying its
decision with ``next_state``. Out come the chances that a worse candidate is
rolled back before any user sees it, that an equal or better one is wrongly
rolled back or a worse one wrongly passed, and the labels and time to a decision.

Beside it, the power of the paired harm test against the two-sample test an
exposed canary would have, at the same number of labelled requests (split in
two arms for the two-sample test), both one-sided at alpha, sequential (20
looks) and at a fixed horizon.

    python -m ramp.shadow_simulation [--plan FILE] [--rate R] [--runs N] [--seed S]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analysis.frequentist import welch_p_values
from analysis.paired import PairedCounts, paired_sequential_p_values, paired_z_p_values
from analysis.paired_simulation import PairedDesign, simulate_power_runs
from analysis.sequential import sequential_p_values
from analysis.sufficient import FloatArray
from experiments.ramp_plan import Ramp
from ramp.policy import RampState, next_state
from ramp.shadow_policy import ShadowObservation, decide_shadow

__all__ = [
    "SHADOW_SCENARIOS",
    "ShadowPower",
    "ShadowScenario",
    "ShadowSimulation",
    "shadow_power",
    "simulate_shadow_phases",
]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_PLAN = ROOT / "experiments" / "shadow-canary.yaml"
LIVE_ACCURACY = 0.84
AGREEMENT = 0.90


@dataclass(frozen=True)
class ShadowScenario:
    """A candidate ``points`` accuracy points better (+) or worse (-) than the live model."""

    name: str
    points: float

    def design(self, live: float = LIVE_ACCURACY, agreement: float = AGREEMENT) -> PairedDesign:
        """The paired design: live accuracy, the candidate's, and their agreement."""
        return PairedDesign(live, live + self.points / 100.0, agreement=agreement)


SHADOW_SCENARIOS = (
    ShadowScenario("better by 2 points", 2.0),
    ShadowScenario("better by 1 point", 1.0),
    ShadowScenario("equal", 0.0),
    ShadowScenario("worse by 1 point", -1.0),
    ShadowScenario("worse by 2 points", -2.0),
    ShadowScenario("worse by 4 points", -4.0),
)


@dataclass(frozen=True)
class ShadowSimulation:
    """Endings of simulated shadow phases of one candidate."""

    runs: int
    passed: int
    rolled_back: int
    expired: int
    labels: tuple[int, ...] = field(repr=False)  # per run, at its decision (or the end)
    decision_s: tuple[float, ...] = field(repr=False)  # per run; max_duration_s if none

    @property
    def pass_rate(self) -> float:
        """Share of phases that passed to the first exposed step."""
        return self.passed / self.runs

    @property
    def rollback_rate(self) -> float:
        """Share rolled back in the shadow phase, before any user saw the candidate."""
        return self.rolled_back / self.runs

    @property
    def expiry_rate(self) -> float:
        """Share that expired (neither shown within max_duration_s)."""
        return self.expired / self.runs

    @property
    def median_labels(self) -> float:
        """Median labelled requests scored for both models before the decision."""
        return float(np.median(self.labels))

    @property
    def median_decision_s(self) -> float:
        """Median time from the phase's start to its decision."""
        return float(np.median(self.decision_s))


def simulate_shadow_phases(
    plan: Ramp,
    design: PairedDesign,
    *,
    rate: float,
    runs: int = 500,
    alpha: float = 0.05,
    tuning: float = 5000.0,
    seed: int | np.random.SeedSequence = 0,
) -> ShadowSimulation:
    """``runs`` shadow phases of ``plan`` with ``rate`` labelled mirrored requests per second."""
    phase = plan.shadow
    if phase is None:
        raise ValueError("the plan has no shadow phase")
    rng = np.random.default_rng(seed)
    interval = plan.check_interval_s
    checks = math.ceil(phase.max_duration_s / interval) + 2
    cells = np.asarray(design.cells)
    states = [RampState(0, 0.0, 0.0, shadow=True) for _ in range(runs)]
    counts = np.zeros((runs, 4), dtype=np.int64)
    active = np.ones(runs, dtype=bool)
    labels = np.zeros(runs, dtype=np.int64)
    decision_s = np.full(runs, phase.max_duration_s, dtype=np.float64)
    endings = {"advance": 0, "rollback": 0, "expire": 0}
    for check in range(1, checks + 1):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        now = check * interval
        arrivals = rng.poisson(rate * interval, size=idx.size)
        counts[idx] += rng.multinomial(arrivals, cells)
        for run in idx:
            both, live_only, shadow_only, neither = (int(x) for x in counts[run])
            obs = ShadowObservation(
                now=now,
                variant="candidate",
                metric="accuracy",
                counts=PairedCounts(both, live_only, shadow_only, neither),
                alpha=alpha,
                tuning=tuning,
            )
            decision = decide_shadow(plan, states[run], obs)
            states[run] = next_state(states[run], decision, now)
            if decision.action in endings:
                endings[decision.action] += 1
                active[run] = False
                labels[run] = counts[run].sum()
                decision_s[run] = now
    labels[active] = counts[active].sum(axis=1)
    return ShadowSimulation(
        runs=runs,
        passed=endings["advance"],
        rolled_back=endings["rollback"],
        expired=endings["expire"],
        labels=tuple(int(x) for x in labels),
        decision_s=tuple(float(x) for x in decision_s),
    )


@dataclass(frozen=True)
class ShadowPower:
    """Shares of runs in which harm was shown, paired against two-sample, at ``requests``
    labelled requests in all (the two-sample test has half in each arm)."""

    design: PairedDesign
    requests: int
    experiments: int
    paired_sequential: float
    two_sample_sequential: float
    paired_fixed: float
    two_sample_fixed: float


def shadow_power(
    design: PairedDesign,
    requests: int,
    *,
    experiments: int = 2000,
    looks: int = 20,
    alpha: float = 0.05,
    seed: int | np.random.SeedSequence = 0,
) -> ShadowPower:
    """How often the one-sided harm test (null: no worse) fires, paired and two-sample.

    Sequential: at any of ``looks`` equal looks, both confidence sequences tuned
    to N* = ``requests``. Fixed: once, at ``requests``.
    """
    runs = simulate_power_runs(design, requests, experiments=experiments, looks=looks, seed=seed)
    live_only, shadow_only, n = runs.live_only, runs.shadow_only, runs.n
    paired_seq = paired_sequential_p_values(
        live_only, shadow_only, n, alternative="less", alpha=alpha, tuning=float(requests)
    )
    paired_fixed = paired_z_p_values(
        live_only[:, -1], shadow_only[:, -1], n[:, -1], alternative="less"
    )
    live, shadow = runs.live, runs.shadow
    two_seq = sequential_p_values(
        live, shadow, difference_type="absolute", alternative="less", alpha=alpha,
        tuning=float(requests),
    )  # fmt: skip
    two_fixed = welch_p_values(live, shadow, difference_type="absolute", alternative="less")

    def share(p_values: FloatArray) -> float:
        fired = np.nan_to_num(p_values, nan=1.0) < alpha
        return float(np.mean(fired.any(axis=1) if fired.ndim > 1 else fired))

    return ShadowPower(
        design=design,
        requests=requests,
        experiments=experiments,
        paired_sequential=share(paired_seq),
        two_sample_sequential=share(two_seq),
        paired_fixed=share(paired_fixed),
        two_sample_fixed=share(two_fixed[:, -1]),
    )


POWER_REQUESTS = (1000, 2000, 5000, 10000)
POWER_SCENARIOS = tuple(s for s in SHADOW_SCENARIOS if s.points in (-1.0, -2.0))


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def outcomes_table(rows: Sequence[tuple[ShadowScenario, ShadowSimulation]]) -> str:
    """Markdown: one row per candidate."""
    lines = [
        "| candidate | passed to the first step | rolled back (no user exposed) | expired "
        "| median labels to a decision | median s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for scenario, sim in rows:
        lines.append(
            f"| {scenario.name} | {_pct(sim.pass_rate)} | {_pct(sim.rollback_rate)} "
            f"| {_pct(sim.expiry_rate)} | {sim.median_labels:,.0f} | {sim.median_decision_s:.0f} |"
        )
    return "\n".join(lines)


def power_table(rows: Sequence[ShadowPower]) -> str:
    """Markdown: one row per candidate and number of labelled requests."""
    lines = [
        "| candidate | labelled requests | paired, sequential | two-sample, sequential "
        "| paired, fixed | two-sample, fixed |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        gap = 100 * (row.design.shadow_accuracy - row.design.live_accuracy)
        lines.append(
            f"| {gap:+.0f} points | {row.requests:,} | {_pct(row.paired_sequential)} "
            f"| {_pct(row.two_sample_sequential)} | {_pct(row.paired_fixed)} "
            f"| {_pct(row.two_sample_fixed)} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print both tables for a plan with a shadow phase."""
    from experiments.loader import load_experiment

    parser = argparse.ArgumentParser(prog="python -m ramp.shadow_simulation", description=__doc__)
    parser.add_argument(
        "--plan", default=str(EXAMPLE_PLAN), help="experiment YAML with ramp.shadow"
    )
    parser.add_argument(
        "--rate", type=float, default=250.0, help="labelled mirrored requests per second"
    )
    parser.add_argument("--runs", type=int, default=1000, help="shadow phases per candidate")
    parser.add_argument("--power-runs", type=int, default=2000, help="runs per power cell")
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args(argv)
    config = load_experiment(args.plan)
    plan = config.ramp
    if plan is None or plan.shadow is None:
        print(f"{args.plan}: no ramp.shadow to simulate", file=sys.stderr)
        return 1
    stats = config.statistics
    started = time.process_time()
    streams = iter(
        np.random.SeedSequence(args.seed).spawn(
            len(SHADOW_SCENARIOS) + len(POWER_SCENARIOS) * len(POWER_REQUESTS)
        )
    )
    shadow = plan.shadow
    shown = Path(args.plan).resolve()
    shown_plan = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else Path(args.plan)
    print(
        f"### Shadow phase of {shown_plan} at {args.rate:g} labelled requests/s: live accuracy "
        f"{LIVE_ACCURACY}, models agree on {AGREEMENT:.0%} of requests, margin "
        f"{plan.non_inferiority_margin:.1%} (relative), min_labels {shadow.min_labels}, max "
        f"{shadow.max_duration_s:g}s, rollback_on {shadow.rollback_on}, alpha {stats.alpha}, "
        f"N* {stats.tuning_n}; {args.runs} runs per row, seed {args.seed}\n"
    )
    rows = [
        (
            scenario,
            simulate_shadow_phases(
                plan,
                scenario.design(),
                rate=args.rate,
                runs=args.runs,
                alpha=stats.alpha,
                tuning=float(stats.tuning_n),
                seed=next(streams),
            ),
        )
        for scenario in SHADOW_SCENARIOS
    ]
    print(outcomes_table(rows))
    print(
        f"\n### Harm shown (one-sided, alpha {stats.alpha}), paired against two-sample at the "
        f"same labelled requests, {args.power_runs} runs per cell; sequential: any of 20 looks\n"
    )
    power = [
        shadow_power(
            scenario.design(),
            requests,
            experiments=args.power_runs,
            alpha=stats.alpha,
            seed=next(streams),
        )
        for scenario in POWER_SCENARIOS
        for requests in POWER_REQUESTS
    ]
    print(power_table(power))
    print(f"\n({time.process_time() - started:.0f} s of CPU)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
