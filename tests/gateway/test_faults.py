"""Faults under load, with real processes: workers killed or hung, Redis killed, SIGTERM.

Each test drives steady traffic from a client thread (``abgate.loadgen.run_load``)
while it breaks something, then checks what the client saw and what Redis
recorded: no client-visible error where a fallback exists, no hang, nothing
lost or counted twice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from abgate.loadgen import LoadResult, run_load
from abgate.processes import Child
from abgate.redis_server import EmbeddedRedis, free_port, start_redis
from core.schema import parse_outcome_fields
from core.store import Store
from experiments.loader import load_experiment
from ramp.policy import RampState, decide, observe
from recorded.reporting import experiment_data
from tests.conftest import port_of, start_gateway, start_worker, write_config
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

ROW = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]

RAMP_TAIL = """\
metrics:
  primary: {name: accuracy, kind: proportion, source: label, direction: increase}
  guardrails:
    - {name: error_rate, max_absolute_increase: 0.01}
statistics: {alpha: 0.05, sequential: true, tuning_n: 5000, min_samples: 20}
ramp:
  variant: canary
  steps: [50, 100]
  min_duration_s: 1
  min_samples: 20
  check_interval_s: 1
  max_duration_s: 3600
"""


def recorded(redis_url: str, name: str = "demo") -> dict[str, Any]:
    return parse_outcome_fields(Store(redis_url).totals(name))


def recorded_requests(redis_url: str) -> int:
    try:
        return sum(v.requests for v in recorded(redis_url).values())
    except redis.ConnectionError:
        return -1


@dataclass
class Load:
    """``run_load`` in a thread until ``stop()``; ``result`` once stopped."""

    url: str
    rate: float = 150.0
    concurrency: int = 8
    feedback_share: float = 0.0
    stopper: threading.Event = field(default_factory=threading.Event)
    result: LoadResult | None = None
    thread: threading.Thread | None = None

    def start(self) -> Load:
        def run() -> None:
            self.result = asyncio.run(
                run_load(
                    self.url,
                    rate=self.rate,
                    duration_s=600,
                    concurrency=self.concurrency,
                    feedback_share=self.feedback_share,
                    stop=self.stopper,
                )
            )

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> LoadResult:
        self.stopper.set()
        assert self.thread is not None
        self.thread.join(timeout=60)
        assert self.result is not None, "load thread did not finish"
        return self.result


@contextlib.contextmanager
def under_load(url: str, **options: Any) -> Iterator[Load]:
    load = Load(url, **options).start()
    try:
        yield load
    finally:
        if not load.stopper.is_set():
            load.stop()


# --- worker faults -----------------------------------------------------------------


def test_killed_canary_under_load_no_client_error_and_the_ramp_gate_rolls_back(
    tmp_path: Path, redis_url: str, demo_registry, demo_workers: dict[str, Child]
) -> None:
    canary = start_worker(demo_registry, "v3")
    ports = {"champion": port_of(demo_workers["champion"]), "canary": port_of(canary)}
    config = write_config(
        tmp_path / "ramp.yaml", ports, {"champion": 50, "canary": 50}, tail=RAMP_TAIL
    )
    gateway = start_gateway(config, redis_url)
    try:
        with under_load(gateway.url) as load:

            def canary_served(n: int) -> Callable[[], bool]:
                return lambda: (
                    (c := recorded(redis_url).get("canary")) is not None
                    and (c.requests - c.errors >= n)
                )

            assert wait_for(canary_served(40)), recorded(redis_url)
            canary.stop(sig=signal.SIGKILL)
            assert wait_for(
                lambda: (c := recorded(redis_url).get("canary")) is not None and c.errors >= 60
            ), recorded(redis_url)
            result = load.stop()
        assert result.sent > 0 and not result.errors, result.summary()
        assert result.ok == result.sent
        assert wait_for(lambda: recorded_requests(redis_url) == result.sent)
        totals = recorded(redis_url)
        # Every failed canary call was answered by the champion, and recorded as the canary's error.
        assert totals["canary"].fallbacks == totals["canary"].errors > 0
        assert totals["champion"].errors == 0
        plan = load_experiment(config).ramp
        assert plan is not None
        data = experiment_data(Store(redis_url), "demo")
        now = time.time()
        decision = decide(plan, RampState(0, now - 60, now - 60), observe(plan, data, data, now))
        assert decision.action == "rollback", decision
        assert "error" in decision.rule + decision.reason
    finally:
        gateway.stop()
        canary.stop()


def hung_listener() -> socket.socket:
    """A worker that accepts connections in the kernel and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(0)
    return sock


def test_hanging_canary_is_answered_by_the_champion_within_the_timeout(
    tmp_path: Path, redis_url: str, demo_workers: dict[str, Child]
) -> None:
    hung = hung_listener()
    timeout_s = 0.3
    ports = {"champion": port_of(demo_workers["champion"]), "canary": hung.getsockname()[1]}
    config = write_config(
        tmp_path / "hang.yaml", ports, {"champion": 50, "canary": 50},
        timeout_ms=str(int(timeout_s * 1000)),
    )  # fmt: skip
    gateway = start_gateway(config, redis_url)
    try:
        session = requests.Session()
        slowest = 0.0
        variants: collections.Counter[str] = collections.Counter()
        # Sequential calls so each one's wall time is its own; twenty canary units
        # fill the hung worker's accept queue, after which connecting hangs too.
        for i in range(40):
            started = time.monotonic()
            r = session.post(gateway.url + "/predict", json={"features": ROW},
                             headers={"X-User-ID": f"h{i}"}, timeout=30)  # fmt: skip
            elapsed = time.monotonic() - started
            assert r.status_code == 200, r.text
            variants[r.json()["variant"]] += 1
            slowest = max(slowest, elapsed)
        totals = wait_for(
            lambda: (t := recorded(redis_url)).get("canary") and t["canary"].requests >= 10 and t
        )
        assert variants == {"champion": 40}
        timeouts = totals["canary"].errors
        assert timeouts == totals["canary"].fallbacks == totals["canary"].requests >= 10
        # The timeout holds: a fallback answer takes the timeout plus one champion call.
        assert timeout_s <= slowest < timeout_s + 1.5
    finally:
        gateway.stop()
        hung.close()


def test_champion_with_every_endpoint_down_is_a_clear_503(tmp_path: Path, redis_url: str) -> None:
    dead = [free_port(), free_port()]
    config = write_config(tmp_path / "down.yaml", {"champion": dead[0]}, {"champion": 100})
    text = config.read_text().replace(
        f"['http://127.0.0.1:{dead[0]}']",
        f"['http://127.0.0.1:{dead[0]}', 'http://127.0.0.1:{dead[1]}']",
    )
    config.write_text(text)
    gateway = start_gateway(config, redis_url)
    try:
        for i in range(8):  # past the ejection threshold of both endpoints
            r = requests.post(gateway.url + "/predict", json={"features": ROW},
                              headers={"X-Request-ID": f"down-{i}"}, timeout=10)  # fmt: skip
            assert r.status_code == 503, r.text
            body = r.json()
            assert body["status"] == "error" and body["error"]
            assert r.headers["X-Request-ID"] == f"down-{i}"
        ready = requests.get(gateway.url + "/ready", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["experiments"]["demo"]["champion_reachable"] is False
    finally:
        gateway.stop()


# --- Redis faults ------------------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[list[EmbeddedRedis]]:
    """A Redis of this test (fixed data dir, AOF fsync'd before each answer); ``[0]`` is live."""
    servers = [start_redis(data_dir=tmp_path / "redis", persistence=True,
                           extra_args=("--appendfsync", "always"))]  # fmt: skip
    yield servers
    servers[-1].stop()


def kill(server: EmbeddedRedis) -> None:
    os.kill(server.pid, signal.SIGKILL)
    server.process.wait(timeout=10)


def restart(servers: list[EmbeddedRedis]) -> EmbeddedRedis:
    old = servers[-1]
    servers.append(start_redis(data_dir=old.data_dir, port=old.port, persistence=True,
                               extra_args=("--appendfsync", "always")))  # fmt: skip
    return servers[-1]


def metric(url: str, name: str) -> float:
    for line in requests.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_redis_killed_and_restarted_under_load_loses_nothing(
    tmp_path: Path, own_redis: list[EmbeddedRedis], demo_workers: dict[str, Child]
) -> None:
    url = own_redis[0].url
    ports = {name: port_of(child) for name, child in demo_workers.items()}
    config = write_config(tmp_path / "r.yaml", ports, {"champion": 80, "challenger": 20})
    gateway = start_gateway(config, url)
    try:
        with under_load(gateway.url) as load:
            assert wait_for(lambda: recorded_requests(url) >= 100)
            kill(own_redis[0])
            down_at = time.monotonic()
            assert wait_for(lambda: metric(gateway.url, "abgate_recording_pending_outcomes") > 0)
            ready = requests.get(gateway.url + "/ready", timeout=10).json()
            assert ready["redis"] == "unreachable"
            time.sleep(max(0.0, 5.0 - (time.monotonic() - down_at)))  # the outage lasts 5 s
            probe = requests.post(gateway.url + "/predict", json={"features": ROW}, timeout=10)
            assert probe.status_code == 200, probe.text  # routing goes on without Redis
            restart(own_redis)
            assert wait_for(lambda: recorded_requests(url) > 0)
            time.sleep(0.5)  # some traffic after the recovery too
            result = load.stop()
        assert result.sent > 0 and not result.errors, result.summary()
        expected = result.ok + 1  # the probe sent while Redis was down
        assert wait_for(lambda: recorded_requests(url) == expected), (
            recorded_requests(url),
            expected,
        )
        time.sleep(0.3)  # nothing more arrives later: counted exactly once
        assert recorded_requests(url) == expected
        assert metric(gateway.url, "abgate_dropped_outcomes_total") == 0
        assert metric(gateway.url, "abgate_recording_pending_outcomes") == 0
    finally:
        gateway.stop()


def test_tiny_buffer_drops_an_exact_count_and_reports_it(
    tmp_path: Path, own_redis: list[EmbeddedRedis], demo_workers: dict[str, Child]
) -> None:
    url = own_redis[0].url
    bound, sent = 25, 70
    config = write_config(
        tmp_path / "t.yaml", {"champion": port_of(demo_workers["champion"])}, {"champion": 100}
    )
    gateway = start_gateway(config, url, ABGATE_MAX_PENDING_OUTCOMES=str(bound))
    try:
        kill(own_redis[0])
        session = requests.Session()
        for i in range(sent):
            r = session.post(gateway.url + "/predict", json={"features": ROW},
                             headers={"X-Request-ID": f"t{i}"}, timeout=10)  # fmt: skip
            assert r.status_code == 200, r.text
        ready = requests.get(gateway.url + "/ready", timeout=10).json()
        assert ready["recording"]["dropped_outcomes"] == sent - bound
        assert ready["recording"]["pending_outcomes"] == bound
        assert metric(gateway.url, "abgate_dropped_outcomes_total") == sent - bound
        restart(own_redis)
        # Counters are aggregates and never dropped; only raw events past the bound are.
        assert wait_for(lambda: recorded_requests(url) == sent), recorded_requests(url)
        assert wait_for(lambda: len(Store(url).events("demo", count=1000)) == bound)
        kept = [e["rid"] for e in Store(url).events("demo", count=1000)]
        assert kept == [f"t{i}" for i in range(bound)]  # the first ones; later ones dropped
        assert metric(gateway.url, "abgate_recording_pending_outcomes") == 0
    finally:
        gateway.stop()


def test_config_flushed_from_redis_keeps_the_last_good_one(
    tmp_path: Path, redis_url: str, demo_workers: dict[str, Child]
) -> None:
    ports = {name: port_of(child) for name, child in demo_workers.items()}
    config = write_config(tmp_path / "f.yaml", ports, {"champion": 50, "challenger": 50})
    gateway = start_gateway(config, redis_url)
    try:
        redis.Redis.from_url(redis_url).flushall()
        assert wait_for(
            lambda: (
                requests.get(gateway.url + "/ready", timeout=10).json()["experiments"]["demo"][
                    "config_in_redis"
                ]
                is False
            )
        )
        variants = {
            requests.post(gateway.url + "/predict", json={"features": ROW},
                          headers={"X-User-ID": f"f{i}"}, timeout=10).json()["variant"]
            for i in range(40)
        }  # fmt: skip
        assert variants == {"champion", "challenger"}  # still the 50/50 config
    finally:
        gateway.stop()


# --- shutdown ----------------------------------------------------------------------


def test_sigterm_under_load_flushes_every_answered_request_and_exits_0(
    tmp_path: Path, redis_url: str, demo_workers: dict[str, Child]
) -> None:
    ports = {name: port_of(child) for name, child in demo_workers.items()}
    config = write_config(tmp_path / "s.yaml", ports, {"champion": 80, "canary": 20})
    # A long flush interval: what reaches Redis late is the flush at shutdown.
    gateway = start_gateway(config, redis_url, ABGATE_FLUSH_INTERVAL_S="2")
    try:
        with under_load(gateway.url, rate=0, concurrency=8) as load:
            assert wait_for(lambda: recorded_requests(redis_url) >= 50, timeout=30)
            os.kill(gateway.pid, signal.SIGTERM)
            assert gateway.process.wait(timeout=30) == 0
            result = load.stop()
        # Requests sent after the listener closed fail to connect; none got an HTTP error.
        assert result.ok > 0
        assert all(not kind.isdigit() for kind in result.errors), result.summary()
        assert recorded_requests(redis_url) == result.ok
    finally:
        gateway.stop()
