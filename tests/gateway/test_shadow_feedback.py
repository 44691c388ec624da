"""A shadow's answers scored against the labels of the requests it mirrored.

Real processes: two gateway replicas on one Redis, a real demo worker as the live
champion (v1) and one as the shadow (v2). Each feedback, sent to one replica and
then again to the other, must add to the live metric and to the shadow's paired
counts exactly once. A second test holds the shadow's answer (an in-test HTTP server
that answers only when told) so that the next request is shed: its feedback counts
the live side only.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from abgate.processes import Child
from analysis.paired import PairedCounts
from core.schema import Keys, ShadowStats, decode_stats, shadow_answers_field
from core.store import Store
from tests.conftest import port_of, start_gateway, write_config
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def _shadow_config(path: Path, champion_port: int, shadow_url: str, extra: str = "") -> Path:
    tail = "\n".join(
        [
            "shadows:",
            "  - name: shadow-v2",
            "    model_version: v2",
            f"    endpoints: ['{shadow_url}']",
            "    timeout_ms: 30000",
            *([f"    {extra}"] if extra else []),
        ]
    )
    return write_config(path, {"champion": champion_port}, {"champion": 100}, tail=tail)


def _answers_kept(client: redis.Redis, rids: list[str], since: float) -> dict[str, str] | None:
    """Each request's kept shadow answers (JSON), once every one of them is in Redis."""
    keys = Keys("demo")
    hours = range(int(since // 3600), int(time.time() // 3600) + 1)
    found: dict[str, str] = {}
    for rid in rids:
        for hour in hours:
            raw = client.hget(keys.requests(hour), shadow_answers_field(rid))
            if raw is not None:
                found[rid] = raw.decode()
    return found if len(found) == len(rids) else None


def _shadow(redis_url: str) -> ShadowStats:
    return decode_stats(Store(redis_url).totals("demo")).shadows.get("shadow-v2", ShadowStats())


def _live_accuracy(redis_url: str) -> tuple[int, float]:
    stats = decode_stats(Store(redis_url).totals("demo")).variants().get("champion")
    metric = stats.metrics.get("accuracy") if stats is not None else None
    return (metric.n, metric.sum) if metric is not None else (0, 0.0)


@pytest.fixture
def two_replicas(
    tmp_path: Path, redis_url: str, demo_workers: dict[str, Child]
) -> Iterator[list[Child]]:
    config = _shadow_config(
        tmp_path / "demo.yaml",
        port_of(demo_workers["champion"]),
        f"http://127.0.0.1:{port_of(demo_workers['challenger'])}",
    )
    gateways: list[Child] = []
    try:
        for _ in range(2):
            gateways.append(start_gateway(config, redis_url))
        yield gateways
    finally:
        for gateway in gateways:
            gateway.stop()


def test_feedback_scores_live_and_shadow_exactly_once_across_replicas(
    two_replicas: list[Child], redis_url: str, demo_workers: dict[str, Child]
) -> None:
    first, second = (g.url for g in two_replicas)
    shadow_url = demo_workers["challenger"].url
    rng = random.Random(18)
    started = time.time()
    sent: dict[str, tuple[list[float], int]] = {}
    for i in range(40):
        row = [round(rng.uniform(-2, 2), 3) for _ in range(10)]
        answer = requests.post(
            f"{first}/predict", json={"features": row}, headers={"X-User-ID": f"u{i}"}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        sent[body["request_id"]] = (row, body["prediction"])
    client = redis.Redis.from_url(redis_url)
    # Feedback after the shadow's answer is kept (an answer after it would be late).
    kept = wait_for(lambda: _answers_kept(client, list(sent), started))
    expected = {"both": 0, "live_only": 0, "shadow_only": 0, "neither": 0}
    correct = 0
    for rid, (row, live) in sent.items():
        # What the shadow answered, asked of its worker directly (a deterministic model).
        shadow = requests.post(f"{shadow_url}/predict", json={"features": row}, timeout=30)
        shadow_prediction = shadow.json()["prediction"]
        assert json.loads(kept[rid]) == {"shadow-v2": str(shadow_prediction)}
        label = rng.randrange(2)
        live_right, shadow_right = live == label, shadow_prediction == label
        cell = ("both" if shadow_right else "live_only") if live_right else (
            "shadow_only" if shadow_right else "neither")  # fmt: skip
        expected[cell] += 1
        correct += live_right
        for url, repeated in ((first, False), (second, True)):
            fb = requests.post(
                f"{url}/feedback", json={"request_id": rid, "label": label}, timeout=30
            )
            assert fb.status_code == 200, fb.text
            assert fb.json().get("repeated", False) is repeated
    counts = _shadow(redis_url).pairs("accuracy")
    assert counts == PairedCounts(**expected)
    assert _shadow(redis_url).pairs("accuracy", "champion") == counts
    assert _live_accuracy(redis_url) == (len(sent), float(correct))
    assert _shadow(redis_url).late == 0
    # Every mark says "scored": the same feedback once more changes nothing either.
    marks = _answers_kept(client, list(sent), started) or {}
    assert marks and all(mark.startswith("!") for mark in marks.values()), marks


class _HeldShadow:
    """An upstream that answers ``/predict`` only once released, counting its calls."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0
        held = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                held.calls += 1
                held.release.wait(60)
                body = b'{"prediction": 1}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_feedback_after_the_shadow_was_shed_counts_only_the_live_side(
    tmp_path: Path, redis_url: str, demo_workers: dict[str, Child]
) -> None:
    held = _HeldShadow()
    config = _shadow_config(
        tmp_path / "demo.yaml", port_of(demo_workers["champion"]), held.url, "max_inflight: 1"
    )
    gateway = start_gateway(config, redis_url)
    try:
        started = time.time()
        rids = []
        for user in ("mirrored", "shed"):
            answer = requests.post(
                f"{gateway.url}/predict", json={"features": [0.5] * 10},
                headers={"X-User-ID": user}, timeout=30,
            )  # fmt: skip
            assert answer.status_code == 200, answer.text
            rids.append(answer.json()["request_id"])
        # The first call holds the shadow's only slot: the second request was shed.
        wait_for(lambda: _shadow(redis_url).shed == 1 or None)
        held.release.set()
        client = redis.Redis.from_url(redis_url)
        wait_for(lambda: _answers_kept(client, rids[:1], started))
        for rid in rids:
            fb = requests.post(
                f"{gateway.url}/feedback", json={"request_id": rid, "label": 1}, timeout=30
            )
            assert fb.status_code == 200, fb.text
        stats = _shadow(redis_url)
        assert held.calls == 1
        assert stats.shed == 1 and stats.requests == 1
        assert stats.pairs("accuracy").n == 1  # the mirrored request only
        assert _live_accuracy(redis_url)[0] == 2  # both requests, on the live side
        metrics = requests.get(f"{gateway.url}/metrics", timeout=30).text
        assert (
            'abgate_shadow_requests_total{experiment="demo",result="shed",shadow="shadow-v2"} 1.0'
            in metrics
        )
    finally:
        gateway.stop()
        held.close()


def test_a_shadow_answer_after_its_feedback_is_scored_once_on_arrival(
    tmp_path: Path, redis_url: str, demo_workers: dict[str, Child]
) -> None:
    held = _HeldShadow()  # answers 1, once released
    config = _shadow_config(tmp_path / "demo.yaml", port_of(demo_workers["champion"]), held.url)
    gateway = start_gateway(config, redis_url)
    try:
        answer = requests.post(
            f"{gateway.url}/predict", json={"features": [0.5] * 10},
            headers={"X-User-ID": "labelled-at-once"}, timeout=30,
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        rid, live = answer.json()["request_id"], answer.json()["prediction"]
        wait_for(lambda: held.calls == 1 or None)
        # The label comes back while the shadow is still thinking (a client that
        # labels at once, as loadgen does): the live side counts now.
        fb = requests.post(f"{gateway.url}/feedback", json={"request_id": rid, "label": 1},
                           timeout=30)  # fmt: skip
        assert fb.status_code in (200, 202), fb.text
        wait_for(lambda: _live_accuracy(redis_url)[0] == 1 or None)
        assert _shadow(redis_url).pairs("accuracy").n == 0
        held.release.set()
        # The shadow's answer (1, right) is scored against that label when it lands.
        counts = wait_for(
            lambda: ((c := _shadow(redis_url).pairs("accuracy")).n == 1 and c) or None
        )
        assert counts == (PairedCounts(1, 0, 0, 0) if live == 1 else PairedCounts(0, 0, 1, 0))
        stats = _shadow(redis_url)
        assert stats.late == 1 and stats.requests == 1
        time.sleep(0.3)  # several flushes: a second scoring would have landed by now
        assert _shadow(redis_url).pairs("accuracy") == counts
        assert _live_accuracy(redis_url)[0] == 1
    finally:
        gateway.stop()
        held.close()
