"""Operator changes to an experiment, as pure functions from config to config.

Each returns a new validated config (or raises ConfigError saying what is
wrong); storing it, auditing it and telling the gateways is the caller's job.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from abgate.errors import ConfigError, NotFound
from experiments.config import ExperimentConfig

__all__ = ["promote", "rollback", "set_weights"]


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
    """All traffic back to the champion."""
    champion = config.champion.name
    return set_weights(
        config, {v.name: 100.0 if v.name == champion else 0.0 for v in config.variants}
    )


def promote(config: ExperimentConfig, variant: str) -> ExperimentConfig:
    """``variant`` becomes the champion with all traffic; the old champion stays, at 0 %."""
    names = {v.name for v in config.variants}
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
