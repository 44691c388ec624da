"""The in-process aggregator: what a flush writes, as hash fields, and how it reads back."""

from __future__ import annotations

import pytest

from core.schema import decode_stats, parse_outcome_fields
from gateway.outcomes import (
    LATENCY_BOUNDS_MS,
    OutcomeAggregator,
    latency_bucket,
)

T0 = 1_700_000_040.0  # a window start for window_s=60 (divisible by 60)
EPOCH = 3


def _requests(
    agg: OutcomeAggregator, variant: str, latencies: list[float], epoch: int = EPOCH, **kw: bool
) -> None:
    for latency in latencies:
        agg.add_request(
            "demo", variant, epoch, ok=kw.get("ok", True),
            client_error=kw.get("client_error", False), latency_ms=latency,
            fallback=kw.get("fallback", False), ts=T0 + 1,
        )  # fmt: skip


def test_requests_become_hash_fields_that_parse_back() -> None:
    agg = OutcomeAggregator(window_s=60)
    _requests(agg, "champion", [1.0, 2.0, 3.0])
    _requests(agg, "canary", [5.0], ok=False)
    _requests(agg, "canary", [0.5], client_error=True, ok=True)
    _requests(agg, "canary", [4.0], fallback=True, ok=False)
    drained = agg.drain()
    assert list(drained) == [("demo", int(T0))]
    fields = drained[("demo", int(T0))]
    assert fields["3|champion:requests"] == 3
    assert fields["3|champion:latency_ms:sum"] == pytest.approx(6.0)
    assert fields["3|champion:latency_ms:ss"] == pytest.approx(14.0)
    assert fields[f"3|champion:latency_hist:{latency_bucket(2.0)}"] >= 1
    outcomes = decode_stats(fields).epochs[EPOCH]
    champion, canary = outcomes["champion"], outcomes["canary"]
    assert (champion.requests, champion.errors, champion.latency_ms.n) == (3, 0, 3)
    assert champion.latency is not None and champion.latency.n == 3
    assert (canary.requests, canary.errors, canary.client_errors, canary.fallbacks) == (3, 2, 1, 1)
    # a client error is answered by the variant: its latency counts, the failures' do not
    assert canary.latency_ms.n == 1 and canary.latency_ms.sum == pytest.approx(0.5)
    assert not agg and agg.drain() == {}


def test_zero_counters_are_not_written() -> None:
    agg = OutcomeAggregator(window_s=60)
    _requests(agg, "champion", [1.0])
    fields = agg.drain()[("demo", int(T0))]
    assert "3|champion:errors" not in fields and "3|champion:fallbacks" not in fields
    assert [k for k in fields if ":latency_hist:" in k] == [
        f"3|champion:latency_hist:{latency_bucket(1.0)}"
    ]


def test_windows_are_kept_apart_and_snapshot_does_not_drain() -> None:
    agg = OutcomeAggregator(window_s=60)
    agg.add_request("demo", "a", 1, ok=True, client_error=False, latency_ms=1, fallback=False,
                    ts=T0)  # fmt: skip
    agg.add_request("demo", "a", 1, ok=True, client_error=False, latency_ms=1, fallback=False,
                    ts=T0 + 60)  # fmt: skip
    snapshot = agg.deltas
    assert sorted(w for _, w in snapshot) == [int(T0), int(T0) + 60]
    assert agg.drain() == snapshot


def test_epochs_are_kept_apart_within_a_window() -> None:
    agg = OutcomeAggregator(window_s=60)
    _requests(agg, "champion", [1.0, 1.0], epoch=3)
    _requests(agg, "champion", [1.0], epoch=4)
    agg.add_metric("demo", "champion", 3, "accuracy", 1.0, T0 + 1)
    fields = agg.drain()[("demo", int(T0))]
    assert (fields["3|champion:requests"], fields["4|champion:requests"]) == (2, 1)
    decoded = decode_stats(fields)
    assert decoded.epochs[3]["champion"].metrics["accuracy"].n == 1
    assert "accuracy" not in decoded.epochs[4]["champion"].metrics
    assert parse_outcome_fields(fields)["champion"].requests == 3  # summed over epochs


def test_requests_metrics_and_shadows_share_their_window() -> None:
    agg = OutcomeAggregator(window_s=60)
    _requests(agg, "champion", [1.0, 1.0, 1.0])
    agg.add_metric("demo", "champion", EPOCH, "accuracy", 1.0, T0 + 1)
    agg.add_shadow("demo", "shadow", ok=True, agreed=True, ts=T0 + 1)
    fields = agg.drain()[("demo", int(T0))]
    assert fields["3|champion:requests"] == 3
    assert fields["3|champion:metric:accuracy:n"] == 1
    assert fields["shadow:shadow:agreed"] == 1
    assert decode_stats(fields).shadows["shadow"].agreed == 1


def test_overflow_latency_lands_in_the_last_bucket() -> None:
    agg = OutcomeAggregator(window_s=60)
    _requests(agg, "champion", [LATENCY_BOUNDS_MS[-1] * 10])
    fields = agg.drain()[("demo", int(T0))]
    assert fields[f"3|champion:latency_hist:{len(LATENCY_BOUNDS_MS)}"] == 1
