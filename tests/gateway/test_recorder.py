"""Recording against a real Redis: exact counts, outages, bounded buffer."""

from __future__ import annotations

import asyncio
import time

from abgate.redis_server import free_port, start_redis
from analysis.sufficient import MetricStats
from core.errors import RedisUnavailable
from core.schema import Unanswered, parse_outcome_fields
from core.store import AsyncStore, FlushBatch, Store
from gateway.recorder import Recorder


def record(
    recorder: Recorder, n: int, *, variant: str = "champion", start: int = 0, epoch: int = 1
) -> None:
    now = time.time()
    for i in range(n):
        recorder.record_request(
            "demo", variant, "v1", epoch, ok=i % 10 != 0, client_error=False,
            latency_ms=1.0 + i % 7, fallback=False, request_id=f"r{start + i}", prediction=1,
            error=None, ts=now,
        )  # fmt: skip


def test_flush_writes_exact_sufficient_statistics(store_target: tuple[str, bool]) -> None:
    url, cluster = store_target

    async def scenario():
        store = AsyncStore(url, cluster=cluster)
        recorder = Recorder(store)
        record(recorder, 250)
        recorder.record_metric("demo", "champion", 1, "accuracy", 1.0, time.time())
        recorder.record_metric("demo", "champion", 1, "accuracy", 0.0, time.time())
        assert await recorder.flush()
        found = await store.lookup_request("demo", "r7", time.time())
        await store.close()
        return found

    assert asyncio.run(scenario()) == "champion|v1|1|1"
    sync = Store(url, cluster=cluster)
    outcome = parse_outcome_fields(sync.totals("demo"))["champion"]
    assert outcome.requests == 250
    assert outcome.errors == 25
    assert outcome.latency_ms.n == 225
    expected = [1.0 + i % 7 for i in range(250) if i % 10 != 0]
    assert outcome.latency_ms.sum == sum(expected)
    assert outcome.latency_ms.sum_squares == sum(x * x for x in expected)
    assert outcome.latency is not None and outcome.latency.n == 225
    assert outcome.metrics["accuracy"] == MetricStats(2, 1.0, 1.0)
    windows = sync.windows("demo")
    assert len(windows) == 1
    assert parse_outcome_fields(next(iter(windows.values())))["champion"].requests == 250
    assert len(sync.events("demo", count=1000)) == 250


def test_outage_buffers_then_flushes_everything(tmp_path) -> None:
    server = start_redis(data_dir=tmp_path / "a")
    port = server.port

    async def scenario():
        store = AsyncStore(server.url)
        recorder = Recorder(store, max_pending=10)
        record(recorder, 5)
        assert await recorder.flush()
        server.stop()
        record(recorder, 25, start=5)
        assert not await recorder.flush()
        health = recorder.health()
        assert health.dropped_events == 15 and health.pending_events == 10
        assert not health.redis_ok
        again = start_redis(data_dir=tmp_path / "b", port=port)
        try:
            assert await recorder.flush()
        finally:
            await store.close()
        return again

    again = asyncio.run(scenario())
    try:
        outcome = parse_outcome_fields(Store(again.url).totals("demo"))["champion"]
        # Counters are aggregates and never dropped; only raw events past the bound are.
        assert outcome.requests == 25
        assert len(Store(again.url).events("demo", count=100)) == 10
    finally:
        again.stop()


class SlowStore(AsyncStore):
    """A real store whose writes take a while, so shutdown lands mid-write."""

    async def write(self, batches):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.2)
        return await super().write(batches)


def test_stop_during_a_write_loses_and_doubles_nothing(redis_url: str) -> None:
    async def scenario():
        store = SlowStore(redis_url)
        recorder = Recorder(store, flush_interval_s=0.01)
        record(recorder, 50)
        recorder.start()
        while not recorder.in_flight:
            await asyncio.sleep(0.001)
        record(recorder, 7, start=50)  # arrives while the first batch is being written
        await recorder.stop()
        await store.close()

    asyncio.run(scenario())
    outcome = parse_outcome_fields(Store(redis_url).totals("demo"))["champion"]
    assert outcome.requests == 57


def test_buffer_bound_holds_while_a_failing_write_is_in_flight() -> None:
    # Redis is gone (nothing listens on the port) and each write takes a while to
    # fail: outcomes that arrive meanwhile must count against the same bound.
    dead = f"redis://127.0.0.1:{free_port()}/0"

    async def scenario():
        store = SlowStore(dead)
        recorder = Recorder(store, max_pending=10)
        record(recorder, 10)
        flushing = asyncio.ensure_future(recorder.flush())
        while not recorder.in_flight:
            await asyncio.sleep(0.001)
        record(recorder, 5, start=10)  # the buffer is full: all five are dropped
        assert not await flushing
        await store.close()
        return recorder.health()

    health = asyncio.run(scenario())
    assert (health.pending_events, health.dropped_events) == (10, 5)


class LostReplyStore(AsyncStore):
    """A real store whose first ``lost`` writes reach Redis but whose replies never come
    back (a timeout or reset after Redis applied the pipeline)."""

    def __init__(self, url: str, lost: int) -> None:
        super().__init__(url)
        self.lost = lost
        self.writes = 0

    async def write(self, batches):  # type: ignore[no-untyped-def]
        self.writes += 1
        results = await super().write(batches)
        if self.lost:
            self.lost -= 1
            raise RedisUnavailable("flush failed: reply lost after the write was applied")
        return results


def test_a_write_whose_reply_was_lost_is_retried_and_counted_once(redis_url: str) -> None:
    async def scenario() -> tuple[int, bool]:
        store = LostReplyStore(redis_url, lost=2)
        recorder = Recorder(store)
        record(recorder, 40)
        assert not await recorder.flush()  # applied, but the gateway cannot know
        record(recorder, 5, start=40)  # waits until the retry is confirmed
        assert not await recorder.flush()  # the retry: same batch, its reply lost too
        found = recorder.pending_request("demo", "r3") is not None  # still findable
        assert await recorder.flush()  # the retry, confirmed (Redis skipped it)
        assert await recorder.flush()  # then what came meanwhile
        await store.close()
        return store.writes, found

    writes, found = asyncio.run(scenario())
    assert (writes, found) == (4, True)
    sync = Store(redis_url)
    outcome = parse_outcome_fields(sync.totals("demo"))["champion"]
    assert outcome.requests == 45 and outcome.errors == 5
    assert len(sync.events("demo", count=1000)) == 45


def test_the_same_batch_written_twice_is_applied_once(redis_url: str) -> None:
    now = time.time()
    batch = FlushBatch(
        "demo",
        {
            60: {
                "1|champion:requests": 3,
                "1|champion:latency_ms:n": 3,
                "1|champion:latency_ms:sum": 1.5,
                "1|champion:latency_ms:ss": 0.75,
            }
        },
        [(now, "r1", "champion", "v1", True, 0.5, False, None)],
        {int(now // 3600): {"r1": ("champion", "v1", 1, 1)}},
    )
    twin = FlushBatch("demo", batch.deltas, batch.events, batch.requests)  # a new batch id

    async def scenario() -> None:
        store = AsyncStore(redis_url)
        for written in (batch, batch, twin):
            await store.write([written])
        await store.close()

    asyncio.run(scenario())
    sync = Store(redis_url)
    totals = parse_outcome_fields(sync.totals("demo"))["champion"]
    assert totals.requests == 6 and totals.latency_ms.sum == 3.0
    assert len(sync.events("demo")) == 2


def test_rows_of_a_call_are_joinable_but_count_the_call_once_per_unit(
    redis_url: str,
) -> None:
    async def scenario() -> tuple[list[str | None], FlushBatch]:
        store = AsyncStore(redis_url)
        recorder = Recorder(store, max_pending=5)
        now = time.time()
        # One call of three rows by user alice: the request is unscored, its rows are not.
        recorder.record_request(
            "rows", "champion", "v1", 1, ok=True, client_error=False, latency_ms=2.0,
            fallback=False, request_id="c1", prediction=Unanswered.OTHER, error=None, ts=now,
            unit="alice",
        )  # fmt: skip
        rows = [("c1.0", 1), ("c1.1", 0), ("c1.2", 1)]
        recorder.record_rows("rows", "champion", "v1", 1, rows, ts=now, unit="alice")
        assert recorder.pending_request("rows", "c1.1") == "champion|v1|1/5|alice|0"
        # Past the bound, a call's rows are dropped whole, and counted.
        recorder.record_rows("rows", "champion", "v1", 1, [("c2.0", 1), ("c2.1", 1),
                                                            ("c2.2", 1)], ts=now)  # fmt: skip
        assert recorder.dropped == 3 and recorder.pending_request("rows", "c2.0") is None
        batch = recorder._take()[0]
        assert recorder.pending_rows == 0
        recorder.in_flight = [batch]
        await store.write([batch])
        found = [await store.lookup_request("rows", rid, now) for rid in ("c1", "c1.0", "c1.2")]
        await store.close()
        return found, batch

    found, batch = asyncio.run(scenario())
    assert found[1:] == ["champion|v1|1/5|alice|1", "champion|v1|1/5|alice|1"]
    assert found[0] is not None and found[0] != found[1]  # the call itself: unscored
    assert batch.units == {(1, "champion"): {"alice": [1, 0]}}  # one request, not three
