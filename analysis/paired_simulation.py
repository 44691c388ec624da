"""Operating characteristics of the paired shadow tests, by simulation.

Two questions, each over seeded simulated shadow phases:

* A/A — the shadow is exactly as accurate as the live model: how often does
  the paired confidence sequence, looked at after every batch of labelled
  requests, call it worse or better at any look? (Must stay under alpha.)
  The naive fixed-horizon test repeated at every look is shown beside it.
* Power — the shadow is 2 points better or worse: at the same number of
  labelled requests, how often does the paired test find it, against a
  two-sample test on two independent arms that split those requests (what an
  exposed A/B would have)? Both at a fixed horizon (one look at the end) and
  sequentially (every look).

Per request, the two models are right or wrong together with the
probabilities of ``PairedDesign.cells``; per-look counts are multinomial
blocks, summed cumulatively, and the tests are the vectorised forms of the
functions reports call.

    python -m analysis.paired_simulation [--experiments 2000] [--seed 18]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analysis._distributions import binomial_cdf
from analysis.frequentist import welch_p_values
from analysis.paired import paired_sequential_p_values, paired_z_p_values
from analysis.sequential import sequential_p_values
from analysis.sufficient import FloatArray, Moments

__all__ = [
    "FalseRejections",
    "GateRates",
    "PairedDesign",
    "PowerComparison",
    "PowerRuns",
    "compare_power",
    "simulate_aa",
    "simulate_gate",
    "simulate_power_runs",
]


@dataclass(frozen=True)
class PairedDesign:
    """True accuracies of the live model and the shadow, and how often they agree.

    ``agreement`` is the share of requests on which both are right or both
    wrong; the rest are discordant, split so that the accuracies come out.
    """

    live_accuracy: float
    shadow_accuracy: float
    agreement: float = 0.9

    @property
    def cells(self) -> tuple[float, float, float, float]:
        """Probabilities of (both right, live only, shadow only, neither) per request."""
        discordant = 1.0 - self.agreement
        gap = self.shadow_accuracy - self.live_accuracy
        live_only, shadow_only = (discordant - gap) / 2.0, (discordant + gap) / 2.0
        both = self.live_accuracy - live_only
        neither = 1.0 - both - live_only - shadow_only
        cells = (both, live_only, shadow_only, neither)
        if min(cells) < -1e-12:
            raise ValueError(
                f"no two models have accuracies {self.live_accuracy} and "
                f"{self.shadow_accuracy} and agree on {self.agreement:.0%} of requests"
            )
        return (both, live_only, shadow_only, max(neither, 0.0))


@dataclass(frozen=True)
class FalseRejections:
    """A/A: shares of runs called (worse, better) at any look, or at the last one.

    "Worse" means the shadow was called less accurate than the live model.
    """

    design: PairedDesign
    experiments: int
    looks: int
    per_look: int
    sequential: tuple[float, float]
    naive_every_look: tuple[float, float]
    fixed_z: tuple[float, float]
    fixed_mcnemar_exact: tuple[float, float]

    @property
    def noise(self) -> float:
        """Monte-Carlo standard error of a rejection share near alpha = 0.05."""
        return math.sqrt(0.05 * 0.95 / self.experiments)


@dataclass(frozen=True)
class PowerComparison:
    """Shares of runs that found the true direction of the difference, paired vs two-sample.

    ``requests`` labelled requests in all: the paired test scores both models
    on each; the two-sample test has ``requests / 2`` per arm.
    """

    design: PairedDesign
    experiments: int
    requests: int
    looks: int
    paired_fixed: float
    two_sample_fixed: float
    paired_sequential: float
    two_sample_sequential: float


def _paired_counts(
    rng: np.random.Generator, design: PairedDesign, experiments: int, looks: int, per_look: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Cumulative (live_only, shadow_only, n) at each look, shape (experiments, looks)."""
    blocks = rng.multinomial(per_look, design.cells, size=(experiments, looks))
    running = np.cumsum(blocks, axis=1).astype(np.float64)
    n = np.broadcast_to(np.arange(1, looks + 1, dtype=np.float64) * per_look, running.shape[:2])
    return running[..., 1], running[..., 2], n


@dataclass(frozen=True)
class GateRates:
    """Shares of runs in which the shadow gate's one-sided tests fired at any look.

    ``harm``: the shadow shown worse than live (by more than ``margin``);
    ``non_inferior``: shown no worse than live by more than ``margin``.
    """

    design: PairedDesign
    margin: float
    experiments: int
    harm: float
    non_inferior: float


def simulate_gate(
    design: PairedDesign,
    margin: float,
    *,
    experiments: int = 2000,
    looks: int = 20,
    per_look: int = 250,
    alpha: float = 0.05,
    seed: int | np.random.SeedSequence = 0,
) -> GateRates:
    """How often each of the gate's sequential one-sided tests fires at any of ``looks`` looks.

    With the shadow exactly ``margin`` worse than live, ``non_inferior`` is the
    chance of passing a model that sits on the margin (at most alpha); with
    equal accuracies and ``margin`` 0, both are false rejections.
    """
    rng = np.random.default_rng(seed)
    live_only, shadow_only, n = _paired_counts(rng, design, experiments, looks, per_look)
    tuning = float(looks * per_look)
    harm = paired_sequential_p_values(
        live_only, shadow_only, n, alternative="less", alpha=alpha, tuning=tuning, null=-margin
    )
    passed = paired_sequential_p_values(
        live_only, shadow_only, n, alternative="greater", alpha=alpha, tuning=tuning, null=-margin
    )
    return GateRates(
        design=design,
        margin=margin,
        experiments=experiments,
        harm=float(np.mean(np.any(harm < alpha, axis=1))),
        non_inferior=float(np.mean(np.any(passed < alpha, axis=1))),
    )


def _first_sides(p_values: FloatArray, difference: FloatArray, alpha: float) -> tuple[float, float]:
    """(worse, better) shares when each run stops at its first p < alpha."""
    reject = p_values < alpha
    stopped = reject.any(axis=1)
    sign = difference[np.arange(difference.shape[0]), reject.argmax(axis=1)]
    return float(np.mean(stopped & (sign < 0))), float(np.mean(stopped & (sign > 0)))


def simulate_aa(
    design: PairedDesign,
    *,
    experiments: int = 2000,
    looks: int = 20,
    per_look: int = 250,
    alpha: float = 0.05,
    seed: int | np.random.SeedSequence = 0,
) -> FalseRejections:
    """False rejections of equally accurate models, each run looked at ``looks`` times.

    The confidence sequence is tuned to the planned total (N* = looks·per_look).
    """
    if design.live_accuracy != design.shadow_accuracy:
        raise ValueError("an A/A design needs equal accuracies")
    if looks < 1 or experiments < 1 or per_look < 1:
        raise ValueError("need looks, experiments and per_look >= 1")
    rng = np.random.default_rng(seed)
    live_only, shadow_only, n = _paired_counts(rng, design, experiments, looks, per_look)
    difference = shadow_only - live_only
    sequential = paired_sequential_p_values(
        live_only, shadow_only, n, alpha=alpha, tuning=float(looks * per_look)
    )
    z = paired_z_p_values(live_only, shadow_only, n)
    last_l, last_s = live_only[:, -1], shadow_only[:, -1]
    exact = np.minimum(1.0, 2.0 * binomial_cdf(np.minimum(last_l, last_s), last_l + last_s, 0.5))
    last = difference[:, -1]
    return FalseRejections(
        design=design,
        experiments=experiments,
        looks=looks,
        per_look=per_look,
        sequential=_first_sides(sequential, difference, alpha),
        naive_every_look=_first_sides(z, difference, alpha),
        fixed_z=_first_sides(z[:, -1:], difference[:, -1:], alpha),
        fixed_mcnemar_exact=(
            float(np.mean((exact < alpha) & (last < 0))),
            float(np.mean((exact < alpha) & (last > 0))),
        ),
    )


def _found(p_values: FloatArray, estimate: FloatArray, alpha: float, sign: float) -> float:
    """Share of runs rejected at some look with the estimate on the true side there."""
    worse, better = _first_sides(p_values, estimate, alpha)
    return better if sign > 0 else worse


@dataclass(frozen=True)
class PowerRuns:
    """Simulated runs of both designs at the same number of labelled requests.

    The paired counts score both models on every request; the two independent
    arms (``live``, ``shadow``: proportions right) split the same number of
    requests in half, as an exposed A/B would. Every array has shape
    (experiments, looks) and is cumulative at each look.
    """

    live_only: FloatArray
    shadow_only: FloatArray
    n: FloatArray
    live: Moments
    shadow: Moments


def simulate_power_runs(
    design: PairedDesign,
    requests: int,
    *,
    experiments: int,
    looks: int,
    seed: int | np.random.SeedSequence,
) -> PowerRuns:
    """Draw ``experiments`` runs of ``requests`` labelled requests in ``looks`` equal looks.

    The paired counts and each arm come from their own stream of ``seed``, so a
    comparison at another number of requests or looks changes no other draw.
    """
    if requests % (2 * looks):
        raise ValueError(f"requests ({requests}) must split into {looks} looks of two arms")
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    paired_stream, live_stream, shadow_stream = root.spawn(3)
    per_look = requests // looks
    live_only, shadow_only, n = _paired_counts(
        np.random.default_rng(paired_stream), design, experiments, looks, per_look
    )
    # The same labelled requests split between two independent arms, half each.
    arm = per_look // 2
    arm_n = np.broadcast_to(np.arange(1, looks + 1, dtype=np.float64) * arm, n.shape)
    arms = []
    for stream, accuracy in (
        (live_stream, design.live_accuracy),
        (shadow_stream, design.shadow_accuracy),
    ):
        right = np.random.default_rng(stream).binomial(arm, accuracy, size=n.shape)
        total = np.cumsum(right, axis=1).astype(np.float64)
        arms.append(Moments.from_sums(arm_n, total, total, "proportion"))
    live, shadow = arms
    return PowerRuns(live_only, shadow_only, n, live, shadow)


def compare_power(
    design: PairedDesign,
    requests: int,
    *,
    experiments: int = 2000,
    looks: int = 20,
    alpha: float = 0.05,
    seed: int | np.random.SeedSequence = 0,
) -> PowerComparison:
    """Power of the paired and of the two-sample test at ``requests`` labelled requests.

    Fixed horizon: the paired Wald test against Welch's test, once at the end.
    Sequential: the paired confidence sequence against the two-sample one
    (both tuned to N* = ``requests``), at each of ``looks`` equal looks.
    """
    gap = design.shadow_accuracy - design.live_accuracy
    if gap == 0:
        raise ValueError("power needs a shadow more or less accurate than the live model")
    runs = simulate_power_runs(design, requests, experiments=experiments, looks=looks, seed=seed)
    live_only, shadow_only, n = runs.live_only, runs.shadow_only, runs.n
    paired_seq = paired_sequential_p_values(
        live_only, shadow_only, n, alpha=alpha, tuning=float(requests)
    )
    paired_z = paired_z_p_values(live_only[:, -1:], shadow_only[:, -1:], n[:, -1:])
    paired_difference = shadow_only - live_only
    live, shadow = runs.live, runs.shadow
    two_sample_difference = shadow.mean - live.mean
    welch = welch_p_values(live, shadow, difference_type="absolute")
    two_sample_seq = sequential_p_values(
        live, shadow, difference_type="absolute", alpha=alpha, tuning=float(requests)
    )
    sign = math.copysign(1.0, gap)
    return PowerComparison(
        design=design,
        experiments=experiments,
        requests=requests,
        looks=looks,
        paired_fixed=_found(paired_z, paired_difference[:, -1:], alpha, sign),
        two_sample_fixed=_found(welch[:, -1:], two_sample_difference[:, -1:], alpha, sign),
        paired_sequential=_found(paired_seq, paired_difference, alpha, sign),
        two_sample_sequential=_found(two_sample_seq, two_sample_difference, alpha, sign),
    )


AA_DESIGNS = (
    PairedDesign(0.85, 0.85, agreement=0.90),
    PairedDesign(0.85, 0.85, agreement=0.99),
    PairedDesign(0.70, 0.70, agreement=0.60),
)
GATE_CASES = (
    (PairedDesign(0.85, 0.85), 0.0),
    (PairedDesign(0.85, 0.84), 0.01),
    (PairedDesign(0.85, 0.83), 0.01),
    (PairedDesign(0.85, 0.86), 0.01),
)
POWER_DESIGNS = (PairedDesign(0.84, 0.86), PairedDesign(0.86, 0.84))
POWER_REQUESTS = (1000, 2000, 5000, 10000)


def _pair(rates: tuple[float, float]) -> str:
    return f"{rates[0]:.4f} / {rates[1]:.4f}"


def _main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.paired_simulation")
    parser.add_argument("--experiments", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args(argv)
    streams = iter(
        np.random.SeedSequence(args.seed).spawn(
            len(AA_DESIGNS) + len(GATE_CASES) + len(POWER_DESIGNS) * len(POWER_REQUESTS)
        )
    )
    print(
        f"A/A: {args.experiments} runs x 20 looks of 250 labelled requests, alpha 0.05, "
        f"seed {args.seed}; shadow called worse / better"
    )
    print(
        "| accuracy, agreement | sequential, any look | z test at every look (naive) | "
        "z test, last look | McNemar exact, last look |"
    )
    print("| --- | --- | --- | --- | --- |")
    for design in AA_DESIGNS:
        aa = simulate_aa(design, experiments=args.experiments, seed=next(streams))
        print(
            f"| {design.live_accuracy:.2f}, {design.agreement:.0%} | {_pair(aa.sequential)} | "
            f"{_pair(aa.naive_every_look)} | {_pair(aa.fixed_z)} | "
            f"{_pair(aa.fixed_mcnemar_exact)} |"
        )
    print(f"Monte-Carlo s.e. of a share near 0.05: {math.sqrt(0.05 * 0.95 / args.experiments):.4f}")
    print()
    print(
        f"Shadow gate, sequential one-sided tests at any of 20 looks of 250 requests "
        f"(N* = 5000), {args.experiments} runs per row, models agree on 90 % of requests"
    )
    print("| live -> shadow | margin | harm shown | non-inferiority shown |")
    print("| --- | --- | --- | --- |")
    for design, margin in GATE_CASES:
        gate = simulate_gate(design, margin, experiments=args.experiments, seed=next(streams))
        print(
            f"| {design.live_accuracy:.2f} -> {design.shadow_accuracy:.2f} | {margin:.2f} | "
            f"{gate.harm:.4f} | {gate.non_inferior:.4f} |"
        )
    print()
    print(
        f"Power: {args.experiments} runs per row, models agree on 90 % of requests, alpha 0.05; "
        "the same labelled requests scored twice (paired) or split between two arms (two-sample)"
    )
    print(
        "| live -> shadow | labelled requests | paired, fixed | two-sample, fixed | "
        "paired, sequential (20 looks) | two-sample, sequential (20 looks) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for design in POWER_DESIGNS:
        for requests in POWER_REQUESTS:
            power = compare_power(
                design, requests, experiments=args.experiments, seed=next(streams)
            )
            print(
                f"| {design.live_accuracy:.2f} -> {design.shadow_accuracy:.2f} | {requests} | "
                f"{power.paired_fixed:.4f} | {power.two_sample_fixed:.4f} | "
                f"{power.paired_sequential:.4f} | {power.two_sample_sequential:.4f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
