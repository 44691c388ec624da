"""Feedback is counted exactly once wherever it lands, however soon after the answer.

Real processes: a gateway with ``--workers 2``, and two gateway replicas on one
Redis. Every feedback goes out the moment its answer came back, on a new
connection to a random process or replica, usually before the serving process
has flushed the request's mapping to Redis. ``FEEDBACK_TEST_REQUESTS`` sets
how many requests each scenario sends (default 2,000 on this 2-core machine;
the issue's figure is 5,000).
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from abgate.processes import Child
from abgate.redis_server import EmbeddedRedis, free_port, start_redis
from core.schema import Keys, decode_stats
from core.store import Store
from tests.conftest import port_of, start_gateway, write_config
from tests.gateway.test_gateway_process import ROW
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

N_REQUESTS = int(os.environ.get("FEEDBACK_TEST_REQUESTS", "2000"))
CONCURRENCY = 16
WEIGHTS = {"champion": 60, "challenger": 20, "canary": 20}


@dataclass
class Sent:
    """What the clients saw: per request id its variant, prediction and the label sent."""

    served: dict[str, tuple[str, Any]] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    feedback_status: collections.Counter[int] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)


async def _drive(predict_urls: list[str], feedback_urls: list[str], total: int,
                 outage: Any = None) -> Sent:  # fmt: skip
    """``total`` predicts, each followed at once by its feedback, every call on a new
    connection; ``outage(done)`` runs beside the load with the count sent so far."""
    import aiohttp

    sent = Sent()
    rng = random.Random(16)
    counter = iter(range(total))
    done = [0]

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        async with session.post(
            rng.choice(predict_urls) + "/predict",
            json={"features": ROW},
            headers={"X-User-ID": f"fb-{i}"},
        ) as response:
            body = await response.json(content_type=None)
            if response.status != 200:
                sent.errors[f"predict {response.status}"] += 1
                return
        rid = body["request_id"]
        sent.served[rid] = (body["variant"], body["prediction"])
        label = rng.randrange(2)
        async with session.post(
            rng.choice(feedback_urls) + "/feedback", json={"request_id": rid, "label": label}
        ) as answer:
            await answer.read()
            sent.feedback_status[answer.status] += 1
            if answer.status in (200, 202):
                sent.labels[rid] = label

    async def client(session: aiohttp.ClientSession) -> None:
        for i in counter:
            try:
                await one(session, i)
            except (TimeoutError, aiohttp.ClientError) as exc:
                sent.errors[type(exc).__name__] += 1
            done[0] += 1

    # force_close: a new connection per call, so the kernel spreads the calls of
    # --workers 2 over both processes as it does for real clients.
    connector = aiohttp.TCPConnector(force_close=True, limit=2 * CONCURRENCY)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = [client(session) for _ in range(CONCURRENCY)]
        if outage is not None:
            tasks.append(outage(done))
        await asyncio.gather(*tasks)
    return sent


def _recount(redis_url: str, sent: Sent) -> dict[str, tuple[int, int]]:
    """Per variant (feedback n, labels equal to the prediction), from the raw events:
    each feedback's request id looked up in the stream of what served it."""

    def read() -> dict[str, str] | None:
        events = Store(redis_url).events("demo", count=10 * N_REQUESTS)
        found = {row["rid"]: row["variant"] for row in events}
        return None if set(sent.labels) - set(found) else found

    variant_of = wait_for(read)  # the last events are written by the next flush
    assert variant_of, "requests missing from the raw events"
    out: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for rid, label in sent.labels.items():
        variant = variant_of[rid]
        assert variant == sent.served[rid][0]
        out[variant][0] += 1
        out[variant][1] += int(label == sent.served[rid][1])
    return {variant: (n, correct) for variant, (n, correct) in out.items()}


def _counted(redis_url: str) -> dict[str, tuple[int, int]]:
    try:
        variants = decode_stats(Store(redis_url).totals("demo")).variants()
    except redis.ConnectionError:
        return {}
    out = {}
    for name, stats in variants.items():
        accuracy = stats.metrics.get("accuracy")
        if accuracy is not None and accuracy.n:
            out[name] = (accuracy.n, round(accuracy.sum))
    return out


def _joins(redis_url: str) -> dict[str, int]:
    client = redis.Redis.from_url(redis_url)
    keys = Keys("demo")
    joins = {k.decode(): int(v) for k, v in client.hgetall(keys.feedback_joins).items()}
    joins["pending"] = int(client.zcard(keys.pending_feedback_due))
    client.close()
    return joins


def metric(url: str, name: str) -> float:
    """Sum of a family's samples in one process's /metrics (0 when absent)."""
    total = 0.0
    for line in requests.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _assert_every_feedback_counted_once(redis_url: str, sent: Sent, gateways: list[Child]) -> None:
    assert not sent.errors, sent.errors
    accepted = sent.feedback_status[200] + sent.feedback_status[202]
    assert accepted == len(sent.served), sent.feedback_status  # accepted = sent
    expected = _recount(redis_url, sent)
    assert sum(n for n, _ in expected.values()) == len(sent.served)
    assert wait_for(lambda: _counted(redis_url) == expected), (_counted(redis_url), expected)
    joins = wait_for(lambda: (j := _joins(redis_url))["pending"] == 0 and j)
    assert joins, _joins(redis_url)
    # Every parked feedback was joined to its request; none expired.
    assert joins.get("parked", 0) == joins.get("joined", 0), joins
    assert joins.get("expired", 0) == 0, joins
    time.sleep(0.3)  # several flushes: a second count would have landed by now
    assert _counted(redis_url) == expected
    # Per-unit sums (units are users here, one request each) cover every request and
    # every counted feedback, whichever process served, joined or flushed them.
    for name, stats in decode_stats(Store(redis_url).totals("demo")).variants().items():
        assert stats.unit_errors() is not None, (name, stats.unit_requests, stats.requests)
        ratio = stats.unit_metric("accuracy")
        assert ratio is not None and ratio.units == ratio.sum_x == ratio.sum_xx, (name, ratio)
    for gateway in gateways:
        assert metric(gateway.url, "abgate_feedback_expired_total") == 0
        assert metric(gateway.url, "abgate_feedback_waiting_for_redis") == 0
        ready = requests.get(gateway.url + "/ready", timeout=10).json()
        assert ready["feedback"]["expired"] == 0 and ready["feedback"]["refused"] == 0, ready


@pytest.fixture
def config(tmp_path: Path, demo_workers: dict[str, Child]) -> Path:
    ports = {name: port_of(child) for name, child in demo_workers.items()}
    return write_config(tmp_path / "demo.yaml", ports, WEIGHTS)


@pytest.fixture
def gateways(request: pytest.FixtureRequest, config: Path) -> Iterator[list[Child]]:
    """``[one gateway with --workers 2]`` or ``[replica, replica]``, on the test's Redis."""
    redis_url = request.getfixturevalue(request.param[1])
    if not isinstance(redis_url, str):
        redis_url = redis_url[0].url
    children: list[Child] = []
    try:
        if request.param[0] == "workers":
            children.append(start_gateway(config, redis_url, "--workers", "2"))
        else:
            children.append(start_gateway(config, redis_url))
            children.append(start_gateway(config, redis_url))
        # Every process has the config: --workers 2 answers each new connection from
        # either process, so a handful of probes reaches both.
        for child in children:
            for _ in range(8):
                ok = requests.post(child.url + "/predict", json={"features": ROW}, timeout=30)
                assert ok.status_code == 200, ok.text
        yield children
    finally:
        for child in children:
            child.stop()


@pytest.mark.parametrize(
    "gateways", [("workers", "redis_url"), ("replicas", "redis_url")], indirect=True,
    ids=["workers-2", "two-replicas"],
)  # fmt: skip
def test_feedback_sent_at_once_to_any_process_is_counted_once(
    gateways: list[Child], redis_url: str
) -> None:
    urls = [gateway.url for gateway in gateways]
    before = _counted(redis_url)
    assert not before  # the probes sent no feedback
    sent = asyncio.run(_drive(urls, urls, N_REQUESTS))
    _assert_every_feedback_counted_once(redis_url, sent, gateways)
    # The race this is about did happen: feedback reached a process that did not
    # know its request yet, and was joined when the mapping arrived.
    assert sent.feedback_status[202] > 0, sent.feedback_status
    assert _joins(redis_url)["joined"] > 0


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[list[EmbeddedRedis]]:
    """A Redis of this test (fixed data dir, AOF fsync'd before each answer); ``[-1]`` is live."""
    servers = [start_redis(data_dir=tmp_path / "redis", persistence=True,
                           extra_args=("--appendfsync", "always"))]  # fmt: skip
    yield servers
    servers[-1].stop()


@pytest.mark.parametrize("gateways", [("replicas", "own_redis")], indirect=True)
def test_feedback_while_redis_is_down_for_3s_is_counted_once(
    gateways: list[Child], own_redis: list[EmbeddedRedis]
) -> None:
    url = own_redis[0].url
    urls = [gateway.url for gateway in gateways]
    outage_seen: dict[str, Any] = {}

    async def outage(done: list[int]) -> None:
        while done[0] < N_REQUESTS // 3:
            await asyncio.sleep(0.02)
        old = own_redis[-1]
        os.kill(old.pid, signal.SIGKILL)
        old.process.wait(timeout=10)
        await asyncio.sleep(3.0)
        # Feedback taken while Redis was down waits in the gateway, and says so.
        waiting = [await asyncio.to_thread(metric, u, "abgate_feedback_waiting_for_redis")
                   for u in urls]  # fmt: skip
        outage_seen["waiting"] = sum(waiting)
        own_redis.append(
            await asyncio.to_thread(
                start_redis, data_dir=old.data_dir, port=old.port, persistence=True,
                extra_args=("--appendfsync", "always"),
            )
        )  # fmt: skip

    sent = asyncio.run(_drive(urls, urls, N_REQUESTS, outage))
    assert len(own_redis) == 2, "the outage never happened"
    assert outage_seen["waiting"] > 0, outage_seen
    _assert_every_feedback_counted_once(url, sent, gateways)


def test_feedback_for_a_request_nobody_answered_expires_counted(
    config: Path, redis_url: str
) -> None:
    gateway = start_gateway(config, redis_url, ABGATE_REQUEST_TTL_S="2")
    try:
        feedback = {"request_id": "never-answered-1", "label": 1}
        first = requests.post(gateway.url + "/feedback", json=feedback, timeout=10)
        assert first.status_code == 202, first.text
        assert first.json()["waiting"] == "waiting for its request"
        # The same feedback again is answered as the first time, and kept once.
        again = requests.post(gateway.url + "/feedback", json=feedback, timeout=10)
        assert again.status_code == 202 and again.json()["repeated"] is True, again.text
        other = requests.post(gateway.url + "/feedback", json={**feedback, "label": 0}, timeout=10)
        assert other.status_code == 409, other.text
        ready = requests.get(gateway.url + "/ready", timeout=10).json()
        assert wait_for(
            lambda: (
                requests.get(gateway.url + "/ready", timeout=10).json()["feedback"]["pending"] == 1
            ),
            timeout=10,
        ), ready
        # After the wait the contract gives (the mapping's TTL), it is dropped and counted.
        assert wait_for(lambda: metric(gateway.url, "abgate_feedback_expired_total") == 1), (
            requests.get(gateway.url + "/metrics", timeout=10).text
        )
        ready = requests.get(gateway.url + "/ready", timeout=10).json()
        assert ready["feedback"]["pending"] == 0 and ready["feedback"]["expired"] == 1, ready
        assert _joins(redis_url) == {"parked": 1, "expired": 1, "pending": 0}
        assert _counted(redis_url) == {}  # never a counted outcome
    finally:
        gateway.stop()


def test_feedback_for_a_fallback_answer_is_never_counted_nor_left_waiting(
    tmp_path: Path, redis_url: str, demo_workers: dict[str, Child]
) -> None:
    # Every request is routed to a canary nobody serves, and answered by the champion.
    config = write_config(
        tmp_path / "fallback.yaml",
        {"champion": port_of(demo_workers["champion"]), "canary": free_port()},
        {"champion": 0, "canary": 100},
    )
    gateway = start_gateway(config, redis_url, "--workers", "2")
    try:
        sent = asyncio.run(_drive([gateway.url], [gateway.url], 200))
        assert not sent.errors and len(sent.served) == 200, sent.errors
        assert {variant for variant, _ in sent.served.values()} == {"champion"}
        # 409 when the request is known (here or in Redis), 202 when it was not yet:
        # never 200, never a counted outcome.
        assert set(sent.feedback_status) <= {202, 409}, sent.feedback_status
        waited = sent.feedback_status[202]
        joins = wait_for(lambda: (j := _joins(redis_url))["pending"] == 0 and j)
        assert joins and joins.get("unscored", 0) == waited == joins.get("parked", 0), joins
        assert "joined" not in joins and "expired" not in joins
        assert _counted(redis_url) == {}
    finally:
        gateway.stop()


def test_with_two_experiments_an_unknown_request_waits_only_where_named(
    config: Path, tmp_path: Path, redis_url: str, demo_workers: dict[str, Child]
) -> None:
    from experiments.loader import load_experiment
    from tests.conftest import ADMIN_TOKEN

    gateway = start_gateway(config, redis_url)
    try:
        ports = {name: port_of(child) for name, child in demo_workers.items()}
        other = write_config(tmp_path / "other.yaml", ports, {"champion": 100}, name="other")
        other.write_text(other.read_text().replace("model: demo", "model: other"))
        Store(redis_url).put_config(
            "other", load_experiment(other).model_dump(mode="json"), actor="t", action="apply"
        )
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

        def routed() -> int:
            listed = requests.get(gateway.url + "/admin/experiments", headers=auth, timeout=10)
            return len(listed.json()["experiments"])

        assert wait_for(lambda: routed() == 2, timeout=30)
        # Which experiment would it wait in? Parking it in both would expire one copy
        # as a false loss, so the gateway asks for the name instead.
        unnamed = requests.post(
            gateway.url + "/feedback", json={"request_id": "nobody-2", "label": 1}, timeout=10
        )
        assert unnamed.status_code == 404 and "name its experiment" in unnamed.json()["error"]
        named = requests.post(
            gateway.url + "/feedback",
            json={"request_id": "nobody-2", "label": 1, "experiment": "other"},
            timeout=10,
        )
        assert named.status_code == 202 and named.json()["experiment"] == "other", named.text
        # A request answered here is found without a name, in its own experiment.
        session = requests.Session()
        rid = session.post(gateway.url + "/v1/other/predict", json={"features": ROW},
                           timeout=10).json()["request_id"]  # fmt: skip
        found = session.post(gateway.url + "/feedback", json={"request_id": rid, "label": 1},
                             timeout=10)  # fmt: skip
        assert found.status_code == 200 and found.json()["experiment"] == "other", found.text
    finally:
        gateway.stop()
