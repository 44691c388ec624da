"""What per-unit recording costs, on against off in the same run, and Redis bytes per unit.

    python -m bench.unit_recording [--requests 50000] [--users 10000] [--repeat 7]

Records the same requests through the real ``Recorder`` and flushes them into
a real Redis (the embedded server, started and stopped here) every 1,000
requests, as a gateway at 20k req/s does every 50 ms: once with the unit a
user id from ``--users`` users (per-unit recording on, as for ``unit:
{source: header}``), once without (``unit: request_id``, off). The modes
alternate, repeat after repeat, and each figure is the median.

Per request it prints the gateway process's CPU for recording (the hot-path
call, the flush's take and the client side of the write: what takes
throughput from the gateway) and Redis's CPU (another process; the Lua that
updates each unit's counts). The gate is the gateway's throughput: the
recording CPU per-unit recording adds, against the ~42 µs the whole gateway
spends per request (docs/performance.md), must stay under 5 %.

Memory: ``MEMORY USAGE`` of unit hashes as the flush leaves them (one epoch and
variant, requests only; and with a feedback metric's counts too), and Redis's
``used_memory`` growth per unit over the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Sequence

import redis

from abgate.redis_server import start_redis
from core.schema import Keys, unit_metric_state
from core.store import AsyncStore
from gateway.recorder import Recorder

__all__ = ["main"]

GATEWAY_US_PER_REQUEST = 42.0  # CPU per request of the whole gateway (docs/performance.md)
FLUSH_EVERY = 1000  # requests per flush: 50 ms at 20k req/s
EXPERIMENT = "bench-units"


def _redis_cpu_s(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def _run(url: str, ids: list[str], users: list[str] | None) -> tuple[float, float]:
    """Record and flush every request; (gateway CPU s, wall s)."""
    store = AsyncStore(url)
    recorder = Recorder(store, max_pending=10 * len(ids))
    variants = ["canary" if i % 10 == 0 else "champion" for i in range(1000)]
    now = time.time()
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, len(ids), FLUSH_EVERY):
        for i in range(start, min(start + FLUSH_EVERY, len(ids))):
            recorder.record_request(
                EXPERIMENT, variants[i % 1000], "v1", 7, ok=True, client_error=False,
                latency_ms=1.5, fallback=False, request_id=ids[i], prediction=1, error=None,
                ts=now, unit=None if users is None else users[i],
            )  # fmt: skip
        if not await recorder.flush():
            raise SystemExit("the flush failed: is the Redis server up?")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await store.close()
    return cpu, wall


def _unit_memory(client: redis.Redis, users: list[str]) -> tuple[int, int]:
    """MEMORY USAGE of a unit hash with requests only, and with a feedback metric too."""
    key = Keys(EXPERIMENT).unit(users[0])
    plain = int(client.memory_usage(key, samples=0) or 0)
    client.hset(key, unit_metric_state(7, "champion", "accuracy"), "3:2")
    return plain, int(client.memory_usage(key, samples=0) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000, help="requests per timing")
    parser.add_argument("--users", type=int, default=10_000, help="distinct units")
    parser.add_argument("--repeat", type=int, default=7, help="timings per mode (median)")
    args = parser.parse_args(argv)

    rng = random.Random(19)
    population = [f"user-{i:08d}" for i in range(args.users)]
    users = [rng.choice(population) for _ in range(args.requests)]
    server = start_redis(persistence=False)
    client = redis.Redis.from_url(server.url)
    try:
        figures: dict[str, list[tuple[float, float, float]]] = {"off": [], "on": []}
        for repeat in range(args.repeat):
            for mode in ("off", "on") if repeat % 2 == 0 else ("on", "off"):
                client.flushall()
                ids = [f"{repeat}-{mode}-{i:020x}" for i in range(args.requests)]
                before = _redis_cpu_s(client)
                cpu, wall = asyncio.run(_run(server.url, ids, users if mode == "on" else None))
                redis_cpu = _redis_cpu_s(client) - before
                figures[mode].append((cpu, wall, redis_cpu))
        # Memory: the same requests with and without units; the difference is what units
        # cost (their hashes, and the unit ids in the request mappings while those last).
        used = {}
        for mode in ("off", "on"):
            client.flushall()
            ids = [f"m-{i:020x}" for i in range(args.requests)]
            asyncio.run(_run(server.url, ids, users if mode == "on" else None))
            used[mode] = int(client.info("memory")["used_memory"])
        units = sum(1 for _ in client.scan_iter(match=f"{Keys(EXPERIMENT).unit_prefix}*"))
        grown = used["on"] - used["off"]
        plain, with_metric = _unit_memory(client, sorted(set(users)))
    finally:
        client.close()
        server.stop()

    def per_request_us(mode: str, index: int) -> float:
        return statistics.median(f[index] for f in figures[mode]) / args.requests * 1e6

    off_cpu, on_cpu = per_request_us("off", 0), per_request_us("on", 0)
    off_redis, on_redis = per_request_us("off", 2), per_request_us("on", 2)
    off_rate = args.requests / statistics.median(f[1] for f in figures["off"])
    on_rate = args.requests / statistics.median(f[1] for f in figures["on"])
    added = on_cpu - off_cpu
    share = added / GATEWAY_US_PER_REQUEST
    print(f"per-unit recording, {args.requests} requests of {args.users} users, flushed every "
          f"{FLUSH_EVERY}, median of {args.repeat} alternating runs:")  # fmt: skip
    print("| per request | unit: request_id (off) | unit: header (on) | on / off |")
    print("| --- | --- | --- | --- |")
    print(f"| gateway CPU for recording (µs) | {off_cpu:.2f} | {on_cpu:.2f} | "
          f"{on_cpu / off_cpu:.2f} |")  # fmt: skip
    print(f"| Redis CPU (µs, another process) | {off_redis:.2f} | {on_redis:.2f} | "
          f"{on_redis / off_redis:.2f} |")  # fmt: skip
    print(f"| record + flush to Redis, req/s (wall) | {off_rate:,.0f} | {on_rate:,.0f} | "
          f"{on_rate / off_rate:.2f} |")  # fmt: skip
    print(f"gateway throughput: per-unit recording adds {added:.2f} µs to the ~"
          f"{GATEWAY_US_PER_REQUEST:g} µs of a request: {share:.2%} (target < 5 %)")  # fmt: skip
    print(
        f"Redis memory per unit: {plain} B (MEMORY USAGE, requests of one epoch and variant), "
        f"{with_metric} B with a feedback metric; used_memory, on minus off: "
        f"{grown / max(units, 1):.0f} B per unit over {units} units (unit ids in the "
        "request mappings included)"
    )
    if share >= 0.05:
        print("FAIL: per-unit recording costs the gateway 5 % or more of its throughput")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
