"""The flush: what one gateway process writes for its experiments every
``flush_interval_s``, in one round trip, each part applied at most once."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.schema import (
    UNSCORED,
    Keys,
    ServedRow,
    encode_served,
    unit_requests_prefix,
    unit_requests_state,
)
from core.store.command import Command, Round, ScriptCall, Steps
from core.store.feedback import FeedbackItem, FeedbackResult, feedback_call, feedback_result
from core.store.lifetimes import FLUSHED_MEMORY_S, Lifetimes
from core.store.scripts import EVENTS, FLUSH, REQUESTS, SHADOW_ANSWERS, UNITS

__all__ = ["EVENT_FIELDS", "UNITS_PER_PART", "Event", "FlushBatch", "write"]

# One raw event: (ts, request id, variant, model version, ok, latency ms,
# fallback, error or None). A batch is stored as columns + rows, so neither the
# gateway nor the stream repeats the field names per request.
EVENT_FIELDS = ("ts", "rid", "variant", "version", "ok", "latency_ms", "fallback", "error")
Event = tuple[float, str, str, str, bool, float, bool, str | None]

_EVENT_FIELDS_JSON = orjson.dumps(EVENT_FIELDS)

# Units per script call: one call's Lua holds Redis for its run, so a flush of many
# units is cut into parts of this many (each applied at most once on its own).
UNITS_PER_PART = 500


@dataclass
class FlushBatch:
    """What one flush writes for one experiment."""

    experiment: str
    deltas: dict[int, dict[str, float]]  # window start -> field -> amount
    events: list[Event]
    # hour -> request id -> what served it (None or an ``Unanswered`` prediction: not
    # its variant, schema.UNSCORED)
    requests: dict[int, dict[str, ServedRow | None]]
    # Written again unchanged after a failed write: Redis applies each part once.
    batch_id: str = field(default_factory=lambda: os.urandom(8).hex())
    # Feedback received while Redis was unreachable; each is applied once (its token).
    feedback: list[FeedbackItem] = field(default_factory=list)
    # The stats window feedback joined by these mappings counts in (when taken).
    join_window: int = 0
    # (epoch, variant) -> unit -> [requests, errors] since the last flush, for experiments
    # whose unit is not the request; unit "" sums the requests that named no unit.
    units: dict[tuple[int, str], dict[str, list[int]]] = field(default_factory=dict)
    # hour -> request id -> shadow -> its prediction (as text), kept beside the mappings.
    shadow_answers: dict[int, dict[str, dict[str, str]]] = field(default_factory=dict)


def write(batches: list[FlushBatch], lifetimes: Lifetimes) -> Command[list[FeedbackResult]]:
    """Write one flush in a single round trip; what became of each batch's feedback, in
    order."""
    return Command("flush failed", _write(batches, lifetimes))


def _write(batches: list[FlushBatch], lifetimes: Lifetimes) -> Steps[list[FeedbackResult]]:
    calls: Round = [one for batch in batches for one in _batch_calls(batch, lifetimes)]
    # Feedback last, so that one the writing process served itself finds its mapping
    # already written (it carries it anyway).
    n = len(calls)
    calls += [
        feedback_call(batch.experiment, item, lifetimes, park=True)
        for batch in batches
        for item in batch.feedback
    ]
    answers = yield calls
    return [feedback_result(answer) for answer in answers[n:]]


def _batch_calls(batch: FlushBatch, lifetimes: Lifetimes) -> Iterable[ScriptCall]:
    keys = Keys(batch.experiment)
    now = time.time()
    for window, delta in batch.deltas.items():
        if delta:
            yield ScriptCall(
                FLUSH,
                [keys.window(window), keys.totals, keys.windows, keys.flushed],
                [
                    window,
                    lifetimes.window_ttl_s,
                    now,
                    f"{batch.batch_id}:{window}",
                    FLUSHED_MEMORY_S,
                    *_delta_args(delta),
                ],
            )
    if batch.events:
        yield ScriptCall(
            EVENTS,
            [keys.events, keys.flushed],
            [
                now,
                f"{batch.batch_id}:events",
                lifetimes.events_maxlen,
                _EVENT_FIELDS_JSON,
                orjson.dumps(batch.events),
            ],
        )
    for part, groups in enumerate(_unit_parts(batch.units)):
        yield ScriptCall(
            UNITS,
            [keys.totals, keys.flushed],
            [
                now,
                f"{batch.batch_id}:units:{part}",
                FLUSHED_MEMORY_S,
                lifetimes.unit_ttl_s,
                keys.unit_prefix,
                groups,
            ],
        )
    window = batch.join_window or max(batch.deltas, default=0) or int(now // 60) * 60
    # Before the mappings: a parked feedback joined by a mapping of this flush then
    # finds the shadow answers of the same flush too.
    for hour, answers in batch.shadow_answers.items():
        yield ScriptCall(
            SHADOW_ANSWERS,
            [keys.requests(hour), keys.flushed, keys.window(window), keys.totals, keys.windows],
            [
                now,
                f"{batch.batch_id}:shadows:{hour}",
                FLUSHED_MEMORY_S,
                orjson.dumps(answers),
                lifetimes.mapping_ttl_s,
                window,
                lifetimes.window_ttl_s,
            ],
        )
    for hour, mapping in batch.requests.items():
        entries = {
            rid: UNSCORED if row is None else encode_served(*row) for rid, row in mapping.items()
        }
        yield ScriptCall(
            REQUESTS,
            [
                keys.requests(hour),
                keys.pending_feedback,
                keys.pending_feedback_due,
                keys.feedback_joins,
                keys.window(window),
                keys.totals,
                keys.windows,
            ],
            [
                orjson.dumps(entries),
                lifetimes.mapping_ttl_s,
                window,
                lifetimes.window_ttl_s,
                keys.unit_prefix,
                lifetimes.unit_ttl_s,
            ],
        )


def _delta_args(delta: dict[str, float]) -> list[Any]:
    args: list[Any] = []
    for name, amount in delta.items():
        args.append(name)
        args.append(str(amount) if isinstance(amount, int) else repr(float(amount)))
    return args


def _unit_parts(units: dict[tuple[int, str], dict[str, list[int]]]) -> Iterable[bytes]:
    """The per-unit counts of a flush as script parts (``lua/units.lua``'s JSON groups),
    each of at most ``UNITS_PER_PART`` units."""
    for (epoch, variant), counts in units.items():
        rows = [(unit, c[0], c[1]) for unit, c in counts.items()]
        state, prefix = unit_requests_state(epoch, variant), unit_requests_prefix(epoch, variant)
        for start in range(0, len(rows), UNITS_PER_PART):
            yield orjson.dumps([(state, prefix, rows[start : start + UNITS_PER_PART])])
