"""What the gateway records, aggregated in process until the recorder flushes it.

Each request adds to per-(experiment, epoch, time window) counters held in
memory; the recorder drains them into Redis in batches, so analysis reads
sufficient statistics (n, sum, sum of squares, histogram buckets) and never
raw events. The field names are ``core.schema``'s; it also reads them back.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from core.schema import (
    COUNTER_FIELDS,
    LATENCY_BOUNDS_MS,
    LATENCY_FIELDS,
    latency_bucket,
    latency_hist_field,
    metric_prefix,
    shadow_field,
    variant_prefix,
    window_start,
)

__all__ = [
    "LATENCY_BOUNDS_MS",
    "Delta",
    "OutcomeAggregator",
    "latency_bucket",
    "window_start",
]

# One increment batch: hash field -> amount. Integer counts stay ints.
Delta = dict[str, float]


# Per-variant request counters kept as list slots while a window is open: a
# request then costs a few list increments, and the hash field names
# ("7|champion:requests", ...) are built once per flush, not once per request.
_REQUESTS, _CLIENT_ERRORS, _ERRORS, _FALLBACKS, _LAT_N, _LAT_SUM, _LAT_SS = range(7)
_SLOT_FIELDS = (*COUNTER_FIELDS, *LATENCY_FIELDS)
_HIST = len(_SLOT_FIELDS)  # index of the latency histogram (a list) in the slots


def _new_slots() -> list[Any]:
    return [0, 0, 0, 0, 0, 0.0, 0.0, [0] * (len(LATENCY_BOUNDS_MS) + 1)]


@dataclass
class OutcomeAggregator:
    """Counter deltas since the last drain, per experiment, epoch and window.

    The epoch is the config version that routed the request (``core.schema``).
    """

    window_s: int = 60
    # (experiment, window, epoch) -> variant -> slots, for requests (the hot path)
    _requests: dict[tuple[str, int, int], dict[str, list[Any]]] = field(default_factory=dict)
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
        epoch: int,
        *,
        ok: bool,
        client_error: bool,
        latency_ms: float,
        fallback: bool,
        ts: float,
    ) -> None:
        """One request assigned to ``variant`` under config version ``epoch``; ``ok``
        when that variant answered it."""
        key = (experiment, int(ts // self.window_s) * self.window_s, epoch)
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
        self, experiment: str, variant: str, epoch: int, metric: str, value: float, ts: float
    ) -> None:
        """One delayed outcome (label correctness, reward, value) for ``variant``, counted
        in ``epoch``, the one that served its request."""
        d = self.delta(experiment, ts)
        prefix = metric_prefix(epoch, variant, metric)
        d[prefix + "n"] += 1
        d[prefix + "sum"] += value
        d[prefix + "ss"] += value * value

    def add_shadow(
        self, experiment: str, shadow: str, *, ok: bool, agreed: bool | None, ts: float
    ) -> None:
        """One mirrored call to a shadow: whether it answered and agreed with the live answer."""
        d = self.delta(experiment, ts)
        d[shadow_field(shadow, "requests")] += 1
        if not ok:
            d[shadow_field(shadow, "errors")] += 1
        elif agreed is not None:
            d[shadow_field(shadow, "compared")] += 1
            d[shadow_field(shadow, "agreed")] += int(agreed)

    def add_shadow_shed(self, experiment: str, shadow: str, *, ts: float) -> None:
        """One request not mirrored to ``shadow`` (too many of its calls in flight)."""
        self.delta(experiment, ts)[shadow_field(shadow, "shed")] += 1

    def add_shadow_rows(
        self, experiment: str, shadow: str, *, compared: int, agreed: int, ts: float
    ) -> None:
        """One mirrored call that answered several rows: each row compared on its own."""
        d = self.delta(experiment, ts)
        d[shadow_field(shadow, "requests")] += 1
        d[shadow_field(shadow, "compared")] += compared
        d[shadow_field(shadow, "agreed")] += agreed

    @property
    def deltas(self) -> dict[tuple[str, int], Delta]:
        """Every pending delta as hash fields (a snapshot; nothing is drained)."""
        out: dict[tuple[str, int], Delta] = {key: dict(d) for key, d in self._fields.items()}
        for (experiment, window, epoch), variants in self._requests.items():
            delta = out.setdefault((experiment, window), {})
            for variant, slots in variants.items():
                prefix = variant_prefix(epoch, variant)
                for index, name in enumerate(_SLOT_FIELDS):
                    if slots[index]:
                        field_name = prefix + name
                        delta[field_name] = delta.get(field_name, 0) + slots[index]
                for bucket, count in enumerate(slots[_HIST]):
                    if count:
                        field_name = latency_hist_field(prefix, bucket)
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
