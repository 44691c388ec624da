"""Recording against a real Redis: exact counts, outages, bounded buffer."""

from __future__ import annotations

import asyncio
import time

from abgate.redis_server import free_port, start_redis
from abgate.store import AsyncStore, Store
from gateway.outcomes import parse_outcome_fields
from gateway.recorder import Recorder


def record(recorder: Recorder, n: int, *, variant: str = "champion", start: int = 0) -> None:
    now = time.time()
    for i in range(n):
        recorder.record_request(
            "demo", variant, "v1", ok=i % 10 != 0, client_error=False, latency_ms=1.0 + i % 7,
            fallback=False, request_id=f"r{start + i}", prediction=1, error=None, ts=now,
        )  # fmt: skip


def test_flush_writes_exact_sufficient_statistics(store_target: tuple[str, bool]) -> None:
    url, cluster = store_target

    async def scenario():
        store = AsyncStore(url, cluster=cluster)
        recorder = Recorder(store)
        record(recorder, 250)
        recorder.record_metric("demo", "champion", "accuracy", 1.0, time.time())
        recorder.record_metric("demo", "champion", "accuracy", 0.0, time.time())
        assert await recorder.flush()
        found = await store.lookup_request("demo", "r7", time.time())
        await store.close()
        return found

    assert asyncio.run(scenario()) == "champion|v1|1"
    sync = Store(url, cluster=cluster)
    outcome = parse_outcome_fields(sync.totals("demo"))["champion"]
    assert outcome.requests == 250
    assert outcome.errors == 25
    assert outcome.latency["n"] == 225
    expected = [1.0 + i % 7 for i in range(250) if i % 10 != 0]
    assert outcome.latency["sum"] == sum(expected)
    assert outcome.latency["ss"] == sum(x * x for x in expected)
    assert sum(outcome.latency_hist) == 225
    assert outcome.metrics["accuracy"] == {"n": 2, "sum": 1.0, "ss": 1.0}
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

    async def write(self, batches) -> None:
        await asyncio.sleep(0.2)
        await super().write(batches)


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
