"""What abgate keeps in Redis: key names, stats-hash fields, request mappings, epochs.

The one owner of the encoding. The gateway's aggregator names its fields
with the builders here, the store's scripts write them unchanged, and the
readers here turn them back into ``analysis.sufficient`` statistics, so that
totals, windows, epochs and baselines are plain ``+`` and ``-``. Pure: no
Redis client, no I/O (``core.store`` does the talking).

Keys of one experiment all carry its name as a Redis Cluster hash tag::

    abgate:{demo}:config            current config (JSON)   :config_version  INCR counter
    abgate:{demo}:epochs            hash: config version -> epoch record (JSON)
    abgate:{demo}:stats:total       hash: all-time stats fields (below)
    abgate:{demo}:stats:<start>     hash: the same fields for one time window
    abgate:{demo}:windows           sorted set of window starts
    abgate:{demo}:requests:<hour>   hash: request id -> served mapping (below)
    abgate:{demo}:feedback:<id>     the feedback claim of one request id (exactly once)
    abgate:{demo}:pending_feedback  hash: request id -> feedback waiting for its mapping
    abgate:{demo}:pending_feedback_due   sorted set: request id -> when it expires
    abgate:{demo}:feedback_joins    hash: parked, joined, expired (all-time counts)
    abgate:{demo}:unit:<unit id>    hash: one unit's running counts (below); expires

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

A shadow's answer is kept beside the request's mapping, in the same hash and so
with the same expiry: field ``<request id>|s`` holds ``{"<shadow>": "<prediction>",
...}`` (JSON) until the request's feedback scores it, then ``!`` followed by what the
feedback said (JSON ``[variant, live prediction, metric, kind, value]``): a shadow
answer written after that is scored against it at once, not kept, and counted
``late``. ``|`` cannot occur in a
request id, so the two kinds of field never collide.

Feedback whose request mapping is not in Redis yet (it waits in the serving
process until its next flush) is parked; the script that writes mappings
joins it, and a sweep expires what waited longer than the mapping is kept
(``core.store``). The join scripts build metric fields as
``metric_prefix`` does; a change here must change them too.

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

and drift bins ``<variant>:drift:<model version>:x|class|score:...`` (drift
references are per model version already). Fields recorded before epochs
were kept have no ``<epoch>|`` and read as epoch 0 (routing unknown). ``|``
cannot occur in a variant name, so the two forms never collide.
"""

from __future__ import annotations

import bisect
import enum
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from analysis.drift import DriftCounts
from analysis.epochs import Epoch
from analysis.paired import PairedCounts
from analysis.sufficient import LatencyHistogram, MetricStats, RatioStats, VariantStats

__all__ = [
    "COUNTER_FIELDS",
    "LATENCY_BOUNDS_MS",
    "LATENCY_FIELDS",
    "PAIRED_CELLS",
    "SHADOW_ANSWERS_SUFFIX",
    "SHADOW_SCORED",
    "UNIT_SUM_FIELDS",
    "UNSCORED",
    "Keys",
    "Served",
    "ServedRow",
    "ShadowStats",
    "StatsHash",
    "Unanswered",
    "decode_epochs",
    "decode_served",
    "decode_stats",
    "drift_class_field",
    "drift_feature_field",
    "drift_score_field",
    "encode_served",
    "epoch_record",
    "latency_bucket",
    "latency_hist_field",
    "metric_prefix",
    "paired_prefix",
    "parse_drift_fields",
    "parse_outcome_fields",
    "routed_weights",
    "shadow_answers_field",
    "shadow_field",
    "squared_error_prefix",
    "sum_stats",
    "unit_metric_prefix",
    "unit_metric_state",
    "unit_requests_prefix",
    "unit_requests_state",
    "variant_prefix",
    "window_start",
]


class Keys:
    """Key templates of one experiment, all in the ``{name}`` hash slot."""

    def __init__(self, experiment: str) -> None:
        self.experiment = experiment
        self.base = f"abgate:{{{experiment}}}"

    config = property(lambda self: f"{self.base}:config")
    config_version = property(lambda self: f"{self.base}:config_version")
    epochs = property(lambda self: f"{self.base}:epochs")
    totals = property(lambda self: f"{self.base}:stats:total")
    windows = property(lambda self: f"{self.base}:windows")
    events = property(lambda self: f"{self.base}:events")
    audit = property(lambda self: f"{self.base}:audit")

    drift_reference = property(lambda self: f"{self.base}:drift_reference")
    ramp = property(lambda self: f"{self.base}:ramp")
    ramp_lock = property(lambda self: f"{self.base}:ramp_lock")

    def window(self, start: int) -> str:
        """Stats hash of the window starting at ``start``."""
        return f"{self.base}:stats:{start}"

    def requests(self, hour: int) -> str:
        """request id -> served mapping, for the hour the request was served."""
        return f"{self.base}:requests:{hour}"

    def feedback_claim(self, request_id: str) -> str:
        """Set once the feedback of ``request_id`` is counted or parked (value: its token)."""
        return f"{self.base}:feedback:{request_id}"

    # Not under ``feedback:``: a request id may be any safe string, "pending" too.
    pending_feedback = property(lambda self: f"{self.base}:pending_feedback")
    pending_feedback_due = property(lambda self: f"{self.base}:pending_feedback_due")
    feedback_joins = property(lambda self: f"{self.base}:feedback_joins")

    def unit(self, unit_id: str) -> str:
        """The running counts of one unit (a user, say), per epoch, variant and measure."""
        return f"{self.base}:unit:{unit_id}"

    unit_prefix = property(lambda self: f"{self.base}:unit:")

    @property
    def flushed(self) -> str:
        """Parts of recent flushes already applied (sorted set, scored by time)."""
        return f"{self.base}:flushed"


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


SHADOW_ANSWERS_SUFFIX = "|s"
SHADOW_SCORED = "!"
"""A request's shadow answers field once its feedback has scored them."""


def shadow_answers_field(request_id: str) -> str:
    """The field, in the request's mapping hash, holding its shadows' answers."""
    return request_id + SHADOW_ANSWERS_SUFFIX


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


# --- reading stats hashes -----------------------------------------------------------------


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _number(raw: Any) -> float:
    value = float(_text(raw))
    return int(value) if value.is_integer() else value


PairKey = tuple[str, str]
"""(live variant, metric) a shadow's paired outcomes are kept under."""


def _add_maps(
    a: Mapping[PairKey, Any], b: Mapping[PairKey, Any], sign: int = 1
) -> dict[PairKey, Any]:
    out = dict(a)
    for key, value in b.items():
        held = out.get(key)
        if held is None:
            if sign > 0:  # (a key only in the earlier copy of a hash: nothing since)
                out[key] = value
        else:
            out[key] = held + value if sign > 0 else _minus(held, value)
    return out


def _minus(a: Any, b: Any) -> Any:
    if isinstance(a, PairedCounts):
        return PairedCounts(
            a.both - b.both, a.live_only - b.live_only, a.shadow_only - b.shadow_only,
            a.neither - b.neither,
        )  # fmt: skip
    return a - b


@dataclass(frozen=True)
class ShadowStats:
    """Mirrored calls to one shadow: answered or not, agreement with the live answer, and
    its answers scored against the same requests' labels beside the live ones.

    ``paired`` and ``squared_error`` are keyed by (live variant, metric): the paired
    counts of label feedback and the squared-error differences (shadow − live) of
    numeric ``value`` feedback. ``shed``: requests not mirrored because the shadow
    had too many calls in flight; ``late``: answers that came after their request's
    feedback was counted (never scored).
    """

    requests: int = 0
    errors: int = 0
    compared: int = 0
    agreed: int = 0
    shed: int = 0
    late: int = 0
    paired: Mapping[PairKey, PairedCounts] = field(default_factory=dict)
    squared_error: Mapping[PairKey, MetricStats] = field(default_factory=dict)

    def pairs(self, metric: str, live: str | None = None) -> PairedCounts:
        """The paired counts of ``metric`` against ``live`` (a variant), or against
        whichever variant answered each request (None)."""
        total = PairedCounts(0, 0, 0, 0)
        for (variant, name), counts in self.paired.items():
            if name == metric and live in (None, variant):
                total = total + counts
        return total

    def error_differences(self, metric: str, live: str | None = None) -> MetricStats:
        """(n, Σd, Σd²) of the squared-error differences of ``metric``, as ``pairs``."""
        total = MetricStats(0, 0.0, 0.0)
        for (variant, name), stats in self.squared_error.items():
            if name == metric and live in (None, variant):
                total = total + stats
        return total

    @property
    def paired_metrics(self) -> tuple[str, ...]:
        """Metrics with paired counts, sorted."""
        return tuple(sorted({metric for _, metric in self.paired}))

    @property
    def error_metrics(self) -> tuple[str, ...]:
        """Metrics with squared-error differences, sorted."""
        return tuple(sorted({metric for _, metric in self.squared_error}))

    def __add__(self, other: ShadowStats) -> ShadowStats:
        if not isinstance(other, ShadowStats):
            return NotImplemented
        return ShadowStats(
            self.requests + other.requests,
            self.errors + other.errors,
            self.compared + other.compared,
            self.agreed + other.agreed,
            self.shed + other.shed,
            self.late + other.late,
            _add_maps(self.paired, other.paired),
            _add_maps(self.squared_error, other.squared_error),
        )

    def __sub__(self, other: ShadowStats) -> ShadowStats:
        if not isinstance(other, ShadowStats):
            return NotImplemented
        return ShadowStats(
            self.requests - other.requests,
            self.errors - other.errors,
            self.compared - other.compared,
            self.agreed - other.agreed,
            self.shed - other.shed,
            self.late - other.late,
            _add_maps(self.paired, other.paired, -1),
            _add_maps(self.squared_error, other.squared_error, -1),
        )


@dataclass(frozen=True)
class StatsHash:
    """A decoded stats hash: per epoch and variant, plus the shadows' counters."""

    epochs: Mapping[int, Mapping[str, VariantStats]]
    shadows: Mapping[str, ShadowStats]

    def variants(self) -> dict[str, VariantStats]:
        """Every variant's statistics summed over all epochs (counters, metrics, gauges)."""
        out: dict[str, VariantStats] = {}
        for per in self.epochs.values():
            for name, stats in per.items():
                out[name] = out.get(name, VariantStats()) + stats
        return out

    def __sub__(self, other: StatsHash) -> StatsHash:
        """What was recorded since ``other``, an earlier copy of the same hash."""
        if not isinstance(other, StatsHash):
            return NotImplemented
        epochs: dict[int, dict[str, VariantStats]] = {}
        for epoch, per in self.epochs.items():
            before = other.epochs.get(epoch, {})
            for name, stats in per.items():
                since = stats - before[name] if name in before else stats
                if not since.is_empty:
                    epochs.setdefault(epoch, {})[name] = since
        shadows = {
            name: s - other.shadows.get(name, ShadowStats()) for name, s in self.shadows.items()
        }
        return StatsHash(epochs, shadows)

    def __add__(self, other: StatsHash) -> StatsHash:
        if not isinstance(other, StatsHash):
            return NotImplemented
        epochs = {e: dict(per) for e, per in self.epochs.items()}
        for epoch, per in other.epochs.items():
            target = epochs.setdefault(epoch, {})
            for name, stats in per.items():
                target[name] = target.get(name, VariantStats()) + stats
        shadows = dict(self.shadows)
        for name, s in other.shadows.items():
            shadows[name] = shadows.get(name, ShadowStats()) + s
        return StatsHash(epochs, shadows)


_EMPTY_HASH = StatsHash({}, {})


class _Parts:
    """Mutable accumulator for one (epoch, variant) while a hash is decoded."""

    __slots__ = ("counters", "hist", "latency", "metrics", "unit_metrics", "unit_requests")

    def __init__(self) -> None:
        self.counters = dict.fromkeys(COUNTER_FIELDS, 0)
        self.latency = {"n": 0.0, "sum": 0.0, "ss": 0.0}
        self.hist: dict[int, int] = {}
        self.metrics: dict[str, dict[str, float]] = {}
        self.unit_requests: dict[str, float] = {}
        self.unit_metrics: dict[str, dict[str, float]] = {}

    def add(self, parts: list[str], value: float) -> None:
        head = parts[0]
        if head in self.counters and len(parts) == 1:
            self.counters[head] += int(value)
        elif head == "latency_ms" and len(parts) == 2 and parts[1] in self.latency:
            self.latency[parts[1]] += value
        elif head == "latency_hist" and len(parts) == 2:
            index = int(parts[1])
            if 0 <= index <= len(LATENCY_BOUNDS_MS):
                self.hist[index] = self.hist.get(index, 0) + int(value)
        elif head == "metric" and len(parts) == 3 and parts[2] in ("n", "sum", "ss"):
            entry = self.metrics.setdefault(parts[1], {"n": 0.0, "sum": 0.0, "ss": 0.0})
            entry[parts[2]] += value
        elif head == "unit" and parts[-1] in UNIT_SUM_FIELDS:
            if len(parts) == 3 and parts[1] == "requests":
                sums = self.unit_requests
            elif len(parts) == 4 and parts[1] == "metric":
                sums = self.unit_metrics.setdefault(parts[2], {})
            else:
                return
            sums[parts[-1]] = sums.get(parts[-1], 0.0) + value

    def stats(self) -> VariantStats:
        counts = [0] * (len(LATENCY_BOUNDS_MS) + 1)
        for index, count in self.hist.items():
            counts[index] = count
        return VariantStats(
            **self.counters,
            latency_ms=_metric(self.latency),
            latency=LatencyHistogram(LATENCY_BOUNDS_MS, tuple(counts)) if self.hist else None,
            metrics={name: _metric(m) for name, m in self.metrics.items()},
            unit_requests=_ratio(self.unit_requests),
            unit_metrics={
                name: ratio for name, sums in self.unit_metrics.items() if (ratio := _ratio(sums))
            },
        )


def _ratio(sums: Mapping[str, float]) -> RatioStats | None:
    # Sums that cannot describe any set of units (a hand edit, a partial write) read as
    # absent: the analysis then falls back to the request-level statistics.
    if not sums:
        return None
    try:
        units, x, xx, y, yy, xy = (sums.get(name, 0.0) for name in UNIT_SUM_FIELDS)
        return RatioStats(int(units), x, xx, y, yy, xy)
    except ValueError:
        return None


def _metric(parts: Mapping[str, float]) -> MetricStats:
    n = int(parts["n"])
    if n == 0:
        return MetricStats(0, 0.0, 0.0)
    total = float(parts["sum"])
    # Float sums added in many increments may fall a rounding below sum²/n.
    return MetricStats(n, total, max(float(parts["ss"]), total * total / n))


def decode_stats(fields: Mapping[Any, Any]) -> StatsHash:
    """A stats hash (field -> amount, bytes or str) as statistics per epoch and variant.

    Drift fields are left to ``parse_drift_fields``; fields that do not parse
    (another version's, a hand edit) are skipped.
    """
    parts_by: dict[tuple[int, str], _Parts] = {}
    shadows: dict[str, dict[str, int]] = {}
    # (shadow, "paired" or "sqerr", live variant, metric) -> cell -> amount
    pairs: dict[tuple[str, str, str, str], dict[str, float]] = {}
    for raw_name, raw_value in fields.items():
        name = _text(raw_name)
        epoch_text, bar, rest = name.partition("|")
        if not bar:
            epoch_text, rest = "0", name
        variant, _, stat = rest.partition(":")
        parts = stat.split(":")
        try:
            epoch = int(epoch_text)
            value = _number(raw_value)
            if parts[0] == "shadow":
                if len(parts) == 2 and not bar:
                    entry = shadows.setdefault(variant, {})
                    entry[parts[1]] = entry.get(parts[1], 0) + int(value)
                elif len(parts) == 5 and not bar and parts[1] in ("paired", "sqerr"):
                    cells = pairs.setdefault((variant, parts[1], parts[2], parts[3]), {})
                    cells[parts[4]] = cells.get(parts[4], 0.0) + value
                continue
            if parts[0] == "drift":
                continue
            accumulator = parts_by.get((epoch, variant))
            if accumulator is None:
                accumulator = parts_by[(epoch, variant)] = _Parts()
            accumulator.add(parts, value)
        except ValueError:
            continue
    epochs: dict[int, dict[str, VariantStats]] = {}
    for (epoch, variant), accumulator in parts_by.items():
        epochs.setdefault(epoch, {})[variant] = accumulator.stats()
    return StatsHash(epochs, _shadow_stats(shadows, pairs))


def parse_outcome_fields(fields: Mapping[Any, Any]) -> dict[str, VariantStats]:
    """Each variant's statistics in a stats hash, summed over epochs."""
    return decode_stats(fields).variants()


def _shadow_stats(
    counters: Mapping[str, Mapping[str, int]],
    pairs: Mapping[tuple[str, str, str, str], Mapping[str, float]],
) -> dict[str, ShadowStats]:
    paired: dict[str, dict[PairKey, PairedCounts]] = {}
    errors: dict[str, dict[PairKey, MetricStats]] = {}
    for (shadow, kind, live, metric), cells in pairs.items():
        try:
            if kind == "paired":
                counts = PairedCounts(*(int(cells.get(cell, 0)) for cell in PAIRED_CELLS))
                paired.setdefault(shadow, {})[(live, metric)] = counts
            else:
                sums = {"n": 0.0, "sum": 0.0, "ss": 0.0}
                sums.update({k: v for k, v in cells.items() if k in sums})
                errors.setdefault(shadow, {})[(live, metric)] = _metric(sums)
        except ValueError:  # a hand edit or a partial write: left out, like other fields
            continue
    out = {}
    for name in sorted(set(counters) | set(paired) | set(errors)):
        s = counters.get(name, {})
        out[name] = ShadowStats(
            requests=s.get("requests", 0),
            errors=s.get("errors", 0),
            compared=s.get("compared", 0),
            agreed=s.get("agreed", 0),
            shed=s.get("shed", 0),
            late=s.get("late", 0),
            paired=paired.get(name, {}),
            squared_error=errors.get(name, {}),
        )
    return out


def sum_stats(hashes: Iterable[Mapping[Any, Any]]) -> StatsHash:
    """Several stats hashes (windows, say) decoded and added together."""
    total = _EMPTY_HASH
    for fields in hashes:
        total = total + decode_stats(fields)
    return total


def parse_drift_fields(*hashes: Mapping[Any, Any]) -> dict[tuple[str, str], DriftCounts]:
    """The drift counts in stats hashes (summed) by (variant, model version); other fields
    are skipped."""
    out: dict[tuple[str, str], DriftCounts] = {}
    for raw_name, raw_value in (item for fields in hashes for item in fields.items()):
        name = _text(raw_name)
        variant, _, rest = name.partition(":")
        parts = rest.split(":")
        if parts[0] != "drift" or len(parts) < 4 or "|" in variant:
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


# --- request -> served mapping ------------------------------------------------------------


class Unanswered(enum.Enum):
    """What stands in a served row's prediction when its variant did not answer."""

    ERROR = "error"  # counted as an error of the variant (the unit's y for error rate)
    OTHER = "other"  # a client error or a fallback without an error: not an error


ServedRow = tuple[str, str, int, Any, str | None]
"""(variant, model version, epoch, prediction or ``Unanswered``, unit): what the hot path
keeps per request until the flush encodes it, so no string is built on the request path.
The unit is None when the experiment's unit is the request, "" when the request named
no unit (it is then a unit of its own)."""


@dataclass(frozen=True)
class Served:
    """What served a request: variant, model version, epoch and the prediction (as text)."""

    variant: str
    model_version: str
    epoch: int
    prediction: str
    unit: str | None = None  # None: the unit is the request; "": a unit of its own


UNSCORED = "-"
"""The mapping of a request its variant did not answer (a fallback, an error): feedback
for it is received (its claim is taken) but never counted."""


def encode_served(
    variant: str, model_version: str, epoch: int, prediction: Any, unit: str | None = None
) -> str:
    """``champion|v1|7|1``: the mapping value feedback is joined on; with a unit,
    ``champion|v1|7/5|alice|1`` (the unit's length in UTF-8 bytes after the epoch, so a
    unit may hold any character, ``|`` too), and the request of an unanswered row is
    ``UNSCORED``."""
    if isinstance(prediction, Unanswered):
        return UNSCORED
    if unit is None:
        return f"{variant}|{model_version}|{epoch}|{prediction}"
    size = len(unit) if unit.isascii() else len(unit.encode())
    return f"{variant}|{model_version}|{epoch}/{size}|{unit}|{prediction}"


def decode_served(value: str) -> Served:
    """Read a mapping; one written before epochs were kept (``variant|version|prediction``)
    reads as epoch 0."""
    parts = value.split("|", 3)
    if len(parts) == 4:
        epoch, slash, length = parts[2].partition("/")
        if epoch.isdigit() and slash and length.isdigit():
            rest = parts[3].encode()
            size = int(length)
            unit, prediction = rest[:size].decode(), rest[size + 1 :].decode()
            return Served(parts[0], parts[1], int(epoch), prediction, unit)
        if parts[2].isdigit():
            return Served(parts[0], parts[1], int(parts[2]), parts[3])
    variant, version, prediction = value.split("|", 2)
    return Served(variant, version, 0, prediction)


# --- epochs -------------------------------------------------------------------------------


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
            meta[int(_text(raw_version))] = dict(json.loads(_text(raw)))
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
