"""A store that fails in an unexpected way loses no feedback and answers no 500."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from experiments.loader import load_experiment
from gateway.hotpath import HotPath
from gateway.live import LiveExperiments
from gateway.recorder import Recorder
from tests.conftest import write_config


class BrokenStore:
    """Fails as a client library can while its connection dies: not a Redis error."""

    def __init__(self) -> None:
        self.calls = 0

    async def feedback(self, name: str, item: Any, *, park: bool) -> Any:
        self.calls += 1
        raise AttributeError("'NoneType' object has no attribute 'write'")


def test_an_unexpected_store_failure_keeps_the_feedback_for_redis(tmp_path: Path) -> None:
    config = write_config(tmp_path / "demo.yaml", {"champion": 1}, {"champion": 100})
    experiments = LiveExperiments()
    experiments.install(load_experiment(config), 1)
    recorder, store = Recorder(None), BrokenStore()
    hotpath = HotPath(experiments, recorder, store)
    body = orjson.dumps({"request_id": "r-1", "label": 1, "experiment": "demo"})

    answer = asyncio.run(hotpath.feedback(body))

    assert answer.status == 202, answer.body
    assert orjson.loads(answer.body)["waiting"] == "waiting for Redis"
    assert store.calls == 1  # not retried at once: only a lost reply is
    kept = recorder.feedback["demo"]
    assert [(item.request_id, item.value) for item in kept] == [("r-1", 1.0)]
