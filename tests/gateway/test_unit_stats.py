"""Per-unit sums in a real Redis (and Redis Cluster) against a brute-force recount.

Requests of repeating units stream through the real recorder and its flushes;
feedback reaches Redis every way it can (with the mapping of a request not
flushed yet, after the mapping, parked before it, a flush written twice), and
the per-unit ratio sums the scripts keep must equal the sums recomputed from
the raw events unit by unit.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from typing import Any

from analysis.sufficient import RatioStats
from core.schema import Keys, decode_stats, unit_metric_state, unit_requests_state, window_start
from core.store import AsyncStore, FeedbackItem
from gateway.recorder import Recorder

EXPERIMENT = "units-demo"
PLAIN = "units-plain"  # unit: request_id, the path without per-unit keys
UNIT_TTL_S = 3600


def _feedback(rid: str, token: str, metric: str, kind: str, value: float, served: str
              ) -> FeedbackItem:  # fmt: skip
    now = time.time()
    return FeedbackItem(rid, token, metric, kind, value, served, now, window_start(now, 60))


def _sums(pairs: list[tuple[float, float]]) -> tuple[float, ...]:
    return (
        len(pairs),
        sum(x for x, _ in pairs),
        sum(x * x for x, _ in pairs),
        sum(y for _, y in pairs),
        sum(y * y for _, y in pairs),
        sum(x * y for x, y in pairs),
    )


def _of(ratio: RatioStats | None) -> tuple[float, ...] | None:
    if ratio is None:
        return None
    return (ratio.units, ratio.sum_x, ratio.sum_xx, ratio.sum_y, ratio.sum_yy, ratio.sum_xy)


def _close(a: tuple[float, ...] | None, b: tuple[float, ...]) -> bool:
    return a is not None and all(
        abs(p - q) <= 1e-9 * max(1.0, abs(q)) for p, q in zip(a, b, strict=True)
    )


class Truth:
    """Raw events kept by the test, recounted by brute force."""

    def __init__(self) -> None:
        self.requests: dict[str, tuple[int, str, str, int, Any]] = {}  # rid -> served + unit
        # (epoch, variant, unit or rid) -> list of per-request y
        self.request_y: defaultdict[tuple[int, str, str], list[float]] = defaultdict(list)
        self.outcome_y: defaultdict[tuple[str, int, str, str], list[float]] = defaultdict(list)

    def expected(self) -> dict[tuple[str, int, str], tuple[float, ...]]:
        """(measure, epoch, variant) -> units, Σx, Σx², Σy, Σy², Σxy."""
        pairs: defaultdict[tuple[str, int, str], list[tuple[float, float]]] = defaultdict(list)
        for (epoch, variant, _), ys in self.request_y.items():
            pairs[("requests", epoch, variant)].append((len(ys), sum(ys)))
        for (metric, epoch, variant, _), ys in self.outcome_y.items():
            pairs[(metric, epoch, variant)].append((len(ys), sum(ys)))
        return {key: _sums(p) for key, p in pairs.items()}


def test_streamed_unit_sums_equal_a_recount_of_the_raw_events(
    store_target: tuple[str, bool],
) -> None:
    url, cluster = store_target
    rng = random.Random(19)
    # A few heavy users and a long tail, so units repeat a lot and unevenly.
    users = [f"user-{i}" for i in range(40)] + ["o'brien|{x}", "zoë"]
    weights = [1.0 / (1 + i) for i in range(len(users))]
    truth = Truth()
    counted: list[str] = []

    async def send(store: AsyncStore, recorder: Recorder, rid: str, metric: str, kind: str,
                   value: float, token: str) -> None:  # fmt: skip
        served = recorder.pending_request(EXPERIMENT, rid) or ""
        result = await store.feedback(
            EXPERIMENT, _feedback(rid, token, metric, kind, value, served), park=True
        )
        if result.status in ("counted", "pending"):
            epoch, variant, unit, _, prediction = truth.requests[rid]
            amount = (1.0 if float(prediction) == value else 0.0) if kind == "label" else value
            truth.outcome_y[(metric, epoch, variant, unit or rid)].append(amount)
            counted.append(result.status)
        else:
            assert result.status == "unscored", result
            assert not truth.requests[rid][3]

    async def scenario() -> tuple[Any, ...]:
        store = AsyncStore(url, cluster=cluster, unit_ttl_s=UNIT_TTL_S)
        recorder = Recorder(store)
        parked: list[tuple[str, str, str, float]] = []
        for i in range(1500):
            rid = f"r{i:05d}"
            unit = "" if rng.random() < 0.08 else rng.choices(users, weights)[0]
            epoch = 3 if i < 700 else 4
            variant = rng.choice(("champion", "canary"))
            roll = rng.random()
            ok, client_error, fallback = roll > 0.1, 0.1 >= roll > 0.07, 0.07 >= roll > 0.05
            if client_error:
                ok = False
            prediction = rng.randint(0, 1)
            recorder.record_request(
                EXPERIMENT, variant, "v1", epoch, ok=ok and not fallback, client_error=client_error,
                latency_ms=1.0, fallback=fallback, request_id=rid, prediction=prediction,
                error=None if ok else "5xx", ts=time.time(), unit=unit,
            )  # fmt: skip
            recorder.record_request(
                PLAIN, variant, "v1", epoch, ok=True, client_error=False, latency_ms=1.0,
                fallback=False, request_id=rid, prediction=prediction, error=None, ts=time.time(),
            )  # fmt: skip
            error = not (ok and not fallback) and not client_error
            truth.requests[rid] = (epoch, variant, unit, ok and not fallback, prediction)
            truth.request_y[(epoch, variant, unit or rid)].append(1.0 if error else 0.0)
            # Feedback (one per request) for about half the requests: some while the
            # mapping is only in the recorder, some parked before the mapping reaches
            # Redis, the rest after it; a reward (a float) now and then.
            if rng.random() < 0.1:
                parked.append((rid, "revenue", "reward", round(rng.uniform(0, 50), 2)))
            elif rng.random() < 0.5:
                label = float(rng.randint(0, 1))
                when = rng.random()
                if when < 0.3:
                    await send(store, recorder, rid, "accuracy", "label", label, f"t{rid}")
                elif when < 0.5:
                    # Not given the mapping the recorder holds: parked until the flush.
                    item = _feedback(rid, f"t{rid}", "accuracy", "label", label, "")
                    result = await store.feedback(EXPERIMENT, item, park=True)
                    assert result.status == "pending"
                    e, v, u, answered, p = truth.requests[rid]
                    if answered:
                        truth.outcome_y[("accuracy", e, v, u or rid)].append(
                            1.0 if float(p) == label else 0.0
                        )
                else:
                    parked.append((rid, "accuracy", "label", label))
            if i % 97 == 96:
                if i % 3 == 0:
                    # A write whose reply was lost, retried unchanged: applied once.
                    batches = recorder._take()
                    await store.write(batches)
                    await store.write(batches)
                else:
                    assert await recorder.flush()
                for rid_, metric, kind, value in parked:
                    await send(store, recorder, rid_, metric, kind, value, f"{metric}{rid_}")
                parked.clear()
        assert await recorder.flush()
        for rid_, metric, kind, value in parked:
            await send(store, recorder, rid_, metric, kind, value, f"{metric}{rid_}")
        totals, *_ = await store.recorded(EXPERIMENT, 1)
        plain_totals, *_ = await store.recorded(PLAIN, 1)
        plain_units = await store.client.exists(*(Keys(PLAIN).unit(u) for u in users))
        state = await store.client.hgetall(Keys(EXPERIMENT).unit("user-0"))
        ttl = int(await store.client.ttl(Keys(EXPERIMENT).unit("zoë")))
        await store.close()
        return totals, plain_units, state, plain_totals, ttl

    totals, plain_units, state, plain_totals, ttl = asyncio.run(scenario())
    assert counted.count("counted") > 300  # every path was taken many times

    stats = decode_stats(totals)
    expected = truth.expected()
    seen = set()
    for epoch, per in stats.epochs.items():
        for variant, s in per.items():
            want = expected[("requests", epoch, variant)]
            assert _close(_of(s.unit_requests), want), (epoch, variant, s.unit_requests, want)
            # The unit sums cover exactly the requests counted request by request.
            assert s.unit_errors() is not None
            assert s.unit_requests is not None and s.unit_requests.sum_x == s.requests
            for metric in ("accuracy", "revenue"):
                want = expected[(metric, epoch, variant)]
                assert _close(_of(s.unit_metrics.get(metric)), want), (metric, epoch, variant)
                assert s.unit_metric(metric) is not None
                seen.add((metric, epoch, variant))
    assert len(seen) == 8  # 2 metrics x 2 epochs x 2 variants

    # One unit's own running counts, by brute force too.
    for epoch in (3, 4):
        for variant in ("champion", "canary"):
            ys = truth.request_y.get((epoch, variant, "user-0"), [])
            held = state.get(unit_requests_state(epoch, variant).encode())
            if ys:
                assert held is not None
                x, y = held.decode().split(":")
                assert (int(x), float(y)) == (len(ys), sum(ys))
            outcomes = truth.outcome_y.get(("accuracy", epoch, variant, "user-0"), [])
            held = state.get(unit_metric_state(epoch, variant, "accuracy").encode())
            assert (held is not None) == bool(outcomes)
    assert 0 < ttl <= UNIT_TTL_S  # refreshed on each write, never without an expiry

    # unit: request_id keeps today's path: no unit hashes, no unit sums.
    assert plain_units == 0
    assert decode_stats(plain_totals).variants()["canary"].requests > 0
    assert not [k for k in plain_totals if b":unit:" in k]
