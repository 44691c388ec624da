"""A/A experiments whose weights change while the metric drifts: pooled vs stratified.

Each simulated experiment routes 90/10 for the first half and 50/50 for the
second (two epochs) while the metric's rate rises linearly over the whole
experiment; both arms have the same rate at every moment, so every promotion
or rollback is a false decision. At each look the real decision code
(``analysis.decisions.analyze``) runs twice on the same data: once with the
two epochs (the estimate is stratified by epoch) and once with them merged
into one epoch of unknown routing (everything pooled, as before epochs were
kept). The table gives the share of experiments with a false decision at any
look, each direction apart.

    python -m analysis.stratified_simulation [--experiments 2000] [--seed 7]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analysis.decisions import analyze
from analysis.epochs import Epoch
from analysis.inputs import AnalysisSettings, ExperimentData, VariantData
from analysis.sufficient import MetricStats, VariantStats

__all__ = ["TrendCase", "TrendRates", "simulate_trend"]

ARMS = ("champion", "canary")
SPLITS = ((0.9, 0.1), (0.5, 0.5))  # the two epochs' weights


@dataclass(frozen=True)
class TrendCase:
    """The metric's rate at the start and the end; looks and requests per look."""

    start_rate: float
    end_rate: float
    looks: int = 10  # half in each epoch
    per_look: int = 1000


@dataclass(frozen=True)
class TrendRates:
    """Shares of A/A experiments with a false promotion / rollback at any look."""

    case: TrendCase
    experiments: int
    stratified: tuple[float, float]  # (promote, rollback)
    pooled: tuple[float, float]


def _settings(case: TrendCase, alpha: float) -> AnalysisSettings:
    return AnalysisSettings(
        alpha=alpha,
        sequential=True,
        tuning_n=case.looks * case.per_look,
        min_samples=100,
        primary_metric="accuracy",
        max_error_rate_increase=None,
        max_p99_ratio=None,
    )


def _data(
    name: str, settings: AnalysisSettings, epochs: list[dict[str, tuple[int, int]]], pooled: bool
) -> ExperimentData:
    """The engine's input from per-epoch (requests, successes) per arm."""
    built = []
    for index, counts in enumerate(epochs):
        variants = {
            arm: VariantStats(n, metrics={"accuracy": MetricStats(n, float(k), float(k))})
            for arm, (n, k) in counts.items()
        }
        weights = dict(zip(ARMS, SPLITS[index], strict=True))
        built.append(Epoch(index + 1, None if pooled else weights, variants=variants))
    if pooled:
        total = {arm: sum((e.variants[arm] for e in built), VariantStats()) for arm in ARMS}
        built = [Epoch(0, None, variants=total)]
    totals = {arm: sum((e.variants[arm] for e in built), VariantStats()) for arm in ARMS}
    arms = tuple(
        VariantData(
            name=arm,
            role="champion" if arm == "champion" else "canary",
            weight=SPLITS[-1][i],
            requests=totals[arm].requests,
            metrics={"accuracy": totals[arm].proportion("accuracy")},
        )
        for i, arm in enumerate(ARMS)
    )
    return ExperimentData(name=name, variants=arms, settings=settings, epochs=tuple(built))


def _one(case: TrendCase, rng: np.random.Generator, settings: AnalysisSettings) -> list[str]:
    """The first decision each reading makes (stratified, pooled): promote, rollback or ''."""
    rates = np.linspace(case.start_rate, case.end_rate, case.looks)
    epochs: list[dict[str, tuple[int, int]]] = []
    first = {"stratified": "", "pooled": ""}
    for look in range(case.looks):
        epoch = 0 if look < case.looks // 2 else 1
        if len(epochs) <= epoch:
            epochs.append(dict.fromkeys(ARMS, (0, 0)))
        n = rng.multinomial(case.per_look, SPLITS[epoch])
        for arm, arm_n in zip(ARMS, n, strict=True):
            was_n, was_k = epochs[epoch][arm]
            epochs[epoch][arm] = (was_n + int(arm_n), was_k + int(rng.binomial(arm_n, rates[look])))
        for reading in first:
            if first[reading]:
                continue
            result = analyze(_data("aa", settings, epochs, pooled=reading == "pooled"))
            action = result.verdicts[0].action
            if action in ("promote", "rollback"):
                first[reading] = action
    return [first["stratified"], first["pooled"]]


def simulate_trend(
    case: TrendCase, experiments: int = 2000, *, alpha: float = 0.05, seed: int = 7
) -> TrendRates:
    """Run ``experiments`` seeded A/A experiments of ``case`` through ``analyze``."""
    rng = np.random.default_rng(seed)
    settings = _settings(case, alpha)
    outcomes = np.array([_one(case, rng, settings) for _ in range(experiments)])

    def shares(column: int) -> tuple[float, float]:
        got = outcomes[:, column]
        return float(np.mean(got == "promote")), float(np.mean(got == "rollback"))

    return TrendRates(case, experiments, stratified=shares(0), pooled=shares(1))


CASES = (TrendCase(0.10, 0.10), TrendCase(0.10, 0.15), TrendCase(0.10, 0.20))


def _main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.stratified_simulation")
    parser.add_argument("--experiments", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    print(
        f"A/A, 90/10 then 50/50 at half time, {CASES[0].looks} looks of {CASES[0].per_look} "
        f"requests, sequential alpha 0.05, {args.experiments} experiments per row"
    )
    print("rate start->end | stratified promote / rollback | pooled promote / rollback")
    for case in CASES:
        r = simulate_trend(case, args.experiments, seed=args.seed)
        print(
            f"{case.start_rate:.2f} -> {case.end_rate:.2f}    | "
            f"{r.stratified[0]:.4f} / {r.stratified[1]:.4f}             | "
            f"{r.pooled[0]:.4f} / {r.pooled[1]:.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
