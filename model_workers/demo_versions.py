"""Make sure the registry holds the demo versions (champion, challenger, canary)."""

from __future__ import annotations

from typing import Any

from core.errors import NotFound
from model_workers.registry import ModelRegistry
from model_workers.training import DEMO_VERSIONS, demo_dataset, train

__all__ = ["ensure_demo_versions"]


def ensure_demo_versions(registry: ModelRegistry, model: str = "demo") -> dict[str, dict[str, Any]]:
    """Train and register each demo version that is missing; return all their metadata."""
    out: dict[str, dict[str, Any]] = {}
    dataset = None
    for version, params in DEMO_VERSIONS.items():
        try:
            out[version] = registry.metadata(model, version)
            continue
        except NotFound:
            pass
        dataset = dataset or demo_dataset(params.n_samples)
        trained = train(params, dataset)
        registry.register(model, version, trained.estimator, trained.metadata)
        out[version] = registry.metadata(model, version)
    return out
