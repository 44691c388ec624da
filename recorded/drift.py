"""The I/O edge of drift checks: training references into Redis, live counts out of it.

The references (per model version: feature quantile bins from the training
data, predicted-class shares and score bins from the holdout predictions) live
in the model registry. ``abgate apply`` and ``abgate up`` copy the ones an
experiment routes into Redis next to its config, because gateway replicas and
the CLI may run where the registry is not (containers, another host), and a
gateway reads them together with each new config version in one round trip.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from analysis.drift import DriftCounts, ExperimentDrift, VariantReference, experiment_drift
from core.errors import AbgateError
from core.schema import parse_drift_fields
from core.store import AsyncStore, Store
from experiments.config import ExperimentConfig

if TYPE_CHECKING:
    from model_workers.registry import ModelRegistry

__all__ = [
    "current_counts",
    "drift_from_stats",
    "drift_since",
    "load_experiment_drift",
    "load_experiment_drift_async",
    "references_from_registry",
    "store_drift_references",
]


def references_from_registry(
    config: ExperimentConfig, registry: ModelRegistry
) -> tuple[dict[str, Any], dict[str, str]]:
    """Model version -> reference for every variant and shadow; plus version -> why missing."""
    versions = sorted(
        {v.model_version for v in config.variants} | {s.model_version for s in config.shadows}
    )
    references: dict[str, Any] = {}
    missing = {}
    for version in versions:
        try:
            meta = registry.metadata(config.model, version)
        except AbgateError:
            missing[version] = f"{config.model} {version} is not in the registry at {registry.root}"
            continue
        if not meta.get("reference_distribution"):
            missing[version] = f"{config.model} {version} has no reference distribution (retrain)"
            continue
        references[version] = {
            "features": meta["reference_distribution"],
            "predictions": meta.get("reference_predictions"),
        }
    return references, missing


def store_drift_references(
    store: Store, config: ExperimentConfig, registry: ModelRegistry
) -> list[str]:
    """Copy the experiment's references from the registry to Redis; return what is missing.

    A version this registry lacks keeps the reference stored before (applying a
    weight change from a machine without the registry must not turn drift
    checks off). Call before storing the config: gateways read the references
    when the new config version reaches them.
    """
    references, missing = references_from_registry(config, registry)
    stored = store.drift_reference(config.name)
    for version in list(missing):
        if stored.get(version):
            references[version] = stored[version]
            del missing[version]
    store.put_drift_reference(config.name, references)
    return list(missing.values())


def drift_from_stats(
    config: ExperimentConfig, windows: Sequence[Mapping[Any, Any]], stored: Mapping[str, Any]
) -> ExperimentDrift:
    """Drift of every variant from the stats hashes of the lookback period and the stored
    references (pure)."""
    references = {
        v.name: VariantReference.from_json(v.model_version, stored[v.model_version])
        for v in config.variants
        if stored.get(v.model_version)
    }
    return experiment_drift(
        config.name,
        references,
        current_counts(config, parse_drift_fields(*(dict(w) for w in windows))),
        threshold=config.statistics.drift_psi_threshold,
        min_samples=config.statistics.drift_min_samples,
        lookback_s=config.statistics.drift_lookback_s,
    )


def current_counts(
    config: ExperimentConfig, counts: Mapping[tuple[str, str], DriftCounts]
) -> dict[str, DriftCounts]:
    """Each variant's counts for the model version it serves now (older versions' are left
    out: they were judged against another reference)."""
    return {
        v.name: counts[(v.name, v.model_version)]
        for v in config.variants
        if (v.name, v.model_version) in counts
    }


def drift_since(config: ExperimentConfig, now: float | None = None) -> float:
    """Start of the lookback period drift is judged on."""
    return (time.time() if now is None else now) - config.statistics.drift_lookback_s


def load_experiment_drift(
    store: Store, name: str, config: ExperimentConfig | None = None
) -> ExperimentDrift:
    """Per-variant, per-feature PSI, chi-square p-value and alert of a recorded experiment,
    over its lookback period."""
    if config is None:
        config = ExperimentConfig.model_validate(store.get_config(name).config)
    windows = store.windows_since(name, drift_since(config))
    return drift_from_stats(config, windows, store.drift_reference(name))


async def load_experiment_drift_async(
    store: AsyncStore, name: str, config: ExperimentConfig
) -> ExperimentDrift:
    """``load_experiment_drift`` for the gateway (admin API, dashboard): both reads at once."""
    windows, reference = await asyncio.gather(
        store.windows_since(name, drift_since(config)), store.drift_reference(name)
    )
    return drift_from_stats(config, windows, reference)
