"""Version 2 of the JSON input: statistics per epoch, each with the weights it routed.

The variants are declared once (``declared_variant``); each epoch gives their
statistics (``read_epochs``); ``pooled_variants`` sums the epochs in which a
variant ran its current model version, and picks the per-unit statistics
where the unit of analysis is not the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from analysis.epochs import Epoch, variant_totals
from analysis.inputs.experiment import VariantData
from analysis.inputs.fields import (
    InputError,
    as_mapping,
    check_known,
    number_field,
    read_latency,
    read_latency_sums,
    read_metric,
    read_ratio,
    text_field,
)
from analysis.sufficient import MetricStats, ProportionStats, VariantStats
from analysis.units import AnalysisUnit, choose_unit_statistics

__all__ = ["declared_variant", "pooled_variants", "read_epochs"]

_VARIANT_V2 = ("name", "role", "weight", "model_version")
_EPOCH = ("version", "start", "end", "weights", "model_versions", "paused", "variants")
_EPOCH_VARIANT = ("requests", "errors", "latency_ms", "metrics", "units", "unit_requests")


def declared_variant(raw: Any, index: int) -> dict[str, Any]:
    """One declared variant of version 2: name, role, weight, model version (no statistics)."""
    path = f"variants.{index}"
    raw = as_mapping(raw, path)
    check_known(
        raw, path, _VARIANT_V2, hint="; version 2 gives statistics per epoch (epochs.N.variants)"
    )
    name = text_field(raw, "name", path)
    if name is None:
        raise InputError(f"{path}.name", "field required (a non-empty string)")
    return {
        "name": name,
        "role": text_field(raw, "role", path) or ("champion" if index == 0 else "challenger"),
        "weight": number_field(raw, "weight", path, required=False, default=None),
        "model_version": text_field(raw, "model_version", path),
    }


def _epoch_variant(raw: Any, path: str, kinds: dict[str, tuple[str, str]]) -> VariantStats:
    raw = as_mapping(raw, path)
    check_known(raw, path, _EPOCH_VARIANT)
    metrics: dict[str, MetricStats] = {}
    for key, value in as_mapping(raw.get("metrics", {}), f"{path}.metrics").items():
        where = f"{path}.metrics.{key}"
        stats = read_metric(value, where)
        kind = "proportion" if isinstance(stats, ProportionStats) else "mean"
        first = kinds.setdefault(key, (kind, where))
        if first[0] != kind:
            raise InputError(f"{where}.type", f"is {kind}, but {first[1]} is {first[0]}")
        metrics[key] = MetricStats(stats.n, stats.sum, stats.sum_squares)
    requests = number_field(raw, "requests", path, integer=True, required=False, default=None)
    if requests is None:
        requests = max((m.n for m in metrics.values()), default=0)
    errors = number_field(raw, "errors", path, integer=True, required=False, default=0)
    if errors > requests:
        raise InputError(f"{path}.errors", f"cannot exceed requests ({requests})")
    latency = read_latency(raw["latency_ms"], f"{path}.latency_ms") if "latency_ms" in raw else None
    units = {
        key: read_ratio(value, f"{path}.units.{key}")
        for key, value in as_mapping(raw.get("units", {}), f"{path}.units").items()
    }
    for key in units:
        if key not in metrics:
            raise InputError(f"{path}.units.{key}", "has no request-level metrics.{key}")
    unit_requests = (
        read_ratio(raw["unit_requests"], f"{path}.unit_requests")
        if "unit_requests" in raw
        else None
    )
    sums = None
    if latency is not None:
        sums = read_latency_sums(raw["latency_ms"], f"{path}.latency_ms", latency)
    return VariantStats(
        requests=requests,
        errors=errors,
        latency=latency,
        metrics=metrics,
        unit_requests=unit_requests,
        unit_metrics=units,
        latency_ms=sums if sums is not None else MetricStats(0, 0.0, 0.0),
    )


def _names_known(data: Mapping[str, Any], path: str, names: list[str]) -> None:
    for key in data:
        if key not in names:
            raise InputError(f"{path}.{key}", f"unknown variant (variants: {', '.join(names)})")


def _epoch(raw: Any, index: int, names: list[str], kinds: dict[str, tuple[str, str]]) -> Epoch:
    path = f"epochs.{index}"
    raw = as_mapping(raw, path)
    check_known(raw, path, _EPOCH)
    if "weights" not in raw:
        raise InputError(f"{path}.weights", "field required (variant -> weight in this epoch)")
    weights_raw = as_mapping(raw["weights"], f"{path}.weights")
    _names_known(weights_raw, f"{path}.weights", names)
    weights = {k: float(number_field(weights_raw, k, f"{path}.weights")) for k in weights_raw}
    if sum(weights.values()) <= 0:
        raise InputError(f"{path}.weights", "needs a weight > 0")
    versions_raw = as_mapping(raw.get("model_versions", {}), f"{path}.model_versions")
    _names_known(versions_raw, f"{path}.model_versions", names)
    model_versions = {
        k: v for k in versions_raw if (v := text_field(versions_raw, k, f"{path}.model_versions"))
    }
    paused = raw.get("paused", False)
    if not isinstance(paused, bool):
        raise InputError(f"{path}.paused", f"must be true or false, got {paused!r}")
    stats_raw = as_mapping(raw.get("variants", {}), f"{path}.variants")
    _names_known(stats_raw, f"{path}.variants", names)
    start = number_field(raw, "start", path, minimum=None, required=False)
    end = number_field(raw, "end", path, minimum=None, required=False)
    if start is not None and end is not None and end < start:
        raise InputError(f"{path}.end", f"is before start ({start:g})")
    return Epoch(
        version=number_field(raw, "version", path, integer=True, required=False, default=index + 1),
        weights=weights,
        model_versions=model_versions,
        paused=paused,
        start=start,
        end=end,
        variants={
            k: _epoch_variant(v, f"{path}.variants.{k}", kinds) for k, v in stats_raw.items()
        },
    )


def read_epochs(raw: Any, names: list[str]) -> tuple[tuple[Epoch, ...], dict[str, tuple[str, str]]]:
    """The epochs, sorted by version, and the kind (mean or proportion) of each metric."""
    if not isinstance(raw, list) or not raw:
        raise InputError("epochs", "needs a list of at least one epoch (schema_version 2)")
    kinds: dict[str, tuple[str, str]] = {}
    epochs = [_epoch(item, index, names, kinds) for index, item in enumerate(raw)]
    seen: dict[int, int] = {}
    for index, epoch in enumerate(epochs):
        if epoch.version in seen:
            raise InputError(
                f"epochs.{index}.version", f"{epoch.version} is also epochs.{seen[epoch.version]}"
            )
        seen[epoch.version] = index
    return tuple(sorted(epochs, key=lambda e: e.version)), kinds


def pooled_variants(
    declared: list[dict[str, Any]],
    epochs: tuple[Epoch, ...],
    kinds: dict[str, tuple[str, str]],
    unit_name: str,
) -> tuple[list[VariantData], AnalysisUnit]:
    """Each declared variant with its statistics summed over the comparable epochs."""
    current = {v["name"]: v["model_version"] for v in declared if v["model_version"]}
    totals = variant_totals(epochs, current)
    last = epochs[-1].weights or {}
    choice = choose_unit_statistics(
        totals, {key: kind for key, (kind, _) in kinds.items()}, unit_name
    )
    out = []
    for v in declared:
        stats = totals.get(v["name"], VariantStats())
        out.append(
            VariantData(
                name=v["name"],
                role=v["role"],
                weight=v["weight"] if v["weight"] is not None else last.get(v["name"], 0.0),
                requests=stats.requests,
                errors=stats.errors,
                latency=stats.latency,
                metrics=choice.metrics.get(v["name"], {}),
                unit_errors=choice.errors.get(v["name"]),
                model_version=v["model_version"] or None,
                latency_ms=stats.latency_ms if stats.latency_ms.n else None,
            )
        )
    return out, choice.unit
