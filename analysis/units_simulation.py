"""A/A experiments whose users send correlated requests, analysed per request and per unit.

    python -m analysis.units_simulation [EXPERIMENTS [SEED]]   (defaults 2000, 2024)

Each simulated experiment has two arms of users; each user sends a number of
requests (20 each, or 1 to 39 with mean 20) whose outcomes share the user's
own level, with an intra-user correlation of 0.3:

* mean metric: outcome = user effect + noise, var 0.3 + 0.7 (correlation 0.3);
* proportion: outcome ~ Bernoulli(p_user), p_user ~ Beta(7/6, 7/6): mean 0.5,
  correlation 1 / (a + b + 1) = 0.3 between two outcomes of one user.

Both arms come from the same population (A/A), so every "significant" result
is a false positive. The same data are tested through ``difference_test``,
the function the verdicts call, once with request-level statistics (every
request an observation, ``MetricStats``/``ProportionStats``) and once with the
per-unit ratio statistics the recorder keeps (``RatioStats``), fixed-horizon
and sequential. The request level ignores that a user's requests move
together: its variance is too small by the design effect 1 + (m - 1)·ρ
(6.7 for m = 20, ρ = 0.3), and it flags far more than α.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from analysis.difference import difference_test
from analysis.sufficient import MetricStats, ProportionStats, RatioStats, SampleStatistic

__all__ = ["UNIT_CASES", "UnitCase", "UnitRates", "simulate_units", "units_table"]

Kind = Literal["mean", "proportion"]
ICC = 0.3


@dataclass(frozen=True)
class UnitCase:
    """One simulated setting: metric kind, users per arm and requests per user."""

    kind: Kind
    users: int
    requests: int = 20  # per user (the mean, when ``uneven``)
    uneven: bool = False  # requests per user uniform on 1 .. 2·requests - 1

    @property
    def label(self) -> str:
        """How the case reads in the table."""
        what = "mean, sd 1" if self.kind == "mean" else "proportion 0.5"
        per = f"1-{2 * self.requests - 1} (mean {self.requests})" if self.uneven else self.requests
        return f"{what}, {self.users} users x {per} requests per arm"


UNIT_CASES = (
    UnitCase("proportion", 200),
    UnitCase("mean", 200),
    UnitCase("proportion", 200, uneven=True),
)


@dataclass(frozen=True)
class UnitRates:
    """A/A false-positive rates of one case, per analysis unit and test."""

    case: UnitCase
    experiments: int
    request_fixed: float
    request_sequential: float
    unit_fixed: float
    unit_sequential: float

    @property
    def standard_error(self) -> float:
        """Monte-Carlo standard error of a rate near α = 0.05."""
        return math.sqrt(0.05 * 0.95 / self.experiments)


def _arm(case: UnitCase, rng: np.random.Generator) -> tuple[SampleStatistic, RatioStats]:
    """One arm's request-level and unit-level statistics."""
    if case.uneven:
        counts = rng.integers(1, 2 * case.requests, size=case.users)
    else:
        counts = np.full(case.users, case.requests)
    if case.kind == "proportion":
        share = (1.0 / ICC - 1.0) / 2.0  # Beta(a, a) with 1 / (2a + 1) = ICC
        rates = rng.beta(share, share, size=case.users)
        y = rng.binomial(counts, rates).astype(float)
        request: SampleStatistic = ProportionStats(int(counts.sum()), float(y.sum()))
    else:
        level = rng.normal(0.0, math.sqrt(ICC), size=case.users)
        users = np.repeat(np.arange(case.users), counts)
        outcomes = level[users] + rng.normal(0.0, math.sqrt(1.0 - ICC), size=users.size)
        y = np.bincount(users, weights=outcomes, minlength=case.users)
        request = MetricStats(int(outcomes.size), float(outcomes.sum()), float(outcomes @ outcomes))
    x = counts.astype(float)
    unit = RatioStats(case.users, float(x.sum()), float(x @ x), float(y.sum()), float(y @ y),
                      float(x @ y), proportion=case.kind == "proportion")  # fmt: skip
    return request, unit


def _significant(control: SampleStatistic, treatment: SampleStatistic, *, sequential: bool,
                 alpha: float) -> bool:  # fmt: skip
    result, _ = difference_test(control, treatment, sequential=sequential, alpha=alpha)
    return not result.error and result.p_value < alpha


def simulate_units(
    case: UnitCase, experiments: int = 2000, seed: int = 2024, alpha: float = 0.05
) -> UnitRates:
    """False-positive rates of ``experiments`` seeded A/A runs of ``case``."""
    rng = np.random.default_rng(seed)
    flagged = np.zeros(4)
    for _ in range(experiments):
        (req_c, unit_c), (req_t, unit_t) = _arm(case, rng), _arm(case, rng)
        flagged += [
            _significant(req_c, req_t, sequential=False, alpha=alpha),
            _significant(req_c, req_t, sequential=True, alpha=alpha),
            _significant(unit_c, unit_t, sequential=False, alpha=alpha),
            _significant(unit_c, unit_t, sequential=True, alpha=alpha),
        ]
    rates = flagged / experiments
    return UnitRates(case, experiments, *(float(r) for r in rates))


def units_table(rows: Sequence[UnitRates], alpha: float = 0.05) -> str:
    """The rates as a Markdown table."""
    lines = [
        f"| case (A/A, intra-user correlation {ICC}, α = {alpha}) | per request, fixed | "
        "per request, sequential | per unit, fixed | per unit, sequential | ± s.e. |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r.case.label} | **{r.request_fixed:.4f}** | **{r.request_sequential:.4f}** | "
            f"{r.unit_fixed:.4f} | {r.unit_sequential:.4f} | {r.standard_error:.4f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table for ``[EXPERIMENTS [SEED]]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    experiments = int(args[0]) if args else 2000
    seed = int(args[1]) if len(args) > 1 else 2024
    rows = [simulate_units(case, experiments, seed + i) for i, case in enumerate(UNIT_CASES)]
    print(units_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
