"""The gateway as a real process, with real workers and a real Redis."""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator

import pytest
import redis
import requests

from abgate.processes import Child
from core.schema import parse_outcome_fields
from core.store import Keys, Store
from tests.conftest import ADMIN_TOKEN, port_of, start_gateway, start_worker, write_config
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

ROW = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def totals(redis_url: str, name: str = "demo"):
    return parse_outcome_fields(Store(redis_url).totals(name))


@pytest.fixture
def gateway(tmp_path, redis_url: str, demo_workers: dict[str, Child]) -> Iterator[Child]:
    ports = {name: port_of(child) for name, child in demo_workers.items()}
    config = write_config(
        tmp_path / "demo.yaml", ports, {"champion": 80, "challenger": 10, "canary": 10}
    )
    child = start_gateway(config, redis_url)
    yield child
    child.stop()


def test_classic_client_through_the_gateway(gateway: Child) -> None:
    response = requests.post(gateway.url + "/predict", json={"features": ROW})
    body = response.json()
    assert response.status_code == 200, body
    assert isinstance(body["prediction"], int)
    assert len(body["probability"]) == 2 and abs(sum(body["probability"]) - 1) < 1e-9
    assert body["status"] == "success"
    assert body["variant"] in {"champion", "challenger", "canary"}
    assert body["model_version"] in {"v1", "v2", "v3"}
    assert response.headers["X-Variant"] == body["variant"]
    assert response.headers["X-Model-Version"] == body["model_version"]
    assert response.headers["X-Request-ID"] == body["request_id"]


def test_request_id_is_echoed_and_checked(gateway: Child) -> None:
    ok = requests.post(gateway.url + "/predict", json={"features": ROW},
                       headers={"X-Request-ID": "req-42"})  # fmt: skip
    assert ok.headers["X-Request-ID"] == "req-42" and ok.json()["request_id"] == "req-42"
    bad = requests.post(gateway.url + "/predict", json={"features": ROW},
                        headers={"X-Request-ID": "x" * 200})  # fmt: skip
    assert bad.status_code == 400 and "X-Request-ID" in bad.json()["error"]


@pytest.mark.parametrize(
    ("data", "status", "fragment"),
    [
        (b"{not json", 400, "malformed JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b"{}", 400, "features: field required"),
        (b'{"features": ["a"]}', 400, "finite numbers"),
        (b'{"features": [NaN]}', 400, "malformed JSON"),
        (b'{"features": [1, 2, 3]}', 400, "expected 10 features"),
    ],
)
def test_bad_input_is_a_4xx(gateway: Child, data: bytes, status: int, fragment: str) -> None:
    response = requests.post(gateway.url + "/predict", data=data,
                             headers={"content-type": "application/json"})  # fmt: skip
    assert response.status_code == status, response.text
    assert response.json()["status"] == "error"
    assert fragment in response.json()["error"]


def test_oversized_body_is_413(gateway: Child) -> None:
    response = requests.post(gateway.url + "/predict", data=b"x" * (2 * 1024 * 1024))
    assert response.status_code == 413


def test_counts_in_redis_equal_requests_and_feedback(gateway: Child, redis_url: str) -> None:
    n_requests, n_feedback = 300, 120
    session = requests.Session()
    served = collections.Counter()
    ids = []
    for i in range(n_requests):
        r = session.post(gateway.url + "/predict", json={"features": ROW},
                         headers={"X-User-ID": f"user-{i}", "X-Request-ID": f"r{i}"})  # fmt: skip
        assert r.status_code == 200
        served[r.json()["variant"]] += 1
        ids.append(r.json()["request_id"])
    for rid in ids[:n_feedback]:
        f = session.post(gateway.url + "/feedback", json={"request_id": rid, "label": 1})
        assert f.status_code == 200, f.text

    def recorded():
        t = totals(redis_url)
        reqs = sum(v.requests for v in t.values())
        fb = sum((m.n if (m := v.metrics.get("accuracy")) else 0) for v in t.values())
        return (reqs, fb) == (n_requests, n_feedback) and t

    t = wait_for(recorded)
    assert t, totals(redis_url)
    assert {name: v.requests for name, v in t.items() if v.requests} == dict(served)
    time.sleep(0.3)  # nothing more arrives later: counted exactly once
    assert sum(v.requests for v in totals(redis_url).values()) == n_requests


def test_feedback_once_and_unknown(gateway: Child, redis_url: str) -> None:
    rid = requests.post(gateway.url + "/predict", json={"features": ROW}).json()["request_id"]
    first = requests.post(gateway.url + "/feedback", json={"request_id": rid, "label": 0})
    second = requests.post(gateway.url + "/feedback", json={"request_id": rid, "label": 1})
    resent = requests.post(gateway.url + "/feedback", json={"request_id": rid, "label": 0})
    assert first.status_code == 200 and "repeated" not in first.json()
    assert second.status_code == 409 and "already counted" in second.json()["error"]
    # The same feedback again (a client retry) gets the first answer back, counted once.
    assert resent.status_code == 200 and resent.json()["repeated"] is True
    assert resent.json()["variant"] == first.json()["variant"]
    # Not known yet: it may have been answered by another process a moment ago.
    unknown = requests.post(gateway.url + "/feedback", json={"request_id": "nope", "label": 1})
    assert unknown.status_code == 202 and unknown.json()["waiting"] == "waiting for its request"
    both = requests.post(
        gateway.url + "/feedback", json={"request_id": rid, "label": 1, "reward": 2}
    )
    assert both.status_code == 400


def test_apply_reaches_the_gateway_over_pubsub(redis_url: str, tmp_path, demo_workers) -> None:
    ports = {name: port_of(child) for name, child in demo_workers.items()}
    first = write_config(tmp_path / "demo.yaml", ports, {"champion": 100, "challenger": 0})
    # It re-reads the stored configs only hourly: what changes its routing within the test
    # came over pub/sub.
    gateway = start_gateway(first, redis_url, ABGATE_CONFIG_RESYNC_S="3600")
    try:
        config = write_config(tmp_path / "new.yaml", ports, {"champion": 0, "challenger": 100})
        from experiments.loader import load_experiment

        Store(redis_url).put_config("demo", load_experiment(config).model_dump(mode="json"),
                                    actor="test", action="apply")  # fmt: skip

        def all_challenger():
            answers = [requests.post(gateway.url + "/predict", json={"features": ROW},
                                     headers={"X-User-ID": f"u{i}"}).json()["variant"]
                       for i in range(20)]  # fmt: skip
            return set(answers) == {"challenger"}

        assert wait_for(all_challenger, "the applied config routed", timeout=60.0)
    finally:
        gateway.stop()


def test_invalid_stored_config_never_replaces_the_running_one(gateway: Child, redis_url) -> None:
    Store(redis_url).put_config("demo", {"name": "demo", "variants": "broken"},
                                actor="test", action="apply")  # fmt: skip
    wait_for(
        lambda: requests.get(gateway.url + "/ready").json()["experiments"]["demo"][
            "stored_config_rejected"] is True,
        "the stored config rejected",
    )  # fmt: skip
    assert requests.post(gateway.url + "/predict", json={"features": ROW}).status_code == 200


def test_config_flushed_from_redis_keeps_routing(gateway: Child, redis_url) -> None:
    redis.Redis.from_url(redis_url).delete(Keys("demo").config)
    assert wait_for(
        lambda: requests.get(gateway.url + "/ready").json()["experiments"]["demo"][
            "config_in_redis"] is False, timeout=8)  # fmt: skip
    assert requests.post(gateway.url + "/predict", json={"features": ROW}).status_code == 200


def test_admin_needs_the_token(gateway: Child) -> None:
    assert requests.get(gateway.url + "/admin/experiments").status_code == 401
    wrong = requests.get(gateway.url + "/admin/experiments", headers={"Authorization": "Bearer x"})
    assert wrong.status_code == 401 and wrong.json()["status"] == "error"
    ok = requests.get(gateway.url + "/admin/experiments", headers=AUTH)
    assert ok.status_code == 200 and ok.json()["experiments"][0]["name"] == "demo"


def test_admin_changes_are_audited(gateway: Child) -> None:
    url = gateway.url + "/admin/experiments/demo"
    headers = {**AUTH, "X-Abgate-Actor": "alice"}
    bad = requests.put(url + "/weights", json={"weights": {"champion": 50}}, headers=headers)
    assert bad.status_code == 422 and "100" in bad.json()["error"]
    changed = requests.put(
        url + "/weights",
        headers=headers,
        json={"weights": {"champion": 70, "challenger": 20, "canary": 10}, "reason": "more data"},
    )
    assert changed.status_code == 200, changed.text
    assert requests.post(url + "/rollback", json={"reason": "bad canary"}, headers=headers).ok
    weights = requests.get(url, headers=AUTH).json()["config"]["variants"]
    assert {v["name"]: v["weight"] for v in weights} == {"champion": 100, "challenger": 0,
                                                         "canary": 0}  # fmt: skip
    entries = requests.get(url + "/audit", headers=AUTH).json()["entries"]
    actions = [(e["action"], e["actor"], e["reason"]) for e in entries]
    assert ("set_weights", "alice", "more data") in actions
    assert ("rollback", "alice", "bad canary") in actions
    assert all(e["ts"] for e in entries)


def test_killed_canary_falls_back_without_client_errors(tmp_path, redis_url, demo_registry,
                                                       demo_workers) -> None:  # fmt: skip
    canary = start_worker(demo_registry, "v3")
    ports = {"champion": port_of(demo_workers["champion"]), "canary": port_of(canary)}
    config = write_config(tmp_path / "kill.yaml", ports, {"champion": 50, "canary": 50})
    gw = start_gateway(config, redis_url)
    try:
        session = requests.Session()
        statuses = collections.Counter()
        for i in range(400):
            if i == 100:
                canary.stop(sig=9)
            r = session.post(gw.url + "/predict", json={"features": ROW},
                             headers={"X-User-ID": f"k{i}"})  # fmt: skip
            statuses[r.status_code] += 1
        assert statuses == {200: 400}
        t = wait_for(lambda: (tt := totals(redis_url)) and tt.get("canary") and
                       tt["canary"].errors > 0 and tt)  # fmt: skip
        assert t["canary"].errors > 0
        assert t["canary"].fallbacks == t["canary"].errors
    finally:
        gw.stop()
        canary.stop()
