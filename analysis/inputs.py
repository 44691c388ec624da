"""What the engine analyses: per-variant sufficient statistics, from JSON or the recorder.

The JSON form is what ``abgate analyze FILE.json`` reads. Version 1 (no
``schema_version``) gives each variant's totals; version 2
(``"schema_version": 2``) gives them per epoch, each epoch with the weights it
was routed with (docs/statistics.md). A malformed file raises ``InputError``
naming the field, e.g. ``variants.1.metrics.accuracy.sum_squares: must be >=
sum^2/n``; so does a field the schema does not know (a typo would otherwise be
silently ignored).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from analysis.drift import ExperimentDrift
from analysis.epochs import Epoch, variant_totals
from analysis.guardrails import (
    GUARDRAIL_LIMITS,
    GUARDRAIL_METRICS,
    GuardrailSpec,
    legacy_guardrails,
)
from analysis.paired import PairedCounts
from analysis.shadows import DEFAULT_SHADOW_MARGIN, ShadowData
from analysis.sufficient import (
    LatencyHistogram,
    MetricStats,
    ProportionStats,
    RatioStats,
    VariantStats,
)
from analysis.units import AnalysisUnit, choose_unit_statistics

__all__ = [
    "SCHEMA_VERSIONS",
    "AnalysisSettings",
    "ExperimentData",
    "InputError",
    "VariantData",
    "WindowData",
    "experiment_from_json",
]

Stats = MetricStats | ProportionStats | RatioStats

SCHEMA_VERSIONS = (1, 2)
"""Versions of the ``abgate analyze`` input this module reads (1: no ``schema_version``)."""


class InputError(ValueError):
    """A field of the analysis input is missing or impossible; ``path`` says which."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


@dataclass(frozen=True)
class AnalysisSettings:
    """How significance is decided (defaults: the best engines' defaults)."""

    alpha: float = 0.05
    sequential: bool = True
    tuning_n: int = 5000
    min_samples: int = 200
    mde: float = 0.02
    power: float = 0.8
    correction: Literal["holm", "benjamini_hochberg", "none"] = "holm"
    primary_metric: str = "accuracy"
    direction: Literal["increase", "decrease"] = "increase"
    # How the primary metric's effect is reported (the verdict always tests the
    # difference): None picks relative for proportions, absolute for means.
    difference: Literal["relative", "absolute"] | None = None
    # The original two guardrail settings, read when ``guardrails`` is None
    # (None here turns that guardrail off).
    max_error_rate_increase: float | None = 0.01
    max_p99_ratio: float | None = 1.5
    srm_threshold: float = 0.001
    # Non-inferiority margin of the shadows' paired test, in accuracy points.
    shadow_margin: float = DEFAULT_SHADOW_MARGIN
    duration_s: float | None = None
    # Every guardrail checked, in order (``analysis.guardrails``); () checks none.
    guardrails: tuple[GuardrailSpec, ...] | None = None

    @property
    def active_guardrails(self) -> tuple[GuardrailSpec, ...]:
        """The guardrails checked: ``guardrails``, or those the two original keys describe."""
        if self.guardrails is not None:
            return self.guardrails
        return legacy_guardrails(self.max_error_rate_increase, self.max_p99_ratio)


@dataclass(frozen=True)
class VariantData:
    """Everything recorded for one variant."""

    name: str
    role: str
    weight: float
    requests: int
    errors: int = 0
    latency: LatencyHistogram | None = None
    metrics: Mapping[str, Stats] = field(default_factory=dict)
    # The model version it runs now: epochs in which it ran another are not compared.
    model_version: str | None = None
    # Errors per request with units (users) as the observations, when analysed per unit.
    unit_errors: RatioStats | None = None
    # Latency of the answered requests as a mean's statistics (the mean-latency
    # guardrail); None when only the histogram is known.
    latency_ms: MetricStats | None = None

    @property
    def error_stats(self) -> ProportionStats | RatioStats:
        """Errors per request, as a proportion (per unit when the unit is not the request)."""
        if self.unit_errors is not None:
            return self.unit_errors
        return ProportionStats(self.requests, float(self.errors))


@dataclass(frozen=True)
class WindowData:
    """One time window: per-variant requests and metrics recorded in it."""

    start: float
    requests: Mapping[str, int]
    metrics: Mapping[str, Mapping[str, Stats]]  # variant -> metric -> stats


@dataclass(frozen=True)
class ExperimentData:
    """One experiment's statistics, ready for the engine."""

    name: str
    variants: tuple[VariantData, ...]
    settings: AnalysisSettings = field(default_factory=AnalysisSettings)
    windows: tuple[WindowData, ...] = ()
    drift: ExperimentDrift | None = None  # data drift against the training reference, if checked
    # Per-epoch statistics with the weights of each epoch; empty when only totals are
    # known (input version 1), and then the split is checked against ``weight``.
    epochs: tuple[Epoch, ...] = ()
    # Which metrics the tests read per unit (a user) rather than per request.
    analysis_unit: AnalysisUnit = field(default_factory=AnalysisUnit)
    # Shadows scored on the same labelled requests as the live model (paired).
    shadows: tuple[ShadowData, ...] = ()

    @property
    def champion(self) -> VariantData:
        """The variant with role champion."""
        return next(v for v in self.variants if v.role == "champion")


def _number(
    data: Mapping[str, Any],
    key: str,
    path: str,
    *,
    integer: bool = False,
    minimum: float | None = 0.0,
    required: bool = True,
    default: Any = None,
) -> Any:
    if key not in data:
        if required:
            raise InputError(f"{path}.{key}".lstrip("."), "field required")
        return default
    value = data[key]
    where = f"{path}.{key}".lstrip(".")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(where, f"must be a number, got {value!r}")
    if not math.isfinite(value):
        raise InputError(where, "must be finite")
    if integer and value != int(value):
        raise InputError(where, f"must be a whole number, got {value!r}")
    if minimum is not None and value < minimum:
        raise InputError(where, f"must be >= {minimum:g}, got {value!r}")
    return int(value) if integer else float(value)


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InputError(path, f"must be an object, got {type(value).__name__}")
    return value


def _known(data: Mapping[str, Any], path: str, known: tuple[str, ...], hint: str = "") -> None:
    unknown = sorted(set(data) - set(known))
    if unknown:
        where = f"{path}.{unknown[0]}".lstrip(".")
        raise InputError(where, f"unknown field (known: {', '.join(known)}){hint}")


def _text_field(data: Mapping[str, Any], key: str, path: str) -> str | None:
    if key not in data:
        return None
    value = data[key]
    if not isinstance(value, str) or not value:
        raise InputError(f"{path}.{key}".lstrip("."), f"must be a non-empty string, got {value!r}")
    return value


_METRIC_FIELDS = ("type", "n", "sum", "sum_squares")


def _metric(data: Any, path: str) -> MetricStats | ProportionStats:
    data = _mapping(data, path)
    _known(data, path, _METRIC_FIELDS)
    kind = data.get("type", "mean")
    if kind not in ("mean", "proportion"):
        raise InputError(f"{path}.type", f"must be 'mean' or 'proportion', got {kind!r}")
    n = _number(data, "n", path, integer=True)
    total = _number(data, "sum", path, minimum=None)
    if kind == "proportion":
        if not 0 <= total <= n:
            raise InputError(f"{path}.sum", f"successes must be within [0, n={n}], got {total:g}")
        return ProportionStats(n, total)
    squares = _number(data, "sum_squares", path)
    # Cauchy–Schwarz: sum^2 <= n * sum_squares for any real values.
    if n > 0 and squares * n < total * total * (1 - 1e-9) - 1e-9:
        raise InputError(
            f"{path}.sum_squares", f"must be >= sum^2/n = {total * total / n:g}, got {squares:g}"
        )
    if n == 0 and (total or squares):
        raise InputError(f"{path}.n", "is 0 but sum or sum_squares is not")
    return MetricStats(n, total, squares)


def _latency(data: Any, path: str) -> LatencyHistogram:
    data = _mapping(data, path)
    _known(data, path, ("bounds", "counts", "sum", "sum_squares"))
    bounds, counts = data.get("bounds"), data.get("counts")
    if not isinstance(bounds, list) or not isinstance(counts, list):
        raise InputError(path, "needs 'bounds' and 'counts' lists")
    try:
        return LatencyHistogram(tuple(float(b) for b in bounds), tuple(int(c) for c in counts))
    except (TypeError, ValueError) as exc:
        raise InputError(path, str(exc)) from exc


def _latency_sums(data: Any, path: str, histogram: LatencyHistogram) -> MetricStats | None:
    """The mean latency's statistics, from the histogram's count and the optional
    ``sum``/``sum_squares`` beside it (ms and ms²); None without them."""
    data = _mapping(data, path)
    if "sum" not in data and "sum_squares" not in data:
        return None
    sums = {key: data[key] for key in ("sum", "sum_squares") if key in data}
    stats = _metric({"n": histogram.n, **sums}, path)
    return MetricStats(stats.n, stats.sum, stats.sum_squares)


_GUARDRAIL_FIELDS = ("metric", "limit", "value")
_LEGACY_GUARDRAIL_KEYS = ("max_error_rate_increase", "max_p99_ratio")


def _guardrails(raw: Any) -> tuple[GuardrailSpec, ...]:
    if not isinstance(raw, list):
        raise InputError("settings.guardrails", "must be a list (empty: no guardrails)")
    specs = []
    for index, item in enumerate(raw):
        path = f"settings.guardrails.{index}"
        item = _mapping(item, path)
        _known(item, path, _GUARDRAIL_FIELDS)
        metric, limit = item.get("metric"), item.get("limit")
        if metric not in GUARDRAIL_METRICS:
            raise InputError(f"{path}.metric", f"must be one of {', '.join(GUARDRAIL_METRICS)}")
        if limit not in GUARDRAIL_LIMITS:
            raise InputError(f"{path}.limit", f"must be one of {', '.join(GUARDRAIL_LIMITS)}")
        floor = 1.0 if limit == "max_ratio" else 0.0
        specs.append(GuardrailSpec(metric, limit, _number(item, "value", path, minimum=floor)))
    return tuple(specs)


def _settings(data: Any) -> AnalysisSettings:
    data = _mapping(data, "settings")
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
_VARIANT_V2 = ("name", "role", "weight", "model_version")
_EPOCH = ("version", "start", "end", "weights", "model_versions", "paused", "variants")
_EPOCH_VARIANT = ("requests", "errors", "latency_ms", "metrics", "units", "unit_requests")
_RATIO = ("units", "sum_x", "sum_xx", "sum_y", "sum_yy", "sum_xy")
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
    data = _mapping(data, "input")
    version = _schema_version(data)
    if version == 1:
        _known(data, "", _TOP_V1, hint="; per-epoch statistics need \"schema_version\": 2"
               if "epochs" in data else "")  # fmt: skip
    else:
        _known(data, "", _TOP_V2)
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
        declared = [_variant_v2(raw, index) for index, raw in enumerate(variants_raw)]
        names = [v["name"] for v in declared]
        epochs, kinds = _epochs(data.get("epochs"), names)
        unit_name = _text_field(data, "unit", "") or "request"
        variants, unit = _pooled_variants(declared, epochs, kinds, unit_name)
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
        item = _mapping(item, path)
        _known(item, path, _SHADOW)
        name = _text_field(item, "name", path)
        if name is None:
            raise InputError(f"{path}.name", "field required (a non-empty string)")
        if "paired" not in item:
            raise InputError(f"{path}.paired", f"field required ({', '.join(_PAIRED)})")
        paired = _mapping(item["paired"], f"{path}.paired")
        _known(paired, f"{path}.paired", _PAIRED)
        counts = PairedCounts(
            *(_number(paired, cell, f"{path}.paired", integer=True) for cell in _PAIRED)
        )
        squared = None
        if "squared_error" in item:
            stats = _metric(item["squared_error"], f"{path}.squared_error")
            if isinstance(stats, ProportionStats):
                raise InputError(f"{path}.squared_error.type", "must be 'mean'")
            squared = stats
        calls = {
            key: _number(item, key, path, integer=True, required=False, default=0)
            for key in ("requests", "errors", "shed", "late")
        }
        out.append(
            ShadowData(
                name=name,
                metric=_text_field(item, "metric", path) or primary_metric,
                counts=counts,
                squared_error=squared,
                model_version=_text_field(item, "model_version", path),
                against=_text_field(item, "against", path),
                **calls,
            )
        )
    seen = [(s.name, s.metric, s.against) for s in out]
    if len(set(seen)) != len(seen):
        raise InputError("shadows", "each (name, metric, against) may appear once")
    return tuple(out)


def _variant_v1(raw: Any, index: int) -> VariantData:
    path = f"variants.{index}"
    raw = _mapping(raw, path)
    _known(raw, path, _VARIANT_V1)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise InputError(f"{path}.name", "field required (a non-empty string)")
    role = raw.get("role", "champion" if index == 0 else "challenger")
    requests = _number(raw, "requests", path, integer=True, required=False, default=None)
    metrics = {
        key: _metric(value, f"{path}.metrics.{key}")
        for key, value in _mapping(raw.get("metrics", {}), f"{path}.metrics").items()
    }
    if requests is None:
        requests = max((m.n for m in metrics.values()), default=0)
    errors = _number(raw, "errors", path, integer=True, required=False, default=0)
    if errors > requests:
        raise InputError(f"{path}.errors", f"cannot exceed requests ({requests})")
    where = f"{path}.latency_ms"
    latency = _latency(raw["latency_ms"], where) if "latency_ms" in raw else None
    return VariantData(
        name=name,
        role=str(role),
        weight=_number(raw, "weight", path, required=False, default=1.0),
        requests=requests,
        errors=errors,
        latency=latency,
        metrics=metrics,
        latency_ms=None if latency is None else _latency_sums(raw["latency_ms"], where, latency),
    )


def _variant_v2(raw: Any, index: int) -> dict[str, Any]:
    path = f"variants.{index}"
    raw = _mapping(raw, path)
    _known(
        raw, path, _VARIANT_V2, hint="; version 2 gives statistics per epoch (epochs.N.variants)"
    )
    name = _text_field(raw, "name", path)
    if name is None:
        raise InputError(f"{path}.name", "field required (a non-empty string)")
    return {
        "name": name,
        "role": _text_field(raw, "role", path) or ("champion" if index == 0 else "challenger"),
        "weight": _number(raw, "weight", path, required=False, default=None),
        "model_version": _text_field(raw, "model_version", path),
    }


def _epoch_variant(raw: Any, path: str, kinds: dict[str, tuple[str, str]]) -> VariantStats:
    raw = _mapping(raw, path)
    _known(raw, path, _EPOCH_VARIANT)
    metrics: dict[str, MetricStats] = {}
    for key, value in _mapping(raw.get("metrics", {}), f"{path}.metrics").items():
        where = f"{path}.metrics.{key}"
        stats = _metric(value, where)
        kind = "proportion" if isinstance(stats, ProportionStats) else "mean"
        first = kinds.setdefault(key, (kind, where))
        if first[0] != kind:
            raise InputError(f"{where}.type", f"is {kind}, but {first[1]} is {first[0]}")
        metrics[key] = MetricStats(stats.n, stats.sum, stats.sum_squares)
    requests = _number(raw, "requests", path, integer=True, required=False, default=None)
    if requests is None:
        requests = max((m.n for m in metrics.values()), default=0)
    errors = _number(raw, "errors", path, integer=True, required=False, default=0)
    if errors > requests:
        raise InputError(f"{path}.errors", f"cannot exceed requests ({requests})")
    latency = _latency(raw["latency_ms"], f"{path}.latency_ms") if "latency_ms" in raw else None
    units = {
        key: _ratio(value, f"{path}.units.{key}")
        for key, value in _mapping(raw.get("units", {}), f"{path}.units").items()
    }
    for key in units:
        if key not in metrics:
            raise InputError(f"{path}.units.{key}", "has no request-level metrics.{key}")
    unit_requests = (
        _ratio(raw["unit_requests"], f"{path}.unit_requests") if "unit_requests" in raw else None
    )
    sums = None
    if latency is not None:
        sums = _latency_sums(raw["latency_ms"], f"{path}.latency_ms", latency)
    return VariantStats(
        requests=requests,
        errors=errors,
        latency=latency,
        metrics=metrics,
        unit_requests=unit_requests,
        unit_metrics=units,
        latency_ms=sums if sums is not None else MetricStats(0, 0.0, 0.0),
    )


def _ratio(data: Any, path: str) -> RatioStats:
    data = _mapping(data, path)
    _known(data, path, _RATIO)
    units = _number(data, "units", path, integer=True)
    sums = [_number(data, key, path, minimum=None) for key in _RATIO[1:]]
    try:
        return RatioStats(units, *sums)
    except ValueError as exc:
        raise InputError(path, str(exc)) from exc


def _names_known(data: Mapping[str, Any], path: str, names: list[str]) -> None:
    for key in data:
        if key not in names:
            raise InputError(f"{path}.{key}", f"unknown variant (variants: {', '.join(names)})")


def _epoch(raw: Any, index: int, names: list[str], kinds: dict[str, tuple[str, str]]) -> Epoch:
    path = f"epochs.{index}"
    raw = _mapping(raw, path)
    _known(raw, path, _EPOCH)
    if "weights" not in raw:
        raise InputError(f"{path}.weights", "field required (variant -> weight in this epoch)")
    weights_raw = _mapping(raw["weights"], f"{path}.weights")
    _names_known(weights_raw, f"{path}.weights", names)
    weights = {k: float(_number(weights_raw, k, f"{path}.weights")) for k in weights_raw}
    if sum(weights.values()) <= 0:
        raise InputError(f"{path}.weights", "needs a weight > 0")
    versions_raw = _mapping(raw.get("model_versions", {}), f"{path}.model_versions")
    _names_known(versions_raw, f"{path}.model_versions", names)
    model_versions = {
        k: v for k in versions_raw if (v := _text_field(versions_raw, k, f"{path}.model_versions"))
    }
    paused = raw.get("paused", False)
    if not isinstance(paused, bool):
        raise InputError(f"{path}.paused", f"must be true or false, got {paused!r}")
    stats_raw = _mapping(raw.get("variants", {}), f"{path}.variants")
    _names_known(stats_raw, f"{path}.variants", names)
    start = _number(raw, "start", path, minimum=None, required=False)
    end = _number(raw, "end", path, minimum=None, required=False)
    if start is not None and end is not None and end < start:
        raise InputError(f"{path}.end", f"is before start ({start:g})")
    return Epoch(
        version=_number(raw, "version", path, integer=True, required=False, default=index + 1),
        weights=weights,
        model_versions=model_versions,
        paused=paused,
        start=start,
        end=end,
        variants={
            k: _epoch_variant(v, f"{path}.variants.{k}", kinds) for k, v in stats_raw.items()
        },
    )


def _epochs(raw: Any, names: list[str]) -> tuple[tuple[Epoch, ...], dict[str, tuple[str, str]]]:
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


def _pooled_variants(
    declared: list[dict[str, Any]],
    epochs: tuple[Epoch, ...],
    kinds: dict[str, tuple[str, str]],
    unit_name: str,
) -> tuple[list[VariantData], AnalysisUnit]:
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


def _window(raw: Any, path: str) -> WindowData:
    raw = _mapping(raw, path)
    _known(raw, path, _WINDOW)
    per = _mapping(raw.get("variants", {}), f"{path}.variants")
    requests: dict[str, int] = {}
    metrics: dict[str, dict[str, Stats]] = {}
    for variant, data in per.items():
        where = f"{path}.variants.{variant}"
        data = _mapping(data, where)
        _known(data, where, _WINDOW_VARIANT)
        requests[variant] = _number(
            data, "requests", where, integer=True, required=False, default=0
        )
        metrics[variant] = {
            k: _metric(m, f"{where}.metrics.{k}")
            for k, m in _mapping(data.get("metrics", {}), f"{where}.metrics").items()
        }
    return WindowData(
        start=_number(raw, "start", path, minimum=None), requests=requests, metrics=metrics
    )
