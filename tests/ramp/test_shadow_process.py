"""A shadow phase with a real gateway, workers and Redis: mirrored, never served.

The ramp controller stores the shadow-phase config; the gateway follows it over
pub/sub. Requests then keep being answered by the champion while the candidate
gets their copies as a shadow, and a paired-count verdict of harm rolls it back
without a single request having been routed to it.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
import redis
import requests

from core.schema import PAIRED_CELLS, Keys, decode_stats, paired_prefix
from core.store import Store
from experiments.config import ExperimentConfig
from ramp.controller import RampController
from tests.conftest import port_of, start_gateway, write_config

pytestmark = pytest.mark.integration

ROW = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
TAIL = """ramp:
  variant: canary
  shadow: {mirror: 1.0, min_labels: 300, max_duration_s: 600}
  steps: [10, 50]
  check_interval_s: 1
"""


def test_the_candidate_is_mirrored_and_never_served_then_rolled_back(
    tmp_path: Path, redis_url: str, demo_workers
) -> None:
    ports = {n: port_of(c) for n, c in demo_workers.items()}
    path = write_config(tmp_path / "shadow.yaml", ports, {"champion": 100, "canary": 0}, tail=TAIL)
    from experiments.loader import load_experiment

    config: ExperimentConfig = load_experiment(path)
    store = Store(redis_url)
    client = redis.Redis.from_url(redis_url)
    gateway = start_gateway(path, redis_url)
    answered: list[str] = []
    checks = iter(range(1000))

    def mirrored() -> int:
        shadow = decode_stats(store.totals("demo")).shadows.get("canary")
        return shadow.requests if shadow is not None else 0

    def champion_requests() -> int:
        served = decode_stats(store.totals("demo")).variants().get("champion")
        return served.requests if served is not None else 0

    def traffic(_: float) -> None:
        if next(checks):
            return
        # First sleep: the gateway has been told of the shadow phase; send requests
        # until it mirrors them, then record the paired verdict of a worse model.
        deadline = time.monotonic() + 60
        while mirrored() < 40 and time.monotonic() < deadline:
            for i in range(10):
                reply = requests.post(
                    gateway.url + "/predict",
                    json={"features": [x * (i % 3 - 1) for x in ROW]},
                    headers={"X-User-ID": f"user-{len(answered)}"},
                    timeout=10,
                )
                answered.append(reply.json()["variant"])
            time.sleep(0.1)
        while champion_requests() < len(answered) and time.monotonic() < deadline:
            time.sleep(0.05)  # the recorder flushes every 50 ms
        for cell, count in zip(PAIRED_CELLS, (770, 70, 30, 130), strict=True):
            field = paired_prefix("canary", "champion", "accuracy") + cell
            client.hincrby(Keys("demo").totals, field, count)

    try:
        outcome = RampController(
            store, config, out_dir=tmp_path, out=io.StringIO(), sleep=traffic
        ).run()
    finally:
        gateway.stop()
    assert (outcome.status, outcome.rule) == ("rolled_back", "shadow_harm"), outcome.reason
    assert mirrored() >= 40  # the candidate answered copies of live requests ...
    assert answered and set(answered) == {"champion"}  # ... and no user got its answer
    served = decode_stats(store.totals("demo")).variants()
    assert "canary" not in served or served["canary"].requests == 0
    assert served["champion"].requests == len(answered)  # all recorded, all the champion's


@pytest.mark.parametrize(
    ("candidate", "ending", "rule"),
    [("v3", "rolled_back", "shadow_harm"), ("v2", "running", "shadow_pass")],
)
def test_real_labels_decide_the_shadow_phase(
    tmp_path: Path, redis_url: str, demo_workers, candidate: str, ending: str, rule: str
) -> None:
    """Labels posted back through /feedback score both answers; the gateway's own paired
    counts roll back the worse demo model (v3) and pass the better one (v2)."""
    import asyncio
    import threading

    from abgate.loadgen import run_load
    from experiments.loader import load_experiment

    ports = {n: port_of(c) for n, c in demo_workers.items()}
    # The candidate is listed as `canary` on the worker of its version.
    worker = {"v2": "challenger", "v3": "canary"}[candidate]
    path = write_config(
        tmp_path / "shadow.yaml",
        {"champion": ports["champion"], "canary": ports[worker]},
        {"champion": 100, "canary": 0},
        tail=TAIL.replace("min_labels: 300", "min_labels: 200"),
    )
    path.write_text(path.read_text().replace("model_version: v3", f"model_version: {candidate}"))
    config: ExperimentConfig = load_experiment(path)
    store = Store(redis_url)
    gateway = start_gateway(path, redis_url)
    stop = threading.Event()
    sender = threading.Thread(
        target=lambda: asyncio.run(
            run_load(gateway.url, rate=200, duration_s=120, stop=stop, concurrency=8)
        ),
        daemon=True,
    )

    class Exposed(Exception):
        pass

    def sleep(seconds: float) -> None:
        time.sleep(seconds)
        if ExperimentConfig.model_validate(store.get_config("demo").config).shadows == ():
            raise Exposed  # passed: the steps would begin; enough for this test

    sender.start()
    try:
        controller = RampController(store, config, out_dir=tmp_path, out=io.StringIO(), sleep=sleep)
        try:
            outcome = controller.run()
            status, ended_by = outcome.status, outcome.rule
        except Exposed:
            state = store.ramp_state("demo") or {}
            status, ended_by = state.get("status"), state["shadow_phase"]["rule"]
    finally:
        stop.set()
        sender.join(timeout=30)
        gateway.stop()
    assert (status, ended_by) == (ending, rule)
    shadow = decode_stats(store.totals("demo")).shadows["canary"]
    assert shadow.pairs("accuracy").n >= 200  # the gateway scored both answers
    if candidate == "v3":
        served = decode_stats(store.totals("demo")).variants()
        assert "canary" not in served or served["canary"].requests == 0
