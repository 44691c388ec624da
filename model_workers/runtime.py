"""Model runtimes: what a worker calls to predict, loaded once at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from model_workers.registry import LoadedModel

__all__ = ["ModelRuntime", "Prediction", "SklearnRuntime"]


@dataclass(frozen=True)
class Prediction:
    """One row's predicted class and class probabilities."""

    label: int
    probability: list[float]


class ModelRuntime(Protocol):
    """What a worker needs from a model."""

    model: str
    version: str
    n_features: int
    metadata: dict[str, Any]

    def predict(self, rows: list[list[float]]) -> list[Prediction]:
        """Predict every row (each with ``n_features`` finite numbers)."""
        ...


class SklearnRuntime:
    """A scikit-learn classifier from the registry."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.model = loaded.model
        self.version = loaded.version
        self.n_features = loaded.n_features
        self.metadata = loaded.metadata
        self._estimator = loaded.estimator
        self._classes = [int(c) for c in loaded.estimator.classes_]

    def predict(self, rows: list[list[float]]) -> list[Prediction]:
        """Class with the highest probability, and the probabilities, per row."""
        proba = self._estimator.predict_proba(np.asarray(rows, dtype=np.float64))
        best = proba.argmax(axis=1)
        return [
            Prediction(self._classes[int(i)], [float(p) for p in row])
            for i, row in zip(best, proba, strict=True)
        ]
