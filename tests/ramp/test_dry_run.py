"""``abgate ramp --dry-run``: the plan, the sample sizes, the time per step."""

from __future__ import annotations

from pathlib import Path

from analysis.power import sample_size_per_arm
from experiments.loader import load_experiment
from model_workers.registry import ModelRegistry
from ramp.dry_run import describe_plan, promotion_samples

CANARY = Path(__file__).resolve().parents[2] / "experiments" / "canary.yaml"


def test_plan_names_the_promotion_evidence_it_needs(demo_registry: ModelRegistry) -> None:
    config = load_experiment(CANARY)
    baseline = float(demo_registry.metadata("demo", "v1")["holdout_metrics"]["accuracy"])
    text = describe_plan(config, registry=demo_registry, store=None)
    needed = promotion_samples(config, baseline)
    assert needed is not None
    assert f"to promote: {needed} labelled outcomes per arm" in text
    assert "traffic: no REDIS_URL" in text
    assert text.count("  step ") == len(config.ramp.steps)
    # the one-sided detection of a lift of the margin, not the two-sided MDE figure
    stats = config.statistics
    two_sided = sample_size_per_arm(
        baseline, baseline * (1 - baseline), config.ramp.non_inferiority_margin,
        target_power=stats.power, alpha=stats.alpha, tuning=float(stats.tuning_n),
    ).n_per_arm  # fmt: skip
    assert two_sided is not None and needed < two_sided


def test_a_wider_margin_needs_fewer_samples_and_no_harm_needs_none(
    demo_registry: ModelRegistry,
) -> None:
    config = load_experiment(CANARY)
    assert config.ramp is not None
    wider = config.model_copy(
        update={"ramp": config.ramp.model_copy(update={"non_inferiority_margin": 0.05})}
    )
    narrow, wide = promotion_samples(config, 0.84), promotion_samples(wider, 0.84)
    assert narrow is not None and wide is not None and wide < narrow
    lenient = config.model_copy(
        update={"ramp": config.ramp.model_copy(update={"promote_on": "no_harm"})}
    )
    assert "to promote" not in describe_plan(lenient, registry=demo_registry, store=None)
    exact = config.model_copy(
        update={"ramp": config.ramp.model_copy(update={"non_inferiority_margin": 0.0})}
    )
    assert "cannot be shown" in describe_plan(exact, registry=demo_registry, store=None)
