"""Shadow answers joined to labels by the store's scripts, against a real Redis and a
real Redis Cluster: one feedback scores the live answer and every shadow answer kept
beside its mapping, exactly once, whether it comes before or after the feedback (then
it is also counted late)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from analysis.paired import PairedCounts
from core.schema import Keys, ShadowStats, decode_stats, shadow_answers_field, window_start
from core.store import AsyncStore, FeedbackItem, FlushBatch

NAMES = ("demo", "checkout", "search-ranker")  # spread over the cluster's slots


def item(rid: str, token: str, *, kind: str = "label", value: float = 1, served: str = "",
         shadows: bool = True, hour: int | None = None) -> FeedbackItem:  # fmt: skip
    now = time.time()
    metric = "accuracy" if kind == "label" else kind
    return FeedbackItem(rid, token, metric, kind, value, served, now, window_start(now, 60),
                        shadows=shadows, hour=hour)  # fmt: skip


def batch(
    name: str,
    rows: dict[str, Any] | None = None,
    answers: dict[str, dict[str, str]] | None = None,
    batch_id: str | None = None,
) -> FlushBatch:
    now = time.time()
    hour = int(now // 3600)
    flush = FlushBatch(
        name, {}, [], {hour: rows} if rows else {}, join_window=window_start(now, 60),
        shadow_answers={hour: answers} if answers else {},
    )  # fmt: skip
    if batch_id is not None:
        flush.batch_id = batch_id
    return flush


async def shadows(store: AsyncStore, name: str) -> dict[str, ShadowStats]:
    totals, *_ = await store.recorded(name, 1)
    return dict(decode_stats(totals).shadows)


def test_one_feedback_scores_live_and_every_shadow_once(store_target: tuple[str, bool]) -> None:
    url, cluster = store_target

    async def scenario() -> dict[str, Any]:
        store = AsyncStore(url, cluster=cluster)
        out: dict[str, Any] = {}
        for name in NAMES:
            # r1: live 1, s-a 1, s-b 0; r2: live 0, s-a 1 (s-b shed); r3: live 0, s-a 0
            flush = batch(
                name,
                {"r1": ("champion", "v1", 3, 1), "r2": ("champion", "v1", 3, 0),
                 "r3": ("canary", "v3", 3, 0)},
                {"r1": {"s-a": "1", "s-b": "0"}, "r2": {"s-a": "1"}, "r3": {"s-a": "0"}},
            )  # fmt: skip
            await store.write([flush])
            await store.write([flush])  # a retried flush: its parts apply once
            results = [
                await store.feedback(name, item("r1", "t1", value=1), park=True),
                await store.feedback(name, item("r2", "t2", value=1), park=True),
                await store.feedback(name, item("r3", "t3", value=1), park=True),
                # the same feedback again (another token): counted once, as the live side
                await store.feedback(name, item("r1", "t4", value=1), park=True),
            ]
            out[name] = ([(r.status, r.repeated) for r in results], await shadows(store, name))
        await store.close()
        return out

    for name, (statuses, stats) in asyncio.run(scenario()).items():
        assert statuses == [("counted", False)] * 3 + [("counted", True)], name
        a, b = stats["s-a"], stats["s-b"]
        assert a.pairs("accuracy", "champion") == PairedCounts(1, 0, 1, 0)
        assert a.pairs("accuracy", "canary") == PairedCounts(0, 0, 0, 1)
        assert a.pairs("accuracy") == PairedCounts(1, 0, 1, 1)
        assert b.pairs("accuracy") == PairedCounts(0, 1, 0, 0)  # r2 shed: live side only
        assert a.late == b.late == 0


def test_answer_after_its_feedback_is_scored_on_arrival_once(
    store_target: tuple[str, bool],
) -> None:
    url, cluster = store_target

    async def scenario() -> dict[str, Any]:
        store = AsyncStore(url, cluster=cluster)
        out: dict[str, Any] = {}
        for name in NAMES:
            hour = int(time.time() // 3600)
            await store.write([batch(name, {"r1": ("champion", "v1", 1, 1)})])
            await store.feedback(name, item("r1", "t1"), park=True)
            # served by the receiving process, not flushed yet: it names the hour
            local = await store.feedback(
                name, item("r2", "t2", served="champion|v1|1|1", hour=hour), park=True
            )
            late = batch(name, answers={"r1": {"s-a": "1"}, "r2": {"s-a": "1", "s-b": "1"}})
            await store.write([late])
            await store.write([late])  # retried: late counted once
            out[name] = (local.status, await shadows(store, name))
        await store.close()
        return out

    for name, (local, stats) in asyncio.run(scenario()).items():
        assert local == "counted", name
        assert stats["s-a"].late == 2 and stats["s-b"].late == 1
        # Scored against the labels the feedback gave (1, live prediction 1), once
        # although the flush was written twice.
        assert stats["s-a"].pairs("accuracy") == PairedCounts(2, 0, 0, 0), name
        assert stats["s-b"].pairs("accuracy") == PairedCounts(1, 0, 0, 0), name


def test_parked_feedback_scores_shadows_flushed_with_its_mapping(
    store_target: tuple[str, bool],
) -> None:
    url, cluster = store_target

    async def scenario() -> dict[str, Any]:
        store = AsyncStore(url, cluster=cluster)
        out: dict[str, Any] = {}
        for name in NAMES:
            parked = await store.feedback(name, item("r1", "t1", value=0), park=True)
            # (an experiment without shadows parks its feedback without the flag)
            plain = await store.feedback(name, item("r2", "t2", shadows=False), park=True)
            await store.write([batch(name, {"r1": ("champion", "v1", 1, 1),
                                            "r2": ("champion", "v1", 1, 1)},
                                     {"r1": {"s-a": "0"}, "r2": {"s-a": "1"}})])  # fmt: skip
            out[name] = (parked.status, plain.status, await shadows(store, name))
        await store.close()
        return out

    for name, (parked, plain, stats) in asyncio.run(scenario()).items():
        assert (parked, plain) == ("pending", "pending"), name
        # r1: label 0, live 1 (wrong), shadow 0 (right); r2 not scored for shadows
        assert stats["s-a"].pairs("accuracy") == PairedCounts(0, 0, 1, 0)


def test_value_feedback_keeps_squared_error_differences(store_target: tuple[str, bool]) -> None:
    url, cluster = store_target

    async def scenario() -> dict[str, Any]:
        store = AsyncStore(url, cluster=cluster)
        out: dict[str, Any] = {}
        for name in NAMES:
            await store.write([batch(
                name,
                {"r1": ("champion", "v1", 1, 2.0), "r2": ("champion", "v1", 1, 10),
                 "r3": ("champion", "v1", 1, "None")},
                {"r1": {"s-a": "3.5"}, "r2": {"s-a": "7"}, "r3": {"s-a": "1"}},
            )])  # fmt: skip
            for rid, value in (("r1", 3.0), ("r2", 8.0), ("r3", 1.0)):
                await store.feedback(name, item(rid, rid, kind="value", value=value), park=True)
            out[name] = await shadows(store, name)
        await store.close()
        return out

    for name, stats in asyncio.run(scenario()).items():
        # r1: (3.5-3)² - (2-3)² = -0.75; r2: (7-8)² - (10-8)² = -3; r3: no live number
        d = stats["s-a"].error_differences("value")
        assert d.n == 2, name
        assert abs(d.sum - -3.75) < 1e-9 and abs(d.sum_squares - (0.5625 + 9)) < 1e-9
        assert not stats["s-a"].paired


def test_no_mark_is_kept_for_an_experiment_without_shadows(redis_url: str) -> None:
    async def scenario() -> tuple[Any, Any]:
        store = AsyncStore(redis_url)
        await store.write([batch("plain", {"r1": ("champion", "v1", 1, 1)})])
        await store.feedback("plain", item("r1", "t1", shadows=False), park=True)
        await store.write([batch("marked", {"r1": ("champion", "v1", 1, 1)})])
        await store.feedback("marked", item("r1", "t1"), park=True)
        hour = int(time.time() // 3600)
        found = (
            await store.client.hget(Keys("plain").requests(hour), shadow_answers_field("r1")),
            await store.client.hget(Keys("marked").requests(hour), shadow_answers_field("r1")),
        )
        await store.close()
        return found

    plain, marked = asyncio.run(scenario())
    # With shadows, the mark keeps what the feedback said, for an answer that comes later.
    assert plain is None and marked is not None and marked.startswith(b"!")
    assert json.loads(marked[1:]) == ["champion", "1", "accuracy", "label", "1.0"]
