"""The experiments a gateway routes, swapped whole when a new config arrives.

A ``LiveExperiment`` bundles what the hot path needs from one validated
config: the assigner, the endpoint pools of each variant and shadow, and the
pre-encoded header names. Connection pools are keyed by URL and shared
across config versions, so a weight change keeps warm connections.

A ``ModelRoute`` holds the experiments of one model: the only one, or
several in disjoint ranges of one GrowthBook namespace, picked per unit
through a 1,000-entry table (one hash per request). Stored configs that would
shadow each other (which ``abgate apply`` refuses) are not routed and are
logged, instead of one of them silently never being reached.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from core.errors import NotFound
from experiments.namespaces import Neighbour, routing_conflicts
from gateway.assignment import Assigner, namespace_bucket, namespace_table
from gateway.drift_sampling import VariantBins, variant_bins
from gateway.protocols import upstream_paths
from gateway.upstream import EndpointPool, VariantEndpoints

if TYPE_CHECKING:
    from experiments.config import ExperimentConfig
    from experiments.variants import Shadow, Variant

__all__ = ["LiveExperiment", "LiveExperiments", "ModelRoute", "Target"]

log = logging.getLogger("abgate.config")


@dataclass(frozen=True, slots=True)
class Target:
    """A variant (or shadow) as the hot path sees it."""

    name: str
    role: str
    model_version: str
    endpoints: VariantEndpoints
    timeout_s: float
    # A shadow's calls in flight per process beyond which it is shed (variants: unused).
    max_inflight: int = 0
    # Path of each protocol operation on its servers (after an endpoint's base path).
    paths: dict[str, bytes] = field(default_factory=dict)


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


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """The experiments routing one model, and how a unit picks one of them.

    ``only`` is set when one experiment without a namespace takes every unit:
    nothing is hashed to find it. Otherwise ``bucket`` hashes the unit into
    the namespace (GrowthBook's inNamespace) and ``table`` names the
    experiment whose range holds that bucket, or ``None`` outside every range.
    All experiments of a model hash the same unit (the config refuses
    otherwise), so ``first`` tells the hot path how to read it.
    """

    first: LiveExperiment
    only: LiveExperiment | None
    bucket: Callable[[str], int] | None = None
    table: tuple[LiveExperiment | None, ...] = ()

    def pick(self, unit: str) -> LiveExperiment | None:
        """The experiment ``unit`` belongs to; ``None``: outside every namespace."""
        if self.only is not None:
            return self.only
        assert self.bucket is not None
        return self.table[self.bucket(unit)]

    @classmethod
    def of(cls, experiments: list[LiveExperiment]) -> ModelRoute:
        """The route of a model's experiments (without conflicts), first by name first."""
        first = experiments[0]
        if len(experiments) == 1 and first.config.namespace is None:
            return cls(first, first)
        namespace = first.config.namespace
        assert namespace is not None
        ranges = []
        for live in experiments:
            ns = live.config.namespace
            assert ns is not None
            ranges.append((ns.start, ns.end))
        table = tuple(experiments[i] if i >= 0 else None for i in namespace_table(ranges))
        return cls(first, None, namespace_bucket(namespace.id), table)


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
    # Experiments whose servers are abgate's own workers (POST /predict).
    by_model: dict[str, ModelRoute] = field(default_factory=dict)
    default: ModelRoute | None = None
    # The others, by protocol and model, and per protocol the route of a path naming no
    # model (MLflow's /invocations): the first experiment's by name, as for /predict.
    by_protocol: dict[str, dict[str, ModelRoute]] = field(default_factory=dict)
    protocol_defaults: dict[str, ModelRoute] = field(default_factory=dict)
    # Experiments whose stored config conflicts with another on its model: not routed.
    unrouted: dict[str, str] = field(default_factory=dict)
    # Kept beside the configs (read from Redis with them), so an install from
    # any path (config sync, admin API) keeps sampling drift.
    drift_references: dict[str, dict[str, Any]] = field(default_factory=dict)
    ramp_states: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _target(self, config: ExperimentConfig, entry: Variant | Shadow, role: str) -> Target:
        pools = []
        for url in entry.endpoints:
            pool = self.pools.get(url)
            if pool is None:
                pool = self.pools[url] = EndpointPool(url)
            pools.append(pool)
        paths = upstream_paths(config.protocol, entry.upstream_model or config.model)
        endpoints = VariantEndpoints(pools)
        return Target(
            entry.name, role, entry.model_version, endpoints, entry.timeout_ms / 1000.0,
            paths=paths,
        )  # fmt: skip

    def install(self, config: ExperimentConfig, version: int, *, paused: bool = False) -> None:
        """Route ``config`` from now on (replacing an older version of it)."""
        targets = {v.name: self._target(config, v, v.role) for v in config.variants}
        shadows = {
            s.name: replace(self._target(config, s, "shadow"), max_inflight=s.max_inflight)
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
        groups: dict[str, list[LiveExperiment]] = {}
        unrouted: dict[str, str] = {}
        for live in sorted(self.by_name.values(), key=lambda e: e.name):
            group = groups.setdefault(live.config.model, [])
            neighbours = [Neighbour(other.config, f"routed version {other.version}")
                          for other in group]  # fmt: skip
            conflicts = routing_conflicts(live.config, neighbours)
            if conflicts:
                # Only configs stored around `abgate apply` get here; logged once per reason.
                unrouted[live.name] = "; ".join(
                    f"{'.'.join(map(str, loc))}: {message}" for loc, message in conflicts
                )
                if self.unrouted.get(live.name) != unrouted[live.name]:
                    log.error("not routing experiment %s: %s", live.name, unrouted[live.name])
                continue
            group.append(live)
        self.unrouted = unrouted
        by_protocol: dict[str, dict[str, ModelRoute]] = {}
        defaults: dict[str, ModelRoute] = {}
        # Groups are in name order of their first experiment: the first seen is the default.
        for model, group in groups.items():
            protocol = group[0].config.protocol  # one per model (routing_conflicts)
            route = by_protocol.setdefault(protocol, {})[model] = ModelRoute.of(group)
            defaults.setdefault(protocol, route)
        self.by_model = by_protocol.pop("abgate", {})
        self.default = defaults.pop("abgate", None)
        self.by_protocol, self.protocol_defaults = by_protocol, defaults

    def for_model(self, model: str | None) -> ModelRoute:
        """The experiments that route ``model`` (``None``: those of the first experiment)."""
        route = self.default if model is None else self.by_model.get(model)
        if route is None:
            raise NotFound(self._no_route("abgate", model))
        return route

    def for_protocol(self, protocol: str, model: str | None) -> ModelRoute:
        """The experiments that route ``model`` with ``protocol`` (``None``: the first's)."""
        routes = self.by_protocol.get(protocol)
        route = None
        if routes is not None:
            route = self.protocol_defaults.get(protocol) if model is None else routes.get(model)
        if route is None:
            raise NotFound(self._no_route(protocol, model))
        return route

    def _no_route(self, protocol: str, model: str | None) -> str:
        what = f"model {model!r}" if model else "any model"
        message = f"no experiment routes {what}"
        if protocol != "abgate":
            message += f" with protocol {protocol}"
        for other, routes in (("abgate", self.by_model), *self.by_protocol.items()):
            if other != protocol and (model in routes if model else routes):
                what = "it is" if model else "models here are"
                return f"{message}: {what} served with protocol {other}"
        return message
