"""The chaos soak's processes (Redis, two workers, two gateways, the ramp) and what Redis holds.

Every process is restartable in place (same ports, same data); the readers at
the end take Redis's own figures to compare with what the clients were told.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import redis as redis_client
import yaml

from abgate.processes import Child, abgate_argv, start_child, wait_http_ok
from abgate.redis_server import EmbeddedRedis
from core.schema import Keys, parse_outcome_fields
from core.store import Store

__all__ = [
    "ADMIN_TOKEN",
    "NAME",
    "REDIS_ARGS",
    "Cluster",
    "feedback_claims",
    "parked_unscored",
    "recorded_counts",
    "run_ramp",
    "snapshot",
    "start_worker",
    "write_config",
]

NAME = "chaos"
ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "chaos-admin-token"
# Redis acknowledges a write only once it is in the AOF on disk: a SIGKILL then
# loses nothing a gateway was told was written.
REDIS_ARGS = ("--appendfsync", "always")


def start_worker(version: str, port: int) -> Child:
    """A constant-time worker answering as ``version`` on ``port``, once it is ready."""
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-m", "bench.constant_worker", "--port", str(port)]
    child = start_child(f"worker-{version}", [*argv, "--version", version],
                        url=f"http://127.0.0.1:{port}", env=env)  # fmt: skip
    wait_http_ok(f"{child.url}/ready", child=child, timeout=15)
    return child


def write_config(path: Path, ports: Sequence[int], timeout_ms: int) -> Path:
    """The run's experiment: champion 90 %, canary 10 %, a ramp that holds at its first step."""
    variants = [
        {"name": "champion", "role": "champion", "model_version": "v1",
         "endpoints": [f"http://127.0.0.1:{ports[0]}"], "weight": 90, "timeout_ms": timeout_ms},
        {"name": "canary", "role": "canary", "model_version": "v2",
         "endpoints": [f"http://127.0.0.1:{ports[1]}"], "weight": 10, "timeout_ms": timeout_ms},
    ]  # fmt: skip
    config = {
        "name": NAME,
        "model": "demo",
        "unit": {"source": "header", "name": "X-User-ID"},
        "variants": variants,
        # A ramp that holds at its first step for the whole run (it needs hours).
        "ramp": {"variant": "canary", "steps": [10, 50, 100], "min_duration_s": 36000,
                 "min_samples": 1000000, "check_interval_s": 1, "max_duration_s": 86400,
                 "on_expiry": "rollback"},
    }  # fmt: skip
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class Cluster:
    """Every process of the run, restartable in place (same ports, same data)."""

    tmp: Path
    redis: EmbeddedRedis
    workers: dict[str, Child]
    worker_ports: dict[str, int]
    config: Path
    gateway_ports: list[int]
    gateways: list[Child | None] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.gateway_ports]

    def start_gateway(self, i: int) -> Child:
        port = self.gateway_ports[i]
        child = start_child(
            f"gateway-{i}",
            abgate_argv("gateway", "--port", str(port), "--config", str(self.config)),
            url=f"http://127.0.0.1:{port}",
            env=self.env,
        )
        wait_http_ok(f"{child.url}/health", child=child, timeout=60)
        if i < len(self.gateways):
            self.gateways[i] = child
        else:
            self.gateways.append(child)
        return child

    def stop(self) -> None:
        for child in [*self.gateways, *self.workers.values()]:
            if child is not None:
                child.stop()
        self.redis.stop()


def snapshot(url: str) -> dict[str, Any]:
    """The raw ramp state and config as Redis holds them (compared across a restart)."""
    client = redis_client.Redis.from_url(url)
    keys = Keys(NAME)
    try:
        ramp, config, version = client.mget(keys.ramp, keys.config, keys.config_version)
        epochs = client.hgetall(keys.epochs)
    finally:
        client.close()
    return {"ramp": ramp, "config": config, "version": version, "epochs": epochs}


def run_ramp(cluster: Cluster, until: Callable[[str], bool], timeout: float = 60) -> str:
    """Run ``abgate ramp`` until its output passes ``until``, then interrupt it (as Ctrl-C)."""
    out = cluster.tmp / "ramp.out"
    with out.open("w") as sink:
        process = subprocess.Popen(
            abgate_argv("ramp", str(cluster.config), "--out", str(cluster.tmp)),
            stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, **cluster.env},
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and process.poll() is None:
                if until(out.read_text()) and snapshot(cluster.redis.url)["ramp"]:
                    break
                time.sleep(0.1)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # paused: it resumes from Redis next time
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return out.read_text()


def recorded_counts(url: str) -> tuple[int, int]:
    """(requests, feedback) recorded in Redis over every variant."""
    totals = parse_outcome_fields(Store(url).totals(NAME))
    return (
        sum(v.requests for v in totals.values()),
        sum(m.n for v in totals.values() for m in v.metrics.values()),
    )


def feedback_claims(url: str, accepted: set[str]) -> Counter[str]:
    """The status each accepted feedback's claim holds in Redis (``missing``: none)."""
    client = redis_client.Redis.from_url(url)
    keys = Keys(NAME)
    found: Counter[str] = Counter()
    try:
        rids = sorted(accepted)
        for start in range(0, len(rids), 1000):
            batch = rids[start : start + 1000]
            for raw in client.mget([keys.feedback_claim(rid) for rid in batch]):
                if raw is None:
                    found["missing"] += 1
                elif raw.startswith(b"["):
                    found[str(orjson.loads(raw)[4])] += 1
                else:
                    found["token only"] += 1
    finally:
        client.close()
    return found


def parked_unscored(url: str) -> int:
    """Feedback parked before its request was known, whose request was a fallback answer."""
    client = redis_client.Redis.from_url(url)
    try:
        return int(client.hget(Keys(NAME).feedback_joins, "unscored") or 0)
    finally:
        client.close()
