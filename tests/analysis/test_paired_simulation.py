"""Paired shadow tests by simulation: A/A under continuous monitoring, gate, power."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.paired_simulation import (
    AA_DESIGNS,
    PairedDesign,
    compare_power,
    simulate_aa,
    simulate_gate,
    simulate_power_runs,
)

ALPHA = 0.05


def _allowance(experiments: int) -> float:
    """Three Monte-Carlo standard errors of a rate near alpha."""
    return 3 * math.sqrt(ALPHA * (1 - ALPHA) / experiments)


def test_design_cells_give_the_accuracies_and_agreement() -> None:
    both, live_only, shadow_only, neither = PairedDesign(0.84, 0.86, agreement=0.9).cells
    assert both + live_only == pytest.approx(0.84)
    assert both + shadow_only == pytest.approx(0.86)
    assert both + neither == pytest.approx(0.9)
    assert (live_only, shadow_only) == pytest.approx((0.04, 0.06))
    with pytest.raises(ValueError, match="agree on 99%"):
        _ = PairedDesign(0.80, 0.86, agreement=0.99).cells


def test_aa_sequential_stays_under_alpha_while_naive_peeking_does_not() -> None:
    runs = 400
    aa = simulate_aa(PairedDesign(0.85, 0.85), experiments=runs, seed=11)
    assert sum(aa.sequential) <= ALPHA + _allowance(runs)
    # The harness can see an inflated rate: the fixed-horizon z test at every look.
    assert sum(aa.naive_every_look) > 2 * ALPHA
    assert abs(sum(aa.fixed_z) - ALPHA) <= _allowance(runs)


def test_gate_passes_a_model_on_the_margin_at_most_alpha_of_the_time() -> None:
    runs = 400
    on_margin = simulate_gate(PairedDesign(0.85, 0.84), 0.01, experiments=runs, seed=12)
    assert on_margin.non_inferior <= ALPHA + _allowance(runs)
    better = simulate_gate(PairedDesign(0.85, 0.86), 0.01, experiments=runs, seed=13)
    assert better.non_inferior > 0.8 and better.harm == 0.0


def test_paired_power_is_clearly_above_two_samples_at_the_same_requests() -> None:
    for design in (PairedDesign(0.84, 0.86), PairedDesign(0.86, 0.84)):
        power = compare_power(design, 2000, experiments=400, seed=14)
        # Normal theory at 2000 requests: about 0.81 paired and 0.25 for two arms of 1000.
        assert power.paired_fixed > 0.7
        assert power.two_sample_fixed < 0.4
        assert power.paired_fixed > power.two_sample_fixed + 0.3
        assert power.paired_sequential > power.two_sample_sequential + 0.2


def test_bad_simulation_settings_raise() -> None:
    with pytest.raises(ValueError, match="equal accuracies"):
        simulate_aa(PairedDesign(0.84, 0.86))
    with pytest.raises(ValueError, match="looks of two arms"):
        compare_power(PairedDesign(0.84, 0.86), 1001)
    with pytest.raises(ValueError, match="more or less accurate"):
        compare_power(PairedDesign(0.85, 0.85), 2000)


@pytest.mark.slow
@pytest.mark.parametrize("design", AA_DESIGNS)
def test_aa_false_rejections_over_2000_monitored_runs(design: PairedDesign) -> None:
    runs = 2000
    aa = simulate_aa(design, experiments=runs, looks=20, per_look=250, seed=2026)
    worse, better = aa.sequential
    assert worse + better <= ALPHA + _allowance(runs)
    assert worse <= ALPHA / 2 + _allowance(runs) and better <= ALPHA / 2 + _allowance(runs)
    gate = simulate_gate(design, 0.0, experiments=runs, seed=2027)
    assert gate.harm <= ALPHA + _allowance(runs)
    assert gate.non_inferior <= ALPHA + _allowance(runs)


def test_power_runs_score_the_same_requests_twice_or_split_them_in_two_arms() -> None:
    design = PairedDesign(0.84, 0.86)
    runs = simulate_power_runs(design, 2000, experiments=50, looks=20, seed=4)
    assert runs.live_only.shape == runs.shadow_only.shape == runs.n.shape == (50, 20)
    assert list(runs.n[0, [0, -1]]) == [100.0, 2000.0]  # paired: every request, cumulative
    assert list(runs.live.n[0, [0, -1]]) == [50.0, 1000.0]  # two arms: half each
    assert (runs.live_only + runs.shadow_only <= runs.n).all()
    assert (np.diff(runs.live_only, axis=1) >= 0).all()
    assert 0.8 < float(runs.shadow.mean[:, -1].mean()) < 0.92
    again = simulate_power_runs(design, 2000, experiments=50, looks=20, seed=4)
    assert (again.shadow_only == runs.shadow_only).all()
    assert (again.shadow.mean == runs.shadow.mean).all()
    with pytest.raises(ValueError, match="looks of two arms"):
        simulate_power_runs(design, 1001, experiments=1, looks=20, seed=0)
