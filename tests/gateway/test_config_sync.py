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
