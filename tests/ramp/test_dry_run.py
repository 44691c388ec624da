"""``abgate ramp --dry-run``: the plan, the evidence per step, the time, the OC table."""

from __future__ import annotations

from pathlib import Path

from abgate.cli import main as abgate_main
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
    assert "traffic: no REDIS_URL" in text and "give --rate" in text
    assert "100 % is the promotion" in text
    assert "harm beyond 2.00% ruled out before 25 %" in text
    # the one-sided detection of a lift of the margin, not the two-sided MDE figure
    stats = config.statistics
    two_sided = sample_size_per_arm(
        baseline, baseline * (1 - baseline), config.ramp.non_inferiority_margin,
        target_power=stats.power, alpha=stats.alpha, tuning=float(stats.tuning_n),
    ).n_per_arm  # fmt: skip
    assert two_sided is not None and needed < two_sided


def test_a_wider_margin_needs_fewer_samples(demo_registry: ModelRegistry) -> None:
    config = load_experiment(CANARY)
    assert config.ramp is not None
    wider = config.model_copy(
        update={"ramp": config.ramp.model_copy(update={"non_inferiority_margin": 0.05})}
    )
    narrow, wide = promotion_samples(config, 0.84), promotion_samples(wider, 0.84)
    assert narrow is not None and wide is not None and wide < narrow


def test_rate_gives_the_time_and_the_operating_characteristics(
    demo_registry: ModelRegistry,
) -> None:
    config = load_experiment(CANARY)
    text = describe_plan(config, registry=demo_registry, store=None, rate=250, runs=40)
    assert text.count("  step ") == 3
    assert "the plan needs at least" in text
    rows = {line.split("  ")[1].strip(): line for line in text.splitlines()
            if line.startswith("  equal") or line.startswith("  worse by 3x")}  # fmt: skip
    assert set(rows) == {"equal", "worse by 3x margin"}
    # the 3x-worse canary never reaches 25 %: its reached columns read 100%, 0%, 0%
    assert rows["worse by 3x margin"].split()[-5:-2] == ["100%", "0%", "0%"]


def test_a_plan_that_cannot_meet_the_targets_is_warned_about(
    demo_registry: ModelRegistry,
) -> None:
    config = load_experiment(CANARY)
    assert config.ramp is not None
    rushed = config.model_copy(
        update={"ramp": config.ramp.model_copy(update={"max_duration_s": 60.0})}
    )
    text = describe_plan(rushed, registry=demo_registry, store=None, rate=250, runs=40)
    assert "warning: a canary equal is promoted in 0% of runs (target >= 80%)" in text


def test_cli_dry_run_with_rate(capsys, monkeypatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert abgate_main(["ramp", str(CANARY), "--dry-run", "--rate", "250", "--runs", "20"]) == 0
    out = capsys.readouterr().out
    assert "250 requests/s (--rate)" in out and "operating characteristics" in out


def test_a_shadow_phase_is_described_with_its_own_operating_characteristics(tmp_path) -> None:
    config = load_experiment(CANARY.parent / "shadow-canary.yaml")
    text = describe_plan(config, registry=ModelRegistry(tmp_path), store=None, rate=250, runs=40)
    lines = text.splitlines()
    assert lines[1].startswith("  shadow phase first: canary mirrored for 100% of units")
    rows = {line[2:24].strip(): line.split() for line in lines
            if line.startswith(("  equal", "  worse by 4 points"))}  # fmt: skip
    # The exposed table has an "equal" row too; the shadow table's comes last.
    assert rows["worse by 4 points"][-5:-2] == ["0%", "100%", "0%"]
