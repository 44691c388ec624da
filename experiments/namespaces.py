"""Experiments that share a model: which combinations can all be routed, no I/O.

A request names a model, and the gateway then needs exactly one experiment
per unit. Two experiments on one model can both be reached only if each has
a namespace (GrowthBook's ``[id, start, end]``) and their ranges of one id
do not overlap; they must also hash the same unit, or the namespace check
would read a different id for each of them, and speak the same protocol (a
client request on the model's path may reach either). Anything else is refused here,
at the field that has to change, instead of one experiment silently
shadowing the other.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from experiments.config import ExperimentConfig
from experiments.problems import Loc

__all__ = ["Neighbour", "routing_conflicts"]


class Neighbour(NamedTuple):
    """An experiment already routed (or validated alongside), and where it comes from."""

    config: ExperimentConfig
    where: str


def _range(config: ExperimentConfig) -> str:
    ns = config.namespace
    assert ns is not None
    return f"[{ns.start:g}, {ns.end:g}) of namespace {ns.id!r}"


def _unit(config: ExperimentConfig) -> str:
    unit = config.unit
    return unit.source if unit.name is None else f"{unit.source} {unit.name!r}"


def routing_conflicts(
    config: ExperimentConfig, others: Iterable[Neighbour]
) -> list[tuple[Loc, str]]:
    """Why ``config`` cannot be routed beside ``others``, each at the field to change.

    Experiments of the same name are skipped (a new version replaces the old
    one), as are those on other models.
    """
    problems: list[tuple[Loc, str]] = []
    for other, where in others:
        if other.name == config.name or other.model != config.model:
            continue
        mine, theirs = config.namespace, other.namespace
        label = f"experiment {other.name} ({where})"
        if other.protocol != config.protocol:
            problems.append(
                (
                    ("protocol",),
                    f"{label} routes model {config.model} with protocol {other.protocol}: "
                    "experiments on one model share its paths, so they must share a protocol",
                )
            )
        if mine is None:
            problems.append(
                (
                    ("model",),
                    f"{label} already routes model {config.model}: two experiments on one "
                    "model need disjoint namespaces (namespace: {id, start, end}), or one "
                    "of them would never be reached",
                )
            )
        elif theirs is None:
            problems.append(
                (
                    ("namespace",),
                    f"{label} routes model {config.model} without a namespace (every unit): "
                    f"give it a namespace {mine.id!r} range that does not overlap this one",
                )
            )
        elif theirs.id != mine.id:
            problems.append(
                (
                    ("namespace", "id"),
                    f"{label} uses namespace {theirs.id!r} on model {config.model}: "
                    "experiments on one model must share a namespace id to be mutually "
                    "exclusive (ids hash independently, so their ranges overlap)",
                )
            )
        elif mine.overlaps(theirs):
            problems.append(
                (
                    ("namespace", "start"),
                    f"[{mine.start:g}, {mine.end:g}) overlaps {label}'s {_range(other)} "
                    f"on model {config.model}",
                )
            )
        elif config.unit != other.unit:
            problems.append(
                (
                    ("unit",),
                    f"{label} hashes {_unit(other)} into namespace {mine.id!r} on model "
                    f"{config.model}, this one {_unit(config)}: experiments sharing a "
                    "namespace must hash the same unit",
                )
            )
    return problems
