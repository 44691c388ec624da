"""Drift references round-trip through real Redis, for the CLI and for the gateway."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.store import AsyncStore, Keys, Store
from model_workers.registry import ModelRegistry

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


def test_windows_since_reads_only_the_lookback_period(redis_url: str) -> None:
    from core.store import FlushBatch

    old, recent = 1_000_000_000, 1_000_003_600
    batch = FlushBatch(
        "demo",
        {old: {"champion:drift:v1:x:0:1": 5}, recent: {"champion:drift:v1:x:0:2": 7}},
        [],
        {},
    )

    async def write_and_read() -> list[dict[bytes, bytes]]:
        gateway = AsyncStore(redis_url)
        try:
            await gateway.write([batch])
            return await gateway.windows_since("demo", recent - 60)
        finally:
            await gateway.close()

    assert asyncio.run(write_and_read()) == [{b"champion:drift:v1:x:0:2": b"7"}]
    store = Store(redis_url)
    try:
        assert store.windows_since("demo", recent) == [{b"champion:drift:v1:x:0:2": b"7"}]
        assert len(store.windows_since("demo", old)) == 2
        assert store.windows_since("demo", recent + 1) == []
    finally:
        store.close()


def test_apply_without_the_registry_keeps_the_stored_references(
    tmp_path: Path, redis_url: str, demo_registry: ModelRegistry
) -> None:
    from experiments.loader import load_experiment
    from recorded.drift import store_drift_references
    from tests.conftest import write_config

    ports, weights = {"champion": 9001, "canary": 9003}, {"champion": 90, "canary": 10}
    config = load_experiment(write_config(tmp_path / "d.yaml", ports, weights))
    store = Store(redis_url)
    try:
        assert store_drift_references(store, config, demo_registry) == []
        stored = store.drift_reference("demo")
        assert set(stored) == {"v1", "v3"}
        assert len(stored["v1"]["features"]) == 10 and stored["v3"]["predictions"]["classes"]
        elsewhere = ModelRegistry(tmp_path / "empty")
        assert store_drift_references(store, config, elsewhere) == []  # kept, nothing missing
        assert store.drift_reference("demo") == stored
        store.client.delete(Keys("demo").drift_reference)
        missing = store_drift_references(store, config, elsewhere)
        assert len(missing) == 2 and "demo v1 is not in the registry" in missing[0]
        assert store.drift_reference("demo") == {}
    finally:
        store.close()
