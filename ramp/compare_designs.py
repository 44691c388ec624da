"""Compare the ramp's evidence designs by their operating characteristics.

``python -m ramp.compare_designs [--runs N]``.

For each shipped plan (experiments/canary.yaml at 250 requests/s, the plan
``make demo`` ramps with at 300 requests/s; champion accuracy 0.84), every
design runs the same seeded ramps through the real ``decide`` for a canary
equal to the champion and better or worse by 1x and 3x the margin. The table
(Markdown) is the one in docs/ramp.md; the winner is the plan default
(``ramp.test``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from analysis.inputs import AnalysisSettings
from experiments.config import ExperimentConfig
from experiments.ramp_plan import Ramp, RampTest
from ramp.simulation import SCENARIOS, RampSimulation, Scenario, operating_characteristics

__all__ = ["DESIGNS", "compare", "main", "shipped_plans"]

ROOT = Path(__file__).resolve().parent.parent
BASELINE = 0.84

# (label, test, power override for the group-sequential maximum information)
DESIGNS: tuple[tuple[str, RampTest, float | None], ...] = (
    ("mSPRT, tau = margin", "msprt", None),
    ("confidence sequence, N* = tuning_n (chosen)", "confidence_sequence", None),
    ("group-sequential, 10 looks, power 0.8", "group_sequential", 0.8),
    ("group-sequential, 10 looks, power 0.9", "group_sequential", 0.9),
)
_COMPARED = tuple(s for s in SCENARIOS if s.margins in (0.0, 1.0, -1.0, -3.0))


def shipped_plans() -> list[tuple[str, ExperimentConfig, float]]:
    """(label, config, requests/s) of experiments/canary.yaml and the demo's ramp."""
    from experiments.demo_plan import DEMO_CONFIG, DEMO_RAMP_RATE, demo_ramp_config
    from experiments.loader import load_experiment

    canary = load_experiment(ROOT / "experiments" / "canary.yaml")
    demo = demo_ramp_config(load_experiment(DEMO_CONFIG), "v3")
    return [
        ("experiments/canary.yaml at 250 req/s", canary, 250.0),
        (f"make demo's ramp at {DEMO_RAMP_RATE:g} req/s", demo, DEMO_RAMP_RATE),
    ]


def compare(
    plan: Ramp, settings: AnalysisSettings, *, rate: float, runs: int, seed: int = 1
) -> list[tuple[str, dict[str, RampSimulation]]]:
    """Every design's simulations of the compared scenarios, same seeds."""
    out = []
    for label, test, power in DESIGNS:
        used = settings if power is None else replace(settings, power=power)
        results = operating_characteristics(
            plan, used, rate=rate, baseline=BASELINE, runs=runs, seed=seed,
            scenarios=_COMPARED, test=test,
        )  # fmt: skip
        out.append((label, {scenario.name: sim for scenario, sim in results}))
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def table(rows: Sequence[tuple[str, dict[str, RampSimulation]]]) -> str:
    """Markdown: one row per design."""
    name = {s.margins: s.name for s in SCENARIOS}
    equal, better, worse1, worse3 = name[0.0], name[1.0], name[-1.0], name[-3.0]
    lines = [
        "| design | equal: rolled back | equal: promoted | equal: median s "
        "| -3x: past step 1 | -3x: canary requests | -3x: median s "
        "| -1x: promoted | -1x: canary requests | -1x: median s "
        "| +1x: promoted | +1x: median s |",
        "| --- " * 12 + "|",
    ]
    for label, sims in rows:
        e, b, w1, w3 = sims[equal], sims[better], sims[worse1], sims[worse3]
        lines.append(
            f"| {label} | {_pct(e.rollback_rate)} | {_pct(e.promotion_rate)} "
            f"| {e.median_decision_s:.0f} "
            f"| {_pct(w3.reach_rate(1) if len(w3.reached) > 1 else 0.0)} "
            f"| {w3.median_canary_requests:.0f} | {w3.median_decision_s:.0f} "
            f"| {_pct(w1.promotion_rate)} | {w1.median_canary_requests:.0f} "
            f"| {w1.median_decision_s:.0f} "
            f"| {_pct(b.promotion_rate)} | {b.median_decision_s:.0f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the comparison table of every shipped plan."""
    from recorded.reporting import settings_from_config

    parser = argparse.ArgumentParser(prog="python -m ramp.compare_designs", description=__doc__)
    parser.add_argument("--runs", type=int, default=500, help="ramps per design and canary")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.process_time()
    for label, config, rate in shipped_plans():
        assert config.ramp is not None
        settings = settings_from_config(config, None)
        rows = compare(config.ramp, settings, rate=rate, runs=args.runs, seed=args.seed)
        print(f"### {label}, {args.runs} runs per cell, seed {args.seed}\n")
        print(table(rows))
        print()
    print(f"({time.process_time() - started:.0f} s of CPU)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ += ["Scenario", "table"]
