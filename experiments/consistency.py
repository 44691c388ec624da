"""The checks of an experiment config that span fields and sections.

Each finding is reported at the path of its most relevant field, so the loader
can point at its line: one champion, weights summing to 100, unique names, one
model version per server, fields the protocol uses, a ramp that names a real
variant and a shadow gate on what a shadow can measure.
"""

from __future__ import annotations

import difflib
import math
from typing import TYPE_CHECKING

from experiments.endpoints import NAMED_MODEL_PROTOCOLS
from experiments.metrics import LABEL_METRIC
from experiments.problems import Loc

if TYPE_CHECKING:
    from experiments.config import ExperimentConfig
    from experiments.variants import Shadow, Variant

__all__ = ["WEIGHT_SUM_TOLERANCE", "cross_field_problems"]

WEIGHT_SUM_TOLERANCE = 1e-6


def cross_field_problems(config: ExperimentConfig) -> list[tuple[Loc, str]]:
    """Findings that need more than one field, each at the path of its most relevant field."""
    problems: list[tuple[Loc, str]] = []
    variants = config.variants

    champions = [i for i, v in enumerate(variants) if v.role == "champion"]
    if not champions:
        problems.append((("variants",), "exactly one variant must have role champion; none has"))
    for i in champions[1:]:
        problems.append(
            (
                ("variants", i, "role"),
                f"exactly one champion allowed; variants.{champions[0]} is one",
            )
        )
    canaries = [i for i, v in enumerate(variants) if v.role == "canary"]
    for i in canaries[1:]:
        problems.append(
            (("variants", i, "role"), f"at most one canary allowed; variants.{canaries[0]} is one")
        )

    total = math.fsum(v.weight for v in variants)
    if abs(total - 100) > WEIGHT_SUM_TOLERANCE:
        parts = " + ".join(f"{v.name} {v.weight:.10g}" for v in variants)
        problems.append(
            (
                ("variants", len(variants) - 1, "weight"),
                f"weights must sum to 100, got {total:.10g} ({parts})",
            )
        )

    seen: dict[str, str] = {}
    members: list[tuple[str, int, str]] = [("variants", i, v.name) for i, v in enumerate(variants)]
    members += [("shadows", i, s.name) for i, s in enumerate(config.shadows)]
    for group, i, name in members:
        if name in seen:
            problems.append(((group, i, "name"), f"duplicate name {name!r} (also {seen[name]})"))
        else:
            seen[name] = f"{group}.{i}.name"

    served: dict[str, tuple[str, str]] = {}
    entries: list[tuple[str, int, Variant | Shadow]] = [
        ("variants", i, v) for i, v in enumerate(variants)
    ]
    entries += [("shadows", i, s) for i, s in enumerate(config.shadows)]
    named = config.protocol in NAMED_MODEL_PROTOCOLS
    for group, i, entry in entries:
        problems += _protocol_problems(config, group, i, entry)
        # One server may serve several versions under different model names.
        upstream = (entry.upstream_model or config.model) if named else ""
        for k, url in enumerate(entry.endpoints):
            version, where = served.setdefault(
                f"{url} {upstream}", (entry.model_version, f"{group}.{i}")
            )
            if version != entry.model_version:
                what = f"{url} (model {upstream})" if named else url
                problems.append(
                    (
                        (group, i, "endpoints", k),
                        f"{what} already serves model version {version} ({where})",
                    )
                )

    if config.ramp is not None:
        problems += _ramp_problems(config)

    unit_header = config.unit.name if config.unit.source == "header" else None
    if (
        config.override.enabled
        and unit_header is not None
        and unit_header.lower() == config.override.header.lower()
    ):
        problems.append(
            (("override", "header"), f"{config.override.header} is already the unit header")
        )
    return problems


def _protocol_problems(
    config: ExperimentConfig, group: str, i: int, entry: Variant | Shadow
) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    if entry.upstream_model is not None and config.protocol not in NAMED_MODEL_PROTOCOLS:
        problems.append(
            (
                (group, i, "upstream_model"),
                f"only used with protocol {' or '.join(NAMED_MODEL_PROTOCOLS)} (their paths "
                f"name the model); this experiment's protocol is {config.protocol}",
            )
        )
    return problems


def _ramp_problems(config: ExperimentConfig) -> list[tuple[Loc, str]]:
    return _ramp_variant_problems(config) + _shadow_phase_problems(config)


def _ramp_variant_problems(config: ExperimentConfig) -> list[tuple[Loc, str]]:
    assert config.ramp is not None
    name = config.ramp.variant
    names = [v.name for v in config.variants]
    if name is None:
        message = "no variant to ramp: name one, or give exactly one variant the role canary"
        return [(("ramp", "variant"), message)]
    if config.ramp.shadow is not None and config.in_shadow_phase:
        return []  # the candidate in its shadow phase: mirrored, not yet a variant
    if name not in names:
        hint = difflib.get_close_matches(name, names, n=1)
        expected = f"did you mean {hint[0]!r}?" if hint else f"expected one of: {', '.join(names)}"
        if any(s.name == name for s in config.shadows):
            return [
                (
                    ("ramp", "variant"),
                    f"{name!r} is a shadow, not a live variant; {expected} (or add ramp.shadow "
                    "to start the ramp with a shadow phase)",
                )
            ]
        return [(("ramp", "variant"), f"{name!r} is not a variant; {expected}")]
    if config.variant(name).role == "champion":
        return [(("ramp", "variant"), f"{name!r} is the champion; ramp a challenger or canary")]
    return []


def _shadow_phase_problems(config: ExperimentConfig) -> list[tuple[Loc, str]]:
    """A shadow gate only on what a shadow can measure: a proportion scored from labels."""
    assert config.ramp is not None
    phase = config.ramp.shadow
    if phase is None:
        return []
    primary = config.metrics.primary
    labels = primary.name if primary.source == "label" else LABEL_METRIC
    metric = phase.metric or labels
    where: Loc = ("ramp", "shadow", "metric")
    if metric == primary.name and primary.source != "label":
        return [
            (
                where,
                f"a shadow cannot measure {metric!r} (source {primary.source}): it is caused "
                "by the answer the user saw, so it stays with the exposed steps; judge the "
                f"shadow phase on the labels' {LABEL_METRIC!r} instead",
            )
        ]
    if metric != labels:
        return [
            (
                where,
                f"{metric!r} is not recorded per shadow: a shadow's answers are scored against "
                f"labels, recorded as {labels!r}",
            )
        ]
    if primary.source == "label" and (
        primary.kind != "proportion" or primary.direction != "increase"
    ):
        return [
            (
                where,
                f"{metric!r} is scored from labels as right or wrong: a shadow gate needs it "
                "as a proportion whose direction is increase",
            )
        ]
    return []
