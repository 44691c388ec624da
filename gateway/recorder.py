"""Recording outcomes off the hot path.

A request only appends to in-process aggregates (a few dict updates); a
background task drains them every ``flush_interval_s`` into Redis in one
pipelined round trip. When Redis is down, counters keep aggregating (their
size does not grow with traffic) and raw events and request→variant mappings
wait in a bounded buffer; what overflows that buffer is dropped and counted,
and shows in ``/metrics`` and ``/ready``. Feedback received while Redis is
unreachable waits in the same buffer (a full buffer refuses it with a 503
rather than drop it), and is written with the next flush that succeeds.

The flusher also expires feedback parked in Redis for longer than a mapping
is kept (``AsyncStore.expire_feedback``) about once a second, and keeps the
parked/joined/expired figures it reads for ``/metrics`` and ``/ready``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from core.errors import RedisUnavailable
from core.schema import UNSCORED, ServedRow, Unanswered, encode_served, window_start
from core.store import AsyncStore, Event, FeedbackItem, FeedbackJoins, FeedbackResult, FlushBatch
from gateway.outcomes import OutcomeAggregator
from gateway.tasks import stop_tasks

__all__ = ["Recorder", "RecorderHealth", "unit_counts"]

log = logging.getLogger("abgate.recorder")


def _encoded(row: ServedRow | None) -> str:
    return UNSCORED if row is None else encode_served(*row)


def unit_counts(
    mappings: Iterable[dict[str, ServedRow | None]],
) -> dict[tuple[int, str], dict[str, list[int]]]:
    """Requests and errors per (epoch, variant) and unit in a flush's mappings; rows without
    a unit (the experiment's unit is the request) count nowhere."""
    counts: dict[tuple[int, str], dict[str, list[int]]] = {}
    for mapping in mappings:
        for row in mapping.values():
            if row is None or row[4] is None:
                continue
            group = counts.get((row[2], row[0]))
            if group is None:
                group = counts[(row[2], row[0])] = {}
            held = group.get(row[4])
            error = row[3] is Unanswered.ERROR
            if held is None:
                group[row[4]] = [1, 1 if error else 0]
            else:
                held[0] += 1
                if error:
                    held[1] += 1
    return counts


def _answer_count(batch: FlushBatch) -> int:
    return sum(len(a) for answers in batch.shadow_answers.values() for a in answers.values())


@dataclass
class RecorderHealth:
    """What ``/ready`` and ``/metrics`` say about recording."""

    pending_events: int
    dropped_events: int
    flush_failures: int
    seconds_since_flush: float
    redis_ok: bool
    feedback_buffered: int = 0  # received while Redis was unreachable, not written yet
    feedback_refused: int = 0  # refused (503) because the buffer was full
    feedback_pending: int = 0  # parked in Redis, waiting for their request (every replica's)
    feedback_expired: int = 0  # expired unjoined, all-time (every replica's)


@dataclass
class Recorder:
    """In-process outcome buffer with a periodic flusher."""

    store: AsyncStore | None
    window_s: int = 60
    flush_interval_s: float = 0.05
    max_pending: int = 100_000
    sweep_interval_s: float = 1.0
    # Experiments whose parked feedback this process helps expire (the routed ones).
    experiment_names: Callable[[], Iterable[str]] = field(default=lambda: ())
    aggregator: OutcomeAggregator = field(init=False)
    lifetime: dict[str, defaultdict[str, float]] = field(init=False, default_factory=dict)
    events: dict[str, list[Event]] = field(init=False, default_factory=dict)
    requests: dict[tuple[str, int], dict[str, ServedRow | None]] = field(
        init=False, default_factory=dict
    )
    # The rows of calls that answered several (``<rid>.<i>``): joinable like requests, but
    # kept apart so that per-unit request counts count the call, not its rows.
    rows: dict[tuple[str, int], dict[str, ServedRow | None]] = field(
        init=False, default_factory=dict
    )
    feedback: dict[str, list[FeedbackItem]] = field(init=False, default_factory=dict)
    # (experiment, hour of the live request) -> request id -> shadow -> prediction (text)
    shadow_answers: dict[tuple[str, int], dict[str, dict[str, str]]] = field(
        init=False, default_factory=dict
    )
    # Per experiment: what became of the feedback this process received
    # (FeedbackResult statuses, plus "buffered" and "refused").
    feedback_results: dict[str, Counter[str]] = field(init=False, default_factory=dict)
    feedback_expired: Counter[str] = field(init=False, default_factory=Counter)
    feedback_joins: dict[str, FeedbackJoins] = field(init=False, default_factory=dict)
    last_sweep: float = field(init=False, default=0.0)
    # Mappings being written right now: feedback must still find them.
    in_flight: list[FlushBatch] = field(init=False, default_factory=list)
    pending: int = field(init=False, default=0)
    pending_rows: int = field(init=False, default=0)  # in ``rows``, not taken by a flush yet
    dropped: int = field(init=False, default=0)
    flush_failures: int = field(init=False, default=0)
    last_flush: float = field(init=False, default_factory=time.monotonic)
    redis_ok: bool = field(init=False, default=True)
    _task: asyncio.Task[None] | None = field(init=False, default=None)
    _writing: bool = field(init=False, default=False)
    _stopping: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.aggregator = OutcomeAggregator(self.window_s)

    def lose_records(self, spec: str) -> None:
        """Test only (``ABGATE_TEST_DROP_RECORDS``): lose a share of one variant's request
        records from a config version on, as a recording bug would.

        ``spec`` is ``VARIANT:SHARE[:FROM_VERSION]``; every round(1/SHARE)-th record
        of VARIANT is dropped. Installed as an instance attribute, so a gateway
        without it runs the hot path unchanged.
        """
        variant, share, *rest = spec.split(":")
        every = max(1, round(1 / float(share)))
        first = int(rest[0]) if rest else 0
        record = self.record_request
        seen = [0]

        def lossy(experiment: str, name: str, version: str, epoch: int, **kw: Any) -> None:
            if name == variant and epoch >= first:
                seen[0] += 1
                if seen[0] % every == 0:
                    return
            record(experiment, name, version, epoch, **kw)

        self.record_request = lossy  # type: ignore[method-assign, assignment]

    # --- hot path: no awaits, no I/O ------------------------------------------

    def record_request(
        self,
        experiment: str,
        variant: str,
        model_version: str,
        epoch: int,
        *,
        ok: bool,
        client_error: bool,
        latency_ms: float,
        fallback: bool,
        request_id: str,
        prediction: Any,
        error: str | None,
        ts: float,
        unit: str | None = None,
    ) -> None:
        """One answered (or failed) request, routed under config version ``epoch``.

        ``unit`` is the unit it was assigned by when that is not the request (a user
        id; "" when the request named none), for per-unit statistics: it rides in the
        request's mapping, and the flush sums each unit's requests from there.
        """
        self.aggregator.add_request(
            experiment, variant, epoch, ok=ok, client_error=client_error, latency_ms=latency_ms,
            fallback=fallback, ts=ts,
        )  # fmt: skip
        if self.pending >= self.max_pending:
            self.dropped += 1
            return
        self.pending += 1
        # One row per request, in EVENT_FIELDS order: a tuple costs less than a dict.
        event = (ts, request_id, variant, model_version, ok, latency_ms, fallback, error)
        bucket = self.events.get(experiment)
        if bucket is None:
            bucket = self.events[experiment] = []
        bucket.append(event)
        key = (experiment, int(ts // 3600))
        mapping = self.requests.get(key)
        if mapping is None:
            mapping = self.requests[key] = {}
        # The epoch travels with the mapping: feedback that arrives after a weight
        # change counts in the epoch that served its request. A tuple here, a
        # string (schema.encode_served) when the flush writes it. A request its
        # variant did not answer is mapped too (None, schema.UNSCORED), so feedback
        # for it is answered at once and never waits for a mapping that cannot come.
        if ok and not fallback:
            mapping[request_id] = (variant, model_version, epoch, prediction, unit)
        elif unit is None:
            mapping[request_id] = None
        else:
            # Unscored all the same; the unit's error count needs what happened.
            failed = Unanswered.OTHER if client_error or ok else Unanswered.ERROR
            mapping[request_id] = (variant, model_version, epoch, failed, unit)

    def record_rows(
        self,
        experiment: str,
        variant: str,
        model_version: str,
        epoch: int,
        rows: list[tuple[str, Any]],
        *,
        ts: float,
        unit: str | None = None,
    ) -> None:
        """The outcome ids and predictions of one answered call of several rows, recorded
        (``record_request``) under its request id; each row is joined by feedback alone."""
        # Rows wait beside the buffer with a bound of their own, so a Redis outage under
        # large batches holds at most ``max_pending`` of them (more are dropped, counted).
        if self.pending >= self.max_pending or self.pending_rows + len(rows) > self.max_pending:
            self.dropped += len(rows)
            return
        self.pending_rows += len(rows)
        key = (experiment, int(ts // 3600))
        mapping = self.rows.get(key)
        if mapping is None:
            mapping = self.rows[key] = {}
        for outcome_id, prediction in rows:
            mapping[outcome_id] = (variant, model_version, epoch, prediction, unit)

    def record_drift(self, experiment: str, fields: list[str], ts: float) -> None:
        """One sampled request's drift bins (field names from ``VariantBins.fields_for``)."""
        delta = self.aggregator.delta(experiment, ts)
        for name in fields:
            delta[name] += 1

    def record_metric(
        self, experiment: str, variant: str, epoch: int, metric: str, value: float, ts: float
    ) -> None:
        """One delayed outcome joined to the variant and epoch that served it."""
        self.aggregator.add_metric(experiment, variant, epoch, metric, float(value), ts)

    def record_shadow(
        self,
        experiment: str,
        shadow: str,
        *,
        ok: bool,
        agreed: bool | None,
        request_id: str | None = None,
        prediction: Any = None,
        request_ts: float | None = None,
    ) -> None:
        """One mirrored call to a shadow variant.

        With ``request_id`` (and the live request's ``request_ts``), an answer's
        ``prediction`` is kept beside the request's mapping, so the request's
        feedback scores it with the live answer (``core.store``).
        """
        self.aggregator.add_shadow(experiment, shadow, ok=ok, agreed=agreed, ts=time.time())
        if ok and request_id is not None and request_ts is not None:
            self.keep_shadow_answer(experiment, shadow, request_id, prediction, request_ts)

    def keep_shadow_answer(
        self, experiment: str, shadow: str, request_id: str, prediction: Any, request_ts: float
    ) -> None:
        """Keep a shadow's answer to ``request_id`` (a request, or a row ``<rid>.<i>`` of a
        batched call) beside its mapping, under the hour of the live request."""
        if self.pending >= self.max_pending:
            self.dropped += 1
            return
        key = (experiment, int(request_ts // 3600))
        answers = self.shadow_answers.get(key)
        if answers is None:
            answers = self.shadow_answers[key] = {}
        held = answers.get(request_id)
        if held is None:
            held = answers[request_id] = {}
        if shadow not in held:
            self.pending += 1
        held[shadow] = str(prediction)

    def record_shadow_shed(self, experiment: str, shadow: str) -> None:
        """A request not mirrored to ``shadow``: too many of its calls were in flight."""
        self.aggregator.add_shadow_shed(experiment, shadow, ts=time.time())

    def record_shadow_rows(
        self, experiment: str, shadow: str, *, compared: int, agreed: int
    ) -> None:
        """One mirrored call that answered several rows, ``agreed`` of ``compared`` alike."""
        self.aggregator.add_shadow_rows(
            experiment, shadow, compared=compared, agreed=agreed, ts=time.time()
        )

    def pending_request(self, experiment: str, request_id: str) -> str | None:
        """A request mapping not flushed yet (feedback can arrive that fast), encoded."""
        found = self.pending_request_hour(experiment, request_id)
        return None if found is None else found[0]

    def pending_request_hour(self, experiment: str, request_id: str) -> tuple[str, int] | None:
        """``pending_request`` with the hour whose request hash the mapping goes to."""
        for (name, hour), mapping in (*self.requests.items(), *self.rows.items()):
            if name == experiment and request_id in mapping:
                return _encoded(mapping[request_id]), hour
        for batch in self.in_flight:
            if batch.experiment == experiment:
                for hour, served in batch.requests.items():
                    if request_id in served:
                        return _encoded(served[request_id]), hour
        return None

    def count_feedback(self, experiment: str, result: str) -> None:
        """What became of one feedback this process received (for /metrics)."""
        counts = self.feedback_results.get(experiment)
        if counts is None:
            counts = self.feedback_results[experiment] = Counter()
        counts[result] += 1

    def buffer_feedback(self, experiment: str, item: FeedbackItem) -> bool:
        """Keep a feedback Redis did not take until a flush succeeds; False when the
        buffer is full (the caller refuses it: the client can retry, nothing is lost)."""
        if self.pending >= self.max_pending:
            self.count_feedback(experiment, "refused")
            return False
        self.pending += 1
        self.feedback.setdefault(experiment, []).append(item)
        self.count_feedback(experiment, "buffered")
        return True

    # --- flusher ----------------------------------------------------------------

    def _take(self) -> list[FlushBatch]:
        deltas = self.aggregator.drain()
        names = {name for name, _ in deltas} | set(self.events) | {n for n, _ in self.requests}
        names |= {n for n, _ in self.rows}
        names |= set(self.feedback) | {n for n, _ in self.shadow_answers}
        join_window = window_start(time.time(), self.window_s)
        batches = []
        for name in sorted(names):
            requests = {h: m for (n, h), m in self.requests.items() if n == name}
            units = unit_counts(requests.values())  # calls, not their rows
            for (n, hour), rows in self.rows.items():
                if n == name:
                    requests[hour] = {**requests.get(hour, {}), **rows}
            batches.append(
                FlushBatch(
                    experiment=name,
                    deltas={w: d for (n, w), d in deltas.items() if n == name},
                    events=self.events.pop(name, []),
                    requests=requests,
                    feedback=self.feedback.pop(name, []),
                    join_window=join_window,
                    units=units,
                    shadow_answers={h: a for (n, h), a in self.shadow_answers.items() if n == name},
                )
            )
        self.requests = {}
        self.rows = {}
        self.pending_rows = 0
        self.shadow_answers = {}
        # ``pending`` keeps counting the events in flight: outcomes that arrive
        # during a write that then fails must not push the buffer past its bound.
        return batches

    def _has_pending(self) -> bool:
        return bool(
            self.aggregator or self.events or self.requests or self.rows or self.feedback
            or self.shadow_answers
        )  # fmt: skip

    def _count_lifetime(self, batches: list[FlushBatch]) -> None:
        for batch in batches:
            totals = self.lifetime.setdefault(batch.experiment, defaultdict(int))
            for delta in batch.deltas.values():
                for name, amount in delta.items():
                    totals[name] += amount

    async def _write(self, batches: list[FlushBatch]) -> list[FeedbackResult]:
        assert self.store is not None
        try:
            return await self.store.write(batches)
        finally:
            self._writing = False

    async def flush(self) -> bool:
        """Write everything pending; on failure keep it for the next try.

        A write that failed is retried first and unchanged (same batch ids), so
        that when its reply was lost but Redis had applied it (a timeout, a reset
        connection), Redis recognises the parts it has and nothing counts twice.
        New outcomes wait in the aggregator meanwhile.
        """
        retry = bool(self.in_flight)
        if self.store is None or not (retry or self._has_pending()):
            self.last_flush = time.monotonic()
            return True
        batches = self.in_flight if retry else self._take()
        self.in_flight = batches  # taken, not yet confirmed: feedback still finds them
        self._writing = True
        try:
            results = await self._write(batches)
        except RedisUnavailable as exc:
            # (A cancel, only when stop() ran out of time, also leaves them in flight.)
            self.flush_failures += 1
            if self.redis_ok:
                log.warning("recording paused, outcomes buffered: %s", exc)
            self.redis_ok = False
            return False
        self.in_flight = []
        self.pending -= sum(
            len(batch.events) + len(batch.feedback) + _answer_count(batch) for batch in batches
        )
        written = (batch.experiment for batch in batches for _ in batch.feedback)
        for name, result in zip(written, results, strict=True):
            # A write whose reply was lost ran the script already: it answers as then.
            status = "repeat" if result.repeated else result.status
            self.count_feedback(name, f"buffered_{status}")
        if not self.redis_ok:
            log.warning("recording resumed")
        self.redis_ok = True
        self.last_flush = time.monotonic()
        self._count_lifetime(batches)
        return True

    async def sweep(self) -> None:
        """Expire parked feedback whose wait is over and read the parked figures.

        Every replica sweeps; the script expires each entry once, so the
        expirations a process counts add up across replicas.
        """
        self.last_sweep = time.monotonic()
        if self.store is None:
            return
        for name in sorted(set(self.experiment_names())):
            try:
                joins = await self.store.expire_feedback(name, time.time())
            except RedisUnavailable:
                return  # the flusher reports Redis being down
            self.feedback_joins[name] = joins
            if joins.expired_now:
                self.feedback_expired[name] += joins.expired_now
                log.warning(
                    "%d feedback for %s expired before their request was known",
                    joins.expired_now, name,
                )  # fmt: skip

    async def run(self) -> None:
        """Flush forever; back off while Redis is down; sweep parked feedback now and then."""
        while not self._stopping:
            ok = await self.flush()
            if ok and time.monotonic() - self.last_sweep >= self.sweep_interval_s:
                await self.sweep()
            await asyncio.sleep(
                self.flush_interval_s if ok else min(1.0, self.flush_interval_s * 10)
            )

    def start(self) -> None:
        """Start the flusher task on the running loop."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self.run(), name="recorder")

    async def stop(self, deadline_s: float = 5.0) -> None:
        """Stop the flusher and write what is pending, trying until the deadline."""
        end = time.monotonic() + deadline_s
        self._stopping = True  # the flusher ends at its next turn even if a cancel is lost
        if self._task is not None:
            # Never cancel a write in progress: whether it reached Redis would be unknown.
            while self._writing and time.monotonic() < end:
                await asyncio.sleep(0.005)
            await stop_tasks([self._task], max(0.5, end - time.monotonic()))
            self._task = None
        # A retried write goes first, then what came meanwhile: flush until both are in.
        while time.monotonic() < end:
            if await self.flush() and not self.in_flight and not self._has_pending():
                break
            await asyncio.sleep(0 if self.redis_ok else 0.1)

    def health(self) -> RecorderHealth:
        """Recording state for /ready and /metrics."""
        return RecorderHealth(
            pending_events=self.pending,
            dropped_events=self.dropped,
            flush_failures=self.flush_failures,
            seconds_since_flush=time.monotonic() - self.last_flush,
            redis_ok=self.redis_ok,
            feedback_buffered=sum(len(items) for items in self.feedback.values())
            + sum(len(batch.feedback) for batch in self.in_flight),
            feedback_refused=sum(c["refused"] for c in self.feedback_results.values()),
            feedback_pending=sum(j.pending for j in self.feedback_joins.values()),
            feedback_expired=sum(j.expired for j in self.feedback_joins.values()),
        )
