"""Epochs end to end: a weight change is no sample-ratio mismatch; lost records are.

Real processes: Redis, two constant-time workers, the gateway, the ``abgate`` CLI.
Traffic runs at 90/10, an admin changes the weights to 50/50, traffic runs on.
The users sent are chosen (through the gateway's own assigner) so that each
epoch's split is exactly its weights: the check's verdict then depends on
what was recorded, never on the luck of the hash.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests

from abgate.processes import Child, start_child, wait_http_ok
from abgate.redis_server import free_port
from core.schema import decode_stats
from core.store import Store
from experiments.loader import load_experiment
from gateway.assignment import Assigner
from tests.conftest import ADMIN_TOKEN, start_gateway, write_config
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BODY = {"features": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]}
FIRST = {"champion": 1800, "canary": 200}  # requests at 90/10
# At 50/50: 5 % of the canary's records lost is chi-square ~15 (p ~ 1e-4) at this size.
SECOND = {"champion": 12_000, "canary": 12_000}


@pytest.fixture(scope="module")
def workers() -> Iterator[dict[str, int]]:
    """Two constant-time workers (real processes): the test is about counting, not models."""
    children: list[Child] = []
    try:
        ports = {}
        for name, version in (("champion", "v1"), ("canary", "v3")):
            port = free_port()
            child = start_child(
                f"worker-{name}",
                [sys.executable, "-m", "bench.constant_worker", "--port", str(port),
                 "--version", version],
                url=f"http://127.0.0.1:{port}",
            )  # fmt: skip
            children.append(child)
            wait_http_ok(f"{child.url}/ready", child=child, timeout=60)
            ports[name] = port
        yield ports
    finally:
        for child in children:
            child.stop()


def users(config_path: Path, weights: dict[str, float], wanted: dict[str, int], prefix: str):
    """User ids the gateway routes to each variant under ``weights``, ``wanted`` of each."""
    assigner = Assigner.from_config(load_experiment(config_path).with_weights(weights))
    chosen: dict[str, list[str]] = {name: [] for name in wanted}
    i = 0
    while any(len(chosen[n]) < wanted[n] for n in wanted):
        unit = f"{prefix}-{i}"
        name = assigner.assign(unit).name
        if len(chosen[name]) < wanted[name]:
            chosen[name].append(unit)
        i += 1
    return chosen


async def _send(url: str, units: list[str], concurrency: int = 48) -> list[str]:
    """POST /predict once per unit; the request ids, in order."""
    ids: list[str] = [""] * len(units)
    queue = list(enumerate(units))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while queue:
                index, unit = queue.pop()
                async with session.post(
                    f"{url}/predict", json=BODY, headers={"X-User-ID": unit}
                ) as response:
                    assert response.status == 200, await response.text()
                    ids[index] = response.headers["X-Request-ID"]

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ids


def send(url: str, units: list[str]) -> list[str]:
    return asyncio.run(_send(url, units))


def recorded_requests(redis_url: str) -> int:
    return sum(
        v.requests for v in decode_stats(Store(redis_url).totals("demo")).variants().values()
    )


def abgate_json(redis_url: str, *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "abgate", *args],
        capture_output=True, text=True, timeout=180,
        env={**os.environ, "REDIS_URL": redis_url},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def run_two_epochs(
    tmp_path: Path, redis_url: str, ports: dict[str, int], *, drop: str | None = None
) -> dict[str, Any]:
    """90/10 traffic, PUT weights 50/50, more traffic; what every reader says."""
    path = write_config(tmp_path / "demo.yaml", ports, {"champion": 90, "canary": 10})
    env = {"ABGATE_TEST_DROP_RECORDS": drop} if drop else {}
    gateway = start_gateway(path, redis_url, **env)
    try:
        first = users(path, {"champion": 90, "canary": 10}, FIRST, "a")
        ids = send(gateway.url, first["champion"] + first["canary"])
        wait_for(lambda: recorded_requests(redis_url) == sum(FIRST.values()), "the first epoch")

        changed = requests.put(
            f"{gateway.url}/admin/experiments/demo/weights",
            json={"weights": {"champion": 50, "canary": 50}, "reason": "more canary traffic"},
            headers=AUTH, timeout=30,
        )  # fmt: skip
        assert changed.status_code == 200, changed.text
        version = changed.json()["version"]

        second = users(path, {"champion": 50, "canary": 50}, SECOND, "b")
        send(gateway.url, second["champion"] + second["canary"])
        lost = SECOND["canary"] // 20 if drop else 0
        total = sum(FIRST.values()) + sum(SECOND.values()) - lost
        wait_for(lambda: recorded_requests(redis_url) == total, "the second epoch")

        # Feedback for requests of the first epoch, sent after the weights changed.
        for rid in ids[:50]:
            answer = requests.post(
                f"{gateway.url}/feedback", json={"request_id": rid, "label": 1}, timeout=30
            )
            assert answer.status_code == 200, answer.text
        wait_for(
            lambda: sum(
                m.n
                for per in decode_stats(Store(redis_url).totals("demo")).epochs.values()
                for v in per.values()
                if (m := v.metrics.get("accuracy")) is not None
            ) == 50,
            "the feedback",
        )  # fmt: skip

        dashboard = requests.get(f"{gateway.url}/dashboard/data", headers=AUTH, timeout=60)
        assert dashboard.status_code == 200, dashboard.text
        return {
            "version": version,
            "report": abgate_json(redis_url, "report", "demo", "--format", "json"),
            "status": abgate_json(redis_url, "status", "demo", "--json")[0],
            "dashboard": dashboard.json(),
            "totals": decode_stats(Store(redis_url).totals("demo")),
        }
    finally:
        gateway.stop()


def test_a_weight_change_raises_no_split_alarm_anywhere(
    tmp_path: Path, redis_url: str, workers: dict[str, int]
) -> None:
    seen = run_two_epochs(tmp_path, redis_url, workers)
    report, status, dashboard = seen["report"], seen["status"], seen["dashboard"]
    assert report["srm"]["checked"] and not report["srm"]["mismatch"], report["srm"]["message"]
    assert all(v["rule"] != "srm" for v in report["verdicts"]), report["verdicts"]
    assert [e["weights"] for e in report["srm"]["epochs"]] == [
        {"champion": 90, "canary": 10}, {"champion": 50, "canary": 50}
    ]  # fmt: skip
    assert status["srm"]["checked"] and not status["srm"]["mismatch"], status["srm"]
    assert not dashboard["srm"]["mismatch"], dashboard["srm"]
    assert all(v["rule"] != "srm" for v in dashboard["verdicts"])

    # The feedback came after the change but counts in the epoch that served it.
    epochs = seen["totals"].epochs
    first, second = min(epochs), seen["version"]
    served_first = {name: v.metrics["accuracy"].n for name, v in epochs[first].items()
                    if "accuracy" in v.metrics}  # fmt: skip
    assert sum(served_first.values()) == 50
    assert all("accuracy" not in v.metrics for v in epochs[second].values())
    assert {name: v.requests for name, v in epochs[second].items()} == SECOND

    # Units are users (X-User-ID): each user's requests are one observation, in the
    # report as in Redis, where the unit sums cover every request of both epochs.
    assert report["analysis_unit"]["unit"] == "header X-User-ID", report["analysis_unit"]
    assert "error_rate" in report["analysis_unit"]["per_unit_metrics"], report["analysis_unit"]
    for name, stats in seen["totals"].variants().items():
        assert stats.unit_errors() is not None, (name, stats.unit_requests, stats.requests)


def test_records_lost_in_one_epoch_are_flagged_naming_it(
    tmp_path: Path, redis_url: str, workers: dict[str, int]
) -> None:
    # The change below makes config version 2: from it on, every 20th canary record is lost.
    seen = run_two_epochs(tmp_path, redis_url, workers, drop="canary:0.05:2")
    assert seen["version"] == 2
    report, status, dashboard = seen["report"], seen["status"], seen["dashboard"]
    assert report["srm"]["mismatch"], report["srm"]["message"]
    assert "config v2" in report["srm"]["message"]
    assert "config v1," not in report["srm"]["message"]
    assert [e["mismatch"] for e in report["srm"]["epochs"]] == [False, True]
    assert {v["rule"] for v in report["verdicts"]} == {"srm"}
    assert status["srm"]["mismatch"] and "config v2" in status["srm"]["message"]
    assert dashboard["srm"]["mismatch"] and "config v2" in dashboard["srm"]["message"]
    assert {v["rule"] for v in dashboard["verdicts"]} == {"srm"}
