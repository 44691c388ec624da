"""The store against a real single Redis and a real 3-master Redis Cluster.

Each test runs in both modes (``store_target``): what works on one node must
work when an experiment's keys live on one node of several and global keys on
another.
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest
import redis

from abgate.redis_server import EmbeddedCluster
from core.errors import RedisUnavailable
from core.store import AsyncStore, FlushBatch, Keys, Store

NAMES = ("demo", "checkout", "search-ranker", "a", "b")  # spread over the cluster's slots


def test_every_key_of_an_experiment_carries_its_hash_tag() -> None:
    keys = Keys("checkout")
    built = [getattr(keys, name) for name in dir(Keys) if isinstance(getattr(Keys, name), property)]
    built += [keys.window(60), keys.requests(7), keys.feedback_claim("r1"), keys.unit("u{1}")]
    assert len(built) == 19  # a new key must be added here, with its hash tag checked
    for key in built:
        # Redis hashes only the text between the first '{' and the next '}'.
        assert re.search(r"\{([^}]*)\}", key).group(1) == "checkout", key


def test_config_put_get_versions_and_audit(store_target: tuple[str, bool]) -> None:
    url, cluster = store_target
    store = Store(url, cluster=cluster)
    store.ping()
    for name in NAMES:
        assert store.put_config(name, {"name": name}, actor="t", action="apply") == 1
    assert store.put_config("demo", {"name": "demo", "v": 2}, actor="alice", action="set") == 2
    record = store.get_config("demo")
    assert (record.version, record.config, record.actor) == (2, {"name": "demo", "v": 2}, "alice")
    assert store.experiments() == sorted(NAMES)
    assert [(e["action"], e["version"]) for e in store.audit("demo")] == [("apply", "1"),
                                                                         ("set", "2")]  # fmt: skip
    store.close()


def test_config_changes_reach_a_listener(store_target: tuple[str, bool]) -> None:
    url, cluster = store_target
    sync = Store(url, cluster=cluster)

    async def scenario() -> list[tuple[str, int]]:
        store = AsyncStore(url, cluster=cluster)
        heard: list[tuple[str, int]] = []
        subscribed = asyncio.Event()

        async def listen() -> None:
            async for name, version in store.config_updates():
                subscribed.set()  # the first heartbeat comes after SUBSCRIBE was answered
                if name.startswith("late"):
                    heard.append((name, version))
                if len(heard) == len(NAMES) + 1:
                    return

        task = asyncio.create_task(listen())
        await asyncio.wait_for(subscribed.wait(), 10)
        for name in NAMES:  # published from the sync store, on whichever node it picks
            await asyncio.to_thread(sync.put_config, f"late-{name}", {}, actor="t", action="a")
        await store.put_config("late-async", {}, actor="t", action="a")
        await asyncio.wait_for(task, 10)
        await store.close()
        return heard

    heard = asyncio.run(scenario())
    assert sorted(heard) == sorted([(f"late-{n}", 1) for n in NAMES] + [("late-async", 1)])


def test_one_flush_over_many_experiments_is_exact(store_target: tuple[str, bool]) -> None:
    url, cluster = store_target
    now = time.time()
    hour = int(now // 3600)

    def batch(i: int, name: str) -> FlushBatch:
        return FlushBatch(
            name,
            {60: {"champion:requests": i + 1, "champion:lat_sum": 0.5 * (i + 1)},
             120: {"champion:requests": 2}},
            [(now, f"{name}-r", "champion", "v1", True, 0.5 * i, False, None)],
            {hour: {f"{name}-r": ("champion", "v1", 1, i)}},
        )  # fmt: skip

    async def scenario() -> list[str | None]:
        store = AsyncStore(url, cluster=cluster)
        for _ in range(3):  # the same deltas three times: counts add, never overwrite
            await store.write([batch(i, name) for i, name in enumerate(NAMES)])
        found = [await store.lookup_request(name, f"{name}-r", now) for name in NAMES]
        await store.close()
        return found

    assert asyncio.run(scenario()) == [f"champion|v1|1|{i}" for i in range(len(NAMES))]
    store = Store(url, cluster=cluster)
    for i, name in enumerate(NAMES):
        totals = store.totals(name)
        assert totals[b"champion:requests"] == str(3 * (i + 1 + 2)).encode()
        assert float(totals[b"champion:lat_sum"]) == 1.5 * (i + 1)
        assert sorted(store.windows(name)) == [60, 120]
        event = {"ts": now, "rid": f"{name}-r", "variant": "champion", "version": "v1",
                 "ok": True, "latency_ms": 0.5 * i, "fallback": False, "error": None}  # fmt: skip
        assert store.events(name) == [event] * 3


def test_feedback_is_claimed_once(store_target: tuple[str, bool]) -> None:
    url, cluster = store_target

    async def scenario() -> list[bool]:
        stores = [AsyncStore(url, cluster=cluster) for _ in range(2)]  # two gateway replicas
        for store in stores:  # connected first, as a running gateway's store is
            assert await store.ping()
        claims = await asyncio.gather(
            *(store.claim_feedback(name, "r1") for name in NAMES for store in stores)
        )
        for store in stores:
            await store.close()
        return claims

    claims = asyncio.run(scenario())
    assert [claims[i] or claims[i + 1] for i in range(0, len(claims), 2)] == [True] * len(NAMES)
    assert sum(claims) == len(NAMES)


def test_ramp_lock_has_one_owner(store_target: tuple[str, bool]) -> None:
    url, cluster = store_target
    first, second = Store(url, cluster=cluster), Store(url, cluster=cluster)
    assert first.acquire_ramp_lock("demo", "one", 5) == "one"
    assert second.acquire_ramp_lock("demo", "two", 5) is None
    assert second.ramp_lock_owner("demo") == "one"
    assert not second.refresh_ramp_lock("demo", "two", 5)
    assert first.refresh_ramp_lock("demo", "one", 5)
    second.release_ramp_lock("demo", "two")  # not the owner: nothing happens
    assert first.ramp_lock_owner("demo") == "one"
    first.release_ramp_lock("demo", "one")
    assert second.acquire_ramp_lock("demo", "two", 5) == "two"
    second.save_ramp_state("demo", {"step": 2})
    assert first.ramp_state("demo") == {"step": 2}


def test_an_experiments_keys_share_one_slot_on_one_node(
    cluster_url: str, redis_cluster: EmbeddedCluster
) -> None:
    store = Store(cluster_url, cluster=True)
    asyncio.run(_touch_every_key(cluster_url))
    store.acquire_ramp_lock("checkout", "me", 5)
    store.save_ramp_state("checkout", {"step": 1})
    slots: dict[str, set[int]] = {}
    for node in redis_cluster.nodes:
        client = redis.Redis.from_url(node.url)
        for key in client.keys("abgate:{*"):
            name = key.decode().split("{", 1)[1].split("}", 1)[0]
            slots.setdefault(name, set()).add(int(client.cluster("keyslot", key)))
        client.close()
    assert set(slots) == set(NAMES)
    assert all(len(found) == 1 for found in slots.values()), slots
    assert len({slot for found in slots.values() for slot in found}) == len(NAMES)


async def _touch_every_key(url: str) -> None:
    store = AsyncStore(url, cluster=True)
    for name in NAMES:
        await store.put_config(name, {}, actor="t", action="a")
        mapping = {1: {"r": ("x", "v1", 1, 0)}}
        await store.write([FlushBatch(name, {60: {"x:requests": 1}}, [{}], mapping)])
        await store.claim_feedback(name, "r")
    await store.close()


def test_single_node_mode_refuses_a_cluster(cluster_url: str) -> None:
    with pytest.raises(RedisUnavailable, match="ABGATE_REDIS_CLUSTER=1"):
        Store(cluster_url).ping()


def test_the_config_listener_moves_to_another_node_when_it_reconnects(
    cluster_url: str, redis_cluster: EmbeddedCluster
) -> None:
    def listening_nodes() -> list[int]:
        ports = []
        for node in redis_cluster.nodes:
            client = redis.Redis.from_url(node.url)
            if client.pubsub_numsub("abgate:config")[0][1]:
                ports.append(node.port)
            client.close()
        return ports

    async def scenario() -> list[list[int]]:
        store = AsyncStore(cluster_url, cluster=True)
        found = []
        for _ in range(len(redis_cluster.nodes)):  # what ConfigSync.watch does after a failure
            updates = store.config_updates()
            await anext(updates)  # subscribed (a heartbeat)
            found.append(await asyncio.to_thread(listening_nodes))
            await updates.aclose()
        await store.close()
        return found

    found = asyncio.run(scenario())
    assert all(len(ports) == 1 for ports in found), found
    assert sorted(ports[0] for ports in found) == sorted(n.port for n in redis_cluster.nodes)
