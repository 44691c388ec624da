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

from abgate.schema import PAIRED_CELLS, Keys, decode_stats, paired_prefix
from abgate.store import Store
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
