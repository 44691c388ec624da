"""Feedback whose Redis reply is lost on the wire is counted exactly once.

A real gateway talks to a real Redis through a proxy that forwards a feedback's
script and then, instead of its reply, closes the connection: the script ran,
the gateway cannot know. Whether the gateway's own retry, its recorder's
rewrite of a buffered feedback, or the client sending the same feedback again
comes next, the feedback counts once, and the client is never told 409 or 5xx
for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from abgate.processes import Child
from core.schema import Keys, decode_stats
from core.store import Store
from tests.conftest import port_of, start_gateway, write_config
from tests.gateway.test_gateway_process import ROW
from tests.lost_reply import ReplyDroppingProxy, reply_dropping_proxy
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

NAME = "lostreply"


def _feedback_n(redis_url: str) -> int:
    variants = decode_stats(Store(redis_url).totals(NAME)).variants()
    return sum(m.n for s in variants.values() if (m := s.metrics.get("accuracy")) is not None)


def _ready(gateway: Child) -> dict[str, Any]:
    return dict(requests.get(gateway.url + "/ready", timeout=10).json())


@pytest.fixture
def proxied(
    tmp_path: Path, redis_url: str, demo_workers: dict[str, Child]
) -> Iterator[tuple[Child, ReplyDroppingProxy]]:
    config = write_config(tmp_path / "lost.yaml", {"champion": port_of(demo_workers["champion"])},
                          {"champion": 100}, name=NAME)  # fmt: skip
    with reply_dropping_proxy(redis_url) as proxy:
        gateway = start_gateway(config, proxy.url)
        try:
            yield gateway, proxy
        finally:
            gateway.stop()


def _predict(gateway: Child, user: str) -> str:
    answer = requests.post(gateway.url + "/predict", json={"features": ROW},
                           headers={"X-User-ID": user}, timeout=30)  # fmt: skip
    assert answer.status_code == 200, answer.text
    return str(answer.json()["request_id"])


def test_feedback_with_a_lost_reply_is_counted_once_and_resending_it_is_not_an_error(
    proxied: tuple[Child, ReplyDroppingProxy], redis_url: str
) -> None:
    gateway, proxy = proxied
    claim = Keys(NAME).feedback_claim
    first, second = _predict(gateway, "u1"), _predict(gateway, "u2")

    # One lost reply: the gateway tries once more at once and answers as the first run did.
    proxy.arm(claim(first).encode(), drops=1)
    answer = requests.post(gateway.url + "/feedback", json={"request_id": first, "label": 1},
                           timeout=30)  # fmt: skip
    assert proxy.dropped == 1, "the reply was not lost"
    assert answer.status_code == 200, answer.text
    assert "repeated" not in answer.json(), answer.text

    # Every reply lost: the gateway keeps the feedback ("waiting for Redis") and its
    # recorder writes it again and again, each time running the script in Redis.
    proxy.arm(claim(second).encode(), drops=-1)
    answer = requests.post(gateway.url + "/feedback", json={"request_id": second, "label": 1},
                           timeout=30)  # fmt: skip
    assert answer.status_code == 202, answer.text
    assert answer.json()["waiting"] == "waiting for Redis", answer.text
    assert wait_for(lambda: proxy.dropped >= 5), proxy.dropped  # recorder retries, lost too
    proxy.disarm()
    assert wait_for(lambda: _ready(gateway)["feedback"]["waiting_for_redis"] == 0), _ready(gateway)
    assert _feedback_n(redis_url) == 2  # each script ran several times, counted once

    # The client never saw a plain answer for the second: it sends both again.
    for rid in (first, second):
        again = requests.post(gateway.url + "/feedback", json={"request_id": rid, "label": 1},
                              timeout=30)  # fmt: skip
        assert again.status_code == 200, again.text
        assert again.json()["repeated"] is True, again.text
    # A different label for the same request is a duplicate: refused, not counted.
    other = requests.post(gateway.url + "/feedback", json={"request_id": first, "label": 0},
                          timeout=30)  # fmt: skip
    assert other.status_code == 409, other.text

    # Counted once each; nothing is parked to be counted later either.
    assert _feedback_n(redis_url) == 2
    assert _ready(gateway)["feedback"]["pending"] == 0
