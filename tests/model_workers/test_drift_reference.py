"""The training references drift is checked against, as the registry stores them."""

from __future__ import annotations

import numpy as np
import pytest

from model_workers.registry import ModelRegistry
from model_workers.training import reference_predictions


def test_prediction_reference_on_fixed_probabilities() -> None:
    proba = np.array([[0.9, 0.1], [0.7, 0.3], [0.4, 0.6], [0.2, 0.8], [0.45, 0.55]])
    reference = reference_predictions(np.array([0, 1]), proba, bins=2)
    assert reference["classes"] == [0, 1]
    assert reference["class_proportions"] == [0.4, 0.6]  # argmax: 0, 0, 1, 1, 1
    assert reference["score_edges"] == [0.55]  # median of the class-1 probabilities
    assert reference["score_proportions"] == [0.4, 0.6]  # 0.55 itself counts above the edge


def test_registered_versions_carry_both_references(demo_registry: ModelRegistry) -> None:
    meta = demo_registry.metadata("demo", "v1")
    features = meta["reference_distribution"]
    assert [f["feature"] for f in features] == [f"f{i}" for i in range(10)]
    predictions = meta["reference_predictions"]
    assert sum(predictions["class_proportions"]) == pytest.approx(1.0)
    assert sum(predictions["score_proportions"]) == pytest.approx(1.0)
    assert len(predictions["score_proportions"]) == len(predictions["score_edges"]) + 1
    assert 0.3 < predictions["class_proportions"][1] < 0.7  # the demo task is balanced
