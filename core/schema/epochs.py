"""Epochs: each config version opens one, recorded with the weights it routes and when
it started (``abgate:{name}:epochs``, config version -> JSON), so statistics are read
per routing that produced them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from analysis.epochs import Epoch
from core.schema.fields import as_text
from core.schema.stats import StatsHash

__all__ = ["decode_epochs", "epoch_record", "routed_weights"]


def _variant_entries(config: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    # A stored config is validated before it is routed, but the store takes any JSON:
    # a malformed one opens an epoch without routing (never routed by a gateway).
    variants = config.get("variants")
    if not isinstance(variants, list):
        return []
    return [
        v
        for v in variants
        if isinstance(v, Mapping)
        and isinstance(v.get("name"), str)
        and isinstance(v.get("weight", 0), int | float)
    ]


def routed_weights(config: Mapping[str, Any], *, paused: bool) -> dict[str, float]:
    """The weights requests are routed with: the config's, or all to the champion when
    paused (the gateway then sends every request there)."""
    variants = _variant_entries(config)
    if paused:
        return {v["name"]: 100.0 if v.get("role") == "champion" else 0.0 for v in variants}
    return {v["name"]: float(v.get("weight", 0.0)) for v in variants}


def epoch_record(config: Mapping[str, Any], *, paused: bool, started_at: float) -> str:
    """The JSON stored for the epoch a config version opens."""
    return json.dumps(
        {
            "weights": routed_weights(config, paused=paused),
            "model_versions": {
                v["name"]: str(v.get("model_version", "")) for v in _variant_entries(config)
            },
            "paused": paused,
            "start": started_at,
        },
        separators=(",", ":"),
    )


def decode_epochs(records: Mapping[Any, Any], stats: StatsHash | None = None) -> list[Epoch]:
    """Epochs from the stored records (config version -> JSON) and a decoded stats hash,
    oldest first. An epoch ends when the next stored one starts; epochs with counts
    but no record (epoch 0, or records lost) have unknown weights."""
    meta: dict[int, dict[str, Any]] = {}
    for raw_version, raw in records.items():
        try:
            meta[int(as_text(raw_version))] = dict(json.loads(as_text(raw)))
        except (ValueError, TypeError):
            continue
    per_epoch = stats.epochs if stats is not None else {}
    versions = sorted(set(meta) | set(per_epoch))
    starts = sorted((v, float(m["start"])) for v, m in meta.items() if "start" in m)
    epochs = []
    for version in versions:
        record = meta.get(version, {})
        later = [start for v, start in starts if v > version]
        weights = record.get("weights")
        epochs.append(
            Epoch(
                version=version,
                weights={str(k): float(w) for k, w in weights.items()} if weights else None,
                model_versions={
                    str(k): str(v) for k, v in record.get("model_versions", {}).items()
                },
                paused=bool(record.get("paused", False)),
                start=float(record["start"]) if "start" in record else None,
                end=later[0] if later else None,
                variants=dict(per_epoch.get(version, {})),
            )
        )
    return epochs
