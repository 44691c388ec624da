"""Config sync at start against a real Redis: replicas starting together."""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis

from core.store import EXPERIMENTS_KEY, AsyncStore, Store
from experiments.loader import load_experiment
from gateway.config_sync import ConfigSync
from gateway.live import LiveExperiments

DEMO = Path(__file__).resolve().parents[2] / "experiments" / "demo.yaml"


def test_start_routes_a_config_stored_but_not_yet_indexed(redis_url: str) -> None:
    """A replica that stored the config but has not indexed it yet: the next one still routes."""
    config = load_experiment(DEMO)
    Store(redis_url).put_config(config.name, config.model_dump(mode="json"), actor="t",
                                action="apply")  # fmt: skip
    redis.Redis.from_url(redis_url).srem(EXPERIMENTS_KEY, config.name)

    async def start() -> LiveExperiments:
        store = AsyncStore(redis_url)
        experiments = LiveExperiments()
        try:
            await ConfigSync(store, experiments, config).start()
        finally:
            await store.close()
        return experiments

    experiments = asyncio.run(start())
    assert list(experiments.by_name) == [config.name]
    assert experiments.by_name[config.name].version == 1


class _Deaf(AsyncStore):
    """A real store whose subscriber hears no message, only its heartbeats (counted)."""

    heartbeats = 0

    async def config_updates(self):  # type: ignore[override]
        while True:
            await asyncio.sleep(0.01)
            self.heartbeats += 1
            yield ("", 0)


def _version_after_heartbeats(redis_url: str, resync_every_s: float, heartbeats: int) -> int:
    """Start a sync on v1, store v2 without its message reaching it, let it watch."""
    config = load_experiment(DEMO)
    store = Store(redis_url)
    store.put_config(config.name, config.model_dump(mode="json"), actor="t", action="apply")

    async def run() -> int:
        deaf = _Deaf(redis_url)
        experiments = LiveExperiments()
        sync = ConfigSync(deaf, experiments, config, resync_every_s=resync_every_s)
        try:
            await sync.start()
            assert experiments.by_name[config.name].version == 1
            store.put_config(config.name, config.model_dump(mode="json"), actor="t",
                             action="apply")  # fmt: skip
            watching = asyncio.create_task(sync.watch())
            while deaf.heartbeats < heartbeats:
                await asyncio.sleep(0.01)
            watching.cancel()
            return experiments.by_name[config.name].version
        finally:
            await deaf.close()

    return asyncio.run(run())


def test_a_change_whose_message_was_missed_is_read_at_the_next_resync(redis_url: str) -> None:
    # Re-reading at every heartbeat: the next one brings v2 in.
    assert _version_after_heartbeats(redis_url, 1e-9, heartbeats=3) == 2


def test_the_resync_interval_is_the_one_configured(redis_url: str) -> None:
    # Hourly: 20 heartbeats later (in well under an hour) v1 is still routed.
    assert _version_after_heartbeats(redis_url, 3600.0, heartbeats=20) == 1
