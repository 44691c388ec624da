"""What the engine analyses: per-variant sufficient statistics, from JSON or the recorder.

The JSON form is what ``abgate analyze FILE.json`` reads (schema in
docs/statistics.md); a malformed file raises ``InputError`` naming the field, e.g.
``variants.1.metrics.accuracy.sum_squares: must be >= sum^2/n``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from analysis.drift import ExperimentDrift
from analysis.sufficient import LatencyHistogram, MetricStats, ProportionStats

__all__ = [
    "AnalysisSettings",
    "ExperimentData",
    "InputError",
    "VariantData",
    "WindowData",
    "experiment_from_json",
]

Stats = MetricStats | ProportionStats


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
    max_error_rate_increase: float | None = 0.01
    max_p99_ratio: float | None = 1.5
    srm_threshold: float = 0.001
    duration_s: float | None = None


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

    @property
    def error_stats(self) -> ProportionStats:
        """Errors per request, as a proportion."""
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


def _metric(data: Any, path: str) -> Stats:
    data = _mapping(data, path)
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
    bounds, counts = data.get("bounds"), data.get("counts")
    if not isinstance(bounds, list) or not isinstance(counts, list):
        raise InputError(path, "needs 'bounds' and 'counts' lists")
    try:
        return LatencyHistogram(tuple(float(b) for b in bounds), tuple(int(c) for c in counts))
    except (TypeError, ValueError) as exc:
        raise InputError(path, str(exc)) from exc


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
    if not 0 < values["alpha"] < 0.5:
        raise InputError("settings.alpha", f"must be in (0, 0.5), got {values['alpha']!r}")
    if values["direction"] not in ("increase", "decrease"):
        raise InputError("settings.direction", "must be 'increase' or 'decrease'")
    if values["correction"] not in ("holm", "benjamini_hochberg", "none"):
        raise InputError("settings.correction", "must be holm, benjamini_hochberg or none")
    return AnalysisSettings(**values)


def experiment_from_json(data: Any) -> ExperimentData:
    """Validate the documented JSON form into ``ExperimentData``."""
    data = _mapping(data, "input")
    variants_raw = data.get("variants")
    if not isinstance(variants_raw, list) or len(variants_raw) < 2:
        raise InputError("variants", "needs a list of at least two variants")
    variants = []
    for index, raw in enumerate(variants_raw):
        path = f"variants.{index}"
        raw = _mapping(raw, path)
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
        variants.append(
            VariantData(
                name=name,
                role=str(role),
                weight=_number(raw, "weight", path, required=False, default=1.0),
                requests=requests,
                errors=errors,
                latency=_latency(raw["latency_ms"], f"{path}.latency_ms")
                if "latency_ms" in raw
                else None,
                metrics=metrics,
            )
        )
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise InputError("variants", "variant names must be unique")
    if sum(v.role == "champion" for v in variants) != 1:
        raise InputError("variants", "exactly one variant needs role 'champion'")
    windows = []
    for index, raw in enumerate(data.get("windows", [])):
        path = f"windows.{index}"
        raw = _mapping(raw, path)
        per = _mapping(raw.get("variants", {}), f"{path}.variants")
        windows.append(
            WindowData(
                start=_number(raw, "start", path, minimum=None),
                requests={
                    v: _number(
                        _mapping(d, f"{path}.variants.{v}"),
                        "requests",
                        f"{path}.variants.{v}",
                        integer=True,
                        required=False,
                        default=0,
                    )
                    for v, d in per.items()
                },
                metrics={
                    v: {
                        k: _metric(m, f"{path}.variants.{v}.metrics.{k}")
                        for k, m in _mapping(d.get("metrics", {}), f"{path}.variants.{v}").items()
                    }
                    for v, d in per.items()
                },
            )
        )
    return ExperimentData(
        name=str(data.get("experiment", "experiment")),
        variants=tuple(variants),
        settings=_settings(data.get("settings", {})),
        windows=tuple(sorted(windows, key=lambda w: w.start)),
    )
