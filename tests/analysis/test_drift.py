"""PSI and the chi-square drift test on fixed inputs (PSI by hand, chi-square against scipy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from analysis.drift import (
    DriftCounts,
    FeatureReference,
    VariantReference,
    chi_square,
    compare,
    experiment_drift,
    population_stability_index,
)


def test_psi_matches_a_hand_computed_value() -> None:
    # live shares 0.3/0.3/0.4 against 0.2/0.3/0.5:
    # (0.1 ln 1.5) + 0 + (-0.1 ln 0.8) = 0.0405465 + 0.0223144
    psi = population_stability_index([30, 30, 40], [0.2, 0.3, 0.5])
    assert psi == pytest.approx(0.1 * math.log(1.5) - 0.1 * math.log(0.8), abs=1e-12)
    assert round(psi, 6) == 0.062861


def test_psi_of_identical_shares_is_zero_and_empty_bins_stay_finite() -> None:
    assert population_stability_index([10, 20, 70], [0.1, 0.2, 0.7]) == pytest.approx(0.0)
    # an empty live bin is floored at 1e-4: (1e-4 - 0.5) ln(1e-4 / 0.5) + (1 - 0.5) ln(2)
    psi = population_stability_index([0, 50], [0.5, 0.5])
    expected = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + 0.5 * math.log(2)
    assert psi == pytest.approx(expected, rel=1e-9)
    assert round(psi, 4) == 4.6043  # 0.4999 ln 5000 + 0.5 ln 2
    with pytest.raises(ValueError, match="3 observed bins against 2"):
        population_stability_index([1, 2, 3], [0.5, 0.5])


@pytest.mark.parametrize(
    ("observed", "reference"),
    [
        ([18, 22, 25, 35], [0.25, 0.25, 0.25, 0.25]),
        ([120, 80, 95, 105, 100], [0.2, 0.2, 0.2, 0.2, 0.2]),
        ([5, 40, 300, 55], [0.05, 0.15, 0.6, 0.2]),
    ],
)
def test_chi_square_agrees_with_scipy(observed: list[int], reference: list[float]) -> None:
    statistic, p_value, dof = chi_square(observed, reference)
    expected = scipy.stats.chisquare(observed, np.sum(observed) * np.asarray(reference))
    assert statistic == pytest.approx(expected.statistic, rel=1e-10)
    assert p_value == pytest.approx(expected.pvalue, rel=1e-8)
    assert dof == len(observed) - 1


def test_alert_needs_psi_over_threshold_and_enough_samples() -> None:
    reference = [0.25, 0.25, 0.25, 0.25]
    shifted = compare("f3", "feature", [10, 20, 70, 100], reference, threshold=0.2, min_samples=200)
    assert shifted.psi > 0.2 and shifted.alert and shifted.checked
    assert shifted.p_value < 1e-10
    few = compare("f3", "feature", [1, 2, 7, 10], reference, threshold=0.2, min_samples=200)
    assert few.psi == pytest.approx(shifted.psi) and not few.alert and not few.checked
    steady = compare("f3", "feature", [52, 49, 47, 52], reference, min_samples=200)
    assert steady.psi < 0.01 and not steady.alert


def test_experiment_drift_names_the_shifted_feature_of_each_variant() -> None:
    deciles = tuple(0.1 for _ in range(10))
    edges = tuple(float(e) for e in range(-4, 5))
    reference = VariantReference(
        "v1",
        features=(FeatureReference("f0", edges, deciles), FeatureReference("f1", edges, deciles)),
        classes=(0, 1),
        class_proportions=(0.5, 0.5),
        score=FeatureReference("score", (0.5,), (0.5, 0.5)),
    )
    counts = DriftCounts(
        features={0: [100] * 10, 1: [0] * 5 + [200] * 5},
        classes={0: 480, 1: 520},
        scores={0: 500, 1: 500},
    )
    drift = experiment_drift(
        "demo", {"champion": reference, "canary": reference}, {"champion": counts}
    )
    champion, canary = drift.variants
    assert champion.samples == 1000
    assert [r.name for r in champion.alerts] == ["f1"]
    assert [(v, r.name) for v, r in drift.alerts] == [("champion", "f1")]
    assert {r.name for r in champion.predictions} == {"predicted_class", "prediction_score"}
    assert canary.samples == 0 and not canary.alerts  # no samples: never an alert
    as_json = drift.as_dict()
    assert as_json["alert"] is True
    assert as_json["alerts"][0]["name"] == "f1"
    assert as_json["variants"][0]["features"][1]["psi"] > 0.2
    with pytest.raises(ValueError, match="threshold"):
        experiment_drift("demo", {}, {}, threshold=0)
