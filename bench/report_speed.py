"""Speed of the analysis path on large recorded experiments.

Fills a real Redis (embedded, started here) with the sufficient statistics of
10 million outcomes spread over 24 hourly windows x 3 variants, exactly as
the gateway's recorder writes them, then times ``abgate report`` end to end
(read from Redis, analyse, render) in-process, and ``abgate analyze`` on a
2-variant JSON input as a subprocess against interpreter start-up alone.

    python -m bench.report_speed
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from abgate.redis_server import start_redis
from core.store import AsyncStore, FlushBatch, Store
from experiments.loader import load_experiment
from gateway.outcomes import latency_bucket
from recorded.reporting import experiment_data, render

ROOT = Path(__file__).resolve().parent.parent
OUTCOMES = 10_000_000
HOURS = 24


def fill(store_url: str) -> None:
    """Write 10 M outcomes' statistics as 24 hourly windows x 3 variants."""
    config = load_experiment(ROOT / "experiments" / "demo.yaml")
    epoch = Store(store_url).put_config(
        "demo", config.model_dump(mode="json"), actor="bench", action="apply"
    )
    rng = np.random.default_rng(0)
    shares = {"champion": 0.8, "challenger": 0.1, "canary": 0.1}
    accuracy = {"champion": 0.84, "challenger": 0.92, "canary": 0.80}
    start = int(time.time() // 3600 - HOURS) * 3600
    per_hour = OUTCOMES // HOURS
    batches = []
    for hour in range(HOURS):
        window = start + hour * 3600
        delta: defaultdict[str, float] = defaultdict(float)
        for variant, share in shares.items():
            n = int(per_hour * share)
            latencies = rng.lognormal(0.0, 0.4, size=2000)
            scale = n / len(latencies)
            delta[f"{epoch}|{variant}:requests"] = n
            delta[f"{epoch}|{variant}:errors"] = int(n * 0.001)
            delta[f"{epoch}|{variant}:latency_ms:n"] = n
            delta[f"{epoch}|{variant}:latency_ms:sum"] = float(latencies.sum() * scale)
            delta[f"{epoch}|{variant}:latency_ms:ss"] = float((latencies**2).sum() * scale)
            for value in latencies:
                delta[f"{epoch}|{variant}:latency_hist:{latency_bucket(value)}"] += int(scale)
        # Counts are integers in Redis (HINCRBY): only sums stay floats.
        for key, amount in list(delta.items()):
            if not key.endswith((":sum", ":ss")):
                delta[key] = int(amount)
            correct = int(rng.binomial(n, accuracy[variant]))
            delta[f"{epoch}|{variant}:metric:accuracy:n"] = n
            delta[f"{epoch}|{variant}:metric:accuracy:sum"] = float(correct)
            delta[f"{epoch}|{variant}:metric:accuracy:ss"] = float(correct)
        batches.append(FlushBatch("demo", {window: dict(delta)}, [], {}))

    async def write() -> None:
        store = AsyncStore(store_url)
        await store.write(batches)
        await store.close()

    asyncio.run(write())


def main() -> None:
    server = start_redis()
    try:
        fill(server.url)
        store = Store(server.url)
        data = experiment_data(store, "demo")
        total = sum(v.requests for v in data.variants)
        timings = {}
        for fmt in ("json", "md", "html"):
            runs = []
            for _ in range(5):
                started = time.perf_counter()
                render(experiment_data(store, "demo"), fmt)
                runs.append(time.perf_counter() - started)
            timings[fmt] = statistics.median(runs)
        print(f"report over {total:,} recorded outcomes, {HOURS} windows x 3 variants:")
        for fmt, seconds in timings.items():
            print(f"  {fmt:<5} {seconds * 1000:8.1f} ms (median of 5, read + analyse + render)")
    finally:
        server.stop()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input.json"
        path.write_text(
            json.dumps(
                {
                    "variants": [
                        {
                            "name": "champion",
                            "role": "champion",
                            "weight": 50,
                            "requests": 10000,
                            "metrics": {
                                "accuracy": {"type": "proportion", "n": 10000, "sum": 8400}
                            },
                        },
                        {
                            "name": "canary",
                            "role": "canary",
                            "weight": 50,
                            "requests": 10000,
                            "metrics": {
                                "accuracy": {"type": "proportion", "n": 10000, "sum": 8550}
                            },
                        },
                    ]
                }
            )
        )

        def wall(argv: list[str]) -> float:
            runs = []
            for _ in range(7):
                started = time.perf_counter()
                subprocess.run(argv, check=True, capture_output=True)
                runs.append(time.perf_counter() - started)
            return statistics.median(runs)

        bare = wall([sys.executable, "-c", "pass"])
        analyze = wall([sys.executable, "-m", "abgate", "analyze", str(path)])
        print(
            f"abgate analyze (2 variants): {analyze * 1000:.0f} ms wall, interpreter start-up "
            f"{bare * 1000:.0f} ms -> {(analyze - bare) * 1000:.0f} ms beyond start-up"
        )


if __name__ == "__main__":
    main()
