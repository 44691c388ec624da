"""Model runtimes: what a worker calls to predict, loaded once at start-up."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from core.logs import fields
from model_workers.registry import LoadedModel, ModelRegistry

__all__ = ["ModelRuntime", "Prediction", "SklearnRuntime", "load_runtime"]

log = logging.getLogger("abgate.worker")


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


def load_runtime(registry: ModelRegistry, model: str, version: str) -> SklearnRuntime:
    """Load a version from the registry (integrity checks included) and log what was loaded."""
    started = time.perf_counter()
    runtime = SklearnRuntime(registry.load(model, version))
    log.info(
        "model loaded",
        extra=fields(
            model=model,
            model_version=version,
            sha256=runtime.metadata.get("sha256"),
            estimator=runtime.metadata.get("estimator"),
            load_ms=round((time.perf_counter() - started) * 1000.0, 1),
        ),
    )
    return runtime
