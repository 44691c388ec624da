"""What the gateway records, as pure data: field names and in-process aggregation.

Each request adds to per-(experiment, time window) counters held in memory;
the recorder drains them into Redis in batches, so analysis reads sufficient
statistics (n, sum, sum of squares, histogram buckets) and never raw events.
Field names of the Redis hashes are built here and parsed here, nowhere else.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from analysis.drift import DriftCounts

__all__ = [
    "LATENCY_BOUNDS_MS",
    "Delta",
    "OutcomeAggregator",
    "VariantOutcomes",
    "drift_class_field",
    "drift_feature_field",
    "drift_score_field",
    "latency_bucket",
    "parse_drift_fields",
    "parse_outcome_fields",
    "window_start",
]

# Upper bounds (ms) of latency buckets, growing by 25 % from 0.1 ms to ~60 s,
# so a p99 read from the histogram is within one bucket (≤ 25 %) of the truth.
LATENCY_BOUNDS_MS: tuple[float, ...] = tuple(
    round(0.1 * 1.25**i, 4) for i in range(int(math.log(600_000) / math.log(1.25)) + 1)
)

# One increment batch: hash field -> amount. Integer counts stay ints.
Delta = dict[str, float]


def window_start(ts: float, window_s: int) -> int:
    """Start (unix seconds) of the window holding ``ts``."""
    return int(ts // window_s) * window_s


def latency_bucket(latency_ms: float) -> int:
    """Index of the first bucket whose upper bound is >= latency (last = overflow)."""
    return bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)


# Per-variant request counters kept as list slots while a window is open: a
# request then costs a few list increments, and the hash field names
# ("champion:requests", ...) are built once per flush, not once per request.
_REQUESTS, _CLIENT_ERRORS, _ERRORS, _FALLBACKS, _LAT_N, _LAT_SUM, _LAT_SS = range(7)
_SLOT_FIELDS = (
    "requests", "client_errors", "errors", "fallbacks",
    "latency_ms:n", "latency_ms:sum", "latency_ms:ss",
)  # fmt: skip
_HIST = len(_SLOT_FIELDS)  # index of the latency histogram (a list) in the slots


def _new_slots() -> list[Any]:
    return [0, 0, 0, 0, 0, 0.0, 0.0, [0] * (len(LATENCY_BOUNDS_MS) + 1)]


@dataclass
class OutcomeAggregator:
    """Counter deltas since the last drain, per experiment and window."""

    window_s: int = 60
    # (experiment, window) -> variant -> slots, for requests (the hot path)
    _requests: dict[tuple[str, int], dict[str, list[Any]]] = field(default_factory=dict)
    # (experiment, window) -> field -> amount, for feedback metrics, shadows and drift
    _fields: dict[tuple[str, int], defaultdict[str, float]] = field(default_factory=dict)

    def delta(self, experiment: str, ts: float) -> defaultdict[str, float]:
        """The pending counters of ``experiment``'s window holding ``ts``."""
        key = (experiment, window_start(ts, self.window_s))
        delta = self._fields.get(key)
        if delta is None:
            delta = self._fields[key] = defaultdict(int)
        return delta

    def add_request(
        self,
        experiment: str,
        variant: str,
        *,
        ok: bool,
        client_error: bool,
        latency_ms: float,
        fallback: bool,
        ts: float,
    ) -> None:
        """One request assigned to ``variant``; ``ok`` when that variant answered it."""
        key = (experiment, int(ts // self.window_s) * self.window_s)
        variants = self._requests.get(key)
        if variants is None:
            variants = self._requests[key] = {}
        slots = variants.get(variant)
        if slots is None:
            slots = variants[variant] = _new_slots()
        slots[_REQUESTS] += 1
        if client_error:
            slots[_CLIENT_ERRORS] += 1
        elif not ok:
            slots[_ERRORS] += 1
        if fallback:
            slots[_FALLBACKS] += 1
        if ok:
            slots[_LAT_N] += 1
            slots[_LAT_SUM] += latency_ms
            slots[_LAT_SS] += latency_ms * latency_ms
            slots[_HIST][bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)] += 1

    def add_metric(
        self, experiment: str, variant: str, metric: str, value: float, ts: float
    ) -> None:
        """One delayed outcome (label correctness, reward, value) for ``variant``."""
        d = self.delta(experiment, ts)
        d[f"{variant}:metric:{metric}:n"] += 1
        d[f"{variant}:metric:{metric}:sum"] += value
        d[f"{variant}:metric:{metric}:ss"] += value * value

    def add_shadow(
        self, experiment: str, shadow: str, *, ok: bool, agreed: bool | None, ts: float
    ) -> None:
        """One mirrored call to a shadow: whether it answered and agreed with the live answer."""
        d = self.delta(experiment, ts)
        d[f"{shadow}:shadow:requests"] += 1
        if not ok:
            d[f"{shadow}:shadow:errors"] += 1
        elif agreed is not None:
            d[f"{shadow}:shadow:compared"] += 1
            d[f"{shadow}:shadow:agreed"] += int(agreed)

    @property
    def deltas(self) -> dict[tuple[str, int], Delta]:
        """Every pending delta as hash fields (a snapshot; nothing is drained)."""
        out: dict[tuple[str, int], Delta] = {key: dict(d) for key, d in self._fields.items()}
        for key, variants in self._requests.items():
            delta = out.setdefault(key, {})
            for variant, slots in variants.items():
                for index, name in enumerate(_SLOT_FIELDS):
                    if slots[index]:
                        field_name = f"{variant}:{name}"
                        delta[field_name] = delta.get(field_name, 0) + slots[index]
                for bucket, count in enumerate(slots[_HIST]):
                    if count:
                        field_name = f"{variant}:latency_hist:{bucket}"
                        delta[field_name] = delta.get(field_name, 0) + count
        return out

    def drain(self) -> dict[tuple[str, int], Delta]:
        """Take every pending delta, leaving the aggregator empty."""
        out = self.deltas
        self._requests = {}
        self._fields = {}
        return out

    def __bool__(self) -> bool:
        return bool(self._requests or self._fields)


@dataclass
class VariantOutcomes:
    """Everything recorded for one variant (or shadow), parsed from a stats hash."""

    requests: int = 0
    errors: int = 0
    client_errors: int = 0
    fallbacks: int = 0
    latency: dict[str, float] = field(default_factory=lambda: {"n": 0, "sum": 0.0, "ss": 0.0})
    latency_hist: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_MS) + 1))
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    shadow: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "requests": self.requests,
            "errors": self.errors,
            "client_errors": self.client_errors,
            "fallbacks": self.fallbacks,
            "latency_ms": dict(self.latency),
            "latency_hist": list(self.latency_hist),
            "metrics": {k: dict(v) for k, v in self.metrics.items()},
            "shadow": dict(self.shadow),
        }


# Drift fields carry the model version as well as the variant: a promotion
# gives a variant another version (and another reference), and its samples
# must not mix with the old version's.


def drift_feature_field(variant: str, version: str, feature: int, bin_index: int) -> str:
    """Stats field counting sampled values of feature ``feature`` in bin ``bin_index``."""
    return f"{variant}:drift:{version}:x:{feature}:{bin_index}"


def drift_class_field(variant: str, version: str, label: int) -> str:
    """Stats field counting sampled answers that predicted class ``label``."""
    return f"{variant}:drift:{version}:class:{label}"


def drift_score_field(variant: str, version: str, bin_index: int) -> str:
    """Stats field counting sampled answers whose score fell in bin ``bin_index``."""
    return f"{variant}:drift:{version}:score:{bin_index}"


def parse_drift_fields(*hashes: dict[Any, Any]) -> dict[tuple[str, str], DriftCounts]:
    """The drift counts in stats hashes (summed) by (variant, model version); other fields
    are skipped."""
    out: dict[tuple[str, str], DriftCounts] = {}
    for raw_name, raw_value in (item for fields in hashes for item in fields.items()):
        name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
        variant, _, rest = name.partition(":")
        parts = rest.split(":")
        if parts[0] != "drift" or len(parts) < 4:
            continue
        version, kind = parts[1], parts[2]
        try:
            numbers = [int(p) for p in parts[3:]]
            value = int(_number(raw_value))
        except ValueError:
            continue
        counts = out.setdefault((variant, version), DriftCounts())
        if kind == "x" and len(numbers) == 2 and 0 <= numbers[1] < 1000:
            bins = counts.features.setdefault(numbers[0], [])
            bins += [0] * (numbers[1] + 1 - len(bins))
            bins[numbers[1]] += value
        elif kind == "class" and len(numbers) == 1:
            counts.classes[numbers[0]] = counts.classes.get(numbers[0], 0) + value
        elif kind == "score" and len(numbers) == 1:
            counts.scores[numbers[0]] = counts.scores.get(numbers[0], 0) + value
    return out


def _number(raw: Any) -> float:
    value = float(raw.decode() if isinstance(raw, bytes) else raw)
    return int(value) if value.is_integer() else value


def parse_outcome_fields(fields: dict[Any, Any]) -> dict[str, VariantOutcomes]:
    """Turn a stats hash (field -> amount) into per-variant outcomes."""
    out: dict[str, VariantOutcomes] = {}
    for raw_name, raw_value in fields.items():
        name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
        value = _number(raw_value)
        variant, _, rest = name.partition(":")
        entry = out.setdefault(variant, VariantOutcomes())
        parts = rest.split(":")
        if parts[0] in ("requests", "errors", "client_errors", "fallbacks") and len(parts) == 1:
            setattr(entry, parts[0], int(value))
        elif parts[0] == "latency_ms" and len(parts) == 2:
            entry.latency[parts[1]] = value
        elif parts[0] == "latency_hist" and len(parts) == 2:
            index = int(parts[1])
            if 0 <= index < len(entry.latency_hist):
                entry.latency_hist[index] = int(value)
        elif parts[0] == "metric" and len(parts) == 3:
            entry.metrics.setdefault(parts[1], {"n": 0, "sum": 0.0, "ss": 0.0})[parts[2]] = value
        elif parts[0] == "shadow" and len(parts) == 2:
            entry.shadow[parts[1]] = int(value)
    return out
