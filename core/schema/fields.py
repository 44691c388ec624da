"""The fields of a stats hash, and reading their raw values.

Stats-hash fields, ``<epoch>|<variant>:<stat>`` for everything a request or a
delayed outcome adds (the epoch is the config version that routed the
request)::

    7|champion:requests  7|champion:errors  7|champion:client_errors  7|champion:fallbacks
    7|champion:latency_ms:n|sum|ss  7|champion:latency_hist:<bucket>
    7|champion:metric:<metric>:n|sum|ss

and, not per epoch: ``<shadow>:shadow:requests|errors|compared|agreed|shed|late``,
a shadow's paired outcomes against the live answer of the same requests (``<live>`` is
the variant that answered the request, ``<metric>`` the feedback's metric)::

    v2:shadow:paired:champion:accuracy:both|live_only|shadow_only|neither
    v2:shadow:sqerr:champion:value:n|sum|ss     d = shadow's squared error - live's

and drift bins ``<variant>:drift:<model version>:x|class|score:...``
(``core.schema.drift``). Fields recorded before epochs were kept have no
``<epoch>|`` and read as epoch 0 (routing unknown). ``|`` cannot occur in a
variant name, so the two forms never collide.

Per-unit statistics (experiments whose unit is a header or a body field, not
the request): each unit's running counts live in its own hash, one field per
epoch, variant and measure, ``"<x>:<y>"``::

    7|champion:r                    requests : errors of the unit
    7|champion:m:accuracy           labelled outcomes : metric sum of the unit

and the totals hash keeps, per epoch and variant, the sums a delta-method
ratio metric needs, updated from each unit's old and new counts by the same
script that changes them (``core.store``)::

    7|champion:unit:requests:units|x|xx|y|yy|xy
    7|champion:unit:metric:accuracy:units|x|xx|y|yy|xy

A request that names no unit (the header or field missing) is a unit of its
own: it has no hash, its sums are added as a unit of one request. Unit sums
are kept in the totals hash only: a window's increments of them are not the
statistics of the window's units.

The store's Lua scripts build the metric, unit and shadow fields the same way
as the builders here (``core/store/lua``); a change here must change them too.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from typing import Any

from analysis.sufficient import MetricStats

__all__ = [
    "COUNTER_FIELDS",
    "LATENCY_BOUNDS_MS",
    "LATENCY_FIELDS",
    "PAIRED_CELLS",
    "UNIT_SUM_FIELDS",
    "as_number",
    "as_text",
    "latency_bucket",
    "latency_hist_field",
    "metric_prefix",
    "metric_stats",
    "paired_prefix",
    "shadow_field",
    "squared_error_prefix",
    "unit_metric_prefix",
    "unit_metric_state",
    "unit_requests_prefix",
    "unit_requests_state",
    "variant_prefix",
    "window_start",
]

# --- time windows and latency buckets ---------------------------------------------------

# Upper bounds (ms) of latency buckets, growing by 25 % from 0.1 ms to ~60 s,
# so a p99 read from the histogram is within one bucket (≤ 25 %) of the truth.
LATENCY_BOUNDS_MS: tuple[float, ...] = tuple(
    round(0.1 * 1.25**i, 4) for i in range(int(math.log(600_000) / math.log(1.25)) + 1)
)


def window_start(ts: float, window_s: int) -> int:
    """Start (unix seconds) of the window holding ``ts``."""
    return int(ts // window_s) * window_s


def latency_bucket(latency_ms: float) -> int:
    """Index of the first bucket whose upper bound is >= latency (last = overflow)."""
    return bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)


# --- field names ------------------------------------------------------------------------

COUNTER_FIELDS = ("requests", "client_errors", "errors", "fallbacks")
"""Per-request counters of a variant, in the order the aggregator keeps them."""

LATENCY_FIELDS = ("latency_ms:n", "latency_ms:sum", "latency_ms:ss")
"""n, sum and sum of squares of the latency (ms) of answered requests."""

_HIST = "latency_hist:"


def variant_prefix(epoch: int, variant: str) -> str:
    """``7|champion:``: what every per-epoch field of ``variant`` starts with."""
    return f"{epoch}|{variant}:"


def metric_prefix(epoch: int, variant: str, metric: str) -> str:
    """``7|champion:metric:accuracy:``, followed by ``n``, ``sum`` or ``ss``."""
    return f"{epoch}|{variant}:metric:{metric}:"


UNIT_SUM_FIELDS = ("units", "x", "xx", "y", "yy", "xy")
"""After a unit prefix: units, Σx, Σx², Σy, Σy², Σxy over the units of a variant and epoch."""


def unit_requests_prefix(epoch: int, variant: str) -> str:
    """``7|champion:unit:requests:``: per-unit sums with x = requests, y = errors."""
    return f"{epoch}|{variant}:unit:requests:"


def unit_metric_prefix(epoch: int, variant: str, metric: str) -> str:
    """``7|champion:unit:metric:accuracy:``: per-unit sums with x = labelled outcomes,
    y = the metric's sum. The feedback scripts build it the same way."""
    return f"{epoch}|{variant}:unit:metric:{metric}:"


def unit_requests_state(epoch: int, variant: str) -> str:
    """The field of a unit's hash holding its ``requests:errors`` in one epoch and variant."""
    return f"{epoch}|{variant}:r"


def unit_metric_state(epoch: int, variant: str, metric: str) -> str:
    """The field of a unit's hash holding its ``outcomes:sum`` of ``metric``."""
    return f"{epoch}|{variant}:m:{metric}"


def latency_hist_field(prefix: str, bucket: int) -> str:
    """The histogram bucket field after a ``variant_prefix``."""
    return f"{prefix}{_HIST}{bucket}"


def shadow_field(shadow: str, stat: str) -> str:
    """A shadow's counter: ``requests``, ``errors``, ``compared``, ``agreed``, ``shed``
    (not mirrored: too many calls in flight) or ``late`` (answered after the request's
    feedback was counted, so never scored)."""
    return f"{shadow}:shadow:{stat}"


PAIRED_CELLS = ("both", "live_only", "shadow_only", "neither")
"""After a ``paired_prefix``: the four cells of ``analysis.paired.PairedCounts``."""


def paired_prefix(shadow: str, live: str, metric: str) -> str:
    """``v2:shadow:paired:champion:accuracy:``: a label scored for both answers of a
    request ``live`` answered; the feedback scripts build it the same way."""
    return f"{shadow}:shadow:paired:{live}:{metric}:"


def squared_error_prefix(shadow: str, live: str, metric: str) -> str:
    """``v2:shadow:sqerr:champion:value:``, then ``n``, ``sum``, ``ss``: the paired
    differences d = (shadow - value)² - (live - value)² of numeric ``value`` feedback."""
    return f"{shadow}:shadow:sqerr:{live}:{metric}:"


# --- reading raw values ---------------------------------------------------------------


def as_text(raw: Any) -> str:
    """A field name or value as Redis returned it (bytes) or a test wrote it (str)."""
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def as_number(raw: Any) -> float:
    """A field's value: an int when it is whole (counts), else a float."""
    value = float(as_text(raw))
    return int(value) if value.is_integer() else value


def metric_stats(parts: Mapping[str, float]) -> MetricStats:
    """``n``, ``sum`` and ``ss`` of a metric's fields as its statistics."""
    n = int(parts["n"])
    if n == 0:
        return MetricStats(0, 0.0, 0.0)
    total = float(parts["sum"])
    # Float sums added in many increments may fall a rounding below sum²/n.
    return MetricStats(n, total, max(float(parts["ss"]), total * total / n))
