"""Median latency of one worker's /predict, one request at a time over keep-alive.

Starts a real worker process per demo version (trained if missing), sends
sequential requests with a persistent connection, and prints median/p99 for
the HTTP round trip next to the bare ``predict_proba`` call, so the model's
share and the serving overhead can be told apart.

    python -m bench.worker_latency [--requests 2000]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

from abgate.processes import abgate_argv, start_child, wait_http_ok
from abgate.redis_server import free_port
from model_workers.demo_versions import ensure_demo_versions
from model_workers.registry import ModelRegistry

ROW = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


def _quantiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e3, ordered[int(0.99 * (len(ordered) - 1))] * 1e3


def bench_http(port: int, n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    body = orjson.dumps({"features": ROW})
    headers = {"content-type": "application/json"}
    times = []
    for i in range(n + 200):
        started = time.perf_counter()
        conn.request("POST", "/predict", body, headers)
        response = conn.getresponse()
        response.read()
        if i >= 200:  # warm-up excluded
            times.append(time.perf_counter() - started)
        assert response.status == 200
    conn.close()
    return times


def bench_model(registry: ModelRegistry, version: str, n: int) -> list[float]:
    estimator = registry.load("demo", version).estimator
    x = np.asarray([ROW])
    times = []
    for _ in range(n):
        started = time.perf_counter()
        estimator.predict_proba(x)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--registry", default=None)
    args = parser.parse_args()
    root = Path(args.registry or tempfile.mkdtemp(prefix="abgate-bench-"))
    registry = ModelRegistry(root)
    versions = ensure_demo_versions(registry)
    print(
        f"{'version':<8} {'estimator':<32} {'model p50':>10} {'HTTP p50':>9} {'HTTP p99':>9}  (ms)"
    )
    for version, meta in versions.items():
        port = free_port()
        child = start_child(
            f"worker-{version}",
            abgate_argv(
                "worker", "--version", version, "--port", str(port), "--registry", str(root)
            ),
        )
        try:
            wait_http_ok(f"http://127.0.0.1:{port}/ready", child=child)
            http_p50, http_p99 = _quantiles(bench_http(port, args.requests))
        finally:
            child.stop()
        model_p50, _ = _quantiles(bench_model(registry, version, args.requests))
        print(
            f"{version:<8} {meta['estimator']:<28} {meta['training_params']['n_estimators']:>3} "
            f"{model_p50:>10.3f} {http_p50:>9.3f} {http_p99:>9.3f}"
        )


if __name__ == "__main__":
    main()
