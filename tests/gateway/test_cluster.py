"""Two gateway processes on a real 3-master Redis Cluster: exact counts, config changes."""

from __future__ import annotations

import collections
import json
import time

import pytest
import requests

from abgate.processes import Child
from abgate.redis_server import EmbeddedCluster
from core.schema import parse_outcome_fields
from core.store import Store
from tests.conftest import ADMIN_TOKEN, port_of, start_gateway, write_config
from tests.gateway.test_gateway_features import abgate
from tests.gateway.test_gateway_process import ROW
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CLUSTER = {"ABGATE_REDIS_CLUSTER": "1"}


def routed_version(gateway: Child) -> int:
    listed = requests.get(gateway.url + "/admin/experiments", headers=AUTH).json()
    return int(listed["experiments"][0]["version"])


def subscribers(cluster: EmbeddedCluster) -> int:
    # PUBSUB NUMSUB counts the subscribers of one node; the gateways may sit on any.
    store = Store(cluster.url, cluster=True)
    nodes = store.client.get_primaries()
    counts = [store.client.pubsub_numsub("abgate:config", target_nodes=node) for node in nodes]
    store.close()
    return sum(count for answer in counts for _, count in answer)


def test_two_gateways_on_a_cluster(
    tmp_path, cluster_url: str, redis_cluster: EmbeddedCluster, demo_workers: dict[str, Child]
) -> None:
    ports = {name: port_of(child) for name, child in demo_workers.items()}
    config = write_config(tmp_path / "demo.yaml", ports,
                          {"champion": 80, "challenger": 10, "canary": 10})  # fmt: skip
    gateways = [start_gateway(config, cluster_url, **CLUSTER) for _ in range(2)]
    env = {"REDIS_URL": cluster_url, **CLUSTER}
    try:
        for gateway in gateways:
            ready = requests.get(gateway.url + "/ready").json()
            assert ready["redis"] == "ok", ready
        sessions = [requests.Session() for _ in gateways]
        served: collections.Counter[str] = collections.Counter()
        n_requests, n_feedback = 200, 80
        for i in range(n_requests):
            answers = [
                session.post(gateway.url + "/predict", json={"features": ROW},
                             headers={"X-User-ID": f"user-{i}", "X-Request-ID": f"c{i}-{g}"})
                for g, (gateway, session) in enumerate(zip(gateways, sessions, strict=True))
            ]  # fmt: skip
            assert [a.status_code for a in answers] == [200, 200]
            variants = {a.headers["X-Variant"] for a in answers}
            assert len(variants) == 1, f"user-{i} split across replicas: {variants}"
            served[variants.pop()] += 2
        for i in range(n_feedback):  # feedback arrives at the replica that did not serve it
            answer = sessions[1].post(gateways[1].url + "/feedback",
                                      json={"request_id": f"c{i}-0", "label": 1})  # fmt: skip
            assert answer.status_code == 200, answer.text
        again = sessions[0].post(gateways[0].url + "/feedback",
                                 json={"request_id": "c0-0", "label": 1})  # fmt: skip
        assert again.status_code == 200 and again.json()["repeated"] is True, again.text
        other = sessions[0].post(gateways[0].url + "/feedback",
                                 json={"request_id": "c0-0", "label": 0})  # fmt: skip
        assert other.status_code == 409

        def recorded():
            totals = parse_outcome_fields(Store(cluster_url, cluster=True).totals("demo"))
            count = sum(v.requests for v in totals.values())
            feedback = sum(
                (m.n if (m := v.metrics.get("accuracy")) else 0) for v in totals.values()
            )
            return (count, feedback) == (2 * n_requests, n_feedback) and totals

        totals = wait_for(recorded)
        assert totals, parse_outcome_fields(Store(cluster_url, cluster=True).totals("demo"))
        assert {name: v.requests for name, v in totals.items() if v.requests} == dict(served)
        status = json.loads(abgate("status", "demo", "--json", env=env).stdout)[0]
        assert sum(v["requests"] for v in status["variants"]) == 2 * n_requests

        # A config change through the CLI reaches both gateways over pub/sub:
        # well before the periodic re-read (every 5 s) would have caught it.
        assert wait_for(lambda: subscribers(redis_cluster) >= 2)
        changed = write_config(tmp_path / "new.yaml", ports, {"champion": 0, "challenger": 100})
        applied = abgate("apply", str(changed), env=env)
        assert applied.returncode == 0, applied.stderr
        started = time.monotonic()
        assert wait_for(lambda: all(routed_version(g) == 2 for g in gateways), timeout=10)
        assert time.monotonic() - started < 4.0
        for gateway in gateways:
            answers = {requests.post(gateway.url + "/predict", json={"features": ROW},
                                     headers={"X-User-ID": f"u{i}"}).headers["X-Variant"]
                       for i in range(20)}  # fmt: skip
            assert answers == {"challenger"}
    finally:
        for gateway in gateways:
            gateway.stop()
