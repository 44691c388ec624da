"""Operator changes to an experiment, as pure functions from config to config.

Each returns a new validated config (or raises ConfigError saying what is
wrong); storing it, auditing it and telling the gateways is the caller's job.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from core.errors import ConfigError, NotFound
from experiments.config import ExperimentConfig

__all__ = ["expose", "promote", "rollback", "set_weights", "shadow_phase"]


def _revalidate(data: dict[str, Any]) -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ConfigError("; ".join(problems), problems) from exc


def set_weights(config: ExperimentConfig, weights: dict[str, float]) -> ExperimentConfig:
    """New weights for named variants; unnamed variants keep theirs; the sum must be 100."""
    known = {v.name for v in config.variants}
    unknown = sorted(set(weights) - known)
    if unknown:
        raise ConfigError(
            f"unknown variants: {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    data = config.model_dump(mode="json")
    for variant in data["variants"]:
        if variant["name"] in weights:
            variant["weight"] = weights[variant["name"]]
    return _revalidate(data)


def rollback(config: ExperimentConfig) -> ExperimentConfig:
    """All traffic back to the champion; a candidate in its shadow phase stops being
    mirrored and is listed again as a variant at 0 %."""
    if config.in_shadow_phase:
        config = expose(config, 0.0)
    champion = config.champion.name
    return set_weights(
        config, {v.name: 100.0 if v.name == champion else 0.0 for v in config.variants}
    )


def promote(config: ExperimentConfig, variant: str) -> ExperimentConfig:
    """``variant`` becomes the champion with all traffic; the old champion stays, at 0 %."""
    names = {v.name for v in config.variants}
    shadowed = config.ramp.variant if config.in_shadow_phase and config.ramp else None
    if variant not in names and variant == shadowed:
        raise ConfigError(
            f"{variant!r} is in its shadow phase in {config.name} (mirrored, serving no "
            "user): run its ramp again to expose it step by step, or roll it back"
        )
    if variant not in names:
        raise NotFound(f"no variant named {variant!r} in {config.name}")
    data = config.model_dump(mode="json")
    for entry in data["variants"]:
        if entry["name"] == variant:
            entry["role"], entry["weight"] = "champion", 100.0
        elif entry["role"] == "champion":
            entry["role"], entry["weight"] = "challenger", 0.0
        else:
            entry["weight"] = 0.0
    ramp = data.get("ramp")
    if ramp and ramp.get("variant") == variant:
        data["ramp"] = None  # the ramp is over: its variant is the champion now
    return _revalidate(data)


def shadow_phase(config: ExperimentConfig, mirror: float) -> ExperimentConfig:
    """The ramp's candidate mirrored as a shadow at ``mirror`` and serving no user.

    It leaves the live variants (its weight goes to the others in their current
    proportions, as ``ramp_weights(0)``), so no request can be routed to it,
    and joins the shadows with ``sample_rate`` = ``mirror``. Idempotent: a
    candidate already in its shadow phase only gets the new share.
    """
    name = _candidate(config)
    data = config.model_dump(mode="json")
    if config.in_shadow_phase:
        for shadow in data["shadows"]:
            if shadow["name"] == name:
                shadow["sample_rate"] = mirror
        return _revalidate(data)
    variant = config.variant(name)
    weights = config.ramp_weights(0.0)
    data["variants"] = [
        {**v, "weight": weights[v["name"]]} for v in data["variants"] if v["name"] != name
    ]
    data["shadows"] = [
        *data.get("shadows", []),
        {
            "name": name,
            "model_version": variant.model_version,
            "endpoints": list(variant.endpoints),
            "sample_rate": mirror,
            "timeout_ms": variant.timeout_ms,
        },
    ]
    return _revalidate(data)


def expose(config: ExperimentConfig, percent: float) -> ExperimentConfig:
    """The candidate in its shadow phase becomes a live variant serving ``percent``.

    The shadow is removed; the variant (role canary, or challenger when another
    variant is the canary) serves ``percent`` and the others share the rest in
    their current proportions.
    """
    name = _candidate(config)
    if not config.in_shadow_phase:
        raise ConfigError(f"{name!r} is not in a shadow phase in {config.name}")
    shadow = next(s for s in config.shadows if s.name == name)
    data = config.model_dump(mode="json")
    data["shadows"] = [s for s in data["shadows"] if s["name"] != name]
    role = "challenger" if any(v.role == "canary" for v in config.variants) else "canary"
    data["variants"] = [
        *data["variants"],
        {
            "name": name,
            "role": role,
            "model_version": shadow.model_version,
            "endpoints": list(shadow.endpoints),
            "weight": 0.0,
            "timeout_ms": shadow.timeout_ms,
        },
    ]
    exposed = _revalidate(data)
    return exposed.with_weights(exposed.ramp_weights(percent))


def _candidate(config: ExperimentConfig) -> str:
    name = config.ramp.variant if config.ramp is not None else None
    if name is None:
        raise ConfigError(f"experiment {config.name} has no ramp variant", ["ramp.variant: unset"])
    return name
