"""A ramp outlives a Redis restart: it waits, resumes from its stored state, and ends.

Real processes: a Redis of this test (AOF fsync'd before each answer, as `abgate up`
keeps it), the demo workers, a gateway and `abgate ramp`, with traffic. Redis is
SIGKILLed a few seconds into the ramp and started again on the same port and data.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from abgate.processes import Child
from abgate.redis_server import EmbeddedRedis, start_redis
from core.store import Store
from tests.conftest import port_of, start_gateway, write_config
from tests.ramp.test_ramp_process import ramp_tail, traffic, weights_history
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[list[EmbeddedRedis]]:
    servers = [start_redis(data_dir=tmp_path / "redis", persistence=True,
                           extra_args=("--appendfsync", "always"))]  # fmt: skip
    yield servers
    servers[-1].stop()


def test_a_ramp_waits_out_a_redis_restart_and_promotes(
    tmp_path: Path, own_redis: list[EmbeddedRedis], demo_workers: dict[str, Child]
) -> None:
    url = own_redis[0].url
    ports = {name: port_of(child) for name, child in demo_workers.items()}
    ports["canary"] = ports["challenger"]  # the better model (v2) is the canary
    config = write_config(
        tmp_path / "ramp.yaml", ports, {"champion": 100, "canary": 0},
        tail=ramp_tail(steps="[20, 60, 100]", min_duration=1.5, min_samples=40, p99_ratio=50,
                       max_duration=240),
    )  # fmt: skip
    config.write_text(config.read_text().replace("model_version: v3", "model_version: v2"))
    gateway = start_gateway(config, url)
    out = tmp_path / "out"
    try:
        with traffic(gateway.url):
            process = subprocess.Popen(
                [sys.executable, "-m", "abgate", "ramp", str(config), "--out", str(out)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                env={**os.environ, "REDIS_URL": url},
            )  # fmt: skip
            try:
                # The ramp has started (its first weight is in the audit log): Redis dies.
                assert wait_for(lambda: weights_history(url)), "the ramp never started"
                old = own_redis[-1]
                os.kill(old.pid, signal.SIGKILL)
                old.process.wait(timeout=10)
                time.sleep(3.0)  # the outage itself, not a wait for a condition
                assert process.poll() is None, "the ramp died with Redis"
                own_redis.append(
                    start_redis(data_dir=old.data_dir, port=old.port, persistence=True,
                                extra_args=("--appendfsync", "always"))
                )  # fmt: skip
                output, _ = process.communicate(timeout=300)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    finally:
        gateway.stop()
    assert process.returncode == 0, output
    assert "Redis is unavailable" in output and "resuming the ramp" in output, output
    final = {v["name"]: v for v in Store(url).get_config("demo").config["variants"]}
    assert final["canary"]["role"] == "champion" and final["canary"]["weight"] == 100
    report = (out / "demo-ramp-report.md").read_text()
    assert report.startswith("## Ramp of canary in demo: PROMOTED"), report[:300]
