"""Many gateway replicas on one Redis: separate processes and ``--workers 2`` in one.

They must assign every unit alike, add their counts into one set of
statistics, and all follow one ramp controller.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
import requests

from abgate.processes import Child
from core.schema import parse_outcome_fields
from core.store import Store
from tests.conftest import ADMIN_TOKEN, port_of, start_gateway, write_config
from tests.gateway.test_gateway_process import ROW
from tests.ramp.test_ramp_process import ramp_tail, traffic
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def replicas(request: pytest.FixtureRequest, tmp_path, redis_url: str,
             demo_workers: dict[str, Child]) -> Iterator[list[Child]]:  # fmt: skip
    """Two single-process gateways and one with ``--workers 2``, all on ``redis_url``."""
    ports = {name: port_of(child) for name, child in demo_workers.items()}
    weights, tail = request.param
    if tail:  # a ramp: the better model (v2) is the canary
        ports["canary"] = ports["challenger"]
    config = write_config(tmp_path / "demo.yaml", ports, weights, tail=tail)
    config.write_text(config.read_text().replace("model_version: v3", "model_version: v2"))
    children: list[Child] = []
    try:
        children.append(start_gateway(config, redis_url))
        children.append(start_gateway(None, redis_url))  # its config comes from Redis only
        children.append(start_gateway(config, redis_url, "--workers", "2"))
        yield children
    finally:
        for child in children:
            child.stop()


def seen_weights(gateway: Child) -> tuple[int, float]:
    """(config version, canary weight) the gateway routes now; new connection each time,
    so ``--workers 2`` answers from either process."""
    listed = requests.get(gateway.url + "/admin/experiments", headers=AUTH).json()
    experiment = listed["experiments"][0]
    return int(experiment["version"]), float(experiment["weights"]["canary"])


def _exited(process: subprocess.Popen[bytes], within: float) -> bool:
    try:
        process.wait(timeout=within)
    except subprocess.TimeoutExpired:
        return False
    return True


SPLIT = ({"champion": 60, "challenger": 20, "canary": 20}, "")
RAMP = (
    {"champion": 100, "canary": 0},
    ramp_tail(steps="[50, 100]", min_duration=1, min_samples=30, p99_ratio=50),
)


@pytest.mark.parametrize("replicas", [SPLIT], indirect=True)
def test_replicas_assign_alike_and_share_one_set_of_statistics(
    replicas: list[Child], redis_url: str
) -> None:
    served: collections.Counter[str] = collections.Counter()
    for i in range(60):
        # No session: a new connection per request, so both processes of --workers 2 serve.
        variants = {
            requests.post(gateway.url + "/predict", json={"features": ROW},
                          headers={"X-User-ID": f"sticky-{i}"}).headers["X-Variant"]
            for gateway in replicas
        }  # fmt: skip
        assert len(variants) == 1, f"sticky-{i} split across replicas: {variants}"
        served[variants.pop()] += len(replicas)
    assert len(served) == 3  # all three variants were exercised

    def recorded():
        totals = parse_outcome_fields(Store(redis_url).totals("demo"))
        counts = {name: v.requests for name, v in totals.items() if v.requests}
        return counts == dict(served) and counts

    assert wait_for(recorded), parse_outcome_fields(Store(redis_url).totals("demo"))


@pytest.mark.parametrize("replicas", [RAMP], indirect=True)
def test_one_ramp_controller_drives_every_replica(
    replicas: list[Child], redis_url: str, tmp_path
) -> None:
    seen: list[set[tuple[int, float]]] = [set() for _ in replicas]
    log = tmp_path / "ramp.log"
    with ExitStack() as stack:
        for gateway in replicas:
            stack.enter_context(traffic(gateway.url, rate=60))
        output = stack.enter_context(log.open("w"))
        controller = subprocess.Popen(
            [sys.executable, "-m", "abgate", "ramp", "--out", str(tmp_path / "out"),
             str(tmp_path / "demo.yaml")],
            stdout=output, stderr=subprocess.STDOUT, env={**os.environ, "REDIS_URL": redis_url},
        )  # fmt: skip
        try:
            while not _exited(controller, within=0.05):
                for found, gateway in zip(seen, replicas, strict=True):
                    found.add(seen_weights(gateway))
        finally:
            if controller.poll() is None:
                controller.kill()
                controller.wait()
    out = log.read_text()
    assert controller.returncode == 0, out
    final = Store(redis_url).get_config("demo")
    assert {v["name"]: v["weight"] for v in final.config["variants"]}["canary"] == 100
    for found, gateway in zip(seen, replicas, strict=True):
        # Every replica routed the step the controller set, and ends on the promotion.
        assert any(weight == 50 for _, weight in found), (gateway.url, sorted(found))
        assert wait_for(lambda g=gateway: seen_weights(g) == (final.version, 100.0))
        answers = {requests.post(gateway.url + "/predict", json={"features": ROW},
                                 headers={"X-User-ID": f"after-{i}"}).headers["X-Variant"]
                   for i in range(20)}  # fmt: skip
        assert answers == {"canary"}
