"""The documented JSON form of ``abgate analyze`` (version 1 or 2), into ``ExperimentData``.

The top level, the settings, version 1's per-variant totals, the time windows
and the shadows are read here; version 2's epochs in ``json_epochs``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from analysis.epochs import Epoch
from analysis.guardrails import GUARDRAIL_LIMITS, GUARDRAIL_METRICS, GuardrailSpec
from analysis.inputs.experiment import (
    AnalysisSettings,
    ExperimentData,
    Stats,
    VariantData,
    WindowData,
)
from analysis.inputs.fields import (
    InputError,
    as_mapping,
    check_known,
    number_field,
    read_latency,
    read_latency_sums,
    read_metric,
    text_field,
)
from analysis.inputs.json_epochs import declared_variant, pooled_variants, read_epochs
from analysis.paired import PairedCounts
from analysis.shadows import ShadowData
from analysis.sufficient import ProportionStats
from analysis.units import AnalysisUnit

__all__ = ["SCHEMA_VERSIONS", "experiment_from_json"]

SCHEMA_VERSIONS = (1, 2)
"""Versions of the ``abgate analyze`` input this module reads (1: no ``schema_version``)."""

_GUARDRAIL_FIELDS = ("metric", "limit", "value")
_LEGACY_GUARDRAIL_KEYS = ("max_error_rate_increase", "max_p99_ratio")


def _guardrails(raw: Any) -> tuple[GuardrailSpec, ...]:
    if not isinstance(raw, list):
        raise InputError("settings.guardrails", "must be a list (empty: no guardrails)")
    specs = []
    for index, item in enumerate(raw):
        path = f"settings.guardrails.{index}"
        item = as_mapping(item, path)
        check_known(item, path, _GUARDRAIL_FIELDS)
        metric, limit = item.get("metric"), item.get("limit")
        if metric not in GUARDRAIL_METRICS:
            raise InputError(f"{path}.metric", f"must be one of {', '.join(GUARDRAIL_METRICS)}")
        if limit not in GUARDRAIL_LIMITS:
            raise InputError(f"{path}.limit", f"must be one of {', '.join(GUARDRAIL_LIMITS)}")
        floor = 1.0 if limit == "max_ratio" else 0.0
        specs.append(GuardrailSpec(metric, limit, number_field(item, "value", path, minimum=floor)))
    return tuple(specs)


def _settings(data: Any) -> AnalysisSettings:
    data = as_mapping(data, "settings")
    defaults = AnalysisSettings()
    known = set(AnalysisSettings.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(
            f"settings.{unknown[0]}", f"unknown field (known: {', '.join(sorted(known))})"
        )
    values = {**defaults.__dict__, **data}
    if "guardrails" in data:
        both = [key for key in _LEGACY_GUARDRAIL_KEYS if data.get(key) is not None]
        if both:
            raise InputError(
                f"settings.{both[0]}",
                "give the guardrails in settings.guardrails or in the original keys, not both",
            )
        values["guardrails"] = _guardrails(data["guardrails"])
    if not 0 < values["alpha"] < 0.5:
        raise InputError("settings.alpha", f"must be in (0, 0.5), got {values['alpha']!r}")
    if values["direction"] not in ("increase", "decrease"):
        raise InputError("settings.direction", "must be 'increase' or 'decrease'")
    if values["difference"] not in (None, "relative", "absolute"):
        raise InputError(
            "settings.difference",
            f"must be 'relative', 'absolute' or null (the metric's default), "
            f"got {values['difference']!r}",
        )
    margin = values["shadow_margin"]
    if isinstance(margin, bool) or not isinstance(margin, int | float) or not 0 <= margin < 1:
        raise InputError("settings.shadow_margin", f"must be in [0, 1), got {margin!r}")
    relative = values["shadow_margin_relative"]
    if relative is not None and (
        isinstance(relative, bool) or not isinstance(relative, int | float) or not 0 <= relative < 1
    ):
        raise InputError(
            "settings.shadow_margin_relative", f"must be null or in [0, 1), got {relative!r}"
        )
    if values["correction"] not in ("holm", "benjamini_hochberg", "none"):
        raise InputError("settings.correction", "must be holm, benjamini_hochberg or none")
    return AnalysisSettings(**values)


_TOP_V1 = ("experiment", "settings", "variants", "windows", "schema_version", "shadows")
_TOP_V2 = (
    "schema_version", "experiment", "settings", "variants", "epochs", "windows", "unit",
    "shadows",
)  # fmt: skip
_SHADOW = (
    "name", "metric", "model_version", "against", "paired", "squared_error", "requests",
    "errors", "shed", "late",
)  # fmt: skip
_PAIRED = ("both", "live_only", "shadow_only", "neither")
_VARIANT_V1 = ("name", "role", "weight", "requests", "errors", "latency_ms", "metrics")
_WINDOW = ("start", "variants")
_WINDOW_VARIANT = ("requests", "metrics")


def _schema_version(data: Mapping[str, Any]) -> int:
    version = data.get("schema_version", 1)
    if isinstance(version, bool) or version not in SCHEMA_VERSIONS:
        known = ", ".join(str(v) for v in SCHEMA_VERSIONS)
        raise InputError("schema_version", f"must be one of {known}, got {version!r}")
    return int(version)


def experiment_from_json(data: Any) -> ExperimentData:
    """Validate the documented JSON form (version 1 or 2) into ``ExperimentData``."""
    data = as_mapping(data, "input")
    version = _schema_version(data)
    if version == 1:
        check_known(data, "", _TOP_V1, hint="; per-epoch statistics need \"schema_version\": 2"
               if "epochs" in data else "")  # fmt: skip
    else:
        check_known(data, "", _TOP_V2)
    variants_raw = data.get("variants")
    # A shadow phase has one live variant: the champion, compared with its shadows.
    fewest = 1 if data.get("shadows") else 2
    if not isinstance(variants_raw, list) or len(variants_raw) < fewest:
        raise InputError(
            "variants",
            "needs a list of at least two variants (or the champion alone, with shadows)",
        )
    epochs: tuple[Epoch, ...] = ()
    unit = AnalysisUnit()
    if version == 1:
        variants = [_variant_v1(raw, index) for index, raw in enumerate(variants_raw)]
    else:
        declared = [declared_variant(raw, index) for index, raw in enumerate(variants_raw)]
        names = [v["name"] for v in declared]
        epochs, kinds = read_epochs(data.get("epochs"), names)
        unit_name = text_field(data, "unit", "") or "request"
        variants, unit = pooled_variants(declared, epochs, kinds, unit_name)
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise InputError("variants", "variant names must be unique")
    if sum(v.role == "champion" for v in variants) != 1:
        raise InputError("variants", "exactly one variant needs role 'champion'")
    windows_raw = data.get("windows", [])
    if not isinstance(windows_raw, list):
        raise InputError("windows", "must be a list")
    windows = [_window(raw, f"windows.{index}") for index, raw in enumerate(windows_raw)]
    settings = _settings(data.get("settings", {}))
    return ExperimentData(
        name=str(data.get("experiment", "experiment")),
        variants=tuple(variants),
        settings=settings,
        windows=tuple(sorted(windows, key=lambda w: w.start)),
        epochs=epochs,
        analysis_unit=unit,
        shadows=_shadows(data.get("shadows", []), settings.primary_metric),
    )


def _shadows(raw: Any, primary_metric: str) -> tuple[ShadowData, ...]:
    """``shadows``: per shadow (and metric), its paired counts against the live model."""
    if not isinstance(raw, list):
        raise InputError("shadows", "must be a list")
    out = []
    for index, item in enumerate(raw):
        path = f"shadows.{index}"
        item = as_mapping(item, path)
        check_known(item, path, _SHADOW)
        name = text_field(item, "name", path)
        if name is None:
            raise InputError(f"{path}.name", "field required (a non-empty string)")
        if "paired" not in item:
            raise InputError(f"{path}.paired", f"field required ({', '.join(_PAIRED)})")
        paired = as_mapping(item["paired"], f"{path}.paired")
        check_known(paired, f"{path}.paired", _PAIRED)
        counts = PairedCounts(
            *(number_field(paired, cell, f"{path}.paired", integer=True) for cell in _PAIRED)
        )
        squared = None
        if "squared_error" in item:
            stats = read_metric(item["squared_error"], f"{path}.squared_error")
            if isinstance(stats, ProportionStats):
                raise InputError(f"{path}.squared_error.type", "must be 'mean'")
            squared = stats
        calls = {
            key: number_field(item, key, path, integer=True, required=False, default=0)
            for key in ("requests", "errors", "shed", "late")
        }
        out.append(
            ShadowData(
                name=name,
                metric=text_field(item, "metric", path) or primary_metric,
                counts=counts,
                squared_error=squared,
                model_version=text_field(item, "model_version", path),
                against=text_field(item, "against", path),
                **calls,
            )
        )
    seen = [(s.name, s.metric, s.against) for s in out]
    if len(set(seen)) != len(seen):
        raise InputError("shadows", "each (name, metric, against) may appear once")
    return tuple(out)


def _variant_v1(raw: Any, index: int) -> VariantData:
    path = f"variants.{index}"
    raw = as_mapping(raw, path)
    check_known(raw, path, _VARIANT_V1)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise InputError(f"{path}.name", "field required (a non-empty string)")
    role = raw.get("role", "champion" if index == 0 else "challenger")
    requests = number_field(raw, "requests", path, integer=True, required=False, default=None)
    metrics = {
        key: read_metric(value, f"{path}.metrics.{key}")
        for key, value in as_mapping(raw.get("metrics", {}), f"{path}.metrics").items()
    }
    if requests is None:
        requests = max((m.n for m in metrics.values()), default=0)
    errors = number_field(raw, "errors", path, integer=True, required=False, default=0)
    if errors > requests:
        raise InputError(f"{path}.errors", f"cannot exceed requests ({requests})")
    where = f"{path}.latency_ms"
    latency = read_latency(raw["latency_ms"], where) if "latency_ms" in raw else None
    return VariantData(
        name=name,
        role=str(role),
        weight=number_field(raw, "weight", path, required=False, default=1.0),
        requests=requests,
        errors=errors,
        latency=latency,
        metrics=metrics,
        latency_ms=None
        if latency is None
        else read_latency_sums(raw["latency_ms"], where, latency),
    )


def _window(raw: Any, path: str) -> WindowData:
    raw = as_mapping(raw, path)
    check_known(raw, path, _WINDOW)
    per = as_mapping(raw.get("variants", {}), f"{path}.variants")
    requests: dict[str, int] = {}
    metrics: dict[str, dict[str, Stats]] = {}
    for variant, data in per.items():
        where = f"{path}.variants.{variant}"
        data = as_mapping(data, where)
        check_known(data, where, _WINDOW_VARIANT)
        requests[variant] = number_field(
            data, "requests", where, integer=True, required=False, default=0
        )
        metrics[variant] = {
            k: read_metric(m, f"{where}.metrics.{k}")
            for k, m in as_mapping(data.get("metrics", {}), f"{where}.metrics").items()
        }
    return WindowData(
        start=number_field(raw, "start", path, minimum=None), requests=requests, metrics=metrics
    )
