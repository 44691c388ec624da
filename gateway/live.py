"""The experiments a gateway routes, swapped whole when a new config arrives.

A ``LiveExperiment`` bundles what the hot path needs from one validated
config: the assigner, the endpoint pools of each variant and shadow, and the
pre-encoded header names. Connection pools are keyed by URL and shared
across config versions, so a weight change keeps warm connections.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from abgate.errors import NotFound
from gateway.assignment import Assigner
from gateway.drift_sampling import VariantBins, variant_bins
from gateway.upstream import EndpointPool, VariantEndpoints

if TYPE_CHECKING:
    from experiments.config import ExperimentConfig

__all__ = ["LiveExperiment", "LiveExperiments", "Target"]

log = logging.getLogger("abgate.config")


@dataclass(frozen=True, slots=True)
class Target:
    """A variant (or shadow) as the hot path sees it."""

    name: str
    role: str
    model_version: str
    endpoints: VariantEndpoints
    timeout_s: float


@dataclass(frozen=True)
class LiveExperiment:
    """One experiment ready for routing."""

    config: ExperimentConfig
    version: int
    paused: bool
    assigner: Assigner
    targets: dict[str, Target]
    shadows: dict[str, Target]
    champion: Target
    unit_source: str
    unit_name: str
    override_header: str | None
    fallback_on: frozenset[str]
    feedback_metrics: dict[str, str]
    drift: dict[str, VariantBins] | None = None

    @property
    def name(self) -> str:
        """Experiment name."""
        return self.config.name


def _feedback_metrics(config: ExperimentConfig) -> dict[str, str]:
    # Feedback kind -> metric name: the primary metric takes its source's
    # feedback; other kinds are recorded under their own name.
    names = {"label": "accuracy", "reward": "reward", "value": "value"}
    names[config.metrics.primary.source] = config.metrics.primary.name
    return names


@dataclass
class LiveExperiments:
    """Every routed experiment, by name and by model."""

    pools: dict[str, EndpointPool] = field(default_factory=dict)
    by_name: dict[str, LiveExperiment] = field(default_factory=dict)
    by_model: dict[str, LiveExperiment] = field(default_factory=dict)
    default: LiveExperiment | None = None
    # Kept beside the configs (read from Redis with them), so an install from
    # any path (config sync, admin API) keeps sampling drift.
    drift_references: dict[str, dict[str, Any]] = field(default_factory=dict)
    ramp_states: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _target(
        self, name: str, role: str, version: str, urls: list[str], timeout_ms: float
    ) -> Target:
        pools = []
        for url in urls:
            pool = self.pools.get(url)
            if pool is None:
                pool = self.pools[url] = EndpointPool(url)
            pools.append(pool)
        return Target(name, role, version, VariantEndpoints(pools), timeout_ms / 1000.0)

    def install(self, config: ExperimentConfig, version: int, *, paused: bool = False) -> None:
        """Route ``config`` from now on (replacing an older version of it)."""
        targets = {
            v.name: self._target(v.name, v.role, v.model_version, list(v.endpoints), v.timeout_ms)
            for v in config.variants
        }
        shadows = {
            s.name: self._target(s.name, "shadow", s.model_version, list(s.endpoints), s.timeout_ms)
            for s in config.shadows
        }
        live = LiveExperiment(
            config=config,
            version=version,
            paused=paused,
            assigner=Assigner.from_config(config),
            targets=targets,
            shadows=shadows,
            champion=targets[config.champion.name],
            unit_source=config.unit.source,
            unit_name=(config.unit.name or "").lower(),
            override_header=config.override.header.lower() if config.override.enabled else None,
            fallback_on=frozenset(config.fallback.on) if config.fallback.enabled else frozenset(),
            feedback_metrics=_feedback_metrics(config),
            drift=variant_bins(config, self.drift_references.get(config.name, {})),
        )
        self.by_name[config.name] = live
        self._reindex()
        log.info(
            "routing %s config version %d%s", config.name, version, " (paused)" if paused else ""
        )

    def _reindex(self) -> None:
        self.by_model = {}
        for live in sorted(self.by_name.values(), key=lambda e: e.name):
            self.by_model.setdefault(live.config.model, live)
        self.default = next(iter(sorted(self.by_name.values(), key=lambda e: e.name)), None)

    def for_model(self, model: str | None) -> LiveExperiment:
        """The experiment that routes ``model`` (``None``: the only or first one)."""
        live = self.default if model is None else self.by_model.get(model)
        if live is None:
            what = f"model {model!r}" if model else "any model"
            raise NotFound(f"no experiment routes {what}")
        return live
