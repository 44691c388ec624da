"""Reading one field of the JSON input: a number, an object, a string, a statistic.

Every reader names the field it rejects (``variants.1.metrics.accuracy.n``) in
an ``InputError``, and ``check_known`` refuses a field the schema does not know.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from analysis.sufficient import LatencyHistogram, MetricStats, ProportionStats, RatioStats

__all__ = [
    "InputError",
    "as_mapping",
    "check_known",
    "number_field",
    "read_latency",
    "read_latency_sums",
    "read_metric",
    "read_ratio",
    "text_field",
]


class InputError(ValueError):
    """A field of the analysis input is missing or impossible; ``path`` says which."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


def number_field(
    data: Mapping[str, Any],
    key: str,
    path: str,
    *,
    integer: bool = False,
    minimum: float | None = 0.0,
    required: bool = True,
    default: Any = None,
) -> Any:
    """``data[key]`` as a number (int when ``integer``), at least ``minimum``; ``default`` when
    absent and not ``required``."""
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


def as_mapping(value: Any, path: str) -> Mapping[str, Any]:
    """``value`` as a JSON object, or an ``InputError`` at ``path``."""
    if not isinstance(value, Mapping):
        raise InputError(path, f"must be an object, got {type(value).__name__}")
    return value


def check_known(data: Mapping[str, Any], path: str, known: tuple[str, ...], hint: str = "") -> None:
    """Refuse the first field of ``data`` that is not in ``known`` (a typo would be ignored)."""
    unknown = sorted(set(data) - set(known))
    if unknown:
        where = f"{path}.{unknown[0]}".lstrip(".")
        raise InputError(where, f"unknown field (known: {', '.join(known)}){hint}")


def text_field(data: Mapping[str, Any], key: str, path: str) -> str | None:
    """``data[key]`` as a non-empty string; None when absent."""
    if key not in data:
        return None
    value = data[key]
    if not isinstance(value, str) or not value:
        raise InputError(f"{path}.{key}".lstrip("."), f"must be a non-empty string, got {value!r}")
    return value


_METRIC_FIELDS = ("type", "n", "sum", "sum_squares")


def read_metric(data: Any, path: str) -> MetricStats | ProportionStats:
    """A metric's statistics: a mean (n, sum, sum_squares) or a proportion (n, sum)."""
    data = as_mapping(data, path)
    check_known(data, path, _METRIC_FIELDS)
    kind = data.get("type", "mean")
    if kind not in ("mean", "proportion"):
        raise InputError(f"{path}.type", f"must be 'mean' or 'proportion', got {kind!r}")
    n = number_field(data, "n", path, integer=True)
    total = number_field(data, "sum", path, minimum=None)
    if kind == "proportion":
        if not 0 <= total <= n:
            raise InputError(f"{path}.sum", f"successes must be within [0, n={n}], got {total:g}")
        return ProportionStats(n, total)
    squares = number_field(data, "sum_squares", path)
    # Cauchy–Schwarz: sum^2 <= n * sum_squares for any real values.
    if n > 0 and squares * n < total * total * (1 - 1e-9) - 1e-9:
        raise InputError(
            f"{path}.sum_squares", f"must be >= sum^2/n = {total * total / n:g}, got {squares:g}"
        )
    if n == 0 and (total or squares):
        raise InputError(f"{path}.n", "is 0 but sum or sum_squares is not")
    return MetricStats(n, total, squares)


def read_latency(data: Any, path: str) -> LatencyHistogram:
    """A latency histogram: its bucket ``bounds`` and ``counts``."""
    data = as_mapping(data, path)
    check_known(data, path, ("bounds", "counts", "sum", "sum_squares"))
    bounds, counts = data.get("bounds"), data.get("counts")
    if not isinstance(bounds, list) or not isinstance(counts, list):
        raise InputError(path, "needs 'bounds' and 'counts' lists")
    try:
        return LatencyHistogram(tuple(float(b) for b in bounds), tuple(int(c) for c in counts))
    except (TypeError, ValueError) as exc:
        raise InputError(path, str(exc)) from exc


def read_latency_sums(data: Any, path: str, histogram: LatencyHistogram) -> MetricStats | None:
    """The mean latency's statistics, from the histogram's count and the optional
    ``sum``/``sum_squares`` beside it (ms and ms²); None without them."""
    data = as_mapping(data, path)
    if "sum" not in data and "sum_squares" not in data:
        return None
    sums = {key: data[key] for key in ("sum", "sum_squares") if key in data}
    stats = read_metric({"n": histogram.n, **sums}, path)
    return MetricStats(stats.n, stats.sum, stats.sum_squares)


_RATIO = ("units", "sum_x", "sum_xx", "sum_y", "sum_yy", "sum_xy")


def read_ratio(data: Any, path: str) -> RatioStats:
    """A ratio metric's per-unit sums (``RatioStats``)."""
    data = as_mapping(data, path)
    check_known(data, path, _RATIO)
    units = number_field(data, "units", path, integer=True)
    sums = [number_field(data, key, path, minimum=None) for key in _RATIO[1:]]
    try:
        return RatioStats(units, *sums)
    except ValueError as exc:
        raise InputError(path, str(exc)) from exc
