"""Drift references round-trip through real Redis, for the CLI and for the gateway."""

from __future__ import annotations

import asyncio

from abgate.store import AsyncStore, Store

REFERENCE = {"v1": {"features": [{"feature": "f0", "edges": [0.0], "proportions": [0.5, 0.5]}],
                    "predictions": None}}  # fmt: skip


def test_reference_and_ramp_state_read_back(redis_url: str) -> None:
    store = Store(redis_url)
    try:
        assert store.drift_reference("demo") == {}
        store.put_drift_reference("demo", REFERENCE)
        assert store.drift_reference("demo") == REFERENCE
        assert store.drift_reference("other") == {}  # per experiment
        store.save_ramp_state("demo", {"step": 2, "status": "running"})
    finally:
        store.close()

    async def read() -> tuple[object, object, object]:
        gateway = AsyncStore(redis_url)
        try:
            reference, ramp = await gateway.routing_extras("demo")
            return reference, ramp, await gateway.routing_extras("other")
        finally:
            await gateway.close()

    reference, ramp, other = asyncio.run(read())
    assert reference == REFERENCE
    assert ramp == {"step": 2, "status": "running"}
    assert other == ({}, None)
