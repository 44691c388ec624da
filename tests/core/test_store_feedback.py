"""The feedback scripts against a real Redis and a real Redis Cluster: whichever of a
feedback and its request's mapping reaches Redis second counts it, exactly once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from core.errors import RedisUnavailable
from core.schema import Keys, decode_stats, window_start
from core.store import AsyncStore, FeedbackItem, FeedbackResult, FlushBatch
from tests.lost_reply import ReplyDroppingProxy, reply_dropping_proxy

NAMES = ("demo", "checkout", "search-ranker")  # spread over the cluster's slots


def item(rid: str, token: str, *, kind: str = "label", value: float = 1, served: str = "",
         ts: float | None = None) -> FeedbackItem:  # fmt: skip
    now = time.time() if ts is None else ts
    return FeedbackItem(rid, token, "accuracy", kind, value, served, now, window_start(now, 60))


def mappings(name: str, rows: dict[str, tuple[str, str, int, object]]) -> FlushBatch:
    now = time.time()
    return FlushBatch(name, {}, [], {int(now // 3600): rows}, join_window=window_start(now, 60))


async def accuracy(store: AsyncStore, name: str) -> dict[tuple[int, str], tuple[int, float]]:
    totals, *_ = await store.recorded(name, 1)
    stats = decode_stats(totals)
    return {
        (epoch, variant): (m.n, m.sum)
        for epoch, per in stats.epochs.items()
        for variant, s in per.items()
        if (m := s.metrics.get("accuracy")) is not None
    }


def test_feedback_before_or_after_its_mapping_counts_once(store_target: tuple[str, bool]) -> None:
    url, cluster = store_target

    async def scenario() -> dict[str, list[str]]:
        store = AsyncStore(url, cluster=cluster)
        seen: dict[str, list[Any]] = {}
        for name in NAMES:
            early = await store.feedback(name, item("early", "t1"), park=True)
            await store.write([mappings(name, {"early": ("canary", "v3", 7, 1),
                                               "late": ("champion", "v1", 7, 0)})])  # fmt: skip
            late = await store.feedback(name, item("late", "t2", kind="reward", value=2.5),
                                        park=True)  # fmt: skip
            duplicate = await store.feedback(name, item("early", "t3", value=0), park=True)
            retried = await store.feedback(name, item("late", "t2"), park=True)
            # The writer served it itself and has not flushed: it brings the mapping.
            local = await store.feedback(name, item("local", "t4", served="canary|v3|7|0"),
                                         park=True)  # fmt: skip
            # A rewrite of the same mappings (a retried flush) joins nothing again.
            await store.write([mappings(name, {"early": ("canary", "v3", 7, 1)})])
            unknown = await store.feedback(name, item("nobody", "t5"), park=False)
            seen[name] = [r.status for r in (early, late, duplicate, retried, local, unknown)]
            seen[name].append(await accuracy(store, name))
            assert late.served == "champion|v1|7|0" and late.amount == 2.5
        await store.close()
        return seen

    seen = asyncio.run(scenario())
    for name in NAMES:
        *statuses, counted = seen[name]
        # The retried call (same token) gets its first answer back, counting nothing.
        assert statuses == ["pending", "counted", "duplicate", "counted", "counted", "unknown"]
        # label 1 vs prediction 1 (joined), label 1 vs prediction 0 (local), reward 2.5
        assert counted == {(7, "canary"): (2, 1.0), (7, "champion"): (1, 2.5)}


def test_parked_feedback_expires_counted(store_target: tuple[str, bool]) -> None:
    url, cluster = store_target

    async def scenario() -> tuple[list[int], list[int], list[Any]]:
        store = AsyncStore(url, cluster=cluster, request_ttl_s=1)
        now = time.time()
        assert (await store.feedback("demo", item("gone", "t1", ts=now), park=True)).status == (
            "pending"
        )
        waiting = await store.expire_feedback("demo", now + 0.5)
        expired = await store.expire_feedback("demo", now + 1.5)
        # Its mapping arriving after the wait counts nothing.
        await store.write([mappings("demo", {"gone": ("canary", "v3", 7, 1)})])
        again = await store.expire_feedback("demo", now + 2)
        counted = await accuracy(store, "demo")
        await store.close()
        return (
            [waiting.expired_now, waiting.pending, waiting.parked, waiting.expired],
            [expired.expired_now, expired.pending, expired.expired, again.expired_now],
            [again.joined, counted],
        )

    waiting, expired, joined = asyncio.run(scenario())
    assert waiting == [0, 1, 1, 0]
    assert expired == [1, 0, 1, 0]
    assert joined == [0, {}]  # never a counted outcome


def test_feedback_for_a_request_its_variant_did_not_answer_is_never_counted(
    store_target: tuple[str, bool],
) -> None:
    url, cluster = store_target

    async def scenario() -> tuple[list[str], list[Any]]:
        store = AsyncStore(url, cluster=cluster)
        early = await store.feedback("demo", item("fell-back", "t1"), park=True)
        await store.write([mappings("demo", {"fell-back": None, "failed": None})])
        late = await store.feedback("demo", item("failed", "t2"), park=True)
        local = await store.feedback("demo", item("here", "t3", served="-"), park=True)
        joins = await store.expire_feedback("demo", time.time())
        counted = await accuracy(store, "demo")
        await store.close()
        return [r.status for r in (early, late, local)], [joins.pending, joins.joined, counted]

    statuses, after = asyncio.run(scenario())
    assert statuses == ["pending", "unscored", "unscored"]
    assert after == [0, 0, {}]


def test_feedback_whose_reply_is_lost_counts_once_however_it_is_retried(redis_url: str) -> None:
    """The script runs in Redis and its reply is thrown away on the wire: the caller
    sending the same item again (as the gateway and its recorder do), a client sending
    the same feedback again and a buffered flush written again each get the first
    answer back, and nothing is counted twice."""
    claim = Keys("demo").feedback_claim

    async def lost(proxy: ReplyDroppingProxy, rid: str, call: Any) -> bool:
        proxy.arm(claim(rid).encode(), drops=1)
        try:
            await call
        except RedisUnavailable:
            return True
        finally:
            proxy.disarm()
        return False

    async def scenario(proxy: ReplyDroppingProxy) -> dict[str, Any]:
        store = AsyncStore(proxy.url)
        seen: dict[str, Any] = {}
        await store.write([mappings("demo", {f"r{i}": ("canary", "v3", 7, 1) for i in range(3)})])
        seen["lost"] = [
            await lost(proxy, "r0", store.feedback("demo", item("r0", "t0"), park=True)),
            await lost(proxy, "r1", store.write([FlushBatch("demo", {}, [], {},
                                                            feedback=[item("r1", "t1")])])),
            await lost(proxy, "r9", store.feedback("demo", item("r9", "t9"), park=True)),
        ]  # fmt: skip
        seen["dropped"] = proxy.dropped
        # The same item (token) again: the answer the lost reply carried.
        seen["again"] = await store.feedback("demo", item("r0", "t0"), park=True)
        seen["flushed"] = await store.write([FlushBatch("demo", {}, [], {},
                                                        feedback=[item("r1", "t1")])])  # fmt: skip
        seen["parked"] = await store.feedback("demo", item("r9", "t9"), park=True)
        # A client sending the same feedback again (a new token): its first answer.
        seen["resent"] = await store.feedback("demo", item("r0", "t5"), park=True)
        # Another value for the same request is a duplicate, never counted.
        seen["other"] = await store.feedback("demo", item("r0", "t6", value=0), park=True)
        # The parked one is joined when its mapping comes, once.
        await store.write([mappings("demo", {"r9": ("champion", "v1", 7, 1)})])
        seen["counted"] = await accuracy(store, "demo")
        await store.close()
        return seen

    with reply_dropping_proxy(redis_url) as proxy:
        seen = asyncio.run(scenario(proxy))
    assert seen["lost"] == [True, True, True] and seen["dropped"] == 3, seen
    # Each script ran twice or three times; each feedback counts once.
    assert seen["counted"] == {(7, "canary"): (2, 2.0), (7, "champion"): (1, 1.0)}, seen
    counted = FeedbackResult("counted", "canary|v3|7|1", 1.0)
    assert seen["again"] == counted, seen
    assert seen["flushed"] == [counted], seen
    assert seen["parked"] == FeedbackResult("pending"), seen
    assert seen["resent"] == FeedbackResult("counted", "canary|v3|7|1", 1.0, repeated=True), seen
    assert seen["other"].status == "duplicate", seen
